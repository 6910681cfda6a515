//! One task per attached phone: pair (or wait for the person), read, diagnose, then watch for changes.
//!
//! The task owns its phone's connections and nothing else; it reports to the supervisor through a channel and
//! stops when its cancellation token fires (the phone was unplugged, or the daemon is stopping). A failure here
//! is reported as a phase and retried; it never touches another phone.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use backupd_api::Phase;
use backupd_mux::services::NotificationProxy;
use backupd_mux::{Muxd, Pairing, TrustProblem, Trusted};
use backupd_proto::services;
use backupd_proto::tls::DevicePinning;
use backupd_proto::usbmuxd::Device;
use backupd_rules::{CheckId, Diagnosis, PairingState, Timestamp, UsbmuxdStatus};

use crate::config::Settings;
use crate::snapshot::{self, Identity};

/// How often a phone waiting for the Trust tap or an unlock is asked again.
const TRUST_RETRY: Duration = Duration::from_secs(2);
/// First delay after a failed read; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// What a phone task tells the supervisor.
#[derive(Debug)]
pub enum Report {
    /// The task moved to another phase.
    Phase {
        /// The phone.
        udid: String,
        /// The phase.
        phase: Phase,
        /// The error that caused it, for `Failed`.
        error: Option<String>,
    },
    /// The phone's name and versions were read.
    Identity {
        /// The phone.
        udid: String,
        /// What was read.
        identity: Identity,
    },
    /// A diagnosis is ready.
    Diagnosis {
        /// The phone.
        udid: String,
        /// The diagnosis.
        diagnosis: Box<Diagnosis>,
        /// When it was made.
        at: i64,
        /// Whether the phone waits for the person (Trust, unlock).
        waiting_for_user: bool,
    },
}

/// A request to a phone task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Read the phone again and make a new diagnosis.
    Rediagnose,
}

/// What a phone task needs, shared by all of them.
#[derive(Debug)]
pub struct Context {
    /// The daemon's settings.
    pub settings: Settings,
    /// The usbmuxd client.
    pub muxd: Muxd,
    /// Phones (normalised UDIDs) with a job running: their staging folder is in use, not left over.
    pub jobs_running: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The latest scan of the USB bus, for the phone's link speed.
    pub usb: crate::usb::Shared,
}

impl Context {
    /// A context with no job running.
    pub fn new(settings: Settings, muxd: Muxd) -> Self {
        Self {
            settings,
            muxd,
            jobs_running: std::sync::Mutex::default(),
            usb: tokio::sync::watch::channel(None).1,
        }
    }

    /// The same, with the USB watcher's scans.
    pub fn with_usb(mut self, usb: crate::usb::Shared) -> Self {
        self.usb = usb;
        self
    }

    /// Marks a job of `udid` as running or ended.
    pub fn set_job_running(&self, udid: &str, running: bool) {
        let key = backupd_proto::usbmuxd::normalize_udid(udid);
        let mut set = match self.jobs_running.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if running {
            set.insert(key);
        } else {
            set.remove(&key);
        }
    }

    fn job_running(&self, udid: &str) -> bool {
        let key = backupd_proto::usbmuxd::normalize_udid(udid);
        match self.jobs_running.lock() {
            Ok(g) => g.contains(&key),
            Err(poisoned) => poisoned.into_inner().contains(&key),
        }
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The finding a trust problem shows, and the pairing state it stands for.
fn pairing_state(problem: &TrustProblem) -> Option<PairingState> {
    match problem {
        TrustProblem::Pending => Some(PairingState::TrustPending),
        TrustProblem::PasscodeLocked => Some(PairingState::PasscodeRequired),
        TrustProblem::Denied => Some(PairingState::Denied),
        TrustProblem::InvalidHost => Some(PairingState::InvalidHost),
        _ => None,
    }
}

struct Task {
    ctx: Arc<Context>,
    device: Device,
    reports: mpsc::Sender<Report>,
    commands: mpsc::Receiver<Command>,
    pairing: Pairing,
}

/// Runs the task of one phone until `cancel` fires.
pub async fn run(
    ctx: Arc<Context>,
    device: Device,
    reports: mpsc::Sender<Report>,
    commands: mpsc::Receiver<Command>,
    cancel: CancellationToken,
) {
    let udid = device.udid.clone();
    let stop = cancel.clone();
    let mut task = Task {
        ctx,
        device,
        reports,
        commands,
        pairing: Pairing::new(),
    };
    tokio::select! {
        () = stop.cancelled() => {}
        () = task.main_loop() => {}
    }
    tracing::debug!(udid, "phone task stopped");
}

impl Task {
    async fn report(&self, report: Report) {
        // The supervisor outlives every task; a closed channel means it is stopping.
        let _ = self.reports.send(report).await;
    }

    async fn phase(&self, phase: Phase, error: Option<String>) {
        self.report(Report::Phase {
            udid: self.device.udid.clone(),
            phase,
            error,
        })
        .await;
    }

    fn pinning(&self) -> DevicePinning {
        if self.ctx.settings.pin_device_keys {
            DevicePinning::Pinned
        } else {
            DevicePinning::Disabled
        }
    }

    async fn diagnose(&self, snap: &backupd_rules::Snapshot) -> Diagnosis {
        let mut snap = snap.clone();
        snap.usb = crate::usb::phone_facts(self.ctx.usb.borrow().as_deref(), &self.device.udid);
        let snap = &snap;
        // Reading the backup folder (and, once per backup, WhatsApp's chat database in it) is blocking work.
        let dir = self.ctx.settings.backup_dir.clone();
        let udid = self.device.udid.clone();
        let address = self.ctx.muxd.address().to_string();
        let host = tokio::task::spawn_blocking(move || {
            crate::host::facts(&dir, Some(&udid), UsbmuxdStatus::Reachable, &address)
        })
        .await
        .unwrap_or_else(|_| {
            backupd_rules::HostFacts::unread(backupd_rules::UnknownReason::QueryFailed)
        });
        let mut host = host;
        // A running backup writes in its staging folder: that is work in progress, not an interrupted run.
        if self.ctx.job_running(&self.device.udid) {
            host.unfinished_backup = backupd_rules::Fact::known(
                false,
                backupd_rules::Source::host("staging folder in use by the running job"),
            );
        }
        backupd_rules::diagnose(
            snap,
            &host,
            Timestamp::from_unix_secs(now()),
            &self.ctx.settings.rules,
        )
    }

    /// Waits `delay`, or less if a command asks for a new diagnosis.
    async fn wait(&mut self, delay: Duration) {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            cmd = self.commands.recv() => if cmd.is_none() { std::future::pending::<()>().await },
        }
    }

    async fn main_loop(&mut self) {
        let mut retry = FIRST_RETRY;
        loop {
            self.phase(Phase::Reading, None).await;
            let opened = self
                .pairing
                .open(
                    &self.ctx.muxd,
                    &self.device,
                    self.pinning(),
                    SystemTime::now(),
                )
                .await;
            let trusted = match opened {
                Ok(t) => t,
                Err(problem) => {
                    if let Some(state) = pairing_state(&problem) {
                        let diagnosis = self.diagnose(&snapshot::untrusted(state)).await;
                        self.report(Report::Diagnosis {
                            udid: self.device.udid.clone(),
                            diagnosis: Box::new(diagnosis),
                            at: now(),
                            waiting_for_user: true,
                        })
                        .await;
                        self.phase(Phase::WaitingForUser, None).await;
                        self.wait(TRUST_RETRY).await;
                    } else {
                        let error = match problem {
                            TrustProblem::Failed(e) => format!("{e}"),
                            other => format!("{other:?}"),
                        };
                        tracing::warn!(udid = self.device.udid, error, "failed to open a session");
                        self.phase(Phase::Failed, Some(error)).await;
                        self.wait(retry).await;
                        retry = (retry * 2).min(MAX_RETRY);
                    }
                    continue;
                }
            };
            match self.read_and_watch(trusted).await {
                Ok(()) => retry = FIRST_RETRY,
                Err(e) => {
                    tracing::warn!(udid = self.device.udid, error = %e, "failed to read the phone");
                    self.phase(Phase::Failed, Some(e.to_string())).await;
                    self.wait(retry).await;
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
        }
    }

    /// Reads the phone, reports the diagnosis, then waits for a reason to read it again.
    async fn read_and_watch(
        &mut self,
        mut trusted: Trusted,
    ) -> Result<(), backupd_mux::TransportError> {
        let (snap, identity) = snapshot::read(&mut trusted.lockdown).await?;
        self.report(Report::Identity {
            udid: self.device.udid.clone(),
            identity,
        })
        .await;
        let diagnosis = self.diagnose(&snap).await;
        let problems = diagnosis
            .findings
            .iter()
            .map(|f| f.id)
            .collect::<Vec<CheckId>>();
        tracing::info!(udid = self.device.udid, findings = ?problems, "diagnosis ready");
        self.report(Report::Diagnosis {
            udid: self.device.udid.clone(),
            diagnosis: Box::new(diagnosis),
            at: now(),
            waiting_for_user: false,
        })
        .await;
        self.phase(Phase::Ready, None).await;

        // The phone posts this when its backup settings change; a failure to observe only loses promptness.
        let mut proxy = match NotificationProxy::start(&mut trusted.lockdown).await {
            Ok(mut np) => match np.observe(services::BACKUP_DOMAIN_CHANGED).await {
                Ok(()) => Some(np),
                Err(_) => None,
            },
            Err(e) => {
                tracing::info!(udid = self.device.udid, error = %e, "notification_proxy unavailable");
                None
            }
        };
        trusted.lockdown.close().await;
        let refresh = tokio::time::sleep(self.ctx.settings.refresh);
        tokio::pin!(refresh);
        loop {
            tokio::select! {
                () = &mut refresh => return Ok(()),
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Rediagnose) => return Ok(()),
                    None => std::future::pending::<()>().await,
                },
                event = async {
                    match proxy.as_mut() {
                        Some(np) => np.next_event().await,
                        None => std::future::pending().await,
                    }
                } => match event {
                    Ok(services::notification::Event::Relay(name)) => {
                        tracing::info!(udid = self.device.udid, name, "phone reported a change");
                        return Ok(());
                    }
                    Ok(_) => proxy = None,
                    Err(e) => {
                        // Usually the phone going away; the supervisor stops this task on Detached.
                        tracing::debug!(udid = self.device.udid, error = %e, "notification_proxy ended");
                        proxy = None;
                    }
                },
            }
        }
    }
}

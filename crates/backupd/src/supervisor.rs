//! The supervisor: one loop that linearises usbmuxd events, API requests and phone-task reports.
//!
//! All daemon state lives here and is changed only by this loop. Phone tasks and the usbmuxd watcher talk to
//! it through channels; API handlers ask it through a channel with a reply channel. Shutdown cancels one
//! token and waits for every task on the tracker.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use backupd_api::{self as api, Event, MuxerState, Phase};
use backupd_mux::{MuxEvent, Muxd};
use backupd_proto::usbmuxd::Device;
use backupd_rules::{Timestamp, UsbmuxdStatus};

use crate::config::Settings;
use crate::device::{self, Command, Context, Report};
use crate::jobs;
use crate::state::Store;

/// A question from an API handler.
#[derive(Debug)]
pub enum Request {
    /// Everything.
    Status(oneshot::Sender<api::Status>),
    /// One phone by UDID (any spelling).
    Device(String, oneshot::Sender<Option<api::Device>>),
    /// Diagnose one phone again, or all attached phones.
    Diagnose(Option<String>, oneshot::Sender<Option<api::Accepted>>),
    /// Start a job on a phone.
    StartJob(
        String,
        jobs::Work,
        oneshot::Sender<Result<api::Job, StartError>>,
    ),
    /// Every job, newest first.
    Jobs(oneshot::Sender<api::Jobs>),
    /// One job.
    Job(u64, oneshot::Sender<Option<api::Job>>),
    /// Cancel a job.
    CancelJob(u64, oneshot::Sender<Option<api::Job>>),
}

/// Why a job could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// The phone is not attached.
    NotAttached,
    /// The phone already has a job.
    Busy(u64),
}

/// What the usbmuxd watcher reports.
#[derive(Debug)]
enum Muxer {
    Event(MuxEvent),
    Available,
    Unavailable(String),
}

struct Running {
    device: Device,
    device_id: u32,
    commands: mpsc::Sender<Command>,
    cancel: CancellationToken,
}

/// The daemon's shared handles, for the API server.
#[derive(Debug, Clone)]
pub struct Handles {
    /// Requests to the supervisor.
    pub requests: mpsc::Sender<Request>,
    /// The event stream.
    pub events: broadcast::Sender<Event>,
    /// The default language of texts.
    pub lang: backupd_rules::Lang,
    /// Where local backups are.
    pub backup_dir: std::path::PathBuf,
    /// The counters behind `GET /metrics`.
    pub metrics: crate::metrics::Metrics,
}

struct JobEntry {
    view: api::Job,
    cancel: CancellationToken,
}

struct Supervisor {
    metrics: crate::metrics::Metrics,
    jobs: BTreeMap<u64, JobEntry>,
    next_job: u64,
    job_reports: mpsc::Sender<jobs::JobReport>,
    ctx: Arc<Context>,
    store: Store,
    running: BTreeMap<String, Running>,
    muxer: MuxerState,
    muxer_error: Option<String>,
    events: broadcast::Sender<Event>,
    reports_tx: mpsc::Sender<Report>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// The USB bus, the second source of facts (`usb.rs`).
    bus: crate::usb::Bus,
    usb_nudge: Arc<tokio::sync::Notify>,
}

fn key(udid: &str) -> String {
    backupd_proto::usbmuxd::normalize_udid(udid)
}

/// Runs the supervisor loop until `shutdown` completes, then stops every task and waits for them.
pub async fn run(
    settings: Settings,
    store: Store,
    handles_out: oneshot::Sender<Handles>,
    shutdown: impl Future<Output = ()>,
) {
    let (requests_tx, mut requests) = mpsc::channel(64);
    let (events, _) = broadcast::channel(256);
    let muxd = Muxd::new(settings.usbmuxd.clone());
    let (reports_tx, mut reports) = mpsc::channel(256);
    let (muxer_tx, mut muxer_rx) = mpsc::channel(64);
    let (job_tx, mut job_rx) = mpsc::channel(256);
    let (usb_tx, mut usb_rx) = mpsc::channel(4);
    let (bus, usb_shared) = crate::usb::Bus::new();
    let usb = settings.usb_watch.then_some(settings.usb_rescan);
    recover_backups(&settings.backup_dir);
    let mut sup = Supervisor {
        metrics: crate::metrics::Metrics::default(),
        jobs: BTreeMap::new(),
        next_job: 1,
        job_reports: job_tx,
        ctx: Arc::new(Context::new(settings, muxd.clone()).with_usb(usb_shared)),
        store,
        running: BTreeMap::new(),
        muxer: MuxerState::Unavailable,
        muxer_error: Some("not connected yet".into()),
        events: events.clone(),
        reports_tx,
        tracker: TaskTracker::new(),
        cancel: CancellationToken::new(),
        bus,
        usb_nudge: Arc::new(tokio::sync::Notify::new()),
    };
    // Jobs of earlier runs stay listed; new ids continue after them.
    for job in sup.store.jobs().to_vec() {
        sup.next_job = sup.next_job.max(job.id + 1);
        sup.jobs.insert(
            job.id,
            JobEntry {
                view: job,
                cancel: CancellationToken::new(),
            },
        );
    }
    let lang = sup.ctx.settings.lang;
    let _ = handles_out.send(Handles {
        requests: requests_tx,
        events,
        lang,
        backup_dir: sup.ctx.settings.backup_dir.clone(),
        metrics: sup.metrics.clone(),
    });
    sup.tracker
        .spawn(watch_muxer(muxd, muxer_tx, sup.cancel.clone()));
    if let Some(rescan) = usb {
        sup.tracker.spawn(crate::usb::watch(
            usb_tx,
            sup.usb_nudge.clone(),
            rescan,
            sup.tracker.clone(),
            sup.cancel.clone(),
        ));
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(m) = muxer_rx.recv() => sup.on_muxer(m),
            Some(r) = reports.recv() => sup.on_report(r),
            Some(j) = job_rx.recv() => sup.on_job(j),
            Some(q) = requests.recv() => sup.on_request(q),
            Some(scan) = usb_rx.recv() => sup.on_usb(scan),
        }
    }
    tracing::info!("stopping");
    sup.cancel.cancel();
    sup.tracker.close();
    // Tasks may be blocked sending reports; keep draining so they can see the cancellation and finish.
    loop {
        tokio::select! {
            () = sup.tracker.wait() => break,
            Some(_) = reports.recv() => {}
            Some(_) = muxer_rx.recv() => {}
            Some(_) = job_rx.recv() => {}
            Some(_) = usb_rx.recv() => {}
        }
    }
    sup.store.mark_all_detached();
    sup.store.save();
}

/// Finishes commits interrupted by a crash and notes interrupted runs, before any phone is served.
fn recover_backups(backup_dir: &std::path::Path) {
    let books = backup_dir.join(backupd_backup::store::BOOKKEEPING);
    let Ok(entries) = std::fs::read_dir(&books) else {
        return;
    };
    let store = backupd_backup::store::Store::new(backup_dir);
    for udid in entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
    {
        match store.recover(&udid) {
            Ok(backupd_backup::store::Recovery::Clean) => {}
            Ok(r) => tracing::info!(udid, recovery = ?r, "backup store recovered"),
            Err(e) => tracing::warn!(udid, error = %e, "backup store recovery failed"),
        }
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Follows usbmuxd's Listen stream; reconnects with backoff when usbmuxd is absent or restarts.
async fn watch_muxer(muxd: Muxd, tx: mpsc::Sender<Muxer>, cancel: CancellationToken) {
    let mut delay = Duration::from_millis(500);
    let mut reported_down = false;
    loop {
        let attempt = async {
            match muxd.listen().await {
                Ok(mut listener) => {
                    let _ = tx.send(Muxer::Available).await;
                    loop {
                        match listener.next_event().await {
                            Ok(ev) => {
                                if tx.send(Muxer::Event(ev)).await.is_err() {
                                    return None;
                                }
                            }
                            Err(e) => return Some((e.to_string(), true)),
                        }
                    }
                }
                Err(e) => Some((e.to_string(), false)),
            }
        };
        let outcome = tokio::select! {
            () = cancel.cancelled() => return,
            o = attempt => o,
        };
        let Some((error, was_up)) = outcome else {
            return;
        };
        if was_up {
            delay = Duration::from_millis(500);
            reported_down = false;
        }
        if !reported_down {
            tracing::warn!(address = %muxd.address(), error, "usbmuxd unavailable; retrying");
            let _ = tx.send(Muxer::Unavailable(error)).await;
            reported_down = true;
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

impl Supervisor {
    fn emit(&self, event: Event) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    fn on_muxer(&mut self, m: Muxer) {
        // A phone usbmuxd takes or drops changes what the bus means: look again.
        self.usb_nudge.notify_one();
        match m {
            Muxer::Available => {
                tracing::info!(address = %self.ctx.muxd.address(), "usbmuxd connected");
                self.muxer = MuxerState::Connected;
                self.muxer_error = None;
                self.emit(Event::UsbmuxdAvailable);
            }
            Muxer::Unavailable(error) => {
                self.muxer = MuxerState::Unavailable;
                self.muxer_error = Some(error.clone());
                // Phones cannot be reached without usbmuxd; their tasks stop until it is back and lists them.
                let udids: Vec<String> = self.running.keys().cloned().collect();
                for k in udids {
                    self.stop(&k);
                }
                self.emit(Event::UsbmuxdUnavailable { error });
            }
            Muxer::Event(MuxEvent::Attached(device)) => self.attach(device),
            Muxer::Event(MuxEvent::Detached { device_id }) => {
                let found = self
                    .running
                    .iter()
                    .find(|(_, r)| r.device_id == device_id)
                    .map(|(k, _)| k.clone());
                if let Some(k) = found {
                    self.stop(&k);
                }
            }
            Muxer::Event(MuxEvent::Paired { device_id }) => {
                // Another tool paired a phone we wait on: it can go on now. Our own pairing needs no nudge.
                if let Some((k, r)) = self.running.iter().find(|(_, r)| r.device_id == device_id)
                    && self
                        .store
                        .device(k)
                        .is_some_and(|d| d.phase == Phase::WaitingForUser)
                {
                    let _ = r.commands.try_send(Command::Rediagnose);
                }
            }
            Muxer::Event(_) => {}
        }
    }

    fn attach(&mut self, device: Device) {
        if device.connection_type != backupd_proto::usbmuxd::ConnectionType::Usb {
            // Wi-Fi sync entries duplicate a USB phone; backupd reads phones over USB.
            return;
        }
        let k = key(&device.udid);
        if self.running.contains_key(&k) {
            self.stop(&k);
        }
        tracing::info!(
            udid = device.udid,
            device_id = device.device_id,
            "phone attached"
        );
        self.store.attached(&device.udid);
        let (cmd_tx, cmd_rx) = mpsc::channel(4);
        let cancel = self.cancel.child_token();
        self.running.insert(
            k,
            Running {
                device: device.clone(),
                device_id: device.device_id,
                commands: cmd_tx,
                cancel: cancel.clone(),
            },
        );
        self.emit(Event::Attached {
            udid: device.udid.clone(),
        });
        self.tracker.spawn(device::run(
            self.ctx.clone(),
            device,
            self.reports_tx.clone(),
            cmd_rx,
            cancel,
        ));
    }

    fn stop(&mut self, k: &str) {
        if let Some(r) = self.running.remove(k) {
            r.cancel.cancel();
            if let Some(udid) = self.store.detached(k) {
                tracing::info!(udid, "phone detached");
                self.emit(Event::Detached { udid });
            }
            self.store.save();
        }
    }

    fn on_report(&mut self, r: Report) {
        match r {
            Report::Phase { udid, phase, error } => {
                // A task cancelled a moment ago may still report; a detached phone stays detached.
                if self.running.contains_key(&key(&udid)) {
                    self.store.set_phase(&udid, phase, error);
                }
            }
            Report::Identity { udid, identity } => self.store.set_identity(&udid, identity),
            Report::Diagnosis {
                udid,
                diagnosis,
                at,
                waiting_for_user,
            } => {
                if !self.running.contains_key(&key(&udid)) {
                    return;
                }
                let problems = !diagnosis.findings.is_empty();
                let pairing = diagnosis
                    .findings
                    .iter()
                    .find(|f| f.id.as_str().starts_with("pairing."))
                    .map(|f| f.id.as_str().to_owned());
                let changed = self.store.set_diagnosis(&udid, *diagnosis, at);
                if waiting_for_user {
                    self.store.set_phase(&udid, Phase::WaitingForUser, None);
                    if changed && let Some(finding) = pairing {
                        self.emit(Event::TrustNeeded {
                            udid: udid.clone(),
                            finding,
                        });
                    }
                }
                self.store.save();
                if !waiting_for_user || changed {
                    self.emit(Event::DiagnosisReady { udid, problems });
                }
            }
        }
    }

    fn host_view(&self) -> api::Host {
        let status = match self.muxer {
            MuxerState::Connected => UsbmuxdStatus::Reachable,
            MuxerState::Unavailable => UsbmuxdStatus::Unreachable,
        };
        let address = self.ctx.muxd.address().to_string();
        let mut facts = crate::host::facts(&self.ctx.settings.backup_dir, None, status, &address);
        if let Some(access) = self.bus.access() {
            facts.usb_access.set_known(access);
        }
        let now = Timestamp::from_unix_secs(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        );
        api::Host {
            usbmuxd_address: self.ctx.muxd.address().to_string(),
            usbmuxd: self.muxer,
            usbmuxd_error: self.muxer_error.clone(),
            backup_dir: self.ctx.settings.backup_dir.display().to_string(),
            diagnosis: Some(backupd_rules::diagnose_host(
                &facts,
                now,
                &self.ctx.settings.rules,
            )),
        }
    }

    fn on_request(&mut self, q: Request) {
        match q {
            Request::Status(reply) => {
                let _ = reply.send(api::Status {
                    host: self.host_view(),
                    devices: self.store.devices(),
                    usb_devices: self.usb_devices(),
                });
            }
            Request::Device(udid, reply) => {
                let _ = reply.send(self.store.device(&udid));
            }
            Request::Diagnose(which, reply) => {
                let targets: Vec<String> = match &which {
                    Some(u) => self
                        .running
                        .keys()
                        .filter(|k| **k == key(u))
                        .cloned()
                        .collect(),
                    None => self.running.keys().cloned().collect(),
                };
                if which.is_some() && targets.is_empty() {
                    let _ = reply.send(None);
                    return;
                }
                let mut udids = Vec::new();
                for k in targets {
                    if let Some(r) = self.running.get(&k) {
                        let _ = r.commands.try_send(Command::Rediagnose);
                        udids.extend(self.store.udid_of(&k));
                    }
                }
                let _ = reply.send(Some(api::Accepted { udids }));
            }
            Request::StartJob(udid, work, reply) => {
                let _ = reply.send(self.start_job(&udid, work));
            }
            Request::Jobs(reply) => {
                let jobs = self.jobs.values().rev().map(|j| j.view.clone()).collect();
                let _ = reply.send(api::Jobs { jobs });
            }
            Request::Job(id, reply) => {
                let _ = reply.send(self.jobs.get(&id).map(|j| j.view.clone()));
            }
            Request::CancelJob(id, reply) => {
                let job = self.jobs.get(&id).map(|j| {
                    if j.view.state == api::JobState::Running {
                        tracing::info!(job = id, udid = j.view.udid, "cancelling job");
                        j.cancel.cancel();
                    }
                    j.view.clone()
                });
                let _ = reply.send(job);
            }
        }
    }

    fn start_job(&mut self, udid: &str, work: jobs::Work) -> Result<api::Job, StartError> {
        let k = key(udid);
        let device = self
            .running
            .get(&k)
            .map(|r| r.device.clone())
            .ok_or(StartError::NotAttached)?;
        if let Some(busy) = self
            .jobs
            .values()
            .find(|j| key(&j.view.udid) == k && j.view.state == api::JobState::Running)
        {
            return Err(StartError::Busy(busy.view.id));
        }
        let id = self.next_job;
        self.next_job += 1;
        let (kind, full) = match &work {
            jobs::Work::Backup { full, .. } => (api::JobKind::Backup, *full),
            jobs::Work::Encryption(_) => (api::JobKind::Encryption, false),
        };
        let view = api::Job {
            id,
            udid: device.udid.clone(),
            kind,
            state: api::JobState::Running,
            full,
            started_at: unix_now(),
            finished_at: None,
            progress: api::JobProgress {
                stage: "preparing".into(),
                ..api::JobProgress::default()
            },
            error: None,
            device_error_code: None,
            verified_files: None,
            verify_method: None,
            password_ok: None,
        };
        tracing::info!(job = id, udid = device.udid, kind = ?kind, full, "job started");
        let cancel = self.cancel.child_token();
        self.ctx.set_job_running(&device.udid, true);
        self.jobs.insert(
            id,
            JobEntry {
                view: view.clone(),
                cancel: cancel.clone(),
            },
        );
        self.tracker.spawn(jobs::run(
            self.ctx.clone(),
            device,
            id,
            work,
            self.job_reports.clone(),
            cancel,
        ));
        Ok(view)
    }

    fn on_usb(&mut self, scan: crate::usb::ScanResult) {
        let (events, appeared) = self.bus.on_scan(
            scan,
            &self.running.keys().cloned().collect(),
            &self.history(),
        );
        for event in events {
            self.emit(event);
        }
        // A phone now seen on the bus gets its link speed into its diagnosis.
        for k in appeared {
            if let Some(r) = self.running.get(&k) {
                let _ = r.commands.try_send(Command::Rediagnose);
            }
        }
    }

    fn history(&self) -> Vec<crate::usb::Known> {
        self.store
            .devices()
            .into_iter()
            .map(|d| crate::usb::Known {
                udid: d.udid,
                name: d.name,
                product_type: d.product_type,
            })
            .collect()
    }

    /// Devices seen only on the bus, each diagnosed with the history of the phone its ECID belongs to.
    fn usb_devices(&self) -> Vec<api::UsbDevice> {
        let status = match self.muxer {
            MuxerState::Connected => UsbmuxdStatus::Reachable,
            MuxerState::Unavailable => UsbmuxdStatus::Unreachable,
        };
        let now = Timestamp::from_unix_secs(unix_now());
        let listed = self.running.keys().cloned().collect();
        let address = self.ctx.muxd.address().to_string();
        self.bus
            .usb_only(&listed, &self.history())
            .into_iter()
            .map(|only| {
                let udid = only.known.as_ref().map(|k| k.udid.as_str());
                let host =
                    crate::host::facts(&self.ctx.settings.backup_dir, udid, status, &address);
                let mut phone =
                    backupd_rules::Snapshot::unread(backupd_rules::UnknownReason::NotQueried);
                if let Some(product) = only.known.as_ref().and_then(|k| k.product_type.clone()) {
                    phone.product_type.set_known(product);
                }
                phone.usb = Some(only.facts);
                let mut view = only.view;
                view.diagnosis = Some(backupd_rules::diagnose_usb(
                    &phone,
                    &host,
                    now,
                    &self.ctx.settings.rules,
                ));
                view
            })
            .collect()
    }

    fn on_job(&mut self, report: jobs::JobReport) {
        match report {
            jobs::JobReport::Progress { id, progress } => {
                if let Some(j) = self.jobs.get_mut(&id) {
                    j.view.progress = progress;
                    let job = j.view.clone();
                    self.emit(Event::JobProgress { job });
                }
            }
            jobs::JobReport::Ended { id, ended } => {
                let Some(j) = self.jobs.get_mut(&id) else {
                    return;
                };
                self.ctx.set_job_running(&j.view.udid, false);
                j.view.state = ended.state;
                j.view.error = ended.error;
                j.view.device_error_code = ended.device_error_code;
                j.view.verified_files = ended.verified_files;
                j.view.verify_method = ended.verify_method;
                j.view.password_ok = ended.password_ok;
                j.view.finished_at = Some(unix_now());
                let job = j.view.clone();
                tracing::info!(job = id, udid = job.udid, state = ?job.state, error = job.error, "job ended");
                self.metrics.job_ended(&job);
                self.store.record_job(job.clone());
                self.store.save();
                // The local backup changed: the phone's diagnosis should say so.
                if let Some(r) = self.running.get(&key(&job.udid)) {
                    let _ = r.commands.try_send(Command::Rediagnose);
                }
                self.emit(Event::JobFinished { job });
            }
        }
    }
}

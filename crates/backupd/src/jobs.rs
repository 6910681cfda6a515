//! Backup and encryption jobs: each runs in its own task, reports progress to the supervisor, and goes on
//! when the client that started it disconnects. Cancelling drops the work; the store keeps the previous
//! backup whatever happens.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use backupd_api::{EncryptionAction, EncryptionChange, JobProgress, JobState};
use backupd_backup::encrypted::Password;
use backupd_backup::engine::{self, BackupError, BackupRequest, Progress};
use backupd_backup::store::Store;
use backupd_backup::verify::Method;
use backupd_mux::{Pairing, TrustProblem};
use backupd_proto::tls::DevicePinning;
use backupd_proto::usbmuxd::Device;

use crate::device::Context;

/// What a job asks for.
#[derive(Debug)]
pub enum Work {
    /// A backup.
    Backup {
        /// Force a full backup.
        full: bool,
        /// The backup password, for the full check of an encrypted backup (never stored).
        password: Option<Password>,
    },
    /// An encryption change.
    Encryption(EncryptionChange),
}

/// How a job ended.
#[derive(Debug)]
pub struct Ended {
    /// Succeeded, failed or cancelled.
    pub state: JobState,
    /// Why not, in words.
    pub error: Option<String>,
    /// The phone's MBErrorDomain code.
    pub device_error_code: Option<u64>,
    /// Files checked by verification (backups).
    pub verified_files: Option<u64>,
    /// How the backup was verified (`manifest`, `structure`, `decrypted`).
    pub verify_method: Option<String>,
    /// Whether the password given opened the backup.
    pub password_ok: Option<bool>,
}

impl Ended {
    /// A job that failed for `why`.
    fn failed(why: String, device_error_code: Option<u64>) -> Self {
        Self {
            state: JobState::Failed,
            error: Some(why),
            device_error_code,
            verified_files: None,
            verify_method: None,
            password_ok: None,
        }
    }

    fn succeeded() -> Self {
        Self {
            state: JobState::Succeeded,
            error: None,
            device_error_code: None,
            verified_files: None,
            verify_method: None,
            password_ok: None,
        }
    }
}

/// The API's name of a verification method.
pub fn method_name(method: Method) -> String {
    match method {
        Method::Manifest => "manifest",
        Method::Structure => "structure",
        Method::Decrypted => "decrypted",
    }
    .to_owned()
}

/// What a job tells the supervisor.
#[derive(Debug)]
pub enum JobReport {
    /// New progress.
    Progress {
        /// The job.
        id: u64,
        /// Where it is.
        progress: JobProgress,
    },
    /// The job ended.
    Ended {
        /// The job.
        id: u64,
        /// How.
        ended: Ended,
    },
}

fn view(p: &Progress) -> JobProgress {
    let stage = serde_json::to_value(p.stage)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    JobProgress {
        stage,
        bytes: p.bytes,
        files: p.files,
        device_percent: p.device_percent,
        announced_bytes: p.announced_bytes,
        elapsed_secs: p.elapsed_secs,
    }
}

fn trust_words(problem: TrustProblem) -> String {
    match problem {
        TrustProblem::Pending => {
            "the iPhone shows “Trust This Computer?”: tap Trust, then start again".into()
        }
        TrustProblem::PasscodeLocked => "the iPhone is locked: unlock it, then start again".into(),
        TrustProblem::Denied => {
            "this computer was not trusted on the iPhone: unplug it, plug it in and tap Trust"
                .into()
        }
        TrustProblem::InvalidHost => {
            "the iPhone no longer trusts this computer: unplug it, plug it in and tap Trust".into()
        }
        TrustProblem::Failed(e) => format!("{e}"),
        other => format!("{other:?}"),
    }
}

fn failed(e: &BackupError) -> Ended {
    let mut words = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        words.push_str(": ");
        words.push_str(&s.to_string());
        source = s.source();
    }
    Ended::failed(words, e.device_code())
}

/// How long a job waits for the phone to be paired (the person may have to tap Trust).
const PAIRING_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

async fn wait_for_pair_record(ctx: &Context, device: &Device) -> Result<(), Ended> {
    let deadline = tokio::time::Instant::now() + PAIRING_WAIT;
    loop {
        match ctx.muxd.read_pair_record(&device.udid).await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Ok(None) => {
                return Err(Ended::failed(
                    "the iPhone is not paired with this computer: tap Trust on it, then start again"
                        .into(),
                    None,
                ));
            }
            Err(e) => {
                return Err(Ended::failed(
                    format!("cannot read the pair record: {e}"),
                    None,
                ));
            }
        }
    }
}

/// Runs one job until it ends or `cancel` fires.
pub async fn run(
    ctx: Arc<Context>,
    device: Device,
    id: u64,
    work: Work,
    reports: mpsc::Sender<JobReport>,
    cancel: CancellationToken,
) {
    let (tx, mut rx) = watch::channel(Progress {
        stage: engine::Stage::Preparing,
        bytes: 0,
        files: 0,
        device_percent: 0.0,
        announced_bytes: 0,
        elapsed_secs: 0.0,
    });
    let pinning = if ctx.settings.pin_device_keys {
        DevicePinning::Pinned
    } else {
        DevicePinning::Disabled
    };
    let job = async {
        // Pairing is the phone task's: a job that paired too would put a second Trust dialog on the phone.
        // It waits for the record the phone task saves, then opens its own session with it.
        if let Err(ended) = wait_for_pair_record(&ctx, &device).await {
            return ended;
        }
        let mut trusted = match Pairing::new()
            .open(&ctx.muxd, &device, pinning, SystemTime::now())
            .await
        {
            Ok(t) => t,
            Err(p) => return Ended::failed(trust_words(p), None),
        };
        match work {
            Work::Backup { full, password } => {
                let store = Store::new(&ctx.settings.backup_dir);
                let request = BackupRequest {
                    full,
                    keep_versions: ctx.settings.backup_versions,
                    min_free_bytes: ctx.settings.backup_min_free_bytes,
                    password,
                };
                match engine::backup(
                    &mut trusted.lockdown,
                    &trusted.record,
                    &store,
                    &request,
                    &tx,
                )
                .await
                {
                    Ok(outcome) => Ended {
                        verified_files: Some(outcome.report.files),
                        verify_method: Some(method_name(outcome.report.method)),
                        password_ok: outcome.report.password_ok,
                        ..Ended::succeeded()
                    },
                    Err(e) => failed(&e),
                }
            }
            Work::Encryption(change) => {
                let (old, new) = match change.action {
                    EncryptionAction::On => (None, change.new_password),
                    EncryptionAction::Off => (change.old_password, None),
                    EncryptionAction::Change => (change.old_password, change.new_password),
                };
                match engine::change_password(&mut trusted.lockdown, &trusted.record, old, new, &tx)
                    .await
                {
                    Ok(()) => Ended::succeeded(),
                    Err(e) => failed(&e),
                }
            }
        }
    };
    tokio::pin!(job);
    let ended = loop {
        tokio::select! {
            ended = &mut job => break ended,
            () = cancel.cancelled() => break Ended {
                state: JobState::Cancelled,
                ..Ended::failed("cancelled; the previous backup is intact".into(), None)
            },
            changed = rx.changed() => {
                if changed.is_ok() {
                    let progress = view(&rx.borrow_and_update());
                    let _ = reports.send(JobReport::Progress { id, progress }).await;
                }
            }
        }
    };
    // The last progress (e.g. `done`) before the end.
    let progress = view(&rx.borrow());
    let _ = reports.send(JobReport::Progress { id, progress }).await;
    let _ = reports.send(JobReport::Ended { id, ended }).await;
}

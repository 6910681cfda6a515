//! The contract between `backupd` and its clients: HTTP/1.1 with JSON bodies on a Unix socket.
//!
//! This is the only crate that defines a wire format used outside the phone. Every path lives under
//! [`PREFIX`]; `docs/api.md` documents each one. Compatibility rules, after nextest's: a new field is
//! optional (`#[serde(default)]`) so an old reader ignores it and a new reader accepts old data; a field is
//! never renamed or given a new meaning within `/v1`; enums carry `#[non_exhaustive]` in Rust and readers
//! keep unknown strings rather than failing.
//!
//! Exit codes of `backupdctl` are part of the contract too: see [`exit`].

pub mod route;

use backupd_rules::Diagnosis;
use serde::{Deserialize, Serialize};

/// The path prefix of this API version.
pub const PREFIX: &str = "/v1";

/// `GET`: the host's state and every phone the daemon knows ([`Status`]).
pub const PATH_DEVICES: &str = "/v1/devices";
/// `GET /v1/devices/{udid}`: one phone ([`Device`]); `POST /v1/devices/{udid}/diagnose`: re-run its diagnosis.
pub const PATH_DEVICE_PREFIX: &str = "/v1/devices/";
/// `POST`: re-run the diagnosis of every attached phone.
pub const PATH_DIAGNOSE_ALL: &str = "/v1/diagnose";
/// `GET`: a stream of [`Event`]s as newline-delimited JSON, one object per line, until the client hangs up.
pub const PATH_EVENTS: &str = "/v1/events";
/// `GET`: the daemon's version and settings a client may show ([`DaemonInfo`]).
pub const PATH_INFO: &str = "/v1/info";
/// `GET`: every backup job since the daemon started ([`Jobs`]); `GET /v1/jobs/{id}` one [`Job`];
/// `POST /v1/jobs/{id}/cancel` stops a running one.
pub const PATH_JOBS: &str = "/v1/jobs";
/// `GET`: the daemon's metrics in the Prometheus text format (not JSON; outside `/v1`, where scrapers look).
pub const PATH_METRICS: &str = "/metrics";
/// Under [`PATH_DEVICE_PREFIX`]`{udid}`: `POST …/backup` with a [`BackupStart`] body starts a backup job
/// (answers 202 with the [`Job`], 409 when the phone already has one, 404 when it is not attached);
/// `GET …/backups` lists the local backups ([`BackupList`]); `POST …/encryption` with an
/// [`EncryptionChange`] body starts a job that turns backup encryption on or off or changes its password.
pub const DEVICE_BACKUP: &str = "backup";
/// See [`DEVICE_BACKUP`].
pub const DEVICE_BACKUPS: &str = "backups";
/// See [`DEVICE_BACKUP`].
pub const DEVICE_ENCRYPTION: &str = "encryption";
/// Under [`PATH_DEVICE_PREFIX`]`{udid}`: `POST …/inspect` with an [`InspectRequest`] body looks inside the newest
/// local backup (read-only) and answers an [`Inspection`]; the diagnosis then uses what it found.
pub const DEVICE_INSPECT: &str = "inspect";
/// Under [`PATH_DEVICE_PREFIX`]`{udid}`: `POST …/backups/check-password` with a [`PasswordCheck`] body checks
/// the backup password against the newest backup's keybag without decrypting any file; answers
/// [`PasswordCheckResult`] (200, `ok` true or false), or 404 with code `no_encrypted_backup`.
pub const DEVICE_CHECK_PASSWORD: &str = "backups/check-password";

/// The environment variable naming the daemon's socket for clients.
pub const SOCKET_ENV: &str = "BACKUPD_SOCKET";

/// Exit codes of `backupdctl`; documented in `docs/api.md` and in `backupdctl --help`.
pub mod exit {
    /// Every check passed (or the command did what was asked).
    pub const OK: i32 = 0;
    /// A check found a problem on at least one phone or on the host.
    pub const PROBLEMS: i32 = 1;
    /// The command line was wrong.
    pub const USAGE: i32 = 2;
    /// The daemon could not be reached on its socket.
    pub const DAEMON_UNREACHABLE: i32 = 3;
    /// The phone asked for is not known to the daemon.
    pub const NOT_FOUND: i32 = 4;
    /// The daemon answered with an error, or an answer could not be read.
    pub const DAEMON_ERROR: i32 = 5;
    /// No diagnosis is available yet (no phone attached, or still reading it).
    pub const NOT_READY: i32 = 6;
    /// A backup (or encryption change) failed, was cancelled, or did not verify; the previous backup is intact.
    pub const JOB_FAILED: i32 = 7;
    /// The phone already has a job running.
    pub const BUSY: i32 = 8;
    /// The backup password given does not open the backup (`backups --check-password`; a backup whose
    /// full check was asked for with a password that does not open it, which is kept all the same).
    pub const WRONG_PASSWORD: i32 = 9;
    /// Interrupted (Ctrl-C) while waiting; a job in the daemon goes on.
    pub const INTERRUPTED: i32 = 130;
}

/// Whether the daemon can reach usbmuxd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MuxerState {
    /// Connected and listening for phones.
    Connected,
    /// Not reachable; the daemon retries with backoff.
    Unavailable,
}

/// The host as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// The usbmuxd address in use, in libusbmuxd's spelling.
    pub usbmuxd_address: String,
    /// Whether usbmuxd is reachable.
    pub usbmuxd: MuxerState,
    /// Why not, when unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usbmuxd_error: Option<String>,
    /// Where local backups go.
    pub backup_dir: String,
    /// Host-level checks (e.g. `host.usbmuxd_unavailable`), when the rules produced any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
}

/// Where the daemon is with a phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Phase {
    /// Plugged in; about to pair or read.
    Attached,
    /// Waiting for the person to act on the phone (tap Trust, unlock); the diagnosis says what.
    WaitingForUser,
    /// Reading the phone.
    Reading,
    /// A diagnosis is ready.
    Ready,
    /// Reading failed; `error` says why and a retry is scheduled.
    Failed,
    /// Unplugged; the last diagnosis is kept.
    Detached,
    /// A phase a newer daemon reports that this reader does not know.
    #[serde(other)]
    Unknown,
}

/// One phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// The UDID as usbmuxd reports it.
    pub udid: String,
    /// `DeviceName`, once read.
    #[serde(default)]
    pub name: Option<String>,
    /// `ProductType`, once read.
    #[serde(default)]
    pub product_type: Option<String>,
    /// `ProductVersion`, once read.
    #[serde(default)]
    pub product_version: Option<String>,
    /// Whether it is plugged in now.
    pub connected: bool,
    /// Where the daemon is with it.
    pub phase: Phase,
    /// When the diagnosis was made (seconds since the Unix epoch).
    #[serde(default)]
    pub diagnosed_at: Option<i64>,
    /// The latest diagnosis.
    #[serde(default)]
    pub diagnosis: Option<Diagnosis>,
    /// The last error, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to `GET /v1/devices`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The host.
    pub host: Host,
    /// Every phone seen since the daemon's state began, attached ones first.
    pub devices: Vec<Device>,
    /// Apple devices on the USB bus that usbmuxd does not list: phones in DFU or recovery mode, or phones
    /// usbmuxd does not take. Absent from daemons without a USB watcher.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usb_devices: Vec<UsbDevice>,
}

/// An Apple device seen only on the USB bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsbDevice {
    /// A stable id while it stays plugged in: `ecid:<ECID>` when the ECID is known, else `usb:<port path>`.
    pub id: String,
    /// `normal`, `recovery`, `dfu`, `wtf`, `port_dfu`, `kis`, `mac_restore` or `ibridge`; readers keep unknown
    /// values.
    pub mode: String,
    /// The USB product id.
    pub product_id: u16,
    /// Where it is plugged in: `bus 1 port 1-2`.
    pub location: String,
    /// The link speed in Mbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mbps: Option<u64>,
    /// The ECID, 16 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecid: Option<String>,
    /// The chip id (`CPID`), 4 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip_id: Option<String>,
    /// The serial number: reported in recovery mode, or known from the phone's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// The UDID: the serial string in normal mode, or the UDID of the phone this ECID was seen as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udid: Option<String>,
    /// The phone's name, when this ECID was seen before in normal mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The phone's `ProductType`, when known from its history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<String>,
    /// What it means and what to do (`device.dfu_mode`, `device.recovery_mode`, `host.usbmuxd_not_claiming`).
    #[serde(default)]
    pub diagnosis: Option<Diagnosis>,
}

/// The answer to `GET /v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// The daemon's version.
    pub version: String,
    /// The API version, `v1`.
    pub api: String,
    /// The daemon's default language for texts (`en` or `it`).
    pub lang: String,
}

/// Something that happened, streamed on `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A phone was plugged in.
    Attached {
        /// Its UDID.
        udid: String,
    },
    /// A phone was unplugged.
    Detached {
        /// Its UDID.
        udid: String,
    },
    /// The phone waits for the person: tap Trust, or unlock it.
    TrustNeeded {
        /// Its UDID.
        udid: String,
        /// The finding id saying what to do (`pairing.trust_pending`, `pairing.passcode_required`, ...).
        finding: String,
    },
    /// A new diagnosis is ready.
    DiagnosisReady {
        /// Its UDID.
        udid: String,
        /// Whether any check found a problem.
        problems: bool,
    },
    /// usbmuxd became unreachable.
    UsbmuxdUnavailable {
        /// Why.
        error: String,
    },
    /// usbmuxd is reachable again.
    UsbmuxdAvailable,
    /// A job moved on (sent at most a few times per second).
    JobProgress {
        /// The job.
        job: Job,
    },
    /// A job ended.
    JobFinished {
        /// The job.
        job: Job,
    },
    /// A device appeared on the USB bus that usbmuxd does not list.
    UsbDeviceAttached {
        /// Its [`UsbDevice::id`].
        id: String,
        /// Its mode.
        mode: String,
    },
    /// Such a device left the bus (or usbmuxd now lists it).
    UsbDeviceDetached {
        /// Its [`UsbDevice::id`].
        id: String,
    },
    /// A phone changed mode on the bus, e.g. from `normal` into `recovery`, or back.
    ModeChanged {
        /// Its ECID.
        ecid: String,
        /// Its UDID, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        udid: Option<String>,
        /// The mode it was last seen in.
        from: String,
        /// The mode it is in now.
        to: String,
    },
    /// An event a newer daemon sends that this reader does not know.
    #[serde(other)]
    Unknown,
}

/// The body of `POST /v1/devices/{udid}/backup`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStart {
    /// Ask the phone for a full backup instead of an incremental one.
    #[serde(default)]
    pub full: bool,
    /// The backup password of a phone that encrypts: the backup is then opened and checked in full rather
    /// than by its structure. It travels only on the local socket; the daemon neither stores nor logs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for BackupStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupStart")
            .field("full", &self.full)
            .field("password", &self.password.as_ref().map(|_| ".."))
            .finish()
    }
}

/// The body of `POST /v1/devices/{udid}/backups/check-password`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordCheck {
    /// The password to check. Never stored, never logged.
    pub password: String,
}

impl std::fmt::Debug for PasswordCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordCheck { .. }")
    }
}

/// The answer to `POST /v1/devices/{udid}/backups/check-password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordCheckResult {
    /// The phone.
    pub udid: String,
    /// Whether the password opens the newest backup.
    pub ok: bool,
    /// When it was checked (seconds since the Unix epoch); recorded only when it opened the backup.
    pub checked_at: i64,
    /// The date of the backup it was checked against.
    #[serde(default)]
    pub backup_date: Option<i64>,
}

/// What an encryption change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncryptionAction {
    /// Turn encryption on with `new_password`.
    On,
    /// Turn it off; needs `old_password`.
    Off,
    /// Change the password; needs both.
    Change,
}

/// The body of `POST /v1/devices/{udid}/encryption`. The passwords travel only on the local socket; the
/// daemon neither stores nor logs them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionChange {
    /// What to do.
    pub action: EncryptionAction,
    /// The current password (off, change).
    #[serde(default)]
    pub old_password: Option<String>,
    /// The new password (on, change).
    #[serde(default)]
    pub new_password: Option<String>,
}

impl std::fmt::Debug for EncryptionChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords never reach a log, even through a debug print.
        f.debug_struct("EncryptionChange")
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobKind {
    /// A local backup.
    Backup,
    /// Turning backup encryption on or off, or changing its password.
    Encryption,
    /// A kind a newer daemon reports that this reader does not know.
    #[serde(other)]
    Unknown,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Running.
    Running,
    /// Finished well (a backup: complete, verified and kept).
    Succeeded,
    /// Failed; `error` says why; the previous backup is intact.
    Failed,
    /// Stopped on request; the previous backup is intact.
    Cancelled,
    /// A state a newer daemon reports that this reader does not know.
    #[serde(other)]
    Unknown,
}

/// A backup's progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    /// `preparing`, `waiting_for_passcode` (enter the passcode on the phone), `transferring`, `verifying`,
    /// `committing`, `done`.
    pub stage: String,
    /// File bytes received.
    pub bytes: u64,
    /// Files received.
    pub files: u64,
    /// The phone's own percentage.
    pub device_percent: f64,
    /// Bytes the phone announced so far.
    pub announced_bytes: u64,
    /// Seconds since the job started.
    pub elapsed_secs: f64,
}

/// A job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job's id.
    pub id: u64,
    /// The phone.
    pub udid: String,
    /// What it does.
    pub kind: JobKind,
    /// Where it is.
    pub state: JobState,
    /// Whether a full backup was asked for.
    #[serde(default)]
    pub full: bool,
    /// When it started (seconds since the Unix epoch).
    pub started_at: i64,
    /// When it ended.
    #[serde(default)]
    pub finished_at: Option<i64>,
    /// The latest progress.
    #[serde(default)]
    pub progress: JobProgress,
    /// Why it failed, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The phone's MBErrorDomain code, when the phone stopped it (208: the passcode was not entered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_error_code: Option<u64>,
    /// Files checked by the verification of the finished backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_files: Option<u64>,
    /// How the finished backup was verified: `manifest` (every file against Manifest.db), `structure`
    /// (encrypted, checked without the password), `decrypted` (encrypted, opened with the password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_method: Option<String>,
    /// When a password was given for the backup: whether it opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_ok: Option<bool>,
}

/// The answer to `GET /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Jobs {
    /// Newest first.
    pub jobs: Vec<Job>,
}

/// A local backup of a phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupEntry {
    /// `current` for the newest, else the version's name (its date).
    pub name: String,
    /// Its folder.
    pub path: String,
    /// Its date (seconds since the Unix epoch).
    #[serde(default)]
    pub date: Option<i64>,
    /// Bytes on disk (files shared with other versions are counted in each).
    pub size: u64,
    /// iOS version of the phone when it was made.
    #[serde(default)]
    pub ios_version: Option<String>,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// Whether it passed verification.
    pub verified: bool,
    /// How it was verified (`manifest`, `structure`, `decrypted`), for the newest backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_method: Option<String>,
    /// When its password was last checked and opened it (seconds since the Unix epoch), for the newest
    /// encrypted backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_checked_at: Option<i64>,
}

/// The answer to `GET /v1/devices/{udid}/backups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupList {
    /// The phone.
    pub udid: String,
    /// Newest first.
    pub backups: Vec<BackupEntry>,
}

/// The body of `POST /v1/devices/{udid}/inspect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectRequest {
    /// The backup password, for an encrypted backup; used for this request only, never stored or logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// What the newest local backup of a phone holds, as `POST …/inspect` found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspection {
    /// The phone.
    pub udid: String,
    /// The backup's date (seconds since the Unix epoch); `None` when there is no finished backup.
    #[serde(default)]
    pub backup_date: Option<i64>,
    /// WhatsApp's chats in it.
    pub whatsapp: WhatsappInBackup,
}

/// WhatsApp's chats in a local backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WhatsappInBackup {
    /// There is no finished local backup of the phone.
    NoBackup,
    /// The backup holds no WhatsApp chat database.
    Absent,
    /// The chat database was read.
    Chats {
        /// Messages in it.
        messages: u64,
        /// The newest message's date (seconds since the Unix epoch).
        #[serde(default)]
        newest_message: Option<i64>,
    },
    /// The backup is encrypted and needs its password.
    Encrypted,
    /// A kind a newer daemon reports that this reader does not know.
    #[serde(other)]
    Unknown,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's code and words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable code: `not_found`, `bad_request`, `method_not_allowed`, `busy`, `internal`.
    pub code: String,
    /// Words for a person.
    pub message: String,
}

/// The answer to a `POST …/diagnose`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The phones whose diagnosis was asked for again.
    pub udids: Vec<String>,
}

impl Status {
    /// Whether any check, on the host or on any phone with a diagnosis, found a problem.
    pub fn has_problems(&self) -> bool {
        let host = self
            .host
            .diagnosis
            .as_ref()
            .is_some_and(|d| !d.findings.is_empty());
        let usb = self
            .usb_devices
            .iter()
            .any(|d| d.diagnosis.as_ref().is_some_and(|d| !d.findings.is_empty()));
        host || usb || self.devices.iter().any(Device::has_problems)
    }
}

impl Device {
    /// Whether the latest diagnosis has findings.
    pub fn has_problems(&self) -> bool {
        self.diagnosis
            .as_ref()
            .is_some_and(|d| !d.findings.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_reader_keeps_unknown_values_from_a_newer_daemon() {
        let phase: Phase = serde_json::from_str("\"hibernating\"").expect("unknown phase");
        assert_eq!(phase, Phase::Unknown);
        let state: JobState = serde_json::from_str("\"paused\"").expect("unknown state");
        assert_eq!(state, JobState::Unknown);
        let event: Event =
            serde_json::from_str(r#"{"event":"battery_low","udid":"x"}"#).expect("unknown event");
        assert_eq!(event, Event::Unknown);
        let known: Event =
            serde_json::from_str(r#"{"event":"attached","udid":"x"}"#).expect("known");
        assert_eq!(known, Event::Attached { udid: "x".into() });
    }

    #[test]
    fn an_old_status_without_usb_devices_still_reads() {
        let old = r#"{"host":{"usbmuxd_address":"UNIX:/var/run/usbmuxd","usbmuxd":"connected","backup_dir":"/b"},"devices":[]}"#;
        let status: Status = serde_json::from_str(old).expect("old status");
        assert!(status.usb_devices.is_empty());
        assert!(!status.has_problems());
        let changed: Event = serde_json::from_str(
            r#"{"event":"mode_changed","ecid":"001A2B3C4D5E6F01","from":"normal","to":"recovery"}"#,
        )
        .expect("mode change");
        assert!(matches!(changed, Event::ModeChanged { udid: None, .. }));
    }
}

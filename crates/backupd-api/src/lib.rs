//! The contract between `backupd` and its clients: HTTP/1.1 with JSON bodies on a Unix socket.
//!
//! This is the only crate that defines a wire format used outside the phone. Every path lives under
//! [`PREFIX`]; `docs/api.md` documents each one. Compatibility rules, after nextest's: a new field is
//! optional (`#[serde(default)]`) so an old reader ignores it and a new reader accepts old data; a field is
//! never renamed or given a new meaning within `/v1`; enums carry `#[non_exhaustive]` in Rust and readers
//! keep unknown strings rather than failing.
//!
//! Exit codes of `backupdctl` are part of the contract too: see [`exit`].

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
    /// A stable code: `not_found`, `bad_request`, `method_not_allowed`, `internal`.
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
        host || self.devices.iter().any(Device::has_problems)
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

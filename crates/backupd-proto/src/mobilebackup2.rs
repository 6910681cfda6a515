//! mobilebackup2: the requests and responses carried in `DLMessageProcessMessage`, the MBErrorDomain codes,
//! the documents of a backup folder (Status.plist, Manifest.plist, the `MBFile` records of Manifest.db) and
//! the path check a host applies to every path the device names.
//!
//! The service runs over DeviceLink ([`crate::devicelink`]): after the version exchange the host sends
//! [`Request::Hello`], the device answers a [`Response`] with `ProtocolVersion`, then the host sends one
//! operation request such as [`Request::Backup`] and serves the device's DeviceLink messages until the device
//! sends its final [`Response`] (ErrorCode 0 = success). A backup folder is `<root>/<UDID>/` holding
//! `Info.plist` (host-written), `Status.plist`, `Manifest.plist`, `Manifest.db` (device-written) and the files
//! under `<xx>/<fileID>` with `fileID = sha1(domain + "-" + relativePath)`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plist::{Dictionary, Uid, Value};
use sha1::{Digest, Sha1};

use crate::devicelink::{HostMessage, integer_as_i64};
use crate::plist_util::{self, DictExt};

/// The lockdown service name; start it with the pair record's EscrowBag.
pub const SERVICE_NAME: &str = "com.apple.mobilebackup2";
/// The service name over RemoteXPC (iOS 17+ RSD tunnels).
pub const RSD_SERVICE_NAME: &str = "com.apple.mobilebackup2.shim.remote";
/// The AFC service, used around a backup for the sync lock file.
pub const AFC_SERVICE_NAME: &str = "com.apple.afc";
/// The protocol versions hosts offer in `Hello`, as reals.
pub const SUPPORTED_PROTOCOL_VERSIONS: [f64; 2] = [2.0, 2.1];
/// The protocol version current devices answer.
pub const PROTOCOL_VERSION: f64 = 2.1;
/// The AFC file hosts lock (exclusive, non-blocking) for the duration of a backup.
pub const LOCK_SYNC_PATH: &str = "/com.apple.itunes.lock_sync";

/// `Status.plist`.
pub const STATUS_PLIST: &str = "Status.plist";
/// `Manifest.plist`.
pub const MANIFEST_PLIST: &str = "Manifest.plist";
/// `Manifest.db`.
pub const MANIFEST_DB: &str = "Manifest.db";
/// `Info.plist` (written by the host).
pub const INFO_PLIST: &str = "Info.plist";
/// The folder a device uploads into before it moves the files into place.
pub const SNAPSHOT_DIR: &str = "Snapshot";

/// Notification names of the backup choreography (notification_proxy).
pub mod notifications {
    /// Posted by the host before it takes the sync lock.
    pub const SYNC_WILL_START: &str = "com.apple.itunes-mobdev.syncWillStart";
    /// Posted by the host before it tries the lock.
    pub const SYNC_LOCK_REQUEST: &str = "com.apple.itunes-mobdev.syncLockRequest";
    /// Posted by the host once it holds the lock.
    pub const SYNC_DID_START: &str = "com.apple.itunes-mobdev.syncDidStart";
    /// Posted by the host after it released the lock.
    pub const SYNC_DID_FINISH: &str = "com.apple.itunes-mobdev.syncDidFinish";
    /// Posted by the device when the user cancels the sync on the phone.
    pub const SYNC_CANCEL_REQUEST: &str = "com.apple.itunes-client.syncCancelRequest";
    /// Posted by the device to suspend the sync.
    pub const SYNC_SUSPEND_REQUEST: &str = "com.apple.itunes-client.syncSuspendRequest";
    /// Posted by the device to resume the sync.
    pub const SYNC_RESUME_REQUEST: &str = "com.apple.itunes-client.syncResumeRequest";
    /// Posted by the device when the passcode prompt shows (iOS 16.1+, after the Backup request).
    pub const LOCAL_AUTH_PRESENTED: &str = "com.apple.LocalAuthentication.ui.presented";
    /// Posted by the device when the passcode prompt goes away.
    pub const LOCAL_AUTH_DISMISSED: &str = "com.apple.LocalAuthentication.ui.dismissed";
    /// Posted by the device when a value of the `com.apple.mobile.backup` domain changes.
    pub const BACKUP_DOMAIN_CHANGED: &str = "com.apple.mobile.backup.domain_changed";
}

/// MBErrorDomain codes seen in a device's final `Response`.
pub mod error_code {
    /// Success.
    pub const OK: u64 = 0;
    /// In a Hello answer: no common protocol version. During a backup on iOS 6: keychain copy failed.
    pub const NO_COMMON_VERSION: u64 = 1;
    /// Failed to create the snapshot (a leftover of an interrupted backup; reboot the phone).
    pub const SNAPSHOT_FAILED: u64 = 3;
    /// An upload of one file failed with an I/O error.
    pub const UPLOAD_IO_ERROR: u64 = 100;
    /// Several uploads failed.
    pub const MULTIPLE_UPLOAD_ERRORS: u64 = 104;
    /// Not enough free space on the host.
    pub const INSUFFICIENT_FREE_SPACE: u64 = 105;
    /// The previous backup's properties (Manifest.plist) could not be read.
    pub const BACKUP_PROPERTIES_UNREADABLE: u64 = 205;
    /// Wrong backup password.
    pub const INVALID_PASSWORD: u64 = 207;
    /// The passcode was not entered on the phone (iOS 16.1+).
    pub const DEVICE_LOCKED: u64 = 208;
    /// Setup Assistant has not finished.
    pub const SETUP_NOT_FINISHED: u64 = 212;
}

/// The text a device gives for an MBErrorDomain code, without the `(MBErrorDomain/N)` suffix.
pub fn error_text(code: u64) -> Option<&'static str> {
    Some(match code {
        error_code::NO_COMMON_VERSION => "Error copying keychain data",
        error_code::SNAPSHOT_FAILED => "Failed to create snapshot",
        error_code::UPLOAD_IO_ERROR => "Input/output error",
        error_code::MULTIPLE_UPLOAD_ERRORS => "Multiple errors uploading files",
        error_code::INSUFFICIENT_FREE_SPACE => "Insufficient free disk space on drive to back up",
        error_code::BACKUP_PROPERTIES_UNREADABLE => "Error reading backup properties",
        error_code::INVALID_PASSWORD => "Invalid password",
        error_code::DEVICE_LOCKED => "Device locked",
        error_code::SETUP_NOT_FINISHED => "Unable to backup until Setup is finished",
        _ => return None,
    })
}

/// The `ErrorDescription` a device sends for a code: `"<text> (MBErrorDomain/<code>)"`.
pub fn error_description(code: u64) -> String {
    format!(
        "{} (MBErrorDomain/{code})",
        error_text(code).unwrap_or("Unknown error")
    )
}

/// Errors reading mobilebackup2 messages and backup documents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Mb2Error {
    /// A message lacks a key or has one of the wrong type.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// What was wrong.
        detail: &'static str,
    },
    /// A document is not a plist.
    #[error("failed to parse {what}")]
    Plist {
        /// What was being read.
        what: &'static str,
        /// Why.
        #[source]
        source: plist::Error,
    },
}

fn malformed(what: &'static str, detail: &'static str) -> Mb2Error {
    Mb2Error::Malformed { what, detail }
}

/// Options of a `Backup` request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackupOptions {
    /// `ForceFullBackup`: back up everything, whatever the previous backup holds.
    pub force_full: bool,
    /// Other keys of `Options`, kept verbatim.
    pub extra: Dictionary,
}

/// A request the host sends in `DLMessageProcessMessage`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Request {
    /// `Hello`: negotiate the protocol version.
    Hello {
        /// `SupportedProtocolVersions`.
        versions: Vec<f64>,
    },
    /// `Backup`.
    Backup {
        /// `TargetIdentifier`: the UDID of the phone (and the backup folder name).
        target: String,
        /// `SourceIdentifier`, when given.
        source: Option<String>,
        /// `Options`.
        options: BackupOptions,
    },
    /// `Restore`.
    Restore {
        /// `TargetIdentifier`.
        target: String,
        /// `SourceIdentifier`.
        source: Option<String>,
        /// `Options` (RestoreSystemFiles, RestoreShouldReboot, Password, …).
        options: Dictionary,
    },
    /// `Info`: describe the backup the host holds.
    Info {
        /// `TargetIdentifier`.
        target: String,
        /// `SourceIdentifier`.
        source: Option<String>,
    },
    /// `List`: list the backup's files (CSV).
    List {
        /// `TargetIdentifier`.
        target: String,
        /// `SourceIdentifier`.
        source: Option<String>,
    },
    /// `ChangePassword`: enable (only `new`), disable (only `old`) or change backup encryption.
    ChangePassword {
        /// `TargetIdentifier`, when given.
        target: Option<String>,
        /// `OldPassword`.
        old: Option<String>,
        /// `NewPassword`.
        new: Option<String>,
    },
    /// `EnableCloudBackup`.
    EnableCloudBackup {
        /// `TargetIdentifier`.
        target: String,
        /// `CloudBackupState`.
        enable: bool,
    },
    /// Any other request (`Unback`, `Extract`, `EraseDevice`, …), kept verbatim.
    Other {
        /// `MessageName`.
        name: String,
        /// The whole dictionary.
        fields: Dictionary,
    },
}

impl Request {
    /// The `MessageName`.
    pub fn name(&self) -> &str {
        match self {
            Self::Hello { .. } => "Hello",
            Self::Backup { .. } => "Backup",
            Self::Restore { .. } => "Restore",
            Self::Info { .. } => "Info",
            Self::List { .. } => "List",
            Self::ChangePassword { .. } => "ChangePassword",
            Self::EnableCloudBackup { .. } => "EnableCloudBackup",
            Self::Other { name, .. } => name,
        }
    }

    /// `Hello` with the versions every host offers.
    pub fn hello() -> Self {
        Self::Hello {
            versions: SUPPORTED_PROTOCOL_VERSIONS.to_vec(),
        }
    }

    /// The request as the dictionary of `DLMessageProcessMessage`.
    pub fn to_dict(&self) -> Dictionary {
        let mut d = match self {
            Self::Other { fields, .. } => fields.clone(),
            _ => Dictionary::new(),
        };
        d.insert("MessageName".into(), self.name().to_owned().into());
        let ids = |d: &mut Dictionary, target: &str, source: &Option<String>| {
            d.insert("TargetIdentifier".into(), target.to_owned().into());
            if let Some(s) = source {
                d.insert("SourceIdentifier".into(), s.clone().into());
            }
        };
        match self {
            Self::Hello { versions } => {
                d.insert(
                    "SupportedProtocolVersions".into(),
                    Value::Array(versions.iter().map(|v| Value::Real(*v)).collect()),
                );
            }
            Self::Backup {
                target,
                source,
                options,
            } => {
                ids(&mut d, target, source);
                let mut o = options.extra.clone();
                if options.force_full {
                    o.insert("ForceFullBackup".into(), true.into());
                }
                if !o.is_empty() {
                    d.insert("Options".into(), Value::Dictionary(o));
                }
            }
            Self::Restore {
                target,
                source,
                options,
            } => {
                ids(&mut d, target, source);
                d.insert("Options".into(), Value::Dictionary(options.clone()));
            }
            Self::Info { target, source } | Self::List { target, source } => {
                ids(&mut d, target, source);
            }
            Self::ChangePassword { target, old, new } => {
                for (k, v) in [
                    ("TargetIdentifier", target),
                    ("OldPassword", old),
                    ("NewPassword", new),
                ] {
                    if let Some(v) = v {
                        d.insert(k.into(), v.clone().into());
                    }
                }
            }
            Self::EnableCloudBackup { target, enable } => {
                d.insert("TargetIdentifier".into(), target.clone().into());
                d.insert("CloudBackupState".into(), (*enable).into());
            }
            Self::Other { .. } => {}
        }
        d
    }

    /// The request as the DeviceLink message the host sends.
    pub fn to_message(&self) -> HostMessage {
        HostMessage::ProcessMessage(self.to_dict())
    }

    /// Reads a request (device side).
    pub fn from_dict(d: &Dictionary) -> Result<Self, Mb2Error> {
        const WHAT: &str = "mobilebackup2 request";
        let name = d
            .str_key("MessageName")
            .ok_or_else(|| malformed(WHAT, "no MessageName"))?;
        let target = || {
            d.str_key("TargetIdentifier")
                .map(str::to_owned)
                .ok_or_else(|| malformed(WHAT, "no TargetIdentifier"))
        };
        let source = || d.str_key("SourceIdentifier").map(str::to_owned);
        let s = |k: &str| d.str_key(k).map(str::to_owned);
        Ok(match name {
            "Hello" => Self::Hello {
                versions: d
                    .get("SupportedProtocolVersions")
                    .and_then(Value::as_array)
                    .ok_or_else(|| malformed(WHAT, "no SupportedProtocolVersions"))?
                    .iter()
                    .filter_map(|v| match v {
                        Value::Real(r) => Some(*r),
                        v => integer_as_i64(v).map(|i| i as f64),
                    })
                    .collect(),
            },
            "Backup" => {
                let mut extra = d.dict_key("Options").cloned().unwrap_or_default();
                let force_full =
                    matches!(extra.remove("ForceFullBackup"), Some(Value::Boolean(true)));
                Self::Backup {
                    target: target()?,
                    source: source(),
                    options: BackupOptions { force_full, extra },
                }
            }
            "Restore" => Self::Restore {
                target: target()?,
                source: source(),
                options: d.dict_key("Options").cloned().unwrap_or_default(),
            },
            "Info" => Self::Info {
                target: target()?,
                source: source(),
            },
            "List" => Self::List {
                target: target()?,
                source: source(),
            },
            "ChangePassword" => Self::ChangePassword {
                target: s("TargetIdentifier"),
                old: s("OldPassword"),
                new: s("NewPassword"),
            },
            "EnableCloudBackup" => Self::EnableCloudBackup {
                target: target()?,
                enable: d
                    .bool_key("CloudBackupState")
                    .ok_or_else(|| malformed(WHAT, "no CloudBackupState"))?,
            },
            other => Self::Other {
                name: other.to_owned(),
                fields: d.clone(),
            },
        })
    }
}

/// The device's `Response` (to Hello, and at the end of every operation).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// `ErrorCode`: 0 on success, else an MBErrorDomain code ([`error_code`]).
    pub error_code: u64,
    /// `ErrorDescription`, e.g. `Device locked (MBErrorDomain/208)`.
    pub error_description: Option<String>,
    /// `ProtocolVersion` (Hello answers).
    pub protocol_version: Option<f64>,
    /// `Content` (Info and List answers).
    pub content: Option<Value>,
}

impl Response {
    /// Success.
    pub fn ok() -> Self {
        Self {
            error_code: error_code::OK,
            error_description: None,
            protocol_version: None,
            content: None,
        }
    }

    /// The answer to Hello: success and the protocol version chosen.
    pub fn hello(version: f64) -> Self {
        Self {
            protocol_version: Some(version),
            ..Self::ok()
        }
    }

    /// A failure with the device's description of `code`.
    pub fn error(code: u64) -> Self {
        Self::error_with(code, error_description(code))
    }

    /// A failure with a description of the caller's.
    pub fn error_with(code: u64, description: impl Into<String>) -> Self {
        Self {
            error_code: code,
            error_description: Some(description.into()),
            protocol_version: None,
            content: None,
        }
    }

    /// Whether `ErrorCode` is 0.
    pub fn is_ok(&self) -> bool {
        self.error_code == error_code::OK
    }

    /// The response as the dictionary of `DLMessageProcessMessage`.
    pub fn to_dict(&self) -> Dictionary {
        let mut d = Dictionary::new();
        d.insert("MessageName".into(), "Response".into());
        d.insert("ErrorCode".into(), Value::Integer(self.error_code.into()));
        if let Some(desc) = &self.error_description {
            d.insert("ErrorDescription".into(), desc.clone().into());
        }
        if let Some(v) = self.protocol_version {
            d.insert("ProtocolVersion".into(), Value::Real(v));
        }
        if let Some(c) = &self.content {
            d.insert("Content".into(), c.clone());
        }
        d
    }

    /// Reads a response (host side).
    pub fn from_dict(d: &Dictionary) -> Result<Self, Mb2Error> {
        const WHAT: &str = "mobilebackup2 response";
        if d.str_key("MessageName") != Some("Response") {
            return Err(malformed(WHAT, "MessageName is not Response"));
        }
        let error_code = d
            .get("ErrorCode")
            .and_then(integer_as_i64)
            .ok_or_else(|| malformed(WHAT, "no ErrorCode"))?;
        Ok(Self {
            // A negative code is sent as its two's complement; keep those bits.
            error_code: error_code as u64,
            error_description: d.str_key("ErrorDescription").map(str::to_owned),
            protocol_version: d.get("ProtocolVersion").and_then(Value::as_real),
            content: d.get("Content").cloned(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Backup folder layout.

/// The fileID of a file in a backup: the SHA-1 hex of `domain-relativePath`.
pub fn file_id(domain: &str, relative_path: &str) -> String {
    let mut h = Sha1::new();
    h.update(domain.as_bytes());
    h.update(b"-");
    h.update(relative_path.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a file lives in a backup folder: `<udid>/<first two hex digits>/<fileID>`.
pub fn file_path(udid: &str, file_id: &str) -> String {
    let prefix = file_id.get(..2).unwrap_or(file_id);
    format!("{udid}/{prefix}/{file_id}")
}

/// Where a device uploads a file before moving it into place: `<udid>/Snapshot/<xx>/<fileID>`.
pub fn snapshot_file_path(udid: &str, file_id: &str) -> String {
    let prefix = file_id.get(..2).unwrap_or(file_id);
    format!("{udid}/{SNAPSHOT_DIR}/{prefix}/{file_id}")
}

/// `Files.flags` of a regular file.
pub const FLAG_FILE: i64 = 1;
/// `Files.flags` of a directory.
pub const FLAG_DIRECTORY: i64 = 2;
/// `Files.flags` of a symbolic link.
pub const FLAG_SYMLINK: i64 = 4;

/// The schema of Manifest.db (iOS 10+), as real devices write it.
pub const MANIFEST_DB_SCHEMA: &str = "\
CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, flags INTEGER, file BLOB);
CREATE INDEX FilesDomainIdx ON Files(domain);
CREATE INDEX FilesRelativePathIdx ON Files(relativePath);
CREATE INDEX FilesFlagsIdx ON Files(flags);
CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB);
";

fn date_value(t: SystemTime) -> Value {
    Value::Date(t.into())
}

fn parse_dict(bytes: &[u8], what: &'static str) -> Result<Dictionary, Mb2Error> {
    if bytes.is_empty() {
        return Err(malformed(what, "zero-length data"));
    }
    let value = plist_util::parse(bytes).map_err(|source| Mb2Error::Plist { what, source })?;
    match value {
        Value::Dictionary(d) => Ok(d),
        _ => Err(malformed(what, "not a dictionary")),
    }
}

/// `Status.plist`: the state of the last backup, written by the device (binary plist).
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// `BackupState`, `new` on current devices.
    pub backup_state: String,
    /// `Date`.
    pub date: SystemTime,
    /// `IsFullBackup`.
    pub is_full_backup: bool,
    /// `SnapshotState`: `finished` once the backup is complete (`uploading` or `moving` before).
    pub snapshot_state: String,
    /// `UUID` of this backup, uppercase.
    pub uuid: String,
    /// `Version`, `3.3`.
    pub version: String,
}

impl Status {
    /// Whether `SnapshotState` says the backup is complete (what idevicebackup2 checks).
    pub fn is_finished(&self) -> bool {
        self.snapshot_state == "finished"
    }

    /// The document as a plist dictionary.
    pub fn to_dict(&self) -> Dictionary {
        let mut d = Dictionary::new();
        d.insert("BackupState".into(), self.backup_state.clone().into());
        d.insert("Date".into(), date_value(self.date));
        d.insert("IsFullBackup".into(), self.is_full_backup.into());
        d.insert("SnapshotState".into(), self.snapshot_state.clone().into());
        d.insert("UUID".into(), self.uuid.clone().into());
        d.insert("Version".into(), self.version.clone().into());
        d
    }

    /// The document as a binary plist, as devices write it.
    pub fn to_bytes(&self) -> Vec<u8> {
        plist_util::to_binary(&Value::Dictionary(self.to_dict()))
    }

    /// Reads the document (XML or binary).
    pub fn parse(bytes: &[u8]) -> Result<Self, Mb2Error> {
        const WHAT: &str = "Status.plist";
        let d = parse_dict(bytes, WHAT)?;
        let s = |k: &str| d.str_key(k).map(str::to_owned);
        Ok(Self {
            backup_state: s("BackupState").unwrap_or_default(),
            date: d
                .get("Date")
                .and_then(Value::as_date)
                .map(SystemTime::from)
                .ok_or_else(|| malformed(WHAT, "no Date"))?,
            is_full_backup: d.bool_key("IsFullBackup").unwrap_or(false),
            snapshot_state: s("SnapshotState")
                .ok_or_else(|| malformed(WHAT, "no SnapshotState"))?,
            uuid: s("UUID").ok_or_else(|| malformed(WHAT, "no UUID"))?,
            version: s("Version").unwrap_or_default(),
        })
    }
}

/// `Manifest.plist`: the properties of a backup, written by the device.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestProperties {
    /// `Version`, `10.0` on iOS 10+.
    pub version: String,
    /// `SystemDomainsVersion`, e.g. `24.0`.
    pub system_domains_version: Option<String>,
    /// `Date`.
    pub date: SystemTime,
    /// `IsEncrypted`.
    pub is_encrypted: bool,
    /// `WasPasscodeSet`.
    pub was_passcode_set: bool,
    /// `Lockdown`: a copy of lockdown values (ProductVersion, UniqueDeviceID, … and some domains).
    pub lockdown: Dictionary,
    /// `Applications`: bundle id to app info.
    pub applications: Dictionary,
    /// Other keys (BackupKeyBag, ManifestKey on encrypted backups, …), kept verbatim.
    pub extra: Dictionary,
}

impl ManifestProperties {
    /// The device's UDID as the document records it.
    pub fn unique_device_id(&self) -> Option<&str> {
        self.lockdown.str_key("UniqueDeviceID")
    }

    /// The document as a plist dictionary.
    pub fn to_dict(&self) -> Dictionary {
        let mut d = self.extra.clone();
        d.insert("Version".into(), self.version.clone().into());
        if let Some(v) = &self.system_domains_version {
            d.insert("SystemDomainsVersion".into(), v.clone().into());
        }
        d.insert("Date".into(), date_value(self.date));
        d.insert("IsEncrypted".into(), self.is_encrypted.into());
        d.insert("WasPasscodeSet".into(), self.was_passcode_set.into());
        d.insert("Lockdown".into(), Value::Dictionary(self.lockdown.clone()));
        d.insert(
            "Applications".into(),
            Value::Dictionary(self.applications.clone()),
        );
        d
    }

    /// The document as a binary plist.
    pub fn to_bytes(&self) -> Vec<u8> {
        plist_util::to_binary(&Value::Dictionary(self.to_dict()))
    }

    /// Reads the document. A zero-length file fails, as on a device (which answers ErrorCode 205).
    pub fn parse(bytes: &[u8]) -> Result<Self, Mb2Error> {
        const WHAT: &str = "Manifest.plist";
        let mut d = parse_dict(bytes, WHAT)?;
        let mut take_string = |k: &str| match d.remove(k) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let version = take_string("Version").ok_or_else(|| malformed(WHAT, "no Version"))?;
        let system_domains_version = take_string("SystemDomainsVersion");
        let date = match d.remove("Date") {
            Some(Value::Date(t)) => SystemTime::from(t),
            _ => return Err(malformed(WHAT, "no Date")),
        };
        let mut take_bool = |k: &str| matches!(d.remove(k), Some(Value::Boolean(true)));
        let is_encrypted = take_bool("IsEncrypted");
        let was_passcode_set = take_bool("WasPasscodeSet");
        let mut take_dict = |k: &str| match d.remove(k) {
            Some(Value::Dictionary(x)) => x,
            _ => Dictionary::new(),
        };
        let lockdown = take_dict("Lockdown");
        let applications = take_dict("Applications");
        Ok(Self {
            version,
            system_domains_version,
            date,
            is_encrypted,
            was_passcode_set,
            lockdown,
            applications,
            extra: d,
        })
    }
}

/// The `file` column of Manifest.db: an `MBFile` in an NSKeyedArchiver binary plist.
///
/// Times are seconds since 1970 as the device records them; `mode` includes the file type bits
/// (`0o100644` for a file, `0o40755` for a directory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MbFile {
    /// `RelativePath` within the domain.
    pub relative_path: String,
    /// `Target` of a symbolic link.
    pub target: Option<String>,
    /// `Size` in bytes.
    pub size: u64,
    /// `Mode`.
    pub mode: u32,
    /// `UserID`.
    pub user_id: u32,
    /// `GroupID`.
    pub group_id: u32,
    /// `InodeNumber`.
    pub inode: u64,
    /// `Birth`.
    pub birth: i64,
    /// `LastModified`.
    pub last_modified: i64,
    /// `LastStatusChange`.
    pub last_status_change: i64,
    /// `Flags`.
    pub flags: u64,
    /// `ProtectionClass` (data protection class of the file).
    pub protection_class: u64,
    /// `EncryptionKey` of a file in an encrypted backup: a 4-byte little-endian protection class and the
    /// wrapped key.
    pub encryption_key: Option<Vec<u8>>,
}

fn class_object(name: &str, chain: &[&str]) -> Value {
    let mut d = Dictionary::new();
    d.insert("$classname".into(), name.to_owned().into());
    d.insert(
        "$classes".into(),
        Value::Array(
            chain
                .iter()
                .map(|c| Value::String((*c).to_owned()))
                .collect(),
        ),
    );
    Value::Dictionary(d)
}

impl MbFile {
    /// The record as NSKeyedArchiver binary plist bytes.
    pub fn to_archive(&self) -> Vec<u8> {
        let mut objects = vec![Value::String("$null".into())];
        let mut root = Dictionary::new();
        // Index 1 is the root object; it is filled in last.
        objects.push(Value::Boolean(false));
        let add = |objects: &mut Vec<Value>, v: Value| {
            objects.push(v);
            Value::Uid(Uid::new(objects.len() as u64 - 1))
        };
        let path = add(&mut objects, Value::String(self.relative_path.clone()));
        root.insert("RelativePath".into(), path);
        if let Some(t) = &self.target {
            let t = add(&mut objects, Value::String(t.clone()));
            root.insert("Target".into(), t);
        }
        if let Some(key) = &self.encryption_key {
            let class_uid = objects.len() as u64 + 1;
            let mut data = Dictionary::new();
            data.insert("NS.data".into(), Value::Data(key.clone()));
            data.insert("$class".into(), Value::Uid(Uid::new(class_uid)));
            let k = add(&mut objects, Value::Dictionary(data));
            add(
                &mut objects,
                class_object("NSMutableData", &["NSMutableData", "NSData", "NSObject"]),
            );
            root.insert("EncryptionKey".into(), k);
        }
        let class = add(
            &mut objects,
            class_object("MBFile", &["MBFile", "NSObject"]),
        );
        root.insert("$class".into(), class);
        let int = |v: i64| Value::Integer(v.into());
        let uint = |v: u64| Value::Integer(v.into());
        root.insert("Birth".into(), int(self.birth));
        root.insert("LastModified".into(), int(self.last_modified));
        root.insert("LastStatusChange".into(), int(self.last_status_change));
        root.insert("Mode".into(), uint(self.mode.into()));
        root.insert("UserID".into(), uint(self.user_id.into()));
        root.insert("GroupID".into(), uint(self.group_id.into()));
        root.insert("InodeNumber".into(), uint(self.inode));
        root.insert("Size".into(), uint(self.size));
        root.insert("Flags".into(), uint(self.flags));
        root.insert("ProtectionClass".into(), uint(self.protection_class));
        objects[1] = Value::Dictionary(root);

        let mut top = Dictionary::new();
        top.insert("root".into(), Value::Uid(Uid::new(1)));
        let mut archive = Dictionary::new();
        archive.insert("$version".into(), Value::Integer(100_000u64.into()));
        archive.insert("$archiver".into(), "NSKeyedArchiver".into());
        archive.insert("$top".into(), Value::Dictionary(top));
        archive.insert("$objects".into(), Value::Array(objects));
        plist_util::to_binary(&Value::Dictionary(archive))
    }

    /// Reads a record from NSKeyedArchiver bytes.
    pub fn from_archive(bytes: &[u8]) -> Result<Self, Mb2Error> {
        const WHAT: &str = "MBFile archive";
        let d = parse_dict(bytes, WHAT)?;
        let objects = d
            .get("$objects")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(WHAT, "no $objects"))?;
        let resolve = |v: &Value| -> Option<&Value> {
            match v {
                Value::Uid(u) => objects.get(usize::try_from(u.get()).ok()?),
                _ => None,
            }
        };
        let root = d
            .dict_key("$top")
            .and_then(|t| t.get("root"))
            .and_then(resolve)
            .and_then(Value::as_dictionary)
            .ok_or_else(|| malformed(WHAT, "no root object"))?;
        let class = root
            .get("$class")
            .and_then(resolve)
            .and_then(Value::as_dictionary)
            .and_then(|c| c.str_key("$classname"));
        if class != Some("MBFile") {
            return Err(malformed(WHAT, "root object is not an MBFile"));
        }
        let string = |k: &str| {
            root.get(k)
                .and_then(resolve)
                .and_then(Value::as_string)
                .map(str::to_owned)
        };
        let int = |k: &str| root.get(k).and_then(integer_as_i64).unwrap_or(0);
        let small = |k: &str| u32::try_from(int(k)).unwrap_or(0);
        let unsigned = |k: &str| u64::try_from(int(k)).unwrap_or(0);
        let encryption_key = root
            .get("EncryptionKey")
            .and_then(resolve)
            .and_then(|v| match v {
                Value::Dictionary(k) => k.data_key("NS.data").map(<[u8]>::to_vec),
                Value::Data(b) => Some(b.clone()),
                _ => None,
            });
        Ok(Self {
            relative_path: string("RelativePath").unwrap_or_default(),
            target: string("Target"),
            size: unsigned("Size"),
            mode: small("Mode"),
            user_id: small("UserID"),
            group_id: small("GroupID"),
            inode: unsigned("InodeNumber"),
            birth: int("Birth"),
            last_modified: int("LastModified"),
            last_status_change: int("LastStatusChange"),
            flags: unsigned("Flags"),
            protection_class: unsigned("ProtectionClass"),
            encryption_key,
        })
    }

    /// `LastModified` as a time.
    pub fn modified(&self) -> SystemTime {
        unix_time(self.last_modified)
    }
}

/// A time from seconds since 1970 (negative before it).
pub fn unix_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

// ---------------------------------------------------------------------------------------------
// Path safety.

/// The longest relative path [`safe_relative_path`] accepts.
pub const MAX_RELATIVE_PATH_LEN: usize = 1024;
/// The longest path component [`safe_relative_path`] accepts.
pub const MAX_COMPONENT_LEN: usize = 255;

/// Why a path the device named is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is empty.
    #[error("path is empty")]
    Empty,
    /// The path is longer than [`MAX_RELATIVE_PATH_LEN`].
    #[error("path of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The path is absolute.
    #[error("path is absolute")]
    Absolute,
    /// The path contains a NUL byte.
    #[error("path contains a nul byte")]
    Nul,
    /// The path contains a backslash.
    #[error("path contains a backslash")]
    Backslash,
    /// The path contains a control character.
    #[error("path contains a control character")]
    ControlCharacter,
    /// Two slashes in a row, or a trailing slash.
    #[error("path has an empty component")]
    EmptyComponent,
    /// A `.` component.
    #[error("path has a `.` component")]
    Dot,
    /// A `..` component.
    #[error("path has a `..` component")]
    DotDot,
    /// A component longer than [`MAX_COMPONENT_LEN`].
    #[error("path component of {len} bytes exceeds the limit of {max}")]
    ComponentTooLong {
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The path does not start with `<UDID>/` or names the UDID folder itself.
    #[error("path is not below the device's folder")]
    OutsideDeviceFolder,
}

/// A path a device named, checked by [`safe_relative_path`]: below `<UDID>/`, made of normal components.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelativePath(String);

impl RelativePath {
    /// The path as the device sent it (`<UDID>/…`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its components, the UDID first.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The part below the UDID folder (e.g. `ab/ab12…` or `Manifest.db`).
    pub fn below_device_folder(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, rest)| rest)
    }

    /// The path joined below a backup root directory. No I/O: symbolic links inside the root are the caller's
    /// concern (a host should create the folders itself and not follow links it did not make).
    pub fn under(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        for c in self.components() {
            p.push(c);
        }
        p
    }
}

impl std::fmt::Display for RelativePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RelativePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Checks a path a device named in a DeviceLink message or the upload stream before the host touches it.
///
/// Accepted: `<udid>/` followed by one or more components, each non-empty, not `.` or `..`, at most
/// [`MAX_COMPONENT_LEN`] bytes, without NUL, backslash or control characters; at most
/// [`MAX_RELATIVE_PATH_LEN`] bytes in all. The first component must be exactly `udid`.
pub fn safe_relative_path(udid: &str, device_path: &str) -> Result<RelativePath, PathError> {
    if device_path.is_empty() {
        return Err(PathError::Empty);
    }
    if device_path.len() > MAX_RELATIVE_PATH_LEN {
        return Err(PathError::TooLong {
            len: device_path.len(),
            max: MAX_RELATIVE_PATH_LEN,
        });
    }
    if device_path.contains('\0') {
        return Err(PathError::Nul);
    }
    if device_path.contains('\\') {
        return Err(PathError::Backslash);
    }
    if device_path.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    if device_path.starts_with('/') {
        return Err(PathError::Absolute);
    }
    let mut components = device_path.split('/');
    for c in device_path.split('/') {
        match c {
            "" => return Err(PathError::EmptyComponent),
            "." => return Err(PathError::Dot),
            ".." => return Err(PathError::DotDot),
            c if c.len() > MAX_COMPONENT_LEN => {
                return Err(PathError::ComponentTooLong {
                    len: c.len(),
                    max: MAX_COMPONENT_LEN,
                });
            }
            _ => {}
        }
    }
    if udid.is_empty() || components.next() != Some(udid) || components.next().is_none() {
        return Err(PathError::OutsideDeviceFolder);
    }
    Ok(RelativePath(device_path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_id_matches_the_known_sms_database_id() {
        assert_eq!(
            file_id("HomeDomain", "Library/SMS/sms.db"),
            "3d0d7e5fb2ce288813306e4d4636395e047a3d28"
        );
    }

    #[test]
    fn path_check_accepts_backup_paths_and_refuses_escapes() {
        let udid = "00008110-001A2B3C4D5E6F01";
        for ok in [
            format!("{udid}/Status.plist"),
            format!("{udid}/ab/ab0123"),
            format!("{udid}/Snapshot/ab/ab0123"),
        ] {
            assert!(safe_relative_path(udid, &ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            (format!("{udid}/../../escape"), PathError::DotDot),
            ("/etc/passwd".to_owned(), PathError::Absolute),
            (format!("{udid}/ab/../../x"), PathError::DotDot),
            (format!("{udid}/a\0b"), PathError::Nul),
            (format!("{udid}/a\\b"), PathError::Backslash),
            (format!("{udid}//x"), PathError::EmptyComponent),
            (format!("{udid}/x/"), PathError::EmptyComponent),
            (format!("{udid}/./x"), PathError::Dot),
            (udid.to_owned(), PathError::OutsideDeviceFolder),
            ("OTHER/x".to_owned(), PathError::OutsideDeviceFolder),
            (String::new(), PathError::Empty),
        ] {
            assert_eq!(safe_relative_path(udid, &bad), Err(why), "{bad:?}");
        }
    }
}

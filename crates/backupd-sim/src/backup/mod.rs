//! The device side of a Finder-style backup: the phone's mobilebackup2 service, the AFC service hosts lock
//! the sync with, and the springboardservices stub idevicebackup2 and pymobiledevice3 open for app icons.
//!
//! A backup goes as on a real phone (see `docs/simulator.md` for the profile table):
//! 1. DeviceLink version exchange (400.0), `Hello` (protocol 2.1).
//! 2. On `Backup`: scripted faults first (`error_code`; the passcode prompt of iOS 16.1+).
//! 3. `DLMessageDownloadFiles` of `<UDID>/Status.plist`. When it describes a complete backup this phone made
//!    (one of the last 32 UUIDs it remembers), and `ForceFullBackup` is off, the phone also downloads `Manifest.plist` and
//!    `Manifest.db`: a zero-length Manifest.plist answers ErrorCode 205; a Manifest.plist of another phone or
//!    of another encryption setting, or no usable Manifest.db, makes the backup full.
//! 4. `DLMessageGetFreeDiskSpace` (ErrorCode 105 when the host has too little).
//! 5. Status.plist with `SnapshotState` `uploading`; `DLMessageCreateDirectory` of `Snapshot/<xx>` and
//!    `<xx>` for every folder it will fill.
//! 6. `DLMessageUploadFiles` batches of every file (incremental: every new or changed file) into
//!    `<UDID>/Snapshot/<xx>/<fileID>`, then Manifest.db and Manifest.plist into `Snapshot/`.
//! 7. `DLMessageMoveItems` of each into place, `DLMessageRemoveItems` of the files the phone no longer has
//!    and of `Snapshot/`, Status.plist with `SnapshotState` `finished`, and the final `Response`.

mod afc;
mod crypto;
pub mod files;
mod link;
mod manifest;
pub mod profile;
mod service;
pub mod whatsapp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use plist::{Dictionary, Value};
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use crate::phone::Phone;
use crate::wire::{DeviceConn, read_plist, write_plist};

pub use files::{BackupFile, Content, FileSet};
pub use profile::{BackupFaults, BackupProfile, DisconnectStage, FileSpec};

/// The springboardservices service name.
pub const SPRINGBOARD_SERVICE: &str = "com.apple.springboardservices";

/// What the last backup request did, for tests and the control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Whether it was a full backup (false: incremental).
    pub full: bool,
    /// fileIDs of the data files uploaded (metadata files not counted).
    pub uploaded: Vec<String>,
    /// Bytes of those files.
    pub uploaded_bytes: u64,
    /// fileIDs the phone asked the host to remove.
    pub removed: Vec<String>,
    /// The final ErrorCode (0: success).
    pub error_code: u64,
}

impl BackupReport {
    fn failed(code: u64) -> Self {
        Self {
            full: true,
            uploaded: Vec::new(),
            uploaded_bytes: 0,
            removed: Vec::new(),
            error_code: code,
        }
    }
}

/// Errors of [`PhoneBackup::touch`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TouchError {
    /// The phone has no such file.
    #[error("no file {domain} {path} in the backup set")]
    NoSuchFile {
        /// The domain asked for.
        domain: String,
        /// The path asked for.
        path: String,
    },
}

#[derive(Debug, Default)]
struct Inner {
    touches: BTreeMap<(String, String), u64>,
    /// UUIDs of the backups this phone completed, the latest last.
    backups: Vec<String>,
    password: Option<String>,
    /// How often encryption was turned on: each time the phone makes new class keys.
    epoch: u64,
    /// The keybag sealed with the current password (sealing runs the slow key derivation once per password).
    keybag: Option<Vec<u8>>,
    report: Option<BackupReport>,
}

/// The backup state of one simulated phone.
#[derive(Debug)]
pub struct PhoneBackup {
    profile: BackupProfile,
    passcode: Notify,
    prompt_showing: AtomicBool,
    inner: Mutex<Inner>,
    afc: Mutex<afc::AfcState>,
    state_file: Option<PathBuf>,
}

const BACKUPS_KEY: &str = "BackupUUIDs";
/// How many completed backups the phone remembers.
const REMEMBERED_BACKUPS: usize = 32;

impl PhoneBackup {
    /// The backup state of a phone with this profile; with a state directory the phone remembers its last
    /// backup across restarts, as a real phone does.
    pub fn new(profile: &BackupProfile, state_dir: Option<&Path>) -> Self {
        let state_file = state_dir.map(|d| d.join("backup-state.plist"));
        let backups = state_file
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| backupd_proto::plist_util::parse(&b).ok())
            .and_then(|v| {
                v.as_dictionary()
                    .and_then(|d| d.get(BACKUPS_KEY))
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_string)
                            .map(str::to_owned)
                            .collect()
                    })
            })
            .unwrap_or_default();
        Self {
            profile: profile.clone(),
            passcode: Notify::new(),
            prompt_showing: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                backups,
                password: profile.password.clone(),
                ..Inner::default()
            }),
            afc: Mutex::new(afc::AfcState::new(profile.faults.lock_sync_held)),
            state_file,
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn afc(&self) -> MutexGuard<'_, afc::AfcState> {
        self.afc
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The profile's `[backup]` table.
    pub fn profile(&self) -> &BackupProfile {
        &self.profile
    }

    /// The files as they are now (the profile's, with every touch applied).
    pub fn file_set(&self) -> FileSet {
        FileSet::from_profile(&self.profile).with_touches(&self.inner().touches)
    }

    /// Changes a file: its next generation has other bytes and a later modification time.
    pub fn touch(&self, domain: &str, path: &str) -> Result<u64, TouchError> {
        let set = self.file_set();
        let file = set
            .find(domain, path)
            .ok_or_else(|| TouchError::NoSuchFile {
                domain: domain.to_owned(),
                path: path.to_owned(),
            })?;
        let mut inner = self.inner();
        let n = inner
            .touches
            .entry((domain.to_owned(), path.to_owned()))
            .or_insert(0);
        *n += 1;
        Ok(file.generation + 1)
    }

    /// Enters the passcode on the prompt that is showing (none showing: nothing happens).
    pub fn enter_passcode(&self) {
        self.passcode.notify_waiters();
    }

    fn passcode_waiter(&self) -> Notified<'_> {
        self.passcode.notified()
    }

    /// Whether the passcode prompt of a backup is showing now.
    pub fn passcode_prompt_showing(&self) -> bool {
        self.prompt_showing.load(Ordering::SeqCst)
    }

    fn show_prompt(&self, showing: bool) {
        self.prompt_showing.store(showing, Ordering::SeqCst);
    }

    /// What the last `Backup` request did.
    pub fn last_report(&self) -> Option<BackupReport> {
        self.inner().report.clone()
    }

    fn set_report(&self, report: BackupReport) {
        self.inner().report = Some(report);
    }

    fn password(&self) -> Option<String> {
        self.inner().password.clone()
    }

    /// Sets the backup password; `new_keys` when encryption is being turned on, so the phone makes new
    /// class keys. The keybag is sealed again on next use.
    fn set_password(&self, password: Option<String>, new_keys: bool) {
        let mut inner = self.inner();
        inner.password = password;
        inner.keybag = None;
        if new_keys {
            inner.epoch += 1;
        }
    }

    /// The phone's encryption keys now.
    fn keys(&self, udid: &str) -> crypto::PhoneKeys {
        crypto::PhoneKeys::new(udid, self.profile.seed, self.inner().epoch)
    }

    /// The keybag sealed with the current password, sealing it first when needed (slow: run off the async
    /// workers). `None` without a password.
    async fn keybag(&self, udid: &str) -> Option<Vec<u8>> {
        let (password, epoch) = {
            let inner = self.inner();
            if let Some(k) = &inner.keybag {
                return Some(k.clone());
            }
            (inner.password.clone()?, inner.epoch)
        };
        let keys = self.keys(udid);
        let (iter, dpic) = (self.profile.kdf_iterations, self.profile.kdf_dp_iterations);
        let used = password.clone();
        let sealed = tokio::task::spawn_blocking(move || keys.seal(&used, iter, dpic).to_bytes())
            .await
            .ok()?;
        let mut inner = self.inner();
        // A password change while sealing wins: its keybag is sealed on the next use.
        if inner.epoch == epoch && inner.password.as_deref() == Some(password.as_str()) {
            inner.keybag = Some(sealed.clone());
        }
        Some(sealed)
    }

    /// Whether this phone completed the backup with this UUID.
    fn made_backup(&self, uuid: &str) -> bool {
        self.inner().backups.iter().any(|b| b == uuid)
    }

    fn remember_backup(&self, uuid: &str) {
        let backups = {
            let mut inner = self.inner();
            inner.backups.push(uuid.to_owned());
            let excess = inner.backups.len().saturating_sub(REMEMBERED_BACKUPS);
            inner.backups.drain(..excess);
            inner.backups.clone()
        };
        let Some(path) = &self.state_file else { return };
        let mut d = Dictionary::new();
        d.insert(
            BACKUPS_KEY.into(),
            Value::Array(backups.into_iter().map(Value::String).collect()),
        );
        let bytes = backupd_proto::plist_util::to_xml(&Value::Dictionary(d));
        if let Err(e) = crate::phone::write_private(path, &bytes) {
            tracing::warn!(error = %e, "failed to save the backup state");
        }
    }
}

/// Serves a `com.apple.mobilebackup2` connection.
pub(crate) async fn serve_mobilebackup2(phone: &Phone, conn: DeviceConn) -> std::io::Result<()> {
    match service::serve(phone, conn).await {
        Ok(()) => Ok(()),
        Err(link::LinkError::Io(e)) => Err(e),
        Err(e) => {
            tracing::info!(udid = phone.udid(), error = %e, "mobilebackup2 connection ended");
            Ok(())
        }
    }
}

/// Serves a `com.apple.afc` connection.
pub(crate) async fn serve_afc(phone: &Phone, conn: DeviceConn) -> std::io::Result<()> {
    afc::serve(phone, conn).await
}

/// A 1×1 transparent PNG, the icon of every app.
const ICON_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

/// Serves `com.apple.springboardservices`: icons (a 1×1 PNG), an empty icon state, portrait orientation.
pub(crate) async fn serve_springboard(phone: &Phone, mut conn: DeviceConn) -> std::io::Result<()> {
    while let Some(value) = read_plist(&mut conn).await? {
        let command = value
            .as_dictionary()
            .and_then(|d| d.get("command"))
            .and_then(Value::as_string)
            .unwrap_or_default()
            .to_owned();
        let mut d = Dictionary::new();
        let reply = match command.as_str() {
            "getIconPNGData" | "getHomeScreenWallpaperPNGData" => {
                d.insert("pngData".into(), Value::Data(ICON_PNG.to_vec()));
                Value::Dictionary(d)
            }
            "getIconState" => Value::Array(Vec::new()),
            "getInterfaceOrientation" => {
                d.insert("interfaceOrientation".into(), Value::Integer(1u64.into()));
                Value::Dictionary(d)
            }
            other => {
                tracing::debug!(
                    udid = phone.udid(),
                    command = other,
                    "springboardservices command"
                );
                Value::Dictionary(d)
            }
        };
        write_plist(&mut conn, &reply).await?;
    }
    Ok(())
}

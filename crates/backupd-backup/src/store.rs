//! The backup store: Finder's layout for the current backup, and backupd's bookkeeping beside it.
//!
//! ```text
//! <backup dir>/<UDID>/                       the newest complete backup, exactly as Finder lays it out
//! <backup dir>/.backupd/<UDID>/staging/<UDID>/   the backup in progress (a hard-linked copy of the newest)
//! <backup dir>/.backupd/<UDID>/versions/<time>/  earlier complete backups, hard-linked: they cost only what changed
//! <backup dir>/.backupd/<UDID>/commit.json       present only while a commit swaps folders
//! <backup dir>/.backupd/<UDID>/verified.json     the verification of the newest backup
//! ```
//!
//! The promise: the newest complete backup survives any interruption at any byte. A run works only in the
//! staging folder, which starts as hard links to the newest backup; every file the phone sends is written to
//! a new file and renamed into place, so a shared inode is never written. Only a verified staging folder is
//! committed, by a journaled pair of renames that recovery finishes after a crash.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Bookkeeping folder name under the backup directory.
pub const BOOKKEEPING: &str = ".backupd";
const STAGING: &str = "staging";
const VERSIONS: &str = "versions";
const JOURNAL: &str = "commit.json";
/// The verification record of the newest backup.
pub const VERIFIED: &str = "verified.json";
/// The last successful check of the backup password, under `.backupd/<UDID>/`.
pub const PASSWORD_CHECK: &str = "password-check.json";
/// The device's own snapshot folder; a leftover of it makes idevicebackup2 fail forever, so it is never carried
/// into a new run.
const DEVICE_SNAPSHOT: &str = "Snapshot";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("failed to {what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A path would leave the backup folder or pass through a symbolic link.
    #[error("refused unsafe path {0}")]
    UnsafePath(String),
    /// The UDID cannot name a folder.
    #[error("invalid UDID {0:?}")]
    BadUdid(String),
    /// The journal of an interrupted commit could not be read.
    #[error("unreadable commit journal {0}")]
    Journal(PathBuf),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io { what, path, source }
}

/// What recovery found for a phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing was interrupted.
    Clean,
    /// A commit was interrupted and has been finished: the staged backup is now the newest.
    CommitFinished,
    /// A backup run was interrupted; its staging folder is still there and the next run discards it.
    LeftoverStaging,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    version_name: Option<String>,
}

/// The store under one backup directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A backup in progress.
#[derive(Debug)]
pub struct Staging {
    base: PathBuf,
    udid: String,
}

/// The newest complete backup, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Newest {
    /// Its `Status.plist` date, seconds since the Unix epoch.
    pub date: i64,
    /// Whether it passed verification.
    pub verified: bool,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// The bytes its files hold, as its verification counted them; `None` when it has not been verified.
    pub bytes: Option<u64>,
    /// When the password of this encrypted backup was last checked and opened it (seconds since the Unix
    /// epoch); `None` when it never was, or the backup is sealed with another password since.
    pub password_checked: Option<i64>,
}

/// A successful check of the backup password: which keybag it opened, and when. The password is not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordCheck {
    /// The UUID (hex) of the keybag the password opened.
    pub keybag_id: String,
    /// When (seconds since the Unix epoch).
    pub checked_at: i64,
}

/// A complete backup kept on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    /// `current` for the newest, else the version's name.
    pub name: String,
    /// Its folder.
    pub path: PathBuf,
    /// `Status.plist`'s date, seconds since the Unix epoch.
    pub date: Option<i64>,
    /// `Info.plist`'s `Product Version`.
    pub ios_version: Option<String>,
    /// `Manifest.plist`'s `IsEncrypted`.
    pub encrypted: bool,
    /// Bytes of the files (hard links shared with other versions are counted in each).
    pub size: u64,
    /// Whether it passed verification when it was the newest.
    pub verified: bool,
}

fn check_udid(udid: &str) -> Result<(), StoreError> {
    let ok = !udid.is_empty()
        && udid.len() <= 64
        && udid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadUdid(udid.to_owned()))
    }
}

fn sync_dir(path: &Path) {
    // Renames are durable once the folder holding them is synced; failure only weakens durability.
    if let Ok(dir) = std::fs::File::open(path) {
        let _ = dir.sync_all();
    }
}

/// Copies a folder tree as hard links (folders are created, files linked, symbolic links skipped).
fn link_tree(from: &Path, to: &Path, skip_top: &[&str]) -> Result<(), StoreError> {
    std::fs::create_dir_all(to).map_err(io("create", to))?;
    for entry in std::fs::read_dir(from).map_err(io("read", from))? {
        let entry = entry.map_err(io("read", from))?;
        let name = entry.file_name();
        if skip_top.iter().any(|s| name == *s) {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        let kind = entry.file_type().map_err(io("stat", &src))?;
        if kind.is_dir() {
            link_tree(&src, &dst, &[])?;
        } else if kind.is_file() {
            std::fs::hard_link(&src, &dst).map_err(io("link", &dst))?;
        }
    }
    Ok(())
}

fn tree_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

fn plist_dict(path: &Path) -> Option<plist::Dictionary> {
    let bytes = std::fs::read(path).ok()?;
    backupd_proto::plist_util::parse(&bytes)
        .ok()?
        .into_dictionary()
}

fn date_secs(d: &plist::Date) -> i64 {
    let st: std::time::SystemTime = (*d).into();
    match st.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Reads what a backup folder says about itself.
pub fn describe(name: &str, path: &Path, verified: bool) -> BackupInfo {
    let status = plist_dict(&path.join("Status.plist"));
    let date = status
        .as_ref()
        .and_then(|s| s.get("Date"))
        .and_then(plist::Value::as_date)
        .map(|d| date_secs(&d));
    let ios_version = plist_dict(&path.join("Info.plist")).and_then(|i| {
        i.get("Product Version")
            .and_then(plist::Value::as_string)
            .map(str::to_owned)
    });
    let encrypted = plist_dict(&path.join("Manifest.plist"))
        .and_then(|m| m.get("IsEncrypted").and_then(plist::Value::as_boolean))
        .unwrap_or(false);
    BackupInfo {
        name: name.to_owned(),
        path: path.to_owned(),
        date,
        ios_version,
        encrypted,
        size: tree_size(path),
        verified,
    }
}

/// Whether a finished-looking `Status.plist` is in `folder`.
pub fn is_complete(folder: &Path) -> bool {
    plist_dict(&folder.join("Status.plist")).is_some_and(|s| {
        s.get("SnapshotState").and_then(plist::Value::as_string) == Some("finished")
    })
}

impl Store {
    /// The store under `root` (the backup directory).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The backup directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The newest complete backup's folder for a phone.
    pub fn current_dir(&self, udid: &str) -> PathBuf {
        self.root.join(udid)
    }

    fn books(&self, udid: &str) -> PathBuf {
        self.root.join(BOOKKEEPING).join(udid)
    }

    /// Finishes an interrupted commit, and reports an interrupted run.
    ///
    /// A commit is journaled before its renames: if the journal is there, the staged backup was complete and
    /// verified, so recovery completes the swap rather than losing it. The newest backup is never removed
    /// here; at worst it becomes a version.
    pub fn recover(&self, udid: &str) -> Result<Recovery, StoreError> {
        check_udid(udid)?;
        let books = self.books(udid);
        let journal = books.join(JOURNAL);
        let staged = books.join(STAGING).join(udid);
        let current = self.current_dir(udid);
        if journal.exists() {
            let text = std::fs::read_to_string(&journal).map_err(io("read", &journal))?;
            let j: Journal =
                serde_json::from_str(&text).map_err(|_| StoreError::Journal(journal.clone()))?;
            if staged.exists() {
                if current.exists() {
                    let name = j.version_name.unwrap_or_else(|| "recovered".into());
                    let version = books.join(VERSIONS).join(name);
                    std::fs::create_dir_all(books.join(VERSIONS)).map_err(io("create", &books))?;
                    std::fs::rename(&current, &version).map_err(io("move", &current))?;
                }
                std::fs::rename(&staged, &current).map_err(io("move", &staged))?;
                sync_dir(&self.root);
            }
            let _ = std::fs::remove_dir_all(books.join(STAGING));
            std::fs::remove_file(&journal).map_err(io("remove", &journal))?;
            sync_dir(&books);
            tracing::info!(udid, "finished an interrupted commit");
            return Ok(Recovery::CommitFinished);
        }
        if books.join(STAGING).exists() {
            return Ok(Recovery::LeftoverStaging);
        }
        Ok(Recovery::Clean)
    }

    /// Starts a run: recovers, discards any leftover staging, and stages a hard-linked copy of the newest
    /// backup (without the device's leftover `Snapshot/`), so the phone can back up incrementally.
    pub fn begin(&self, udid: &str) -> Result<Staging, StoreError> {
        self.recover(udid)?;
        let books = self.books(udid);
        let base = books.join(STAGING);
        if base.exists() {
            tracing::info!(udid, "discarding the leftover of an interrupted backup");
            std::fs::remove_dir_all(&base).map_err(io("remove", &base))?;
        }
        let staged = base.join(udid);
        let current = self.current_dir(udid);
        if current.is_dir() {
            link_tree(&current, &staged, &[DEVICE_SNAPSHOT])?;
        } else {
            std::fs::create_dir_all(&staged).map_err(io("create", &staged))?;
        }
        Ok(Staging {
            base,
            udid: udid.to_owned(),
        })
    }

    /// Makes a verified staging folder the newest backup; the previous newest becomes a version, and versions
    /// beyond `keep_versions` are removed, oldest first.
    ///
    /// A version is named after its own backup date (`20261120T101500Z`).
    pub fn commit(&self, staging: Staging, keep_versions: usize) -> Result<(), StoreError> {
        let udid = staging.udid.clone();
        let books = self.books(&udid);
        let journal = books.join(JOURNAL);
        let current = self.current_dir(&udid);
        let had_current = current.exists();
        let version_name = self.version_name(&udid, &current);
        let j = Journal {
            version_name: had_current.then(|| version_name.clone()),
        };
        let tmp = books.join("commit.json.tmp");
        let bytes = serde_json::to_vec(&j).unwrap_or_default();
        write_synced(&tmp, &bytes)?;
        std::fs::rename(&tmp, &journal).map_err(io("write", &journal))?;
        sync_dir(&books);
        if had_current {
            std::fs::create_dir_all(books.join(VERSIONS)).map_err(io("create", &books))?;
            let version = books.join(VERSIONS).join(&version_name);
            std::fs::rename(&current, &version).map_err(io("move", &current))?;
        }
        std::fs::create_dir_all(&self.root).map_err(io("create", &self.root))?;
        std::fs::rename(staging.dir(), &current).map_err(io("move", &staging.dir()))?;
        sync_dir(&self.root);
        let _ = std::fs::remove_dir_all(&staging.base);
        std::fs::remove_file(&journal).map_err(io("remove", &journal))?;
        sync_dir(&books);
        self.prune(&udid, keep_versions);
        Ok(())
    }

    /// A free version name for the backup in `folder`, from its `Status.plist` date.
    fn version_name(&self, udid: &str, folder: &Path) -> String {
        let date = describe("", folder, false).date;
        let base = match date.and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok()) {
            Some(t) => format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            None => "undated".to_owned(),
        };
        let versions = self.books(udid).join(VERSIONS);
        let mut name = base.clone();
        let mut n = 2;
        while versions.join(&name).exists() {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }

    fn prune(&self, udid: &str, keep: usize) {
        let dir = self.books(udid).join(VERSIONS);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        let excess = names.len().saturating_sub(keep);
        for name in names.into_iter().take(excess) {
            if let Err(e) = std::fs::remove_dir_all(dir.join(&name)) {
                tracing::warn!(udid, version = name, error = %e, "failed to remove an old version");
            }
        }
    }

    /// Whether an interrupted run left something behind: backupd's staging folder, or the device's own
    /// `Snapshot/` folder in the newest backup (which other tools leave).
    pub fn has_leftover(&self, udid: &str) -> bool {
        self.books(udid).join(STAGING).exists()
            || self.current_dir(udid).join(DEVICE_SNAPSHOT).exists()
    }

    /// Records the verification of the newest backup.
    pub fn record_verification(
        &self,
        udid: &str,
        report: &crate::verify::Report,
    ) -> Result<(), StoreError> {
        let path = self.books(udid).join(VERIFIED);
        let bytes = serde_json::to_vec_pretty(report).unwrap_or_default();
        let tmp = path.with_extension("json.tmp");
        write_synced(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path).map_err(io("write", &path))
    }

    /// Records that the backup password opened the keybag `keybag_id`.
    pub fn record_password_check(
        &self,
        udid: &str,
        check: &PasswordCheck,
    ) -> Result<(), StoreError> {
        check_udid(udid)?;
        let path = self.books(udid).join(PASSWORD_CHECK);
        let bytes = serde_json::to_vec_pretty(check).unwrap_or_default();
        let tmp = path.with_extension("json.tmp");
        write_synced(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path).map_err(io("write", &path))
    }

    /// When the password of the newest backup was last checked, if it was checked against the keybag that
    /// backup is sealed with.
    pub fn password_checked(&self, udid: &str) -> Option<i64> {
        let text = std::fs::read_to_string(self.books(udid).join(PASSWORD_CHECK)).ok()?;
        let check: PasswordCheck = serde_json::from_str(&text).ok()?;
        let info = crate::encrypted::keybag_info(&self.current_dir(udid)).ok()?;
        (info.id() == check.keybag_id).then_some(check.checked_at)
    }

    /// The verification record of the newest backup, if any.
    pub fn verification(&self, udid: &str) -> Option<crate::verify::Report> {
        let text = std::fs::read_to_string(self.books(udid).join(VERIFIED)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// What the rules need of the newest complete backup: its date, whether it verified, whether it is
    /// encrypted. Cheap: unlike [`Store::list`] it sizes nothing.
    pub fn newest(&self, udid: &str) -> Option<Newest> {
        let current = self.current_dir(udid);
        if !is_complete(&current) {
            return None;
        }
        let date = plist_dict(&current.join("Status.plist")).and_then(|s| {
            s.get("Date")
                .and_then(plist::Value::as_date)
                .map(|d| date_secs(&d))
        })?;
        let encrypted = plist_dict(&current.join("Manifest.plist"))
            .and_then(|m| m.get("IsEncrypted").and_then(plist::Value::as_boolean))
            .unwrap_or(false);
        let record = self
            .verification(udid)
            .filter(|r| r.ok && r.backup_date == Some(date));
        let password_checked = if encrypted {
            self.password_checked(udid)
        } else {
            None
        };
        Some(Newest {
            date,
            verified: record.is_some(),
            encrypted,
            bytes: record.map(|r| r.bytes),
            password_checked,
        })
    }

    /// The newest backup and the kept versions, newest first.
    pub fn list(&self, udid: &str) -> Vec<BackupInfo> {
        let mut out = Vec::new();
        let current = self.current_dir(udid);
        if is_complete(&current) {
            let info = describe("current", &current, false);
            let verified = self
                .verification(udid)
                .is_some_and(|r| r.ok && r.backup_date == info.date);
            out.push(BackupInfo { verified, ..info });
        }
        let dir = self.books(udid).join(VERSIONS);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut names: Vec<String> = entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect();
            names.sort_by(|a, b| b.cmp(a));
            out.extend(names.iter().map(|n| describe(n, &dir.join(n), false)));
        }
        out
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    let mut f = std::fs::File::create(path).map_err(io("create", path))?;
    f.write_all(bytes).map_err(io("write", path))?;
    f.sync_all().map_err(io("sync", path))
}

impl Staging {
    /// The folder that stands for the backup root in DeviceLink paths (`<UDID>/…` resolve under it).
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The staged backup folder, `base/<UDID>`.
    pub fn dir(&self) -> PathBuf {
        self.base.join(&self.udid)
    }

    /// The phone's UDID.
    pub fn udid(&self) -> &str {
        &self.udid
    }

    /// Resolves a checked relative path under the base, refusing any existing symbolic link on the way, so
    /// that nothing the phone names can reach outside the staging folder.
    pub fn resolve(&self, relative: &str) -> Result<PathBuf, StoreError> {
        let mut path = self.base.clone();
        for part in relative.split('/') {
            if part.is_empty()
                || part == "."
                || part == ".."
                || part.contains('\0')
                || part.contains('\\')
            {
                return Err(StoreError::UnsafePath(relative.to_owned()));
            }
            path.push(part);
            if let Ok(meta) = std::fs::symlink_metadata(&path)
                && meta.file_type().is_symlink()
            {
                return Err(StoreError::UnsafePath(relative.to_owned()));
            }
        }
        Ok(path)
    }
}

//! Verifying a backup folder: what it says it holds must be there.
//!
//! For an unencrypted backup, `Manifest.db` is the inventory: it must pass SQLite's integrity check, and every
//! file it lists must exist at `<xx>/<fileID>` with the size its `MBFile` record gives. An encrypted backup
//! encrypts `Manifest.db` itself (iOS 10.2 and later):
//! - without the password only its structure can be checked: a keybag that parses, `Manifest.db` and every
//!   file this run received present with the length received, after the phone's moves, and `Status.plist`
//!   finished;
//! - with the password, `Manifest.db` is decrypted to a private temporary file and checked as a plain one,
//!   except that each file's stored length is its `Size` padded to the cipher's block, and a sample of files
//!   is decrypted and must give exactly `Size` bytes.
//!
//! The report says which method was used. Memory stays bounded: rows and files are streamed.

use std::collections::BTreeMap;
use std::path::Path;

use backupd_proto::backup_cipher::padded_len;
use backupd_proto::mobilebackup2::MbFile;
use serde::{Deserialize, Serialize};

use crate::encrypted::{self, EncryptedBackup, EncryptedError, Password};

/// How thoroughly a backup was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Every file of `Manifest.db`, with its size.
    Manifest,
    /// Encrypted, checked without the password: structure, plus the files received in this run.
    Structure,
    /// Encrypted, checked with the password: every file of the decrypted `Manifest.db` with its stored length,
    /// and a sample decrypted.
    Decrypted,
}

impl Method {
    /// How a person would say it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Manifest => "every file checked against Manifest.db",
            Self::Structure => "encrypted: structure checked without the password",
            Self::Decrypted => {
                "encrypted: opened with the password, every file checked, a sample decrypted"
            }
        }
    }
}

/// At most this many files are decrypted by a verification with the password.
pub const SAMPLE_FILES: u64 = 64;
/// At most this many bytes are decrypted by a verification with the password.
pub const SAMPLE_BYTES: u64 = 256 << 20;

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Whether everything checked out.
    pub ok: bool,
    /// The backup's `Status.plist` date (seconds since the Unix epoch), to tie the record to the backup.
    pub backup_date: Option<i64>,
    /// How it was checked.
    pub method: Method,
    /// Files checked.
    pub files: u64,
    /// Bytes those files hold.
    pub bytes: u64,
    /// What is wrong, one line each (at most the first 50).
    pub problems: Vec<String>,
    /// Files decrypted to check them (verification with the password).
    #[serde(default)]
    pub decrypted_files: u64,
    /// With a password: whether it opened the backup (`false`: the check fell back to the structure).
    #[serde(default)]
    pub password_ok: Option<bool>,
    /// The keybag's UUID (hex) of an encrypted backup: which password seals it.
    #[serde(default)]
    pub keybag_id: Option<String>,
}

const MAX_PROBLEMS: usize = 50;
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, p: String) {
        if self.0.len() < MAX_PROBLEMS {
            self.0.push(p);
        }
    }
}

/// Checks the backup in `folder` without a password. `received` lists `(relative path, length)` of the files
/// a run wrote, used for an encrypted backup.
pub fn verify(folder: &Path, received: &[(String, u64)]) -> Report {
    verify_with(folder, &received.iter().cloned().collect(), None)
}

/// Checks the backup in `folder`. `received` maps the relative path of every file this run wrote, where the
/// phone left it, to its length; it is used for an encrypted backup checked without the password. With the
/// password, an encrypted backup is opened and checked in full.
pub fn verify_with(
    folder: &Path,
    received: &BTreeMap<String, u64>,
    password: Option<&Password>,
) -> Report {
    let mut problems = Problems(Vec::new());
    let status = std::fs::read(folder.join("Status.plist"))
        .ok()
        .and_then(|b| backupd_proto::plist_util::parse(&b).ok())
        .and_then(plist::Value::into_dictionary);
    let backup_date = status
        .as_ref()
        .and_then(|s| s.get("Date"))
        .and_then(plist::Value::as_date)
        .map(|d| {
            let st: std::time::SystemTime = d.into();
            st.duration_since(std::time::UNIX_EPOCH)
                .map(|x| i64::try_from(x.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0)
        });
    match status
        .as_ref()
        .and_then(|s| s.get("SnapshotState"))
        .and_then(plist::Value::as_string)
    {
        Some("finished") => {}
        Some(other) => problems.push(format!(
            "Status.plist says SnapshotState {other:?}, not finished"
        )),
        None => problems.push("Status.plist is missing or has no SnapshotState".into()),
    }
    let manifest = std::fs::read(folder.join("Manifest.plist"))
        .ok()
        .and_then(|b| backupd_proto::plist_util::parse(&b).ok())
        .and_then(plist::Value::into_dictionary);
    if manifest.is_none() {
        problems.push("Manifest.plist is missing or unreadable".into());
    }
    let db_path = folder.join("Manifest.db");
    let head = read_head(&db_path);
    let mut counts = Counts::default();
    let mut keybag_id = None;
    let mut password_ok = None;
    let method = match head {
        None => {
            problems.push("Manifest.db is missing or empty".into());
            Method::Structure
        }
        Some(h) if h.starts_with(SQLITE_MAGIC) => {
            check_manifest_db(folder, &db_path, &mut problems, &mut counts, None);
            Method::Manifest
        }
        Some(_) => {
            let encrypted = manifest
                .as_ref()
                .and_then(|m| m.get("IsEncrypted"))
                .and_then(plist::Value::as_boolean);
            if encrypted != Some(true) {
                problems.push(
                    "Manifest.db is not a SQLite database but the backup is not encrypted".into(),
                );
            }
            match encrypted::keybag_info(folder) {
                Ok(info) => keybag_id = Some(info.id()),
                Err(e) => problems.push(format!("the backup's keybag: {e}")),
            }
            let opened = password.map(|p| EncryptedBackup::open(folder, p));
            match opened {
                Some(Ok(backup)) => {
                    password_ok = Some(true);
                    check_decrypted(folder, &backup, &mut problems, &mut counts);
                    Method::Decrypted
                }
                other => {
                    match other {
                        Some(Err(EncryptedError::WrongPassword)) => password_ok = Some(false),
                        Some(Err(e)) => problems.push(format!("the backup does not open: {e}")),
                        _ => {}
                    }
                    for (rel, size) in received {
                        let path = folder.join(rel);
                        match std::fs::metadata(&path) {
                            Ok(m) if m.len() == *size => {
                                counts.files += 1;
                                counts.bytes += size;
                            }
                            Ok(m) => {
                                problems.push(format!("{rel}: {} bytes, {size} received", m.len()))
                            }
                            Err(_) => problems.push(format!("{rel}: missing")),
                        }
                    }
                    Method::Structure
                }
            }
        }
    };
    Report {
        ok: problems.0.is_empty(),
        backup_date,
        method,
        files: counts.files,
        bytes: counts.bytes,
        problems: problems.0,
        decrypted_files: counts.decrypted,
        password_ok,
        keybag_id,
    }
}

#[derive(Default)]
struct Counts {
    files: u64,
    bytes: u64,
    decrypted: u64,
}

fn check_decrypted(
    folder: &Path,
    backup: &EncryptedBackup,
    problems: &mut Problems,
    counts: &mut Counts,
) {
    check_manifest_db(
        folder,
        &backup.manifest_db_path(),
        problems,
        counts,
        Some(backup),
    );
}

fn read_head(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut head = vec![0u8; SQLITE_MAGIC.len()];
    let n = f.read(&mut head).ok()?;
    (n > 0).then(|| head[..n].to_vec())
}

/// Checks every file `db` lists. With `encrypted`, stored lengths are padded and a sample is decrypted.
fn check_manifest_db(
    folder: &Path,
    db: &Path,
    problems: &mut Problems,
    counts: &mut Counts,
    encrypted: Option<&EncryptedBackup>,
) {
    use rusqlite::{Connection, OpenFlags};
    let conn = match Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!("Manifest.db does not open: {e}"));
            return;
        }
    };
    match conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)) {
        Ok(s) if s == "ok" => {}
        Ok(s) => problems.push(format!("Manifest.db integrity check: {s}")),
        Err(e) => {
            problems.push(format!("Manifest.db integrity check failed: {e}"));
            return;
        }
    }
    let total: u64 = conn
        .query_row("SELECT count(*) FROM Files WHERE flags = 1", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| u64::try_from(n).unwrap_or(0))
        .unwrap_or(0);
    // Spread the decrypted sample over the whole backup.
    let stride = (total / SAMPLE_FILES).max(1);
    let mut index = 0u64;
    let mut decrypted_bytes = 0u64;
    let mut stmt = match conn.prepare("SELECT fileID, file FROM Files WHERE flags = 1") {
        Ok(s) => s,
        Err(e) => {
            problems.push(format!("Manifest.db has no usable Files table: {e}"));
            return;
        }
    };
    // Rows are streamed: a real Manifest.db lists hundreds of thousands of files.
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
    });
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("Manifest.db cannot be read: {e}"));
            return;
        }
    };
    for row in rows {
        let Ok((file_id, blob)) = row else {
            problems.push("Manifest.db has an unreadable row".into());
            continue;
        };
        if file_id.len() != 40 || !file_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            problems.push(format!("Manifest.db lists a malformed fileID {file_id:?}"));
            continue;
        }
        let path = folder.join(&file_id[..2]).join(&file_id);
        let record = blob.as_deref().and_then(|b| MbFile::from_archive(b).ok());
        if encrypted.is_some() && record.is_none() {
            problems.push(format!(
                "{file_id}: its record in Manifest.db is unreadable"
            ));
            continue;
        }
        let expected = match (&record, encrypted) {
            (Some(r), Some(_)) if r.encryption_key.is_some() => Some(padded_len(r.size)),
            (Some(r), _) => Some(r.size),
            (None, _) => None,
        };
        index += 1;
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {
                if let Some(size) = expected.filter(|s| *s != m.len()) {
                    problems.push(format!(
                        "{file_id}: {} bytes, Manifest.db says {size}",
                        m.len()
                    ));
                    continue;
                }
                counts.files += 1;
                counts.bytes += record.as_ref().map_or(m.len(), |r| r.size);
                let (Some(backup), Some(record)) = (encrypted, &record) else {
                    continue;
                };
                let sample = index.is_multiple_of(stride)
                    && counts.decrypted < SAMPLE_FILES
                    && record.encryption_key.is_some();
                if sample && decrypted_bytes + record.size <= SAMPLE_BYTES {
                    match backup.decrypt_file(&file_id, record, &mut std::io::sink()) {
                        Ok(n) => {
                            counts.decrypted += 1;
                            decrypted_bytes += n;
                        }
                        Err(e) => problems.push(format!("{file_id}: does not decrypt: {e}")),
                    }
                }
            }
            Ok(_) => problems.push(format!("{file_id}: not a regular file")),
            Err(_) => problems.push(format!("{file_id}: listed in Manifest.db but missing")),
        }
    }
}

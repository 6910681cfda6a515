//! Verifying a backup folder: what it says it holds must be there.
//!
//! For an unencrypted backup, `Manifest.db` is the inventory: it must pass SQLite's integrity check, and every
//! file it lists must exist at `<xx>/<fileID>` with the size its `MBFile` record gives. An encrypted backup
//! encrypts `Manifest.db` itself (iOS 10.2 and later), so without the password only its structure can be
//! checked: the three property lists, a non-empty `Manifest.db`, and every file this run received present
//! with the size received. The report says which method was used.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// How thoroughly a backup was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Every file of `Manifest.db`, with its size.
    Manifest,
    /// Encrypted: structure, plus the files received in this run.
    Structure,
}

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

/// The `Size` of an `MBFile` record, an NSKeyedArchiver binary plist.
pub fn mbfile_size(blob: &[u8]) -> Option<u64> {
    let v = backupd_proto::plist_util::parse(blob).ok()?;
    let d = v.as_dictionary()?;
    let objects = d.get("$objects")?.as_array()?;
    let root_uid = d.get("$top")?.as_dictionary()?.get("root")?;
    let index = match root_uid {
        plist::Value::Uid(u) => usize::try_from(u.get()).ok()?,
        _ => return None,
    };
    objects
        .get(index)?
        .as_dictionary()?
        .get("Size")?
        .as_unsigned_integer()
}

/// Checks the backup in `folder`. `received` lists `(relative path, size)` of files this run wrote, used for
/// encrypted backups.
pub fn verify(folder: &Path, received: &[(String, u64)]) -> Report {
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
    let mut files = 0u64;
    let mut bytes = 0u64;
    let method = match head {
        None => {
            problems.push("Manifest.db is missing or empty".into());
            Method::Structure
        }
        Some(h) if h.starts_with(SQLITE_MAGIC) => {
            check_manifest_db(folder, &db_path, &mut problems, &mut files, &mut bytes);
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
            for (rel, size) in received {
                let path = folder.join(rel);
                match std::fs::metadata(&path) {
                    Ok(m) if m.len() == *size => {
                        files += 1;
                        bytes += size;
                    }
                    Ok(m) => problems.push(format!("{rel}: {} bytes, {size} received", m.len())),
                    Err(_) => problems.push(format!("{rel}: missing")),
                }
            }
            Method::Structure
        }
    };
    Report {
        ok: problems.0.is_empty(),
        backup_date,
        method,
        files,
        bytes,
        problems: problems.0,
    }
}

fn read_head(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut head = vec![0u8; SQLITE_MAGIC.len()];
    let n = f.read(&mut head).ok()?;
    (n > 0).then(|| head[..n].to_vec())
}

fn check_manifest_db(
    folder: &Path,
    db: &Path,
    problems: &mut Problems,
    files: &mut u64,
    bytes: &mut u64,
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
        let expected = blob.as_deref().and_then(mbfile_size);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {
                if let Some(size) = expected.filter(|s| *s != m.len()) {
                    problems.push(format!(
                        "{file_id}: {} bytes, Manifest.db says {size}",
                        m.len()
                    ));
                } else {
                    *files += 1;
                    *bytes += m.len();
                }
            }
            Ok(_) => problems.push(format!("{file_id}: not a regular file")),
            Err(_) => problems.push(format!("{file_id}: listed in Manifest.db but missing")),
        }
    }
}

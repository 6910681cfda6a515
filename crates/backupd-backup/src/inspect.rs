//! Looking inside a finished backup, read-only: what it holds of WhatsApp's chats.
//!
//! WhatsApp keeps its chats in `ChatStorage.sqlite` of the app group `group.net.whatsapp.WhatsApp.shared`. In a
//! Finder-style backup that file is stored under its fileID (`<xx>/<fileID>`), found through `Manifest.db`
//! (`Files` where `domain = 'AppDomainGroup-group.net.whatsapp.WhatsApp.shared'` and
//! `relativePath = 'ChatStorage.sqlite'`). Its `ZWAMESSAGE` table has one row per message and `ZMESSAGEDATE`
//! in seconds since 2001-01-01 (Core Data's epoch).
//!
//! Both databases come from the phone, so they are attacker input: they are opened read-only and immutable
//! (nothing is written next to them, no journal is replayed), with untrusted schemas, and every query runs
//! under a deadline. A `-wal` file is not read: messages not yet checkpointed into the database are not
//! counted, so the count and the newest date are lower bounds, which is the safe side for "your chats up to
//! this date are safe".

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// WhatsApp's shared app group, as a backup domain.
pub const WHATSAPP_DOMAIN: &str = "AppDomainGroup-group.net.whatsapp.WhatsApp.shared";
/// WhatsApp's chat database, within that domain.
pub const CHAT_STORAGE: &str = "ChatStorage.sqlite";
/// Seconds from the Unix epoch to 2001-01-01T00:00:00Z.
const APPLE_EPOCH: i64 = 978_307_200;
/// How long one inspection may take before it gives up (a chat database of many gigabytes is still counted in a
/// few seconds; a hostile one must not hold a thread for longer).
pub const DEADLINE: Duration = Duration::from_secs(20);
/// SQLite calls the progress handler every this many virtual-machine steps.
const PROGRESS_STEPS: i32 = 10_000;

/// What a backup holds of WhatsApp's chats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Whatsapp {
    /// `Manifest.db` lists no chat database: WhatsApp's chats are not in this backup.
    Absent,
    /// The chat database was read.
    Chats {
        /// Rows of `ZWAMESSAGE`.
        messages: u64,
        /// The newest `ZMESSAGEDATE`, in seconds since the Unix epoch; `None` with no dated message.
        newest_message: Option<i64>,
    },
    /// The backup is encrypted; its files cannot be read without the password.
    Encrypted,
}

/// Why a backup could not be inspected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The folder holds no finished backup.
    #[error("{0} holds no finished backup")]
    NotABackup(PathBuf),
    /// `Manifest.db` could not be read.
    #[error("cannot read Manifest.db: {0}")]
    Manifest(#[source] rusqlite::Error),
    /// `Manifest.db` gives a fileID that is not 40 hex digits.
    #[error("Manifest.db gives the chat database a malformed fileID")]
    BadFileId,
    /// The file `Manifest.db` lists is missing or not a regular file.
    #[error("the chat database {0} is missing or not a regular file")]
    Missing(PathBuf),
    /// The chat database could not be read (not SQLite, no `ZWAMESSAGE`, corrupt, or too slow).
    #[error("cannot read WhatsApp's chat database: {0}")]
    ChatStorage(#[source] rusqlite::Error),
    /// The encrypted backup does not open with the password given, or a file of it does not decrypt.
    #[error(transparent)]
    Encrypted(#[from] crate::encrypted::EncryptedError),
    /// The chat database's record in the decrypted `Manifest.db` is unreadable.
    #[error("the chat database's record in Manifest.db is unreadable")]
    BadRecord,
    /// A private temporary file for the decrypted chat database could not be made.
    #[error("cannot make a private temporary file: {0}")]
    Temp(#[source] std::io::Error),
}

/// What the finished backup in `folder` (`<backup dir>/<UDID>`) holds of WhatsApp's chats; an encrypted
/// backup gives [`Whatsapp::Encrypted`].
///
/// Blocking file and SQLite work: call it off the async workers.
pub fn whatsapp(folder: &Path) -> Result<Whatsapp, InspectError> {
    whatsapp_with_password(folder, None)
}

/// [`whatsapp`], with the password of an encrypted backup when the person gave it.
pub fn whatsapp_with_password(
    folder: &Path,
    password: Option<&str>,
) -> Result<Whatsapp, InspectError> {
    if !crate::store::is_complete(folder) {
        return Err(InspectError::NotABackup(folder.to_owned()));
    }
    let deadline = Instant::now() + DEADLINE;
    if is_encrypted(folder) {
        let Some(password) = password else {
            return Ok(Whatsapp::Encrypted);
        };
        return encrypted_chats(folder, password, deadline);
    }
    let Some((file_id, _)) = chat_storage_row(&folder.join("Manifest.db"), deadline)? else {
        return Ok(Whatsapp::Absent);
    };
    let path = folder.join(&file_id[..2]).join(&file_id);
    // Never follow a link out of the backup folder.
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_file() => {}
        _ => return Err(InspectError::Missing(path)),
    }
    count_chats(&path, deadline)
}

/// A row of `Files`: the fileID and the `MBFile` record.
type FileRow = (String, Option<Vec<u8>>);

/// The fileID and `MBFile` record of the chat database in a (plain or decrypted) `Manifest.db`.
fn chat_storage_row(
    manifest_db: &Path,
    deadline: Instant,
) -> Result<Option<FileRow>, InspectError> {
    let manifest = open(manifest_db, deadline).map_err(InspectError::Manifest)?;
    let row: Option<FileRow> = manifest
        .query_row(
            "SELECT fileID, file FROM Files WHERE domain = ?1 AND relativePath = ?2 AND flags = 1 LIMIT 1",
            [WHATSAPP_DOMAIN, CHAT_STORAGE],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(InspectError::Manifest)?;
    match row {
        Some((id, _)) if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Err(InspectError::BadFileId)
        }
        other => Ok(other),
    }
}

/// Messages and the newest message date of a chat database.
fn count_chats(path: &Path, deadline: Instant) -> Result<Whatsapp, InspectError> {
    let chats = open(path, deadline).map_err(InspectError::ChatStorage)?;
    let (messages, newest): (i64, Option<f64>) = chats
        .query_row(
            "SELECT count(*), max(ZMESSAGEDATE) FROM ZWAMESSAGE",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(InspectError::ChatStorage)?;
    Ok(Whatsapp::Chats {
        messages: u64::try_from(messages).unwrap_or(0),
        newest_message: newest.and_then(apple_to_unix),
    })
}

/// An encrypted backup, opened with its password: the decrypted `Manifest.db` finds the chat database, which
/// is decrypted into a private temporary folder (removed when done) and read like a plain one.
fn encrypted_chats(
    folder: &Path,
    password: &str,
    deadline: Instant,
) -> Result<Whatsapp, InspectError> {
    let backup = crate::encrypted::EncryptedBackup::open(
        folder,
        &crate::encrypted::Password::new(password.to_owned()),
    )?;
    let Some((file_id, blob)) = chat_storage_row(&backup.manifest_db_path(), deadline)? else {
        return Ok(Whatsapp::Absent);
    };
    let record = blob
        .as_deref()
        .and_then(|b| backupd_proto::mobilebackup2::MbFile::from_archive(b).ok())
        .ok_or(InspectError::BadRecord)?;
    // tempfile makes the folder 0700: the decrypted chats are readable by this user only.
    let private = tempfile::Builder::new()
        .prefix("backupd-chats-")
        .tempdir()
        .map_err(InspectError::Temp)?;
    let plain = private.path().join(CHAT_STORAGE);
    let mut out = std::fs::File::create(&plain).map_err(InspectError::Temp)?;
    backup.decrypt_file(&file_id, &record, &mut out)?;
    drop(out);
    count_chats(&plain, deadline)
}

fn is_encrypted(folder: &Path) -> bool {
    std::fs::read(folder.join("Manifest.plist"))
        .ok()
        .and_then(|b| backupd_proto::plist_util::parse(&b).ok())
        .and_then(plist::Value::into_dictionary)
        .and_then(|d| d.get("IsEncrypted").and_then(plist::Value::as_boolean))
        .unwrap_or(false)
}

/// Core Data seconds to Unix seconds, for dates a phone could hold (years 2001 to 2200).
fn apple_to_unix(secs: f64) -> Option<i64> {
    const LATEST: f64 = 6_311_433_600.0;
    if !(0.0..=LATEST).contains(&secs) {
        return None;
    }
    // In range, so the cast neither truncates nor saturates.
    #[allow(clippy::cast_possible_truncation)]
    Some(secs.floor() as i64 + APPLE_EPOCH)
}

/// Opens a database from a backup read-only and immutable, with its schema untrusted and a deadline.
fn open(path: &Path, deadline: Instant) -> rusqlite::Result<Connection> {
    let uri = format!("file:{}?immutable=1", uri_path(path));
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(
        "PRAGMA trusted_schema = OFF; PRAGMA query_only = ON; PRAGMA cell_size_check = ON; PRAGMA cache_size = -8192;",
    )?;
    conn.progress_handler(PROGRESS_STEPS, Some(move || Instant::now() > deadline));
    Ok(conn)
}

/// `path` as the path of a `file:` URI: every byte but unreserved ones and `/` percent-encoded.
fn uri_path(path: &Path) -> String {
    use std::fmt::Write as _;
    use std::os::unix::ffi::OsStrExt as _;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_data_dates() {
        assert_eq!(apple_to_unix(0.0), Some(APPLE_EPOCH));
        assert_eq!(apple_to_unix(816_904_020.5), Some(1_795_211_220));
        assert_eq!(apple_to_unix(-1.0), None);
        assert_eq!(apple_to_unix(f64::NAN), None);
        assert_eq!(apple_to_unix(f64::INFINITY), None);
    }

    #[test]
    fn uri_paths_escape_what_sqlite_would_read_as_syntax() {
        assert_eq!(uri_path(Path::new("/a b/c?d#e%f")), "/a%20b/c%3Fd%23e%25f");
        assert_eq!(uri_path(Path::new("/x/Manifest.db")), "/x/Manifest.db");
    }
}

//! Manifest.db: the SQLite inventory of a backup, written for the files the phone has and read back when
//! the host hands the previous one over.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use backupd_proto::mobilebackup2::{MANIFEST_DB_SCHEMA, MbFile};

use super::crypto::PhoneKeys;
use super::files::{BackupFile, FileSet};

/// Writes a Manifest.db listing every directory and file of the set.
/// With `keys` (an encrypted backup) every non-empty file's record carries its `EncryptionKey`.
pub(crate) fn write(path: &Path, set: &FileSet, keys: Option<&PhoneKeys>) -> rusqlite::Result<()> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch(MANIFEST_DB_SCHEMA)?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT OR REPLACE INTO Files (fileID, domain, relativePath, flags, file) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut add = |f: &BackupFile| {
            let mut record = f.record();
            if let Some(keys) = keys {
                record.encryption_key = keys.encryption_key(f, record.protection_class as u32);
            }
            insert.execute(params![
                f.file_id(),
                f.domain,
                f.relative_path,
                f.flags(),
                record.to_archive()
            ])
        };
        for d in set.directories() {
            add(&d)?;
        }
        for f in set.files() {
            add(&f)?;
        }
    }
    tx.commit()?;
    conn.close().map_err(|(_, e)| e)
}

/// The Manifest.db of the previous backup, as the host sent it back.
#[derive(Debug)]
pub(crate) struct Previous {
    conn: Connection,
}

impl Previous {
    /// Opens it; `None` when it is not a Manifest.db this phone can use.
    pub(crate) fn open(path: &Path) -> Option<Self> {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        conn.query_row("SELECT count(*) FROM Files", [], |r| r.get::<_, i64>(0))
            .ok()?;
        Some(Self { conn })
    }

    /// The record of a file in the previous backup.
    pub(crate) fn record(&self, file_id: &str) -> Option<MbFile> {
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT file FROM Files WHERE fileID = ?1 AND flags = 1",
                [file_id],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten();
        MbFile::from_archive(&blob?).ok()
    }

    /// Whether the file changed since the previous backup (or is new).
    pub(crate) fn changed(&self, file: &BackupFile) -> bool {
        let Some(old) = self.record(&file.file_id()) else {
            return true;
        };
        let new = file.record();
        old.size != new.size || old.last_modified != new.last_modified || old.mode != new.mode
    }

    /// The fileIDs of files the previous backup has and `current` (a Manifest.db) has not.
    pub(crate) fn removed(&self, current: &Path) -> rusqlite::Result<Vec<String>> {
        let current = current.to_string_lossy().into_owned();
        self.conn
            .execute("ATTACH DATABASE ?1 AS current", [current])?;
        let ids = {
            let mut stmt = self.conn.prepare(
                "SELECT fileID FROM main.Files WHERE flags = 1 AND fileID NOT IN (SELECT fileID FROM current.Files)",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()?
        };
        self.conn.execute("DETACH DATABASE current", [])?;
        Ok(ids)
    }
}

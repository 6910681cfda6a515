//! `POST /v1/devices/{udid}/backups/check-password`: does this password open the newest backup?
//!
//! One key derivation and the unwrap of the class keys, on a blocking thread (millions of PBKDF2 rounds take
//! seconds); no file is decrypted. A password that opens the backup is recorded as a check of that keybag,
//! with the date, for the rules; the password itself goes nowhere and is zeroed when dropped.

use std::path::PathBuf;

use backupd_api as api;
use backupd_backup::encrypted::{self, EncryptedError, Password};
use backupd_backup::store::{PasswordCheck, Store};

/// Why a check could not answer yes or no.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The phone has no complete encrypted backup here.
    #[error("{0} has no encrypted local backup on this computer")]
    NoEncryptedBackup(String),
    /// The backup could not be read (damaged keybag, unreadable files).
    #[error("the newest backup of {udid} cannot be checked: {source}")]
    Unreadable {
        /// The phone.
        udid: String,
        /// Why.
        #[source]
        source: EncryptedError,
    },
    /// The result could not be recorded.
    #[error("the check could not be recorded: {0}")]
    Record(#[from] backupd_backup::store::StoreError),
}

/// Checks `password` against the newest backup of `udid` in `backup_dir`. Blocks: run it on a blocking thread.
pub fn check(
    backup_dir: PathBuf,
    udid: String,
    password: Password,
    now: i64,
) -> Result<api::PasswordCheckResult, CheckError> {
    let store = Store::new(backup_dir);
    let newest = store
        .newest(&udid)
        .filter(|n| n.encrypted)
        .ok_or_else(|| CheckError::NoEncryptedBackup(udid.clone()))?;
    let ok = match encrypted::check_password(&store.current_dir(&udid), &password) {
        Ok(info) => {
            store.record_password_check(
                &udid,
                &PasswordCheck {
                    keybag_id: info.id(),
                    checked_at: now,
                },
            )?;
            true
        }
        Err(EncryptedError::WrongPassword) => false,
        Err(source) => return Err(CheckError::Unreadable { udid, source }),
    };
    tracing::info!(udid, ok, "backup password checked");
    Ok(api::PasswordCheckResult {
        udid,
        ok,
        checked_at: now,
        backup_date: Some(newest.date),
    })
}

//! Facts about the host: free space where backups go, the local backups of a phone, usbmuxd.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use backupd_backup::inspect::{self, Whatsapp};
use backupd_rules::{
    Fact, HostFacts, HostOs, LocalBackup, LocalWhatsapp, Source, Timestamp, UnknownReason,
    UsbmuxdStatus,
};

/// Free bytes for an unprivileged writer on the file system holding `path` (or its nearest existing parent).
pub fn free_bytes(path: &Path) -> Option<u64> {
    let mut p = path;
    loop {
        if p.exists() {
            let st = nix::sys::statvfs::statvfs(p).ok()?;
            #[allow(
                clippy::useless_conversion,
                reason = "the field types differ between Linux and macOS"
            )]
            return Some(
                u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size())),
            );
        }
        p = p.parent()?;
    }
}

/// What is on the host about one phone's local backups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalBackups {
    /// The newest complete backup.
    pub latest: Option<LocalBackup>,
    /// Whether an interrupted backup was left behind.
    pub unfinished: bool,
}

/// Looks at the store of the phone: its newest complete backup, and what an interrupted run left.
pub fn local_backups(backup_dir: &Path, udid: &str) -> LocalBackups {
    let store = backupd_backup::store::Store::new(backup_dir);
    let latest = store.newest(udid).map(|b| {
        let backup = LocalBackup::new(Timestamp::from_unix_secs(b.date), b.verified, b.encrypted)
            .with_password_checked(b.password_checked.map(Timestamp::from_unix_secs));
        match b.bytes {
            Some(bytes) => backup.with_size(bytes),
            None => backup,
        }
    });
    LocalBackups {
        latest,
        unfinished: store.has_leftover(udid),
    }
}

/// What the newest backup in `folder` (dated `date`) holds of WhatsApp's chats. A backup never changes once
/// finished, so the answer is kept per folder and date: the chat database is read once per backup, not at every
/// diagnosis.
pub fn local_whatsapp(folder: &Path, date: Timestamp) -> Fact<LocalWhatsapp> {
    if let Some((d, fact)) = seen().get(folder)
        && *d == date.unix_secs()
    {
        return fact.clone();
    }
    let source = Source::host(backupd_rules::LOCAL_WHATSAPP_SOURCE);
    let fact = match inspect::whatsapp(folder) {
        Ok(found) => Fact::known(
            match found {
                Whatsapp::Chats {
                    messages,
                    newest_message,
                } => LocalWhatsapp::Chats {
                    messages,
                    newest_message: newest_message.map(Timestamp::from_unix_secs),
                },
                Whatsapp::Encrypted => LocalWhatsapp::Encrypted,
                _ => LocalWhatsapp::Absent,
            },
            source,
        ),
        Err(error) => {
            tracing::warn!(folder = %folder.display(), %error, "could not look for WhatsApp's chats in the backup");
            Fact::unknown(UnknownReason::QueryFailed, source)
        }
    };
    remember(folder, date, fact.clone());
    fact
}

/// Looks inside the newest backup of `udid` now, with the password of an encrypted one if given (used for this
/// call only), and keeps what it found for the next diagnoses. Gives the backup's date and what it holds.
pub fn inspect(
    backup_dir: &Path,
    udid: &str,
    password: Option<&str>,
) -> Result<(Option<i64>, backupd_api::WhatsappInBackup), inspect::InspectError> {
    use backupd_api::WhatsappInBackup as Api;
    let store = backupd_backup::store::Store::new(backup_dir);
    let Some(newest) = store.newest(udid) else {
        return Ok((None, Api::NoBackup));
    };
    let folder = store.current_dir(udid);
    let found = inspect::whatsapp_with_password(&folder, password)?;
    let date = Timestamp::from_unix_secs(newest.date);
    let (fact, answer) = match found {
        Whatsapp::Chats {
            messages,
            newest_message,
        } => (
            LocalWhatsapp::Chats {
                messages,
                newest_message: newest_message.map(Timestamp::from_unix_secs),
            },
            Api::Chats {
                messages,
                newest_message,
            },
        ),
        Whatsapp::Encrypted => (LocalWhatsapp::Encrypted, Api::Encrypted),
        _ => (LocalWhatsapp::Absent, Api::Absent),
    };
    remember(
        &folder,
        date,
        Fact::known(fact, Source::host(backupd_rules::LOCAL_WHATSAPP_SOURCE)),
    );
    Ok((Some(newest.date), answer))
}

type Seen = Mutex<HashMap<PathBuf, (i64, Fact<LocalWhatsapp>)>>;

fn seen() -> std::sync::MutexGuard<'static, HashMap<PathBuf, (i64, Fact<LocalWhatsapp>)>> {
    static SEEN: OnceLock<Seen> = OnceLock::new();
    match SEEN.get_or_init(|| Mutex::new(HashMap::new())).lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn remember(folder: &Path, date: Timestamp, fact: Fact<LocalWhatsapp>) {
    seen().insert(folder.to_owned(), (date.unix_secs(), fact));
}

/// The host facts for one phone (or none, for host-only checks). `usbmuxd_address` is the socket the daemon
/// really uses, so the evidence names it.
pub fn facts(
    backup_dir: &Path,
    udid: Option<&str>,
    usbmuxd: UsbmuxdStatus,
    usbmuxd_address: &str,
) -> HostFacts {
    let mut host = HostFacts::unread(UnknownReason::NotQueried);
    host.os.set_known(if cfg!(target_os = "linux") {
        HostOs::Linux
    } else if cfg!(target_os = "macos") {
        HostOs::Macos
    } else {
        HostOs::Other
    });
    host.usbmuxd = Fact::known(
        usbmuxd,
        Source::host(&format!("connect({usbmuxd_address})")),
    );
    match free_bytes(backup_dir) {
        Some(free) => host.backup_dir_free.set_known(free),
        None => host.backup_dir_free.set_unknown(UnknownReason::QueryFailed),
    }
    if let Some(udid) = udid {
        let local = local_backups(backup_dir, udid);
        if let Some(latest) = &local.latest {
            let folder = backupd_backup::store::Store::new(backup_dir).current_dir(udid);
            host.local_whatsapp = local_whatsapp(&folder, latest.date);
        }
        host.local_backup.set_known(local.latest);
        host.unfinished_backup.set_known(local.unfinished);
    }
    host
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_status_is_a_local_backup_and_a_staging_folder_is_a_leftover() {
        let dir = tempfile::tempdir().expect("dir");
        let udid = "00008110-001A2B3C4D5E6F01";
        assert_eq!(
            local_backups(dir.path(), udid),
            LocalBackups {
                latest: None,
                unfinished: false
            }
        );

        let folder = dir.path().join(udid);
        std::fs::create_dir_all(&folder).expect("mkdir");
        let mut status = plist::Dictionary::new();
        status.insert("SnapshotState".into(), "finished".into());
        let date = plist::Date::from_xml_format("2026-11-01T10:00:00Z").expect("date");
        status.insert("Date".into(), plist::Value::Date(date));
        plist::Value::Dictionary(status)
            .to_file_xml(folder.join("Status.plist"))
            .expect("write");
        let found = local_backups(dir.path(), udid);
        let latest = found.latest.expect("complete backup");
        assert!(!latest.verified);
        assert_eq!(latest.date.unix_secs(), 1_793_527_200);

        let books = dir.path().join(".backupd").join(udid);
        std::fs::create_dir_all(books.join("staging")).expect("mkdir");
        std::fs::write(
            books.join("verified.json"),
            r#"{"ok":true,"backup_date":1793527200,"method":"manifest","files":0,"bytes":0,"problems":[]}"#,
        )
        .expect("write");
        let found = local_backups(dir.path(), udid);
        assert!(found.unfinished);
        assert!(found.latest.expect("backup").verified);
    }

    #[test]
    fn free_space_of_a_missing_folder_is_its_parents() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(free_bytes(&dir.path().join("not/yet/made")).is_some());
    }
}

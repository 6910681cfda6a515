//! Facts about the host: free space where backups go, the local backups of a phone, usbmuxd.

use std::path::Path;

use backupd_rules::{HostFacts, HostOs, LocalBackup, Timestamp, UnknownReason, UsbmuxdStatus};

/// Where backupd keeps its own bookkeeping beside the Finder-format folders: `<backup dir>/.backupd/<UDID>/`.
pub const BOOKKEEPING_DIR: &str = ".backupd";
/// The file the verifier writes after checking a backup.
pub const VERIFIED_FILE: &str = "verified.json";
/// The folder a backup in progress is staged in.
pub const STAGING_DIR: &str = "staging";

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

fn plist_dict(path: &Path) -> Option<plist::Dictionary> {
    let bytes = std::fs::read(path).ok()?;
    backupd_proto::plist_util::parse(&bytes)
        .ok()?
        .into_dictionary()
}

/// Looks at `<backup dir>/<UDID>/` (Finder's layout) and backupd's bookkeeping for the phone.
pub fn local_backups(backup_dir: &Path, udid: &str) -> LocalBackups {
    let folder = backup_dir.join(udid);
    let books = backup_dir.join(BOOKKEEPING_DIR).join(udid);
    // An interrupted run leaves either our staging folder or the device's own Snapshot folder (idevicebackup2).
    let unfinished = books.join(STAGING_DIR).exists() || folder.join("Snapshot").exists();
    let latest = plist_dict(&folder.join("Status.plist")).and_then(|status| {
        if status
            .get("SnapshotState")
            .and_then(plist::Value::as_string)
            != Some("finished")
        {
            return None;
        }
        let date = status
            .get("Date")
            .and_then(plist::Value::as_date)
            .map(|d| {
                let st: std::time::SystemTime = d.into();
                let secs = st
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                Timestamp::from_unix_secs(i64::try_from(secs).unwrap_or(i64::MAX))
            })?;
        let encrypted = plist_dict(&folder.join("Manifest.plist"))
            .and_then(|m| m.get("IsEncrypted").and_then(plist::Value::as_boolean))
            .unwrap_or(false);
        let verified = verified_matches(&books.join(VERIFIED_FILE), date);
        Some(LocalBackup::new(date, verified, encrypted))
    });
    LocalBackups { latest, unfinished }
}

/// Whether the verifier's record is for the backup of this date and says it passed.
fn verified_matches(path: &Path, date: Timestamp) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    v.get("ok").and_then(serde_json::Value::as_bool) == Some(true)
        && v.get("backup_date").and_then(serde_json::Value::as_i64) == Some(date.unix_secs())
}

/// The host facts for one phone (or none, for host-only checks).
pub fn facts(backup_dir: &Path, udid: Option<&str>, usbmuxd: UsbmuxdStatus) -> HostFacts {
    let mut host = HostFacts::unread(UnknownReason::NotQueried);
    host.os.set_known(if cfg!(target_os = "linux") {
        HostOs::Linux
    } else if cfg!(target_os = "macos") {
        HostOs::Macos
    } else {
        HostOs::Other
    });
    host.usbmuxd.set_known(usbmuxd);
    match free_bytes(backup_dir) {
        Some(free) => host.backup_dir_free.set_known(free),
        None => host.backup_dir_free.set_unknown(UnknownReason::QueryFailed),
    }
    if let Some(udid) = udid {
        let local = local_backups(backup_dir, udid);
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

        let books = dir.path().join(BOOKKEEPING_DIR).join(udid);
        std::fs::create_dir_all(books.join(STAGING_DIR)).expect("mkdir");
        std::fs::write(
            books.join(VERIFIED_FILE),
            r#"{"ok":true,"backup_date":1793527200}"#,
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

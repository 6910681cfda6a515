//! The inspector against real backups of the simulated phone (whose WhatsApp profile backs up a real
//! ChatStorage.sqlite), and against hostile backup folders.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use backupd_backup::engine::{self, BackupRequest, Progress, Stage};
use backupd_backup::inspect::{self, InspectError, Whatsapp};
use backupd_backup::store::Store;
use backupd_mux::{Muxd, Pairing};
use backupd_proto::tls::DevicePinning;
use backupd_proto::usbmuxd::Address;
use backupd_sim::backup::whatsapp as sim_whatsapp;
use backupd_sim::profile::{Profile, builtin};
use backupd_sim::{Config, Simulator};
use tokio::sync::watch;

/// Backs up the one phone of `profile` into a fresh store; returns the temp dir and the backup folder.
async fn backed_up(profile: Profile) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("dir");
    let socket = dir.path().join("mux.sock");
    let _sim = Simulator::start(Config {
        socket: socket.clone(),
        tcp: None,
        control: None,
        state_dir: dir.path().join("sim"),
        profiles: vec![profile],
    })
    .await
    .expect("simulator");
    let muxd = Muxd::new(Address::Unix(socket));
    let store = Store::new(dir.path().join("backups"));
    let device = muxd
        .list_devices()
        .await
        .expect("list")
        .into_iter()
        .next()
        .expect("a phone");
    let mut trusted = Pairing::new()
        .open(&muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await
        .expect("trusted");
    let tx = watch::channel(Progress {
        stage: Stage::Preparing,
        bytes: 0,
        files: 0,
        device_percent: 0.0,
        announced_bytes: 0,
        elapsed_secs: 0.0,
    })
    .0;
    let request = BackupRequest {
        full: true,
        keep_versions: 1,
        min_free_bytes: 0,
        password: None,
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        engine::backup(
            &mut trusted.lockdown,
            &trusted.record,
            &store,
            &request,
            &tx,
        ),
    )
    .await
    .expect("in time")
    .expect("backup succeeds");
    let folder = store.current_dir(&device.udid);
    (dir, folder)
}

fn whatsapp_profile(encrypted: bool) -> Profile {
    let mut p = builtin("icloud-full-whatsapp").expect("profile");
    if !encrypted {
        p.backup.password = None;
        if let Some(d) = p.lockdown.get_mut("com.apple.mobile.backup") {
            d.insert("WillEncrypt".into(), toml::Value::Boolean(false));
        }
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_chats_are_counted_in_a_real_backup() {
    let (_dir, folder) = backed_up(whatsapp_profile(false)).await;
    let found = inspect::whatsapp(&folder).expect("inspect");
    assert_eq!(
        found,
        Whatsapp::Chats {
            messages: sim_whatsapp::BASE_MESSAGES,
            newest_message: Some(sim_whatsapp::NEWEST_MESSAGE),
        }
    );
    // The database was found by its real fileID: SHA-1 of the domain and path.
    assert!(
        folder
            .join("7c/7c7fba66680ef796b916b067077cc246adacf01d")
            .is_file()
    );
    // Read-only: nothing was written next to the databases.
    let mut names = Vec::new();
    for e in std::fs::read_dir(&folder).expect("ls").flatten() {
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("-journal") || n.contains("-wal") || n.contains("-shm")),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_without_whatsapp_says_so_and_an_encrypted_one_needs_its_password() {
    let (_dir, folder) = backed_up(builtin("healthy").expect("profile")).await;
    assert_eq!(
        inspect::whatsapp(&folder).expect("inspect"),
        Whatsapp::Absent
    );
    let (_dir, folder) = backed_up(whatsapp_profile(true)).await;
    assert_eq!(
        inspect::whatsapp(&folder).expect("inspect"),
        Whatsapp::Encrypted
    );
}

/// A finished backup folder whose Manifest.db lists the chat database under `file_id`.
fn fake_backup(dir: &Path, file_id: &str) -> PathBuf {
    let folder = dir.join("backup");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let mut status = plist::Dictionary::new();
    status.insert("SnapshotState".into(), "finished".into());
    plist::Value::Dictionary(status)
        .to_file_xml(folder.join("Status.plist"))
        .expect("status");
    let conn = rusqlite::Connection::open(folder.join("Manifest.db")).expect("db");
    conn.execute_batch(backupd_proto::mobilebackup2::MANIFEST_DB_SCHEMA)
        .expect("schema");
    conn.execute(
        "INSERT INTO Files (fileID, domain, relativePath, flags, file) VALUES (?1, ?2, ?3, 1, x'')",
        [file_id, inspect::WHATSAPP_DOMAIN, inspect::CHAT_STORAGE],
    )
    .expect("insert");
    folder
}

const ID: &str = "7c7fba66680ef796b916b067077cc246adacf01d";

#[test]
fn hostile_backups_are_errors_not_panics_and_nothing_outside_is_read() {
    let dir = tempfile::tempdir().expect("dir");

    let folder = fake_backup(dir.path(), "../../etc/passwd");
    assert!(matches!(
        inspect::whatsapp(&folder),
        Err(InspectError::BadFileId)
    ));

    let dir = tempfile::tempdir().expect("dir");
    let folder = fake_backup(dir.path(), ID);
    assert!(matches!(
        inspect::whatsapp(&folder),
        Err(InspectError::Missing(_))
    ));

    // A link to a real chat database outside the backup is not followed.
    let outside = dir.path().join("outside.sqlite");
    std::fs::write(&outside, sim_whatsapp::chat_storage(1, 0).as_slice()).expect("write");
    std::fs::create_dir_all(folder.join("7c")).expect("mkdir");
    std::os::unix::fs::symlink(&outside, folder.join("7c").join(ID)).expect("link");
    assert!(matches!(
        inspect::whatsapp(&folder),
        Err(InspectError::Missing(_))
    ));

    // Garbage, a truncated database and a database without ZWAMESSAGE are read errors.
    let real = sim_whatsapp::chat_storage(1, 0);
    let other = rusqlite::Connection::open(dir.path().join("other.db")).expect("db");
    other
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .expect("t");
    drop(other);
    let other = std::fs::read(dir.path().join("other.db")).expect("read");
    for bytes in [
        b"not a database at all".to_vec(),
        real[..real.len() / 3].to_vec(),
        other,
    ] {
        std::fs::remove_file(folder.join("7c").join(ID)).expect("rm");
        std::fs::write(folder.join("7c").join(ID), &bytes).expect("write");
        assert!(
            matches!(
                inspect::whatsapp(&folder),
                Err(InspectError::ChatStorage(_))
            ),
            "{} bytes",
            bytes.len()
        );
    }

    // The real thing, with a path SQLite's URI syntax would misread.
    let odd = dir.path().join("a b?c#d%e");
    let folder = fake_backup(&odd, ID);
    std::fs::create_dir_all(folder.join("7c")).expect("mkdir");
    std::fs::write(folder.join("7c").join(ID), real.as_slice()).expect("write");
    assert!(matches!(
        inspect::whatsapp(&folder),
        Ok(Whatsapp::Chats { messages: 312, .. })
    ));

    assert!(matches!(
        inspect::whatsapp(dir.path()),
        Err(InspectError::NotABackup(_))
    ));
}

//! The backup engine against the simulated phone: full and incremental backups, and every interruption
//! leaving the previous backup intact.

use std::path::Path;
use std::time::{Duration, SystemTime};

use backupd_backup::encrypted::{EncryptedBackup, Password};
use backupd_backup::engine::{self, BackupError, BackupRequest, Progress, Stage};
use backupd_backup::store::{Recovery, Store};
use backupd_backup::verify;
use backupd_mux::{Muxd, Pairing};
use backupd_proto::tls::DevicePinning;
use backupd_proto::usbmuxd::Address;
use backupd_sim::backup::DisconnectStage;
use backupd_sim::profile::{Profile, builtin};
use backupd_sim::{Config, Simulator};
use tokio::sync::watch;

const UDID: &str = "00008110-001A2B3C4D5E6F01";

struct Rig {
    dir: tempfile::TempDir,
    sim: Simulator,
    muxd: Muxd,
    store: Store,
}

async fn rig(profile: Profile) -> Rig {
    let dir = tempfile::tempdir().expect("dir");
    let socket = dir.path().join("mux.sock");
    let sim = Simulator::start(Config {
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
    Rig {
        dir,
        sim,
        muxd,
        store,
    }
}

/// The same phone (same key and trusted hosts) as `r`'s, with `profile`, behind another muxer named `name`,
/// backing up into `r`'s store: how a test swaps in a phone with faults.
async fn beside(r: &Rig, profile: Profile, name: &str) -> Rig {
    let socket = r.dir.path().join(format!("{name}.sock"));
    Rig {
        sim: Simulator::start(Config {
            socket: socket.clone(),
            tcp: None,
            control: None,
            state_dir: r.dir.path().join("sim"),
            profiles: vec![profile],
        })
        .await
        .expect("simulator"),
        muxd: Muxd::new(Address::Unix(socket)),
        store: r.store.clone(),
        dir: tempfile::tempdir().expect("dir"),
    }
}

fn channel() -> watch::Sender<Progress> {
    watch::channel(Progress {
        stage: Stage::Preparing,
        bytes: 0,
        files: 0,
        device_percent: 0.0,
        announced_bytes: 0,
        elapsed_secs: 0.0,
    })
    .0
}

async fn run(r: &Rig, full: bool) -> Result<engine::Outcome, BackupError> {
    run_with(r, full, None).await
}

async fn run_with(
    r: &Rig,
    full: bool,
    password: Option<&str>,
) -> Result<engine::Outcome, BackupError> {
    let device = r
        .muxd
        .list_devices()
        .await
        .expect("list")
        .into_iter()
        .next()
        .expect("a phone");
    let mut trusted = Pairing::new()
        .open(&r.muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await
        .expect("trusted");
    let tx = channel();
    let request = BackupRequest {
        full,
        keep_versions: 3,
        min_free_bytes: 0,
        password: password.map(|p| Password::new(p.to_owned())),
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        engine::backup(
            &mut trusted.lockdown,
            &trusted.record,
            &r.store,
            &request,
            &tx,
        ),
    )
    .await
    .expect("the backup ends in time")
}

fn current_bytes(store: &Store) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    collect(&store.current_dir(UDID), "", &mut out);
    out.sort();
    out
}

fn collect(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        if e.path().is_dir() {
            collect(&e.path(), &format!("{name}/"), out);
        } else if name != "Info.plist" {
            out.push((name, std::fs::read(e.path()).expect("read")));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backup_is_complete_verified_and_finder_shaped() {
    let r = rig(builtin("healthy").expect("profile")).await;
    let outcome = run(&r, true).await.expect("backup succeeds");
    assert!(outcome.report.ok);
    assert_eq!(outcome.report.method, verify::Method::Manifest);
    let expected = r.sim.muxd().phone(UDID).expect("phone").backup().file_set();
    assert_eq!(
        outcome.report.files as usize,
        expected.files().count(),
        "every file the phone has is in the backup"
    );
    let folder = r.store.current_dir(UDID);
    for name in [
        "Info.plist",
        "Manifest.plist",
        "Manifest.db",
        "Status.plist",
    ] {
        assert!(folder.join(name).is_file(), "{name} missing");
    }
    let list = r.store.list(UDID);
    assert_eq!(list.len(), 1);
    assert!(list[0].verified);
    assert_eq!(r.store.recover(UDID).expect("recover"), Recovery::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_backup_receives_only_what_changed_and_keeps_a_version() {
    let r = rig(builtin("healthy").expect("profile")).await;
    let first = run(&r, false).await.expect("first backup");
    r.sim
        .muxd()
        .phone(UDID)
        .expect("phone")
        .backup()
        .touch("HomeDomain", "Library/SMS/sms.db")
        .expect("touch");
    let second = run(&r, false).await.expect("incremental backup");
    assert!(
        second.files < first.files,
        "incremental: {} files after {}",
        second.files,
        first.files
    );
    assert!(second.files >= 1);
    assert!(second.report.ok, "{:?}", second.report);
    let list = r.store.list(UDID);
    assert_eq!(
        list.len(),
        2,
        "the first backup is kept as a version: {list:?}"
    );
    assert!(
        verify::verify(&list[1].path, &[]).ok,
        "the version still verifies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplugging_at_many_points_never_harms_the_previous_backup() {
    let r = rig(builtin("healthy").expect("profile")).await;
    run(&r, true).await.expect("first backup");
    let before = current_bytes(&r.store);
    let total: u64 = r
        .sim
        .muxd()
        .phone(UDID)
        .expect("phone")
        .backup()
        .file_set()
        .total_bytes();
    // From the very start to the end of the data, then during Manifest.db and during the final moves.
    let mut faults: Vec<(String, backupd_sim::backup::BackupFaults)> = Vec::new();
    for at in [0, 1, 40_000, total / 2, total - 1] {
        let f = backupd_sim::backup::BackupFaults {
            disconnect_after_bytes: Some(at),
            ..backupd_sim::backup::BackupFaults::default()
        };
        faults.push((format!("after {at} bytes"), f));
    }
    for stage in [DisconnectStage::ManifestDb, DisconnectStage::Moves] {
        let f = backupd_sim::backup::BackupFaults {
            disconnect_during: Some(stage),
            ..backupd_sim::backup::BackupFaults::default()
        };
        faults.push((format!("during {stage:?}"), f));
    }
    for (i, (what, fault)) in faults.into_iter().enumerate() {
        let mut profile = builtin("healthy").expect("profile");
        profile.backup.faults = fault;
        let faulty = beside(&r, profile, &format!("mux-{i}")).await;
        let err = run(&faulty, true)
            .await
            .expect_err("an unplugged backup fails");
        assert!(
            matches!(err, BackupError::Transport(_) | BackupError::Protocol(_)),
            "{what}: {err:?}"
        );
        assert_eq!(
            current_bytes(&r.store),
            before,
            "{what}: the previous backup changed"
        );
        assert!(
            verify::verify(&r.store.current_dir(UDID), &[]).ok,
            "{what}: the previous backup no longer verifies"
        );
        assert_eq!(
            r.store.recover(UDID).expect("recover"),
            Recovery::LeftoverStaging,
            "{what}"
        );
        faulty.sim.shutdown().await;
    }
    // The next backup succeeds anyway.
    let after = run(&r, false)
        .await
        .expect("a backup after the interruptions");
    assert!(after.report.ok);
    assert_eq!(r.store.recover(UDID).expect("recover"), Recovery::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_file_names_write_nothing_outside_and_keep_nothing() {
    let mut profile = builtin("healthy").expect("profile");
    profile.backup.faults.hostile_names = true;
    let r = rig(profile).await;
    let err = run(&r, true).await.expect_err("hostile names are refused");
    assert!(matches!(err, BackupError::UnsafePaths { .. }), "{err:?}");
    assert!(!r.store.current_dir(UDID).exists(), "nothing was committed");
    // Nothing escaped next to the store or its parent.
    let mut names: Vec<String> = std::fs::read_dir(r.dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["backups", "mux.sock", "sim"],
        "unexpected files beside the store"
    );
    let mut inside: Vec<String> = std::fs::read_dir(r.store.root())
        .expect("store")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    assert_eq!(inside, [".backupd"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_error_is_typed_and_the_previous_backup_survives() {
    let r = rig(builtin("healthy").expect("profile")).await;
    run(&r, true).await.expect("first backup");
    let before = current_bytes(&r.store);
    let mut profile = builtin("healthy").expect("profile");
    profile.backup.faults.passcode_prompt = true;
    profile.backup.faults.passcode_timeout_secs = 1;
    let failing = beside(&r, profile, "mux-208").await;
    let err = run(&failing, false).await.expect_err("no passcode entered");
    assert_eq!(err.device_code(), Some(208), "{err:?}");
    assert_eq!(current_bytes(&r.store), before);
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A small tmpfs that unmounts itself.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_disk_filling_up_mid_backup_is_a_clean_error() {
    if !is_root() {
        eprintln!("not root: cannot mount a small file system to fill; CI runs this as root");
        return;
    }
    let r = rig(builtin("healthy").expect("profile")).await;
    let mount = r.dir.path().join("small");
    std::fs::create_dir_all(&mount).expect("mkdir");
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&mount)
        .status()
        .expect("mount");
    assert!(ok.success(), "mount a tmpfs");
    let _guard = Tmpfs(mount.clone());
    let small = Rig {
        store: Store::new(mount.join("backups")),
        sim: r.sim,
        muxd: r.muxd,
        dir: r.dir,
    };
    run(&small, true).await.expect("the first backup fits");
    let before = current_bytes(&small.store);

    // Start a second full backup and fill the disk once data flows.
    let device = small.muxd.list_devices().await.expect("list").remove(0);
    let mut trusted = Pairing::new()
        .open(
            &small.muxd,
            &device,
            DevicePinning::Pinned,
            SystemTime::now(),
        )
        .await
        .expect("trusted");
    let tx = channel();
    let mut rx = tx.subscribe();
    let request = BackupRequest {
        full: true,
        keep_versions: 3,
        min_free_bytes: 0,
        password: None,
    };
    let backup = engine::backup(
        &mut trusted.lockdown,
        &trusted.record,
        &small.store,
        &request,
        &tx,
    );
    tokio::pin!(backup);
    let ballast = mount.join("ballast");
    let mut filled = false;
    let result = loop {
        tokio::select! {
            result = &mut backup => break result,
            Ok(()) = rx.changed(), if !filled => {
                if rx.borrow().bytes > 0 {
                    use std::io::Write;
                    let mut f = std::fs::File::create(&ballast).expect("ballast");
                    let block = vec![0u8; 64 << 10];
                    while f.write_all(&block).is_ok() {}
                    filled = true;
                }
            }
        }
    };
    let err = result.expect_err("a full disk stops the backup");
    assert!(filled, "the disk was filled during the transfer");
    assert!(
        matches!(
            err,
            BackupError::HostDiskFull { .. } | BackupError::Device { code: 105, .. }
        ),
        "{err:?}"
    );
    std::fs::remove_file(&ballast).expect("free the disk");
    assert_eq!(
        current_bytes(&small.store),
        before,
        "the previous backup is intact"
    );
    assert!(verify::verify(&small.store.current_dir(UDID), &[]).ok);
    run(&small, false)
        .await
        .expect("with room again, the next backup completes");
}

const PASSWORD: &str = "correct horse battery";

/// The healthy phone with "Encrypt local backup" on, and iteration counts small enough for tests.
fn encrypted_profile() -> Profile {
    let mut p = builtin("healthy").expect("profile");
    p.backup.password = Some(PASSWORD.into());
    p.backup.kdf_iterations = 10;
    p.backup.kdf_dp_iterations = 100;
    p.lockdown
        .entry("com.apple.mobile.backup".into())
        .or_default()
        .insert("WillEncrypt".into(), toml::Value::Boolean(true));
    p
}

/// The plain bytes of a file of the newest backup, decrypted with the password.
fn decrypt(store: &Store, domain: &str, path: &str) -> Vec<u8> {
    let backup = EncryptedBackup::open(&store.current_dir(UDID), &Password::new(PASSWORD.into()))
        .expect("the password opens the backup");
    let db = rusqlite::Connection::open(backup.manifest_db_path()).expect("decrypted Manifest.db");
    let (id, blob): (String, Vec<u8>) = db
        .query_row(
            "SELECT fileID, file FROM Files WHERE domain = ?1 AND relativePath = ?2",
            [domain, path],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the file is listed");
    let record = backupd_proto::mobilebackup2::MbFile::from_archive(&blob).expect("MBFile");
    assert!(record.encryption_key.is_some(), "{path} has its own key");
    let mut out = Vec::new();
    backup
        .decrypt_file(&id, &record, &mut out)
        .expect("the file decrypts");
    out
}

fn generated(r: &Rig, domain: &str, path: &str) -> Vec<u8> {
    let set = r.sim.muxd().phone(UDID).expect("phone").backup().file_set();
    let file = set.find(domain, path).expect("the phone has the file");
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut file.content(set.seed()), &mut out).expect("content");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_backup_is_stored_as_the_phone_encrypted_it_and_verifies_by_structure() {
    let r = rig(encrypted_profile()).await;
    let outcome = run(&r, true).await.expect("backup succeeds");
    assert!(outcome.report.ok, "{:?}", outcome.report);
    assert_eq!(outcome.report.method, verify::Method::Structure);
    let phone_files = r
        .sim
        .muxd()
        .phone(UDID)
        .expect("phone")
        .backup()
        .file_set()
        .files()
        .count() as u64;
    // Progress counts files and bytes as for a plain phone: the data files, Manifest.db, Manifest.plist and
    // Status.plist (twice).
    assert!(
        outcome.files >= phone_files,
        "{} files received",
        outcome.files
    );
    assert!(outcome.bytes > 0);
    let folder = r.store.current_dir(UDID);
    assert!(
        !folder.join("Snapshot").exists(),
        "the phone's moves were followed"
    );
    let head = std::fs::read(folder.join("Manifest.db")).expect("Manifest.db");
    assert_ne!(
        &head[..16],
        b"SQLite format 3\0",
        "Manifest.db is encrypted"
    );
    // The stored file is the cipher text, padded; decrypted, it is exactly what the phone holds.
    let (domain, path) = ("HomeDomain", "Library/SMS/sms.db");
    let plain = generated(&r, domain, path);
    let id = backupd_proto::mobilebackup2::file_id(domain, path);
    let stored = std::fs::read(folder.join(&id[..2]).join(&id)).expect("stored file");
    assert_eq!(
        stored.len() as u64,
        backupd_proto::backup_cipher::padded_len(plain.len() as u64)
    );
    assert_ne!(stored[..64], plain[..64], "stored in clear");
    assert_eq!(decrypt(&r.store, domain, path), plain);
    let newest = r.store.newest(UDID).expect("newest");
    assert!(newest.encrypted && newest.verified);
    assert_eq!(newest.password_checked, None, "no password was given");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_password_an_encrypted_backup_is_checked_in_full_and_the_check_recorded() {
    let r = rig(encrypted_profile()).await;
    let outcome = run_with(&r, true, Some(PASSWORD))
        .await
        .expect("backup succeeds");
    assert!(outcome.report.ok, "{:?}", outcome.report);
    assert_eq!(outcome.report.method, verify::Method::Decrypted);
    assert_eq!(outcome.report.password_ok, Some(true));
    let phone_files = r
        .sim
        .muxd()
        .phone(UDID)
        .expect("phone")
        .backup()
        .file_set()
        .files()
        .count() as u64;
    assert_eq!(
        outcome.report.files, phone_files,
        "every listed file checked"
    );
    assert!(
        outcome.report.decrypted_files >= 1
            && outcome.report.decrypted_files <= verify::SAMPLE_FILES
    );
    assert!(
        r.store
            .newest(UDID)
            .expect("newest")
            .password_checked
            .is_some()
    );

    // A damaged file is found by the full check, not by the structural one.
    let folder = r.store.current_dir(UDID);
    let id = backupd_proto::mobilebackup2::file_id("HomeDomain", "Library/SMS/sms.db");
    let victim = folder.join(&id[..2]).join(&id);
    let mut bytes = std::fs::read(&victim).expect("read");
    bytes.truncate(bytes.len() - 16);
    std::fs::write(&victim, bytes).expect("write");
    let report = verify::verify_with(
        &folder,
        &Default::default(),
        Some(&Password::new(PASSWORD.into())),
    );
    assert!(!report.ok);
    assert!(
        report.problems.iter().any(|p| p.contains(&id)),
        "{:?}",
        report.problems
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_keeps_the_backup_checks_its_structure_and_records_no_check() {
    let r = rig(encrypted_profile()).await;
    let outcome = run_with(&r, true, Some("not the password"))
        .await
        .expect("backup succeeds");
    assert!(outcome.report.ok, "{:?}", outcome.report);
    assert_eq!(outcome.report.method, verify::Method::Structure);
    assert_eq!(outcome.report.password_ok, Some(false));
    assert_eq!(r.store.newest(UDID).expect("newest").password_checked, None);
    assert!(matches!(
        backupd_backup::encrypted::check_password(
            &r.store.current_dir(UDID),
            &Password::new("not the password".into())
        ),
        Err(backupd_backup::encrypted::EncryptedError::WrongPassword)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_backups_go_on_incrementally_and_a_changed_file_gets_its_new_bytes() {
    let r = rig(encrypted_profile()).await;
    let first = run(&r, false).await.expect("first backup");
    let (domain, path) = ("HomeDomain", "Library/SMS/sms.db");
    r.sim
        .muxd()
        .phone(UDID)
        .expect("phone")
        .backup()
        .touch(domain, path)
        .expect("touch");
    let second = run_with(&r, false, Some(PASSWORD))
        .await
        .expect("incremental backup");
    assert!(
        second.files < first.files,
        "incremental: {} after {}",
        second.files,
        first.files
    );
    assert_eq!(second.report.method, verify::Method::Decrypted);
    assert!(second.report.ok, "{:?}", second.report);
    assert_eq!(decrypt(&r.store, domain, path), generated(&r, domain, path));
    let list = r.store.list(UDID);
    assert_eq!(list.len(), 2, "the first backup is kept as a version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplugging_an_encrypted_backup_leaves_the_previous_one_intact_and_openable() {
    let r = rig(encrypted_profile()).await;
    run(&r, true).await.expect("first backup");
    let before = current_bytes(&r.store);
    let total = r
        .sim
        .muxd()
        .phone(UDID)
        .expect("phone")
        .backup()
        .file_set()
        .total_bytes();
    let cuts: Vec<backupd_sim::backup::BackupFaults> = [Some(total / 2), None]
        .into_iter()
        .map(|at| backupd_sim::backup::BackupFaults {
            disconnect_after_bytes: at,
            disconnect_during: at.is_none().then_some(DisconnectStage::Moves),
            ..backupd_sim::backup::BackupFaults::default()
        })
        .collect();
    for (i, fault) in cuts.into_iter().enumerate() {
        let mut profile = encrypted_profile();
        profile.backup.faults = fault;
        let faulty = beside(&r, profile, &format!("mux-enc-{i}")).await;
        run(&faulty, true)
            .await
            .expect_err("an unplugged backup fails");
        assert_eq!(
            current_bytes(&r.store),
            before,
            "cut {i}: the previous backup changed"
        );
        let report = verify::verify_with(
            &r.store.current_dir(UDID),
            &Default::default(),
            Some(&Password::new(PASSWORD.into())),
        );
        assert!(
            report.ok && report.method == verify::Method::Decrypted,
            "cut {i}: {report:?}"
        );
        assert_eq!(
            r.store.recover(UDID).expect("recover"),
            Recovery::LeftoverStaging
        );
        faulty.sim.shutdown().await;
    }
    let after = run(&r, false)
        .await
        .expect("a backup after the interruptions");
    assert!(after.report.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_in_an_encrypted_backup_write_nothing_outside() {
    let mut profile = encrypted_profile();
    profile.backup.faults.hostile_names = true;
    let r = rig(profile).await;
    let err = run(&r, true).await.expect_err("hostile names are refused");
    assert!(matches!(err, BackupError::UnsafePaths { .. }), "{err:?}");
    assert!(!r.store.current_dir(UDID).exists(), "nothing was committed");
    let mut names: Vec<String> = std::fs::read_dir(r.dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["backups", "mux.sock", "sim"]);
}

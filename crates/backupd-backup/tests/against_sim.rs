//! The backup engine against the simulated phone: full and incremental backups, and every interruption
//! leaving the previous backup intact.

use std::path::Path;
use std::time::{Duration, SystemTime};

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
        let socket = r.dir.path().join(format!("mux-{i}.sock"));
        let faulty = Rig {
            sim: Simulator::start(Config {
                socket: socket.clone(),
                tcp: None,
                control: None,
                // The same phone (same key and trusted hosts) behind a muxer that drops the connection.
                state_dir: r.dir.path().join("sim"),
                profiles: vec![profile],
            })
            .await
            .expect("simulator"),
            muxd: Muxd::new(Address::Unix(socket)),
            store: r.store.clone(),
            dir: tempfile::tempdir().expect("dir"),
        };
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
    let failing = Rig {
        sim: Simulator::start(Config {
            socket: r.dir.path().join("mux-208.sock"),
            tcp: None,
            control: None,
            state_dir: r.dir.path().join("sim"),
            profiles: vec![profile],
        })
        .await
        .expect("simulator"),
        muxd: Muxd::new(Address::Unix(r.dir.path().join("mux-208.sock"))),
        store: r.store.clone(),
        dir: tempfile::tempdir().expect("dir"),
    };
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

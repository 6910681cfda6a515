//! backupd's backups against the peers' on the same simulated phone: the same files with the same bytes, and
//! each tool's incremental backup on top of the other's.

use std::collections::BTreeMap;
use std::path::Path;

use backupd_backup::engine;
use backupd_backup::store::Store;
use backupd_backup::verify;
use backupd_e2e::{SimRig, engine_backup, stdout_ok};

const UDID: &str = "00008110-001A2B3C4D5E6F01";

async fn ours(rig: &SimRig, root: &Path, full: bool) -> engine::Outcome {
    engine_backup(&rig.socket, root, full, None).await
}

/// The data files (`xx/<fileID>`) of a backup folder with their bytes.
fn data_files(folder: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in std::fs::read_dir(folder).expect("backup folder").flatten() {
        let name = sub.file_name().to_string_lossy().into_owned();
        if name.len() == 2 && sub.path().is_dir() {
            for f in std::fs::read_dir(sub.path()).expect("subfolder").flatten() {
                out.insert(
                    format!("{name}/{}", f.file_name().to_string_lossy()),
                    std::fs::read(f.path()).expect("read"),
                );
            }
        }
    }
    out
}

/// The top-level files of a backup folder.
fn top_files(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .expect("folder")
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `Files` rows of Manifest.db: (fileID, domain, relativePath, flags).
fn manifest_rows(folder: &Path) -> Vec<(String, String, String, i64)> {
    let db = rusqlite::Connection::open_with_flags(
        folder.join("Manifest.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("Manifest.db opens");
    let mut stmt = db
        .prepare("SELECT fileID, domain, relativePath, flags FROM Files ORDER BY fileID")
        .expect("query");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn assert_same_backup(theirs: &Path, ours: &Path, who: &str) {
    let (a, b) = (data_files(theirs), data_files(ours));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{who}: the same files"
    );
    for (name, bytes) in &a {
        assert!(b[name] == *bytes, "{who}: {name} differs");
    }
    assert_eq!(
        manifest_rows(theirs),
        manifest_rows(ours),
        "{who}: the same Manifest.db rows"
    );
    assert_eq!(
        top_files(theirs),
        top_files(ours),
        "{who}: the same top-level files"
    );
    assert!(!a.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backupd_and_idevicebackup2_hold_the_same_files_with_the_same_bytes() {
    let rig = SimRig::builtin("healthy").await;
    stdout_ok(
        &rig.idevice("idevicepair", &["pair"]).await,
        "idevicepair pair",
    );
    let theirs = rig.dir.path().join("idevicebackup2");
    std::fs::create_dir_all(&theirs).expect("mkdir");
    let dir = theirs.to_str().expect("utf-8");
    stdout_ok(
        &rig.idevice("idevicebackup2", &["backup", "--full", dir])
            .await,
        "idevicebackup2 backup --full",
    );
    let root = rig.dir.path().join("backupd");
    ours(&rig, &root, true).await;
    assert_same_backup(&theirs.join(UDID), &root.join(UDID), "idevicebackup2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backupd_and_pymobiledevice3_hold_the_same_files_with_the_same_bytes() {
    let rig = SimRig::builtin("healthy").await;
    let theirs = rig.dir.path().join("pymobiledevice3");
    std::fs::create_dir_all(&theirs).expect("mkdir");
    let dir = theirs.to_str().expect("utf-8");
    stdout_ok(
        &rig.pymobiledevice3(&["backup2", "backup", "--full", dir])
            .await,
        "pymobiledevice3 backup2 backup --full",
    );
    let root = rig.dir.path().join("backupd");
    ours(&rig, &root, true).await;
    assert_same_backup(&theirs.join(UDID), &root.join(UDID), "pymobiledevice3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backupd_continues_incrementally_after_idevicebackup2() {
    let rig = SimRig::builtin("healthy").await;
    stdout_ok(
        &rig.idevice("idevicepair", &["pair"]).await,
        "idevicepair pair",
    );
    let root = rig.dir.path().join("backups");
    std::fs::create_dir_all(&root).expect("mkdir");
    stdout_ok(
        &rig.idevice(
            "idevicebackup2",
            &["backup", "--full", root.to_str().expect("utf-8")],
        )
        .await,
        "idevicebackup2",
    );
    let total = data_files(&root.join(UDID)).len() as u64;
    let phone = rig.sim.muxd().phone(UDID).expect("phone");
    phone
        .backup()
        .touch("HomeDomain", "Library/SMS/sms.db")
        .expect("touch");
    let outcome = ours(&rig, &root, false).await;
    assert!(
        outcome.files < total,
        "incremental on idevicebackup2's backup: {} of {total} files",
        outcome.files
    );
    assert!(outcome.report.ok);
    let versions = Store::new(&root).list(UDID);
    assert_eq!(
        versions.len(),
        2,
        "idevicebackup2's backup is kept as a version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idevicebackup2_continues_incrementally_after_backupd() {
    let rig = SimRig::builtin("healthy").await;
    stdout_ok(
        &rig.idevice("idevicepair", &["pair"]).await,
        "idevicepair pair",
    );
    let root = rig.dir.path().join("backups");
    let first = ours(&rig, &root, true).await;
    let phone = rig.sim.muxd().phone(UDID).expect("phone");
    phone
        .backup()
        .touch("HomeDomain", "Library/SMS/sms.db")
        .expect("touch");
    let out = stdout_ok(
        &rig.idevice("idevicebackup2", &["backup", root.to_str().expect("utf-8")])
            .await,
        "idevicebackup2 incremental",
    );
    assert!(out.contains("Backup Successful"), "{out}");
    let report = phone
        .backup()
        .last_report()
        .expect("the phone reports its last backup");
    assert!(
        !report.full,
        "idevicebackup2's backup on top of ours was incremental: {report:?}"
    );
    assert!((report.uploaded.len() as u64) < first.files, "{report:?}");
    assert!(verify::verify(&root.join(UDID), &[]).ok);
}

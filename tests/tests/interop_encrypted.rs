//! Encrypted backups, proved by an independent decryptor: iphone_backup_decrypt (PyPI) opens the simulated
//! phone's encrypted backups, made by idevicebackup2 and by backupd, with the password, and extracts files with
//! exactly the bytes the phone holds. idevicebackup2 and backupd continue each other's encrypted backups.

use std::path::Path;

use backupd_backup::engine;
use backupd_backup::verify::Method;
use backupd_e2e::{
    SimRig, decrypt_with_peer, encrypted_profile, engine_backup, phone_file, stdout_ok,
};

const UDID: &str = "00008110-001A2B3C4D5E6F01";
const PASSWORD: &str = "tre tigri contro tre tigri";
/// Files of the healthy profile the tests extract: a listed one and a generated camera-roll one.
const SMS: (&str, &str) = ("HomeDomain", "Library/SMS/sms.db");

async fn ours(rig: &SimRig, root: &Path, full: bool, password: Option<&str>) -> engine::Outcome {
    engine_backup(&rig.socket, root, full, password).await
}

/// A file of the phone's generated camera roll, with its bytes.
fn a_photo(rig: &SimRig) -> (String, String) {
    let set = rig
        .sim
        .muxd()
        .phone(UDID)
        .expect("phone")
        .backup()
        .file_set();
    let f = set
        .files()
        .find(|f| f.domain == "CameraRollDomain" && f.size > 0)
        .expect("a generated photo");
    (f.domain, f.relative_path)
}

/// Rows of the Manifest.db the phone would write now: its folders and files.
fn phone_rows(rig: &SimRig) -> u64 {
    let set = rig
        .sim
        .muxd()
        .phone(UDID)
        .expect("phone")
        .backup()
        .file_set();
    (set.files().count() + set.directories().len()) as u64
}

/// The decryptor opens `folder` with the password, finds every row, and extracts the SMS database and a
/// photo with the phone's exact bytes; a wrong password is refused.
async fn assert_peer_opens(rig: &SimRig, folder: &Path, who: &str) {
    let photo = a_photo(rig);
    let wanted = [SMS, (photo.0.as_str(), photo.1.as_str())];
    let got = decrypt_with_peer(folder, PASSWORD, &wanted)
        .await
        .unwrap_or_else(|e| panic!("{who}: iphone_backup_decrypt refused the backup: {e:?}"));
    assert_eq!(got.rows, phone_rows(rig), "{who}: Manifest.db rows");
    for ((domain, path), bytes) in wanted.iter().zip(&got.files) {
        let expected = phone_file(&rig.sim, UDID, domain, path);
        assert_eq!(bytes.len(), expected.len(), "{who}: {path} length");
        assert!(
            *bytes == expected,
            "{who}: {path} differs from the phone's bytes"
        );
    }
    let wrong = decrypt_with_peer(folder, "not the password", &[]).await;
    assert!(
        matches!(wrong, Err((Some(3), _))),
        "{who}: a wrong password must be refused: {wrong:?}"
    );
}

/// The encrypted healthy phone, paired with idevicepair (so both tools can use it).
async fn paired_encrypted_phone() -> SimRig {
    let rig = SimRig::start(vec![encrypted_profile("healthy", PASSWORD)]).await;
    stdout_ok(
        &rig.idevice("idevicepair", &["pair"]).await,
        "idevicepair pair",
    );
    rig
}

/// The phone's last backup was incremental on `on` and sent only the one file that changed.
fn assert_one_file_sent(rig: &SimRig, on: &str) {
    let phone = rig.sim.muxd().phone(UDID).expect("phone");
    let report = phone.backup().last_report().expect("the phone's report");
    assert!(!report.full, "incremental on {on}: {report:?}");
    assert_eq!(
        report.uploaded.len(),
        1,
        "only the changed file: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decryptor_opens_the_simulators_encrypted_backup_made_by_idevicebackup2() {
    let rig = paired_encrypted_phone().await;
    let root = rig.dir.path().join("idevicebackup2");
    std::fs::create_dir_all(&root).expect("mkdir");
    let out = stdout_ok(
        &rig.idevice(
            "idevicebackup2",
            &["backup", "--full", root.to_str().expect("utf-8")],
        )
        .await,
        "idevicebackup2 backup --full",
    );
    assert!(out.contains("Backup Successful"), "{out}");
    assert_peer_opens(&rig, &root.join(UDID), "idevicebackup2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decryptor_opens_backupds_encrypted_backup() {
    let rig = SimRig::start(vec![encrypted_profile("healthy", PASSWORD)]).await;
    let root = rig.dir.path().join("backupd");
    let outcome = ours(&rig, &root, true, Some(PASSWORD)).await;
    assert_eq!(
        outcome.report.method,
        Method::Decrypted,
        "{:?}",
        outcome.report
    );
    assert!(outcome.report.ok);
    assert_peer_opens(&rig, &root.join(UDID), "backupd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backupd_continues_idevicebackup2s_encrypted_backup_and_the_result_opens() {
    let rig = paired_encrypted_phone().await;
    let root = rig.dir.path().join("backups");
    std::fs::create_dir_all(&root).expect("mkdir");
    stdout_ok(
        &rig.idevice(
            "idevicebackup2",
            &["backup", "--full", root.to_str().expect("utf-8")],
        )
        .await,
        "idevicebackup2 backup --full",
    );
    let phone = rig.sim.muxd().phone(UDID).expect("phone");
    phone.backup().touch(SMS.0, SMS.1).expect("touch");
    let outcome = ours(&rig, &root, false, Some(PASSWORD)).await;
    assert_one_file_sent(&rig, "idevicebackup2's encrypted backup");
    assert_eq!(outcome.report.method, Method::Decrypted);
    assert!(outcome.report.ok, "{:?}", outcome.report);
    assert_peer_opens(&rig, &root.join(UDID), "idevicebackup2 then backupd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idevicebackup2_continues_backupds_encrypted_backup_and_the_result_opens() {
    let rig = paired_encrypted_phone().await;
    let root = rig.dir.path().join("backups");
    ours(&rig, &root, true, None).await;
    let phone = rig.sim.muxd().phone(UDID).expect("phone");
    phone.backup().touch(SMS.0, SMS.1).expect("touch");
    let out = stdout_ok(
        &rig.idevice("idevicebackup2", &["backup", root.to_str().expect("utf-8")])
            .await,
        "idevicebackup2 incremental",
    );
    assert!(out.contains("Backup Successful"), "{out}");
    assert_one_file_sent(&rig, "backupd's encrypted backup");
    assert_peer_opens(&rig, &root.join(UDID), "backupd then idevicebackup2").await;
}

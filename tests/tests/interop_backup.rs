//! Real backup clients against the simulated phone: libimobiledevice's `idevicebackup2` 1.3.0 and
//! pymobiledevice3 make full and incremental backups, and the folders they write hold the phone's files.
//!
//! Each folder is checked through its Manifest.db: every file of the profile is listed under the right
//! fileID and stored at `<xx>/<fileID>` with the bytes the simulator generated for it.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

use backupd_e2e::{SimRig, stdout_ok};
use backupd_proto::mobilebackup2::{self, ManifestProperties, MbFile, Status};
use backupd_proto::usbmuxd::Address;
use backupd_sim::backup::FileSet;
use backupd_sim::profile::builtin;
use rusqlite::Connection;

const HEALTHY_UDID: &str = "00008110-001A2B3C4D5E6F01";
const WHATSAPP_UDID: &str = "6d1f9a3b2c4e5f60718293a4b5c6d7e8f9012345";

/// Everything a peer printed, for assertions and failure messages.
fn said(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

async fn pair_with_idevicepair(rig: &SimRig) {
    stdout_ok(
        &rig.idevice("idevicepair", &["pair"]).await,
        "idevicepair pair",
    );
}

/// Checks a backup folder against the phone's current files; gives the Status.plist.
fn check_folder(root: &Path, udid: &str, set: &FileSet, encrypted: bool) -> Status {
    let dir = root.join(udid);
    let status = Status::parse(&std::fs::read(dir.join("Status.plist")).expect("Status.plist"))
        .expect("Status.plist parses");
    assert!(status.is_finished(), "{status:?}");
    assert_eq!(status.version, "3.3");
    let manifest =
        ManifestProperties::parse(&std::fs::read(dir.join("Manifest.plist")).expect("read"))
            .expect("Manifest.plist parses");
    assert_eq!(manifest.unique_device_id(), Some(udid));
    assert_eq!(manifest.is_encrypted, encrypted);
    assert!(
        !dir.join("Snapshot").exists(),
        "the snapshot was moved into place and removed"
    );

    let db = Connection::open(dir.join("Manifest.db")).expect("Manifest.db opens");
    let mut rows = db
        .prepare("SELECT fileID, domain, relativePath, flags, file FROM Files")
        .expect("Files table");
    let rows: Vec<(String, String, String, i64, Vec<u8>)> = rows
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for (id, domain, path, _, blob) in &rows {
        assert_eq!(*id, mobilebackup2::file_id(domain, path), "{domain} {path}");
        let record = MbFile::from_archive(blob).expect("MBFile record");
        assert_eq!(record.relative_path, *path);
    }
    let listed_files = rows
        .iter()
        .filter(|r| r.3 == mobilebackup2::FLAG_FILE)
        .count();
    assert_eq!(
        listed_files,
        set.files().count(),
        "every file is listed once"
    );

    for f in set.files() {
        let id = f.file_id();
        let row = rows
            .iter()
            .find(|r| r.0 == id)
            .unwrap_or_else(|| panic!("{} {} missing from Manifest.db", f.domain, f.relative_path));
        assert_eq!(row.3, mobilebackup2::FLAG_FILE);
        let record = MbFile::from_archive(&row.4).expect("record");
        assert_eq!(record.size, f.size);
        let stored = std::fs::read(dir.join(&id[..2]).join(&id))
            .unwrap_or_else(|e| panic!("{} {}: {e}", f.domain, f.relative_path));
        let mut expected = Vec::new();
        f.content(set.seed())
            .read_to_end(&mut expected)
            .expect("generated content");
        assert!(
            stored == expected,
            "{} {} holds other bytes ({} vs {})",
            f.domain,
            f.relative_path,
            stored.len(),
            expected.len()
        );
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idevicebackup2_full_backup_holds_every_file() {
    let rig = SimRig::builtin("healthy").await;
    pair_with_idevicepair(&rig).await;
    let dest = rig.dir.path().join("backups");
    std::fs::create_dir_all(&dest).expect("backup folder");
    let dest_s = dest.display().to_string();
    let out = rig
        .idevice("idevicebackup2", &["backup", "--full", &dest_s])
        .await;
    let text = stdout_ok(&out, "idevicebackup2 backup --full");
    assert!(text.contains("Backup Successful."), "{text}");

    let phone = rig.sim.muxd().phone(HEALTHY_UDID).expect("phone");
    let set = phone.backup().file_set();
    let report = phone.backup().last_report().expect("a backup ran");
    assert!(report.full);
    assert_eq!(report.uploaded.len(), set.files().count());
    // Every data file, Manifest.db, Manifest.plist and Status.plist twice (uploading, then finished).
    let received = format!("Received {} files from device.", set.files().count() + 4);
    assert!(text.contains(&received), "{text}");

    let status = check_folder(&dest, HEALTHY_UDID, &set, false);
    assert!(status.is_full_backup);
    // idevicebackup2 wrote Info.plist from lockdown and installation_proxy.
    let info =
        plist::Value::from_file(dest.join(HEALTHY_UDID).join("Info.plist")).expect("Info.plist");
    let info = info.as_dictionary().expect("dictionary");
    assert_eq!(
        info.get("Product Version")
            .and_then(plist::Value::as_string),
        Some("17.5.1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymobiledevice3_full_backup_holds_every_file() {
    let rig = SimRig::builtin("icloud-full-whatsapp").await;
    let dest = rig.dir.path().join("backups");
    std::fs::create_dir_all(&dest).expect("backup folder");
    let dest_s = dest.display().to_string();
    let out = rig
        .pymobiledevice3(&["backup2", "backup", "--full", &dest_s])
        .await;
    assert!(
        out.status.success(),
        "pymobiledevice3 failed:\n{}",
        said(&out)
    );

    let phone = rig.sim.muxd().phone(WHATSAPP_UDID).expect("phone");
    let set = phone.backup().file_set();
    // WillEncrypt is on in this profile.
    let status = check_folder(&dest, WHATSAPP_UDID, &set, true);
    assert!(status.is_full_backup);
    let chats = mobilebackup2::file_id(
        "AppDomainGroup-group.net.whatsapp.WhatsApp.shared",
        "ChatStorage.sqlite",
    );
    let stored = dest.join(WHATSAPP_UDID).join(&chats[..2]).join(&chats);
    assert_eq!(std::fs::metadata(stored).expect("chats").len(), 1 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_idevicebackup2_transfers_only_changed_files() {
    let rig = SimRig::builtin("healthy").await;
    pair_with_idevicepair(&rig).await;
    let dest = rig.dir.path().join("backups");
    std::fs::create_dir_all(&dest).expect("backup folder");
    let dest_s = dest.display().to_string();
    stdout_ok(
        &rig.idevice("idevicebackup2", &["backup", "--full", &dest_s])
            .await,
        "idevicebackup2 backup --full",
    );
    let phone = rig.sim.muxd().phone(HEALTHY_UDID).expect("phone");
    let first = check_folder(&dest, HEALTHY_UDID, &phone.backup().file_set(), false);

    // Nothing changed: nothing is sent but the metadata.
    let text = stdout_ok(
        &rig.idevice("idevicebackup2", &["backup", &dest_s]).await,
        "idevicebackup2 backup (nothing changed)",
    );
    let report = phone.backup().last_report().expect("report");
    assert!(!report.full, "{report:?}");
    assert!(report.uploaded.is_empty(), "{report:?}");
    assert!(text.contains("Received 4 files from device."), "{text}");

    // One file changes on the phone (the control command `touch`).
    let answer = backupd_sim::control::run(
        rig.sim.muxd(),
        &format!("touch {HEALTHY_UDID} HomeDomain Library/SMS/sms.db"),
    );
    assert_eq!(answer, "ok generation 1");
    let text = stdout_ok(
        &rig.idevice("idevicebackup2", &["backup", &dest_s]).await,
        "idevicebackup2 backup (incremental)",
    );
    assert!(text.contains("Backup Successful."), "{text}");
    assert!(text.contains("Received 5 files from device."), "{text}");
    let report = phone.backup().last_report().expect("report");
    assert!(!report.full);
    assert_eq!(
        report.uploaded,
        [mobilebackup2::file_id("HomeDomain", "Library/SMS/sms.db")]
    );
    let set = phone.backup().file_set();
    let second = check_folder(&dest, HEALTHY_UDID, &set, false);
    assert!(!second.is_full_backup);
    assert_ne!(second.uuid, first.uuid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_manifest_plist_gets_error_205() {
    let rig = SimRig::builtin("wifi-off-no-charger").await;
    pair_with_idevicepair(&rig).await;
    let dest = rig.dir.path().join("backups");
    std::fs::create_dir_all(&dest).expect("backup folder");
    let dest_s = dest.display().to_string();
    stdout_ok(
        &rig.idevice("idevicebackup2", &["backup", "--full", &dest_s])
            .await,
        "idevicebackup2 backup --full",
    );
    let udid = "00008101-000E1D2C3B4A5F02";
    std::fs::write(dest.join(udid).join("Manifest.plist"), b"").expect("truncate");
    let out = rig.idevice("idevicebackup2", &["backup", &dest_s]).await;
    let text = said(&out);
    assert!(
        text.contains("ErrorCode 205: Error reading backup properties (MBErrorDomain/205)"),
        "{text}"
    );
    assert!(text.contains("Backup Failed"), "{text}");
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idevicebackup2_fails_cleanly_when_the_device_says_locked() {
    let mut profile = builtin("healthy").expect("profile");
    profile.backup.faults.error_code = Some(mobilebackup2::error_code::DEVICE_LOCKED);
    let rig = SimRig::start(vec![profile]).await;
    pair_with_idevicepair(&rig).await;
    let dest = rig.dir.path().join("backups");
    std::fs::create_dir_all(&dest).expect("backup folder");
    let out = rig
        .idevice(
            "idevicebackup2",
            &["backup", "--full", &dest.display().to_string()],
        )
        .await;
    let text = said(&out);
    assert!(!out.status.success(), "must fail: {text}");
    assert!(
        text.contains("ErrorCode 208: Device locked (MBErrorDomain/208)"),
        "{text}"
    );
    assert!(text.contains("Backup Failed (Error Code 208)"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_passcode_prompt_waits_for_the_passcode() {
    let mut profile = builtin("wifi-off-no-charger").expect("profile");
    profile.backup.faults.passcode_prompt = true;
    profile.backup.faults.passcode_timeout_secs = 30;
    let rig = SimRig::start(vec![profile]).await;
    let udid = "00008101-000E1D2C3B4A5F02";
    let phone = rig.sim.muxd().phone(udid).expect("phone");
    let dest = rig.dir.path().join("backups");
    std::fs::create_dir_all(&dest).expect("backup folder");
    let dest_s = dest.display().to_string();
    let args = ["backup2", "backup", "--full", &dest_s];
    let backup = rig.pymobiledevice3(&args);
    let answer = async {
        // The person types the passcode once the prompt shows.
        while !phone.backup().passcode_prompt_showing() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            backupd_sim::control::run(rig.sim.muxd(), &format!("enter-passcode {udid}")),
            "ok"
        );
    };
    let (out, _) = tokio::join!(backup, answer);
    assert!(out.status.success(), "{}", said(&out));
    check_folder(&dest, udid, &phone.backup().file_set(), false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_passcode_prompt_ends_in_device_locked() {
    let mut profile = builtin("wifi-off-no-charger").expect("profile");
    profile.backup.faults.passcode_prompt = true;
    profile.backup.faults.passcode_timeout_secs = 1;
    let rig = SimRig::start(vec![profile]).await;
    let dest = rig.dir.path().join("backups");
    std::fs::create_dir_all(&dest).expect("backup folder");
    let out = rig
        .pymobiledevice3(&["backup2", "backup", "--full", &dest.display().to_string()])
        .await;
    let text = said(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("208"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mobilebackup2_needs_the_escrow_bag() {
    let rig = SimRig::builtin("healthy").await;
    let muxd = backupd_usb::Muxd::new(Address::parse(&format!("UNIX:{}", rig.socket.display())));
    let device = muxd
        .list_devices()
        .await
        .expect("devices")
        .into_iter()
        .next()
        .expect("one phone");
    let mut trusted = backupd_usb::Pairing::new()
        .open(
            &muxd,
            &device,
            backupd_proto::tls::DevicePinning::Pinned,
            SystemTime::now(),
        )
        .await
        .unwrap_or_else(|e| panic!("pairing failed: {e:?}"));
    let without = trusted
        .lockdown
        .start_service(mobilebackup2::SERVICE_NAME, None)
        .await;
    let Err(err) = without else {
        panic!("mobilebackup2 started without the escrow bag")
    };
    assert!(format!("{err:?}").contains("EscrowLocked"), "{err:?}");
    let bag = trusted.record.escrow_bag.clone();
    assert!(bag.is_some(), "Pair gave an escrow bag");
    trusted
        .lockdown
        .start_service(mobilebackup2::SERVICE_NAME, bag)
        .await
        .expect("started with the escrow bag");
}

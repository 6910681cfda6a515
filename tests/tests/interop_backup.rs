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

/// Checks a backup folder against the phone's current files; gives the Status.plist. An encrypted backup is
/// opened with `password` and every file decrypted.
fn check_folder(root: &Path, udid: &str, set: &FileSet, password: Option<&str>) -> Status {
    let encrypted = password.is_some();
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

    let opened = password.map(|p| {
        backupd_backup::encrypted::EncryptedBackup::open(
            &dir,
            &backupd_backup::encrypted::Password::new(p.to_owned()),
        )
        .expect("the password opens the backup")
    });
    let db_path = opened
        .as_ref()
        .map_or_else(|| dir.join("Manifest.db"), |o| o.manifest_db_path());
    let db = Connection::open(db_path).expect("Manifest.db opens");
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
        let stored = match &opened {
            Some(backup) => {
                let mut plain = Vec::new();
                backup
                    .decrypt_file(&id, &record, &mut plain)
                    .unwrap_or_else(|e| panic!("{} {}: {e}", f.domain, f.relative_path));
                plain
            }
            None => std::fs::read(dir.join(&id[..2]).join(&id))
                .unwrap_or_else(|e| panic!("{} {}: {e}", f.domain, f.relative_path)),
        };
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

    let status = check_folder(&dest, HEALTHY_UDID, &set, None);
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
    // The WhatsApp phone encrypts its backups, as it ships; key derivation test-sized.
    let mut profile = backupd_sim::profile::builtin("icloud-full-whatsapp").expect("profile");
    profile.backup.kdf_iterations = 10;
    profile.backup.kdf_dp_iterations = 100;
    let password = profile.backup.password.clone().expect("its password");
    let rig = SimRig::start(vec![profile]).await;
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
    // WillEncrypt is on in this profile: every file is checked decrypted.
    let status = check_folder(&dest, WHATSAPP_UDID, &set, Some(&password));
    assert!(status.is_full_backup);
    let chats = mobilebackup2::file_id(
        "AppDomainGroup-group.net.whatsapp.WhatsApp.shared",
        "ChatStorage.sqlite",
    );
    let stored = dest.join(WHATSAPP_UDID).join(&chats[..2]).join(&chats);
    // Stored as the phone encrypted it: the chat database's size padded to the cipher's block.
    let size = set
        .find(
            "AppDomainGroup-group.net.whatsapp.WhatsApp.shared",
            "ChatStorage.sqlite",
        )
        .expect("the phone has WhatsApp's chats")
        .size;
    assert_eq!(
        std::fs::metadata(stored).expect("chats").len(),
        backupd_proto::backup_cipher::padded_len(size)
    );
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
    let first = check_folder(&dest, HEALTHY_UDID, &phone.backup().file_set(), None);

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
    let second = check_folder(&dest, HEALTHY_UDID, &set, None);
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
    check_folder(&dest, udid, &phone.backup().file_set(), None);
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
    let muxd = backupd_mux::Muxd::new(Address::parse(&format!("UNIX:{}", rig.socket.display())));
    let device = muxd
        .list_devices()
        .await
        .expect("devices")
        .into_iter()
        .next()
        .expect("one phone");
    let mut trusted = backupd_mux::Pairing::new()
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

/// A session with the simulated phone through our own client, for the tests that drive the protocol by hand.
async fn trusted_session(rig: &SimRig) -> backupd_mux::Trusted {
    let muxd = backupd_mux::Muxd::new(Address::parse(&format!("UNIX:{}", rig.socket.display())));
    let device = muxd
        .list_devices()
        .await
        .expect("devices")
        .into_iter()
        .next()
        .expect("one phone");
    backupd_mux::Pairing::new()
        .open(
            &muxd,
            &device,
            backupd_proto::tls::DevicePinning::Pinned,
            SystemTime::now(),
        )
        .await
        .unwrap_or_else(|e| panic!("pairing failed: {e:?}"))
}

/// What the minimal host below saw of a backup.
#[derive(Debug, Default)]
struct Seen {
    /// Files stored, by host path.
    stored: std::collections::BTreeMap<String, Vec<u8>>,
    /// Host paths refused by the path check.
    refused: Vec<String>,
    /// File data bytes received, refused files included.
    data_bytes: u64,
    /// The device's final response, if it sent one.
    response: Option<mobilebackup2::Response>,
}

/// A minimal mobilebackup2 host on the protocol crate's codecs: it keeps files in memory, has no previous
/// backup, checks every path with `safe_relative_path`, and stops at the end of the stream.
async fn minimal_host_backup(rig: &SimRig, udid: &str) -> Seen {
    use backupd_proto::devicelink::{
        DeviceMessage, DownloadEncoder, FileError, HostMessage, StatusResponse, UploadDecoder,
        UploadEvent,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut trusted = trusted_session(rig).await;
    let bag = trusted.record.escrow_bag.clone();
    let mut stream = trusted
        .lockdown
        .start_service(mobilebackup2::SERVICE_NAME, bag)
        .await
        .expect("mobilebackup2 starts")
        .into_stream();
    let mut inbox: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut seen = Seen::default();
    macro_rules! fill {
        () => {{
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            inbox.extend_from_slice(&chunk[..n]);
            n > 0
        }};
    }
    macro_rules! send {
        ($msg:expr) => {
            stream
                .write_all(&HostMessage::encode(&$msg))
                .await
                .expect("send")
        };
    }
    let mut hello_sent = false;
    loop {
        let msg = loop {
            if let Some((m, used)) = DeviceMessage::decode(&inbox).expect("a device message") {
                inbox.drain(..used);
                break Some(m);
            }
            if !fill!() {
                break None;
            }
        };
        let Some(msg) = msg else { return seen };
        match msg {
            DeviceMessage::VersionExchange { major, .. } => {
                send!(HostMessage::VersionsOk { major })
            }
            DeviceMessage::DeviceReady => {
                send!(mobilebackup2::Request::hello().to_message());
            }
            DeviceMessage::ProcessMessage(d) if !hello_sent => {
                let r = mobilebackup2::Response::from_dict(&d).expect("hello answer");
                assert_eq!(r.protocol_version, Some(2.1));
                hello_sent = true;
                send!(
                    mobilebackup2::Request::Backup {
                        target: udid.into(),
                        source: None,
                        options: Default::default(),
                    }
                    .to_message()
                );
            }
            DeviceMessage::ProcessMessage(d) => {
                seen.response = Some(mobilebackup2::Response::from_dict(&d).expect("response"));
                return seen;
            }
            DeviceMessage::DownloadFiles { paths, .. } => {
                let mut out = Vec::new();
                let mut enc = DownloadEncoder::new();
                let mut errors = Vec::new();
                for p in paths {
                    enc.start_file(&p, &mut out).expect("start");
                    enc.fail_file("No such file or directory", &mut out)
                        .expect("fail");
                    errors.push(FileError {
                        path: p,
                        code: backupd_proto::devicelink::ERROR_NOT_FOUND,
                        message: "No such file or directory".into(),
                    });
                }
                enc.finish(&mut out).expect("finish");
                stream.write_all(&out).await.expect("send");
                send!(StatusResponse::multi_status(&errors).into_message());
            }
            DeviceMessage::UploadFiles { .. } => {
                let mut dec = UploadDecoder::new();
                let mut current: Option<String> = None;
                let mut data = Vec::new();
                'batch: loop {
                    if inbox.is_empty() && !fill!() {
                        return seen;
                    }
                    let step = dec.decode(&inbox).expect("a well-formed upload");
                    let consumed = step.consumed;
                    let mut ended = false;
                    match step.event {
                        Some(UploadEvent::FileStart { host_path, .. }) => {
                            match mobilebackup2::safe_relative_path(udid, &host_path) {
                                Ok(p) => current = Some(p.as_str().to_owned()),
                                Err(_) => {
                                    seen.refused.push(host_path);
                                    current = None;
                                }
                            }
                            data.clear();
                        }
                        Some(UploadEvent::Data(d)) => {
                            seen.data_bytes += d.len() as u64;
                            data.extend_from_slice(d);
                        }
                        Some(UploadEvent::FileEnd) => {
                            if let Some(p) = current.take() {
                                seen.stored.insert(p, std::mem::take(&mut data));
                            }
                        }
                        Some(UploadEvent::BatchEnd) => ended = true,
                        _ => {}
                    }
                    inbox.drain(..consumed);
                    if ended {
                        break 'batch;
                    }
                }
                send!(StatusResponse::ok().into_message());
            }
            DeviceMessage::GetFreeDiskSpace => {
                send!(StatusResponse::free_space(1 << 40).into_message())
            }
            DeviceMessage::MoveItems(m) => {
                for (from, to) in m.moves {
                    if let Some(bytes) = seen.stored.remove(&from) {
                        seen.stored.insert(to, bytes);
                    }
                }
                send!(StatusResponse::ok().into_message());
            }
            other => {
                assert!(other.expects_status(), "{other:?}");
                send!(StatusResponse::ok().into_message());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_upload_names_are_sent_and_our_path_check_refuses_them() {
    let mut profile = builtin("wifi-off-no-charger").expect("profile");
    profile.backup.faults.hostile_names = true;
    let rig = SimRig::start(vec![profile]).await;
    let udid = "00008101-000E1D2C3B4A5F02";
    let seen = minimal_host_backup(&rig, udid).await;
    assert_eq!(
        seen.refused,
        [
            format!("{udid}/../../escape"),
            "/etc/passwd".to_owned(),
            format!("{udid}/ab/../../x"),
            format!("{udid}/ab/nul\0name"),
        ]
    );
    let response = seen.response.expect("the backup finished");
    assert!(response.is_ok(), "{response:?}");
    let set = rig
        .sim
        .muxd()
        .phone(udid)
        .expect("phone")
        .backup()
        .file_set();
    for f in set.files() {
        let stored = &seen.stored[&mobilebackup2::file_path(udid, &f.file_id())];
        assert_eq!(stored.len() as u64, f.size);
    }
    assert!(seen.stored.contains_key(&format!("{udid}/Manifest.db")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_drops_the_connection_mid_upload_when_scripted() {
    let mut profile = builtin("wifi-off-no-charger").expect("profile");
    profile.backup.faults.disconnect_after_bytes = Some(100_000);
    let rig = SimRig::start(vec![profile]).await;
    let udid = "00008101-000E1D2C3B4A5F02";
    let seen = minimal_host_backup(&rig, udid).await;
    assert!(
        seen.response.is_none(),
        "no final response: {:?}",
        seen.response
    );
    // Status.plist (uploading) and exactly the scripted amount of file data.
    let status_len = seen
        .stored
        .get(&format!("{udid}/Status.plist"))
        .map_or(0, |b| b.len() as u64);
    assert_eq!(seen.data_bytes, 100_000 + status_len);
    let status = Status::parse(&seen.stored[&format!("{udid}/Status.plist")]).expect("status");
    assert_eq!(status.snapshot_state, "uploading");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idevicebackup2_turns_encryption_on_and_off() {
    let rig = SimRig::builtin("healthy").await;
    pair_with_idevicepair(&rig).await;
    let dest = rig.dir.path().join("backups");
    std::fs::create_dir_all(&dest).expect("backup folder");
    let dest_s = dest.display().to_string();
    let will_encrypt = || async {
        let out = rig
            .idevice(
                "ideviceinfo",
                &["-q", "com.apple.mobile.backup", "-k", "WillEncrypt"],
            )
            .await;
        stdout_ok(&out, "ideviceinfo WillEncrypt").trim().to_owned()
    };
    assert_eq!(will_encrypt().await, "false");
    let text = stdout_ok(
        &rig.idevice("idevicebackup2", &["encryption", "on", "s3cret", &dest_s])
            .await,
        "idevicebackup2 encryption on",
    );
    assert!(
        text.contains("Backup encryption has been enabled successfully."),
        "{text}"
    );
    assert_eq!(will_encrypt().await, "true");

    let out = rig
        .idevice("idevicebackup2", &["encryption", "off", "wrong", &dest_s])
        .await;
    assert!(
        said(&out).contains("Could not disable backup encryption."),
        "{}",
        said(&out)
    );
    assert_eq!(will_encrypt().await, "true");
    let text = stdout_ok(
        &rig.idevice("idevicebackup2", &["encryption", "off", "s3cret", &dest_s])
            .await,
        "idevicebackup2 encryption off",
    );
    assert!(
        text.contains("Backup encryption has been disabled successfully."),
        "{text}"
    );
    assert_eq!(will_encrypt().await, "false");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_lock_is_exclusive_across_afc_connections() {
    use backupd_proto::afc::{self, Packet};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn call(stream: &mut backupd_mux::stream::DeviceStream, p: Packet) -> Packet {
        stream.write_all(&p.encode()).await.expect("send");
        let mut inbox = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((reply, _)) = Packet::decode(&inbox).expect("an AFC packet") {
                assert_eq!(reply.number, p.number);
                return reply;
            }
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "AFC connection closed");
            inbox.extend_from_slice(&chunk[..n]);
        }
    }
    async fn open_and_lock(
        trusted: &mut backupd_mux::Trusted,
    ) -> (backupd_mux::stream::DeviceStream, u64, u64) {
        let mut s = trusted
            .lockdown
            .start_service(mobilebackup2::AFC_SERVICE_NAME, None)
            .await
            .expect("afc starts")
            .into_stream();
        let opened = call(
            &mut s,
            afc::open(1, mobilebackup2::LOCK_SYNC_PATH, afc::mode::READ_WRITE),
        )
        .await;
        assert_eq!(opened.operation, afc::op::FILE_OPEN_RES);
        let handle = opened.arg(0).expect("handle");
        let locked = call(
            &mut s,
            afc::file_lock(2, handle, afc::lock::EXCLUSIVE_NONBLOCKING),
        )
        .await;
        (s, handle, locked.arg(0).expect("status"))
    }

    let rig = SimRig::builtin("healthy").await;
    let mut trusted = trusted_session(&rig).await;
    let (mut first, handle, status) = open_and_lock(&mut trusted).await;
    assert_eq!(status, afc::status::SUCCESS);
    let (_second, _, status) = open_and_lock(&mut trusted).await;
    assert_eq!(status, afc::status::OP_WOULD_BLOCK);
    let unlocked = call(&mut first, afc::file_lock(3, handle, afc::lock::UNLOCK)).await;
    assert_eq!(unlocked.arg(0), Ok(afc::status::SUCCESS));
    let (_third, _, status) = open_and_lock(&mut trusted).await;
    assert_eq!(status, afc::status::SUCCESS);

    let mut profile = builtin("healthy").expect("profile");
    profile.backup.faults.lock_sync_held = true;
    let rig = SimRig::start(vec![profile]).await;
    let mut trusted = trusted_session(&rig).await;
    let (_s, _, status) = open_and_lock(&mut trusted).await;
    assert_eq!(status, afc::status::OP_WOULD_BLOCK);
}

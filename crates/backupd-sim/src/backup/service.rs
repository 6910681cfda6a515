//! The phone's mobilebackup2 service: version exchange, Hello, and Backup and ChangePassword as a phone does
//! them, driven by the profile's `[backup]` table.

use std::time::{Duration, SystemTime};

use plist::{Dictionary, Value};

use backupd_proto::devicelink::{self, DeviceMessage, HostMessage, Moves, Removals};
use backupd_proto::mobilebackup2::{
    self, BackupOptions, ManifestProperties, Request, Response, Status, error_code, notifications,
};
use backupd_proto::usbmuxd::same_udid;

use super::BackupReport;
use super::crypto::{self, PhoneKeys};
use super::files::BackupFile;
use super::link::{Downloaded, Link, LinkError, Sink, Source, Upload};
use super::manifest;
use crate::phone::Phone;
use crate::wire::DeviceConn;

/// The code the simulator answers requests it does not implement with (errno ENOTSUP on Darwin, which
/// MBErrorDomain wraps).
pub(crate) const UNSUPPORTED: u64 = 45;
/// At most this many files go in one `DLMessageUploadFiles`.
const BATCH_FILES: usize = 64;
/// At most this many bytes go in one `DLMessageUploadFiles` (a single bigger file goes alone).
const BATCH_BYTES: u64 = 16 << 20;
/// At most this many renames go in one `DLMessageMoveItems`.
const MOVES_PER_MESSAGE: usize = 1000;
/// The largest Status.plist or Manifest.plist the phone reads from the host.
const MAX_PLIST: u64 = 16 << 20;
/// Free space the phone wants on the host beyond what it uploads.
const SPACE_MARGIN: u64 = 1 << 20;
/// The host paths the `hostile_names` fault sends, `{udid}` replaced.
const HOSTILE_PATHS: [&str; 4] = [
    "{udid}/../../escape",
    "/etc/passwd",
    "{udid}/ab/../../x",
    "{udid}/ab/nul\0name",
];

/// Serves one mobilebackup2 connection until the host leaves.
pub(crate) async fn serve(phone: &Phone, conn: DeviceConn) -> Result<(), LinkError> {
    let mut link = Link::new(conn);
    link.send(&DeviceMessage::VersionExchange {
        major: devicelink::VERSION_MAJOR,
        minor: devicelink::VERSION_MINOR,
    })
    .await?;
    match link.recv().await? {
        Some(HostMessage::VersionsOk { .. }) => {}
        _ => return Ok(()),
    }
    link.send(&DeviceMessage::DeviceReady).await?;
    while let Some(msg) = link.recv().await? {
        let dict = match msg {
            HostMessage::ProcessMessage(d) => d,
            HostMessage::Disconnect { .. } => return Ok(()),
            other => {
                tracing::debug!(message = other.name(), "ignoring a host message");
                continue;
            }
        };
        let response = match Request::from_dict(&dict) {
            Ok(Request::Hello { versions }) => {
                match mobilebackup2::SUPPORTED_PROTOCOL_VERSIONS
                    .iter()
                    .rev()
                    .find(|v| versions.contains(v))
                {
                    Some(v) => Response::hello(*v),
                    None => Response::error_with(
                        error_code::NO_COMMON_VERSION,
                        "No common protocol version (MBErrorDomain/1)",
                    ),
                }
            }
            Ok(Request::Backup {
                target, options, ..
            }) => backup(phone, &mut link, &target, &options).await?,
            Ok(Request::ChangePassword { old, new, .. }) => change_password(phone, old, new).await,
            Ok(Request::EnableCloudBackup { enable, .. }) => {
                phone.set_lockdown_value(
                    Some("com.apple.mobile.backup"),
                    "CloudBackupEnabled",
                    Value::Boolean(enable),
                );
                Response::ok()
            }
            Ok(other) => unsupported(other.name()),
            Err(e) => {
                tracing::debug!(error = %e, "malformed mobilebackup2 request");
                unsupported("this request")
            }
        };
        link.send(&DeviceMessage::ProcessMessage(response.to_dict()))
            .await?;
    }
    Ok(())
}

fn unsupported(what: &str) -> Response {
    Response::error_with(
        UNSUPPORTED,
        format!("{what} is not supported by the simulated phone (MBErrorDomain/{UNSUPPORTED})"),
    )
}

/// Whether backups of this phone are encrypted now.
fn will_encrypt(phone: &Phone) -> bool {
    matches!(
        phone.lockdown_value(Some("com.apple.mobile.backup"), "WillEncrypt"),
        Some(Value::Boolean(true))
    )
}

/// The passcode prompt of iOS 16.1+: true when the passcode was entered in time.
async fn passcode_entered(phone: &Phone) -> bool {
    let faults = &phone.backup().profile().faults;
    if !faults.passcode_prompt {
        return true;
    }
    let entered = phone.backup().passcode_waiter();
    tokio::pin!(entered);
    // Registered before the prompt shows, so an answer right after it is not missed.
    entered.as_mut().enable();
    phone.backup().show_prompt(true);
    phone.post_notification(notifications::LOCAL_AUTH_PRESENTED);
    let ok = tokio::time::timeout(Duration::from_secs(faults.passcode_timeout_secs), entered)
        .await
        .is_ok();
    phone.backup().show_prompt(false);
    phone.post_notification(notifications::LOCAL_AUTH_DISMISSED);
    ok
}

async fn change_password(phone: &Phone, old: Option<String>, new: Option<String>) -> Response {
    if !passcode_entered(phone).await {
        return Response::error(error_code::DEVICE_LOCKED);
    }
    let bp = phone.backup();
    let encrypted = will_encrypt(phone);
    // The phone checks the old password against the one its keybag is sealed with.
    let old_ok = |old: &str| bp.password().as_deref() == Some(old);
    let on = match (old.as_deref(), new) {
        (None, None) => return unsupported("ChangePassword without a password"),
        (None, Some(new)) if !encrypted => {
            // Turning encryption on: new class keys, sealed with the new password.
            bp.set_password(Some(new), true);
            true
        }
        (Some(old), Some(new)) if encrypted && old_ok(old) => {
            // A new password seals the same class keys again: files already backed up keep their keys.
            bp.set_password(Some(new), false);
            true
        }
        (Some(old), None) if encrypted && old_ok(old) => {
            bp.set_password(None, false);
            false
        }
        _ => return Response::error(error_code::INVALID_PASSWORD),
    };
    if on && bp.keybag(phone.udid()).await.is_none() {
        return Response::error(error_code::SNAPSHOT_FAILED);
    }
    if on != encrypted {
        phone.set_lockdown_value(
            Some("com.apple.mobile.backup"),
            "WillEncrypt",
            Value::Boolean(on),
        );
    }
    Response::ok()
}

/// What an encrypted backup needs: the phone's keys and the keybag sealed with the backup password.
struct Crypt {
    keys: PhoneKeys,
    keybag: Vec<u8>,
}

/// What the host kept of the previous backup, when the phone can build on it.
struct Previous {
    manifest_db: manifest::Previous,
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

fn status(uuid: &str, full: bool, state: &str) -> Status {
    Status {
        backup_state: "new".into(),
        date: SystemTime::now(),
        is_full_backup: full,
        snapshot_state: state.into(),
        uuid: uuid.into(),
        version: "3.3".into(),
    }
}

fn manifest_properties(phone: &Phone, crypt: Option<(&Crypt, Vec<u8>)>) -> ManifestProperties {
    let mut lockdown = Dictionary::new();
    for key in [
        "BuildVersion",
        "DeviceName",
        "ProductType",
        "ProductVersion",
        "SerialNumber",
        "UniqueDeviceID",
    ] {
        if let Some(v) = phone.lockdown_value(None, key) {
            lockdown.insert(key.into(), v);
        }
    }
    for domain in [
        "com.apple.mobile.data_sync",
        "com.apple.Accessibility",
        "com.apple.MobileDeviceCrashCopy",
        "com.apple.mobile.iTunes.accessories",
    ] {
        lockdown.insert(
            domain.into(),
            Value::Dictionary(phone.profile().domain_values(Some(domain))),
        );
    }
    let mut applications = Dictionary::new();
    for app in &phone.profile().apps {
        let mut a = Dictionary::new();
        a.insert("CFBundleIdentifier".into(), app.bundle_id.clone().into());
        a.insert("CFBundleVersion".into(), app.version.clone().into());
        a.insert("ContainerContentClass".into(), "Data/Application".into());
        a.insert(
            "Path".into(),
            format!(
                "/private/var/containers/Bundle/Application/{}/{}.app",
                app.bundle_id, app.name
            )
            .into(),
        );
        applications.insert(app.bundle_id.clone(), Value::Dictionary(a));
    }
    let mut extra = Dictionary::new();
    let encrypted = crypt.is_some();
    if let Some((crypt, manifest_key)) = crypt {
        extra.insert("BackupKeyBag".into(), Value::Data(crypt.keybag.clone()));
        extra.insert("ManifestKey".into(), Value::Data(manifest_key));
    }
    ManifestProperties {
        version: "10.0".into(),
        system_domains_version: Some("24.0".into()),
        date: SystemTime::now(),
        is_encrypted: encrypted,
        was_passcode_set: phone.backup().profile().passcode_set,
        lockdown,
        applications,
        extra,
    }
}

/// Reads what the host kept of the previous backup and decides whether it can be built on.
///
/// `Err(response)` when the previous backup's properties are unreadable (ErrorCode 205, as a phone answers
/// a zero-length Manifest.plist left next to the Status.plist of a backup it made).
async fn previous_backup(
    phone: &Phone,
    link: &mut Link,
    udid: &str,
    status: Option<Status>,
    crypt: Option<&Crypt>,
    work: &std::path::Path,
) -> Result<Result<Option<Previous>, Response>, LinkError> {
    let Some(status) = status else {
        return Ok(Ok(None));
    };
    if !status.is_finished() || !phone.backup().made_backup(&status.uuid) {
        // Not a complete backup this phone made: nothing to build on.
        return Ok(Ok(None));
    }
    let db_path = work.join("previous-Manifest.db");
    let paths = [
        format!("{udid}/{}", mobilebackup2::MANIFEST_PLIST),
        format!("{udid}/{}", mobilebackup2::MANIFEST_DB),
    ];
    let got = link
        .download(
            &paths,
            vec![Sink::Memory(MAX_PLIST), Sink::File(db_path.clone())],
            1.0,
        )
        .await?;
    let mut got = got.into_iter();
    let (Some(plist), Some(db)) = (got.next(), got.next()) else {
        return Ok(Ok(None));
    };
    let properties = match plist {
        Downloaded::Missing(_) => return Ok(Ok(None)),
        Downloaded::Bytes(b) if b.is_empty() => {
            return Ok(Err(Response::error_with(
                error_code::BACKUP_PROPERTIES_UNREADABLE,
                "Error reading backup properties (MBErrorDomain/205). Underlying error: Error \
                 deserializing properties: Cannot parse a NULL or zero-length data (MBErrorDomain/11).",
            )));
        }
        Downloaded::Bytes(b) => match ManifestProperties::parse(&b) {
            Ok(p) => p,
            Err(_) => {
                return Ok(Err(Response::error(
                    error_code::BACKUP_PROPERTIES_UNREADABLE,
                )));
            }
        },
        Downloaded::File(_) => return Ok(Ok(None)),
    };
    let same_phone = properties
        .unique_device_id()
        .is_some_and(|id| same_udid(id, phone.udid()));
    if !same_phone || properties.is_encrypted != crypt.is_some() {
        return Ok(Ok(None));
    }
    if !matches!(db, Downloaded::File(n) if n > 0) {
        return Ok(Ok(None));
    }
    let db_path = match crypt {
        None => db_path,
        Some(crypt) => {
            // The phone opens the previous Manifest.db with the key it wrapped in that backup's ManifestKey;
            // keys it no longer has (encryption turned off and on since) mean a full backup.
            let key = properties
                .extra
                .get("ManifestKey")
                .and_then(Value::as_data)
                .and_then(|k| crypt.keys.open_manifest_key(k));
            let Some(key) = key else {
                return Ok(Ok(None));
            };
            let plain = work.join("previous-Manifest-plain.db");
            if crypto::crypt_file(&db_path, &plain, &key, false).is_err() {
                return Ok(Ok(None));
            }
            plain
        }
    };
    Ok(Ok(
        manifest::Previous::open(&db_path).map(|manifest_db| Previous { manifest_db })
    ))
}

fn hex_id(id: &str) -> bool {
    id.len() == 40
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A backup, from the `Backup` request to the final response.
async fn backup(
    phone: &Phone,
    link: &mut Link,
    udid: &str,
    options: &BackupOptions,
) -> Result<Response, LinkError> {
    let bp = phone.backup();
    let faults = bp.profile().faults.clone();
    if let Some(code) = faults.error_code {
        let description = faults
            .error_description
            .clone()
            .unwrap_or_else(|| mobilebackup2::error_description(code));
        bp.set_report(BackupReport::failed(code));
        return Ok(Response::error_with(code, description));
    }
    if !passcode_entered(phone).await {
        bp.set_report(BackupReport::failed(error_code::DEVICE_LOCKED));
        return Ok(Response::error(error_code::DEVICE_LOCKED));
    }
    let work = tempfile::tempdir()?;
    link.messages_sent = 0;
    link.disconnect_before_message = faults.disconnect_before_message;
    let crypt = if will_encrypt(phone) {
        let Some(keybag) = bp.keybag(udid).await else {
            bp.set_report(BackupReport::failed(error_code::SNAPSHOT_FAILED));
            return Ok(Response::error(error_code::SNAPSHOT_FAILED));
        };
        Some(Crypt {
            keys: bp.keys(udid),
            keybag,
        })
    } else {
        None
    };

    // The first thing a phone asks for is the previous Status.plist.
    let status_path = format!("{udid}/{}", mobilebackup2::STATUS_PLIST);
    let got = link
        .download(
            std::slice::from_ref(&status_path),
            vec![Sink::Memory(MAX_PLIST)],
            0.0,
        )
        .await?;
    let old_status = match got.into_iter().next() {
        Some(Downloaded::Bytes(b)) => Status::parse(&b).ok(),
        Some(Downloaded::Missing(why)) => {
            tracing::debug!(udid, why, "the host has no Status.plist: a full backup");
            None
        }
        _ => None,
    };
    let previous = if options.force_full {
        None
    } else {
        match previous_backup(phone, link, udid, old_status, crypt.as_ref(), work.path()).await? {
            Ok(p) => p,
            Err(response) => {
                bp.set_report(BackupReport::failed(response.error_code));
                return Ok(response);
            }
        }
    };
    let full = previous.is_none();

    let set = bp.file_set();
    let db_path = work.path().join(mobilebackup2::MANIFEST_DB);
    manifest::write(&db_path, &set, crypt.as_ref().map(|c| &c.keys))
        .map_err(std::io::Error::other)?;
    let uploads: Vec<BackupFile> = set
        .files()
        .filter(|f| previous.as_ref().is_none_or(|p| p.manifest_db.changed(f)))
        .collect();
    let removed: Vec<String> = match &previous {
        Some(p) => p
            .manifest_db
            .removed(&db_path)
            .map_err(std::io::Error::other)?
            .into_iter()
            .filter(|id| hex_id(id))
            .collect(),
        None => Vec::new(),
    };
    drop(previous);
    // An encrypted file is stored padded: 1 to 16 bytes more than its size.
    let stored = |f: &BackupFile| match &crypt {
        Some(_) if f.size > 0 => backupd_proto::backup_cipher::padded_len(f.size),
        _ => f.size,
    };
    let data_bytes: u64 = uploads.iter().map(stored).sum();
    let db_len = std::fs::metadata(&db_path)?.len();

    let free = link.request(&DeviceMessage::GetFreeDiskSpace).await?;
    if let Some(free) = free.free_bytes().filter(|_| free.is_ok())
        && free < data_bytes + db_len + SPACE_MARGIN
    {
        bp.set_report(BackupReport::failed(error_code::INSUFFICIENT_FREE_SPACE));
        return Ok(Response::error(error_code::INSUFFICIENT_FREE_SPACE));
    }

    let uuid = new_uuid();
    let status_upload = |state: &str| Upload {
        device_path: "/.ba/Status.plist".into(),
        host_path: status_path.clone(),
        source: Source::Bytes(status(&uuid, full, state).to_bytes()),
    };
    let reply = link.upload(vec![status_upload("uploading")], 2.0).await?;
    if !reply.is_ok() {
        return Ok(upload_refused(bp, full));
    }

    let mut prefixes: Vec<String> = uploads
        .iter()
        .map(|f| f.file_id()[..2].to_owned())
        .collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    let mut dirs = vec![format!("{udid}/{}", mobilebackup2::SNAPSHOT_DIR)];
    for p in &prefixes {
        dirs.push(format!("{udid}/{}/{p}", mobilebackup2::SNAPSHOT_DIR));
        dirs.push(format!("{udid}/{p}"));
    }
    for dir in dirs {
        let s = link
            .request(&DeviceMessage::CreateDirectory { path: dir })
            .await?;
        if !s.is_ok() {
            return Ok(upload_refused(bp, full));
        }
    }

    // The scripted disconnect counts the phone's files, not the Status.plist before them.
    link.data_sent = 0;
    link.disconnect_after = faults.disconnect_after_bytes;
    let mut report = BackupReport {
        full,
        uploaded: Vec::new(),
        uploaded_bytes: 0,
        removed: removed.clone(),
        error_code: error_code::OK,
    };
    let mut batch: Vec<Upload> = Vec::new();
    let mut batch_bytes = 0u64;
    let mut done_bytes = 0u64;
    if faults.hostile_names {
        for p in HOSTILE_PATHS {
            batch.push(Upload {
                device_path: "/.ba/mobile/Library/hostile".into(),
                host_path: p.replace("{udid}", udid),
                source: Source::Bytes(b"a hostile name\n".to_vec()),
            });
        }
    }
    let progress = |done: u64| 5.0 + 85.0 * (done as f64) / (data_bytes.max(1) as f64);
    for f in &uploads {
        let id = f.file_id();
        if !batch.is_empty() && (batch.len() >= BATCH_FILES || batch_bytes + f.size > BATCH_BYTES) {
            let s = link
                .upload(std::mem::take(&mut batch), progress(done_bytes))
                .await?;
            if !s.is_ok() {
                return Ok(upload_refused(bp, full));
            }
            batch_bytes = 0;
        }
        let source = match &crypt {
            Some(c) if f.size > 0 => Source::Encrypted(f.content(set.seed()), c.keys.file_key(f)),
            _ => Source::Content(f.content(set.seed())),
        };
        batch.push(Upload {
            device_path: f.device_path(),
            host_path: mobilebackup2::snapshot_file_path(udid, &id),
            source,
        });
        batch_bytes += stored(f);
        done_bytes += stored(f);
        report.uploaded.push(id);
        report.uploaded_bytes += f.size;
    }
    if !batch.is_empty() {
        let s = link.upload(batch, progress(done_bytes)).await?;
        if !s.is_ok() {
            return Ok(upload_refused(bp, full));
        }
    }

    let snapshot = |name: &str| format!("{udid}/{}/{name}", mobilebackup2::SNAPSHOT_DIR);
    // An encrypted backup's Manifest.db is encrypted whole with a fresh key, wrapped in its ManifestKey.
    let (db_upload, properties) = match &crypt {
        Some(c) => {
            let (key, wrapped) = c.keys.new_manifest_key();
            let encrypted_db = work.path().join("Manifest-encrypted.db");
            crypto::crypt_file(&db_path, &encrypted_db, &key, true)?;
            (encrypted_db, manifest_properties(phone, Some((c, wrapped))))
        }
        None => (db_path.clone(), manifest_properties(phone, None)),
    };
    let metadata = vec![
        Upload {
            device_path: "/.ba/Manifest.db".into(),
            host_path: snapshot(mobilebackup2::MANIFEST_DB),
            source: Source::File(db_upload),
        },
        Upload {
            device_path: "/.ba/Manifest.plist".into(),
            host_path: snapshot(mobilebackup2::MANIFEST_PLIST),
            source: Source::Bytes(properties.to_bytes()),
        },
    ];
    if faults.disconnect_during == Some(super::profile::DisconnectStage::ManifestDb) {
        let db_len = std::fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0);
        link.disconnect_after = Some(link.data_sent + db_len / 2);
    }
    let s = link.upload(metadata, 92.0).await?;
    if !s.is_ok() {
        return Ok(upload_refused(bp, full));
    }

    // Commit: move the snapshot into place, then remove what the phone no longer has.
    let mut moves: Vec<(String, String)> = report
        .uploaded
        .iter()
        .map(|id| {
            (
                mobilebackup2::snapshot_file_path(udid, id),
                mobilebackup2::file_path(udid, id),
            )
        })
        .collect();
    for name in [mobilebackup2::MANIFEST_DB, mobilebackup2::MANIFEST_PLIST] {
        moves.push((snapshot(name), format!("{udid}/{name}")));
    }
    for chunk in moves.chunks(MOVES_PER_MESSAGE) {
        let s = link
            .request(&DeviceMessage::MoveItems(Moves {
                moves: chunk.to_vec(),
                progress: 95.0,
            }))
            .await?;
        if !s.is_ok() {
            return Ok(upload_refused(bp, full));
        }
        if faults.disconnect_during == Some(super::profile::DisconnectStage::Moves) {
            // Unplugged half way through committing: some files moved into place, others not.
            return Err(link.unplug().await);
        }
    }
    let mut removals: Vec<String> = removed
        .iter()
        .map(|id| mobilebackup2::file_path(udid, id))
        .collect();
    removals.push(format!("{udid}/{}", mobilebackup2::SNAPSHOT_DIR));
    let s = link
        .request(&DeviceMessage::RemoveItems(Removals {
            paths: removals,
            progress: 98.0,
        }))
        .await?;
    if !s.is_ok() {
        tracing::debug!(code = s.code, "host failed to remove some items");
    }

    let s = link.upload(vec![status_upload("finished")], 100.0).await?;
    if !s.is_ok() {
        return Ok(upload_refused(bp, full));
    }
    bp.remember_backup(&uuid);
    bp.set_report(report);
    Ok(Response::ok())
}

/// The host refused an operation of the backup: the phone gives up as after failed uploads.
fn upload_refused(bp: &super::PhoneBackup, full: bool) -> Response {
    let mut report = BackupReport::failed(error_code::MULTIPLE_UPLOAD_ERRORS);
    report.full = full;
    bp.set_report(report);
    Response::error(error_code::MULTIPLE_UPLOAD_ERRORS)
}

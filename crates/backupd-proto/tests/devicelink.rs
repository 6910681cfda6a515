//! DeviceLink and mobilebackup2: real messages through our decoders, round trips of every message and
//! document, and the raw file framing under arbitrary splits and hostile input.
//!
//! The real messages live in `tests/data/real/mobilebackup2-*` (copied from the shared fixtures; line 1 of each
//! names its public source and is stripped before parsing).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backupd_proto::devicelink::{
    self, DeviceMessage, DownloadDecoder, DownloadEncoder, DownloadEvent, FileError, FramingError,
    HostMessage, MAX_BLOCK_LEN, MAX_NAME_LEN, Moves, Removals, StatusResponse, UploadDecoder,
    UploadEncoder, UploadEvent,
};
use backupd_proto::mobilebackup2::{
    self, BackupOptions, ManifestProperties, MbFile, PathError, Request, Response, Status,
    error_code, safe_relative_path,
};
use backupd_proto::plist_util;
use plist::{Dictionary, Value};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Fixtures.

fn fixture_text(name: &str) -> String {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/real")
        .join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let (first, rest) = text.split_once('\n').expect("more than one line");
    assert!(
        first.starts_with("# source:"),
        "{name} lacks its source line"
    );
    rest.to_owned()
}

fn fixture_plists(name: &str) -> Vec<Value> {
    fixture_text(name)
        .split("\n---\n")
        .map(|doc| plist_util::parse(doc.trim().as_bytes()).expect("fixture parses"))
        .collect()
}

fn one_plist(name: &str) -> Value {
    let mut all = fixture_plists(name);
    assert_eq!(all.len(), 1, "{name} holds one plist");
    all.remove(0)
}

/// The frame a peer would send for this plist: the XML the fixture holds, with its length prefix.
fn as_frame(value: &Value) -> Vec<u8> {
    backupd_proto::lockdown::encode_frame(value, backupd_proto::lockdown::PlistFormat::Xml)
}

#[test]
fn real_version_exchange_from_an_ios16_device() {
    let v = one_plist("mobilebackup2-dl-versionexchange-device-issue1379.plist");
    let (msg, used) = DeviceMessage::decode(&as_frame(&v))
        .expect("decode")
        .expect("complete");
    assert_eq!(used, as_frame(&v).len());
    assert_eq!(
        msg,
        DeviceMessage::VersionExchange {
            major: devicelink::VERSION_MAJOR,
            minor: devicelink::VERSION_MINOR
        }
    );
    assert_eq!(msg.to_value(), v, "the device side writes the same array");
}

#[test]
fn real_empty_download_request_still_needs_an_answer() {
    let v = one_plist("mobilebackup2-dl-downloadfiles-empty-issue112.plist");
    let msg = DeviceMessage::from_value(&v).expect("decode");
    let DeviceMessage::DownloadFiles { paths, progress } = &msg else {
        panic!("not a download: {msg:?}")
    };
    assert!(paths.is_empty());
    assert_eq!(*progress, 97.010055);
    assert!(msg.expects_status());
    // The host's answer to an empty request is the terminator alone, then the status.
    let mut wire = Vec::new();
    DownloadEncoder::new().finish(&mut wire).expect("finish");
    assert_eq!(wire, [0, 0, 0, 0]);
    let mut dec = DownloadDecoder::new();
    let step = dec.decode(&wire).expect("decode");
    assert_eq!(step.event, Some(DownloadEvent::BatchEnd));
    assert!(dec.is_finished());
}

#[test]
fn real_first_download_of_a_backup_names_status_plist() {
    // A CFArray description: pick the quoted path out of it.
    let text = fixture_text("mobilebackup2-dl-downloadfiles-status-plist-sdmmd103.txt");
    assert!(text.contains("DLMessageDownloadFiles"));
    let path = text.split('"').nth(1).expect("a quoted path").to_owned();
    let udid = path.split('/').next().expect("udid").to_owned();
    let checked = safe_relative_path(&udid, &path).expect("a path hosts accept");
    assert_eq!(checked.below_device_folder(), mobilebackup2::STATUS_PLIST);
    let msg = DeviceMessage::DownloadFiles {
        paths: vec![path],
        progress: 0.0,
    };
    let (back, _) = DeviceMessage::decode(&msg.encode())
        .expect("decode")
        .expect("complete");
    assert_eq!(back, msg);
}

#[test]
fn real_backup_request_from_idevicebackup2() {
    let v = one_plist("mobilebackup2-backup-request-issue153.plist");
    let HostMessage::ProcessMessage(d) = HostMessage::from_value(&v).expect("decode") else {
        panic!("not a process message")
    };
    let request = Request::from_dict(&d).expect("request");
    assert_eq!(
        request,
        Request::Backup {
            target: "1f5e2b31dc458ecc7cb8ca1253fff8d54dcc7bab".into(),
            source: Some("1f5e2b31dc458ecc7cb8ca1253fff8d54dcc7bab".into()),
            options: BackupOptions::default(),
        }
    );
    assert_eq!(request.to_message().to_value(), v);
}

#[test]
fn real_forced_full_backup_and_the_device_locked_answer() {
    let [request, reply] =
        &fixture_plists("mobilebackup2-backup-request-and-208-reply-issue1380.plist")[..]
    else {
        panic!("two plists")
    };
    let HostMessage::ProcessMessage(d) = HostMessage::from_value(request).expect("decode") else {
        panic!("not a process message")
    };
    let Request::Backup { options, .. } = Request::from_dict(&d).expect("request") else {
        panic!("not a backup request")
    };
    assert!(options.force_full);
    assert!(options.extra.is_empty());

    let DeviceMessage::ProcessMessage(d) = DeviceMessage::from_value(reply).expect("decode") else {
        panic!("not a process message")
    };
    let response = Response::from_dict(&d).expect("response");
    assert_eq!(response.error_code, error_code::DEVICE_LOCKED);
    assert!(!response.is_ok());
    assert_eq!(
        response.error_description.as_deref(),
        Some("Device locked (MBErrorDomain/208)")
    );
    // The simulator's answer for the same code is the device's, byte for byte in plist terms.
    assert_eq!(
        Value::Dictionary(Response::error(error_code::DEVICE_LOCKED).to_dict()),
        Value::Dictionary(d)
    );
}

#[test]
fn error_texts_match_what_devices_printed() {
    let text = fixture_text("mobilebackup2-error-outputs-collected.txt");
    let mut seen = 0;
    for line in text.lines() {
        // idevicebackup2's form: `ErrorCode N: description`.
        let parsed = line
            .strip_prefix("ErrorCode ")
            .and_then(|rest| rest.split_once(": "))
            .or_else(|| {
                // pymobiledevice3's form: `{'ErrorCode': N, 'ErrorDescription': '…', …}`.
                let rest = line.strip_prefix("{'ErrorCode': ")?;
                let (code, rest) = rest.split_once(", 'ErrorDescription': '")?;
                Some((code, rest))
            });
        let Some((code, description)) = parsed else {
            continue;
        };
        let code: u64 = code.parse().expect("numeric code");
        let known = mobilebackup2::error_text(code)
            .unwrap_or_else(|| panic!("code {code} from a real device has no text"));
        assert!(
            description.starts_with(known),
            "code {code}: device said {description:?}, we say {known:?}"
        );
        if description.contains(&format!("(MBErrorDomain/{code})")) && !description.contains(':') {
            assert!(description.starts_with(&mobilebackup2::error_description(code)));
        }
        seen += 1;
    }
    assert!(seen >= 8, "only {seen} error lines found");
}

#[test]
fn real_info_output_names_the_status_plist_fields_we_write() {
    let text = fixture_text("mobilebackup2-info-reply-pymobiledevice3-issue1052-partial.txt");
    // The device read these from the Status.plist a device wrote; ours carries the same values.
    assert!(text.contains("version=3.3"));
    assert!(text.contains("backupState=new"));
    assert!(text.contains("snapshotState=finished"));
    assert!(text.contains("<MBDriveProperties: version=10.0"));
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn progress() -> impl Strategy<Value = f64> {
    (0u32..10_000).prop_map(|p| f64::from(p) / 100.0)
}

fn leaf_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(|i| Value::Integer(i.into())),
        any::<u64>().prop_map(|u| Value::Integer(u.into())),
        text().prop_map(Value::String),
        vec(any::<u8>(), 0..32).prop_map(Value::Data),
    ]
}

fn dictionary() -> impl Strategy<Value = Dictionary> {
    vec((text(), leaf_value()), 0..5).prop_map(|kv| kv.into_iter().collect())
}

fn path() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-][A-Za-z0-9._-]{0,11}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,11}){0,3}"
}

fn moves() -> impl Strategy<Value = Moves> {
    (vec((path(), path()), 0..6), progress()).prop_map(|(mut moves, progress)| {
        // A dictionary keeps one destination per source.
        let mut seen = std::collections::HashSet::new();
        moves.retain(|(s, _)| seen.insert(s.clone()));
        Moves { moves, progress }
    })
}

fn removals() -> impl Strategy<Value = Removals> {
    (vec(path(), 0..6), progress()).prop_map(|(paths, progress)| Removals { paths, progress })
}

fn device_message() -> impl Strategy<Value = DeviceMessage> {
    prop_oneof![
        (any::<u64>(), any::<u64>())
            .prop_map(|(major, minor)| DeviceMessage::VersionExchange { major, minor }),
        Just(DeviceMessage::DeviceReady),
        dictionary().prop_map(DeviceMessage::ProcessMessage),
        (vec(path(), 0..6), progress())
            .prop_map(|(paths, progress)| DeviceMessage::DownloadFiles { paths, progress }),
        (progress(), option::of(any::<u64>())).prop_map(|(progress, total_bytes)| {
            DeviceMessage::UploadFiles {
                progress,
                total_bytes,
            }
        }),
        Just(DeviceMessage::GetFreeDiskSpace),
        (option::of(any::<u64>()), any::<u64>()).prop_map(|(amount, urgency)| {
            DeviceMessage::PurgeDiskSpace {
                amount,
                urgency: amount.map(|_| urgency),
            }
        }),
        path().prop_map(|path| DeviceMessage::CreateDirectory { path }),
        moves().prop_map(DeviceMessage::MoveFiles),
        moves().prop_map(DeviceMessage::MoveItems),
        removals().prop_map(DeviceMessage::RemoveFiles),
        removals().prop_map(DeviceMessage::RemoveItems),
        (path(), path()).prop_map(|(source, destination)| DeviceMessage::CopyItem {
            source,
            destination
        }),
        path().prop_map(|path| DeviceMessage::ContentsOfDirectory { path }),
        option::of(text().prop_filter("not the placeholder", |t| t != devicelink::EMPTY_PARAMETER))
            .prop_map(|reason| DeviceMessage::Disconnect { reason }),
        ("DLMessage[A-Z][a-z]{3,10}", vec(leaf_value(), 0..4))
            .prop_filter("an unknown name", |(n, _)| {
                DeviceMessage::from_value(&Value::Array(vec![Value::String(n.clone())]))
                    .is_ok_and(|m| matches!(m, DeviceMessage::Other { .. }))
            })
            .prop_map(|(name, arguments)| DeviceMessage::Other { name, arguments }),
    ]
}

fn status_response() -> impl Strategy<Value = StatusResponse> {
    (
        any::<i64>(),
        option::of(text().prop_filter("not the placeholder", |t| t != devicelink::EMPTY_PARAMETER)),
        option::of(prop_oneof![
            leaf_value().prop_filter("not the placeholder", |v| {
                v.as_string() != Some(devicelink::EMPTY_PARAMETER)
            }),
            dictionary().prop_map(Value::Dictionary)
        ]),
    )
        .prop_map(|(code, message, value)| StatusResponse {
            code,
            message,
            value,
        })
}

fn host_message() -> impl Strategy<Value = HostMessage> {
    prop_oneof![
        any::<u64>().prop_map(|major| HostMessage::VersionsOk { major }),
        dictionary().prop_map(HostMessage::ProcessMessage),
        status_response().prop_map(HostMessage::StatusResponse),
        text().prop_map(HostMessage::Ping),
        option::of(text().prop_filter("not the placeholder", |t| t != devicelink::EMPTY_PARAMETER))
            .prop_map(|reason| HostMessage::Disconnect { reason }),
    ]
}

fn time() -> impl Strategy<Value = SystemTime> {
    (0u64..4_102_444_800).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

fn request() -> impl Strategy<Value = Request> {
    let id = "[0-9a-f]{40}";
    prop_oneof![
        vec((1u32..40).prop_map(|v| f64::from(v) / 10.0), 0..4)
            .prop_map(|versions| Request::Hello { versions }),
        (id, option::of(id), any::<bool>(), dictionary()).prop_map(
            |(target, source, force_full, mut extra)| {
                extra.remove("ForceFullBackup");
                Request::Backup {
                    target,
                    source,
                    options: BackupOptions { force_full, extra },
                }
            }
        ),
        (id, option::of(id)).prop_map(|(target, source)| Request::Info { target, source }),
        (id, option::of(id)).prop_map(|(target, source)| Request::List { target, source }),
        (option::of(id), option::of(text()), option::of(text()))
            .prop_map(|(target, old, new)| Request::ChangePassword { target, old, new }),
        (id, any::<bool>())
            .prop_map(|(target, enable)| Request::EnableCloudBackup { target, enable }),
    ]
}

fn mb_file() -> impl Strategy<Value = MbFile> {
    (
        (path(), option::of(path()), any::<u64>(), any::<u32>()),
        (any::<u32>(), any::<u32>(), any::<u64>()),
        (any::<i64>(), any::<i64>(), any::<i64>()),
        (0u64..1 << 40, 0u64..12, option::of(vec(any::<u8>(), 4..44))),
    )
        .prop_map(
            |(
                (relative_path, target, size, mode),
                (user_id, group_id, inode),
                (birth, last_modified, last_status_change),
                (flags, protection_class, encryption_key),
            )| MbFile {
                relative_path,
                target,
                // Sizes and inodes go through a signed plist integer on real devices too.
                size: size >> 1,
                mode,
                user_id,
                group_id,
                inode: inode >> 1,
                birth,
                last_modified,
                last_status_change,
                flags,
                protection_class,
                encryption_key,
            },
        )
}

/// One file of a framed stream: its names, content and whether it ends in an error.
#[derive(Debug, Clone)]
struct StreamFile {
    device_path: String,
    host_path: String,
    content: Vec<u8>,
    error: Option<String>,
}

fn stream_files() -> impl Strategy<Value = Vec<StreamFile>> {
    vec(
        (
            "/\\.ba/[a-z/]{1,20}",
            path(),
            vec(any::<u8>(), 0..3000),
            option::of("[a-z ]{0,30}"),
        )
            .prop_map(|(device_path, host_path, content, error)| StreamFile {
                device_path,
                host_path,
                content,
                error,
            }),
        0..6,
    )
}

/// Cuts `bytes` at the given points (taken modulo its length).
fn split_at_points(bytes: &[u8], points: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = points
        .iter()
        .map(|p| if bytes.is_empty() { 0 } else { p % bytes.len() })
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = Vec::new();
    let mut start = 0;
    for c in cuts {
        pieces.push(bytes[start..c].to_vec());
        start = c;
    }
    pieces.push(bytes[start..].to_vec());
    pieces
}

/// What an upload decoder reports for a stream, in a form that compares to the input.
fn collect_uploads(pieces: &[Vec<u8>]) -> Result<(Vec<StreamFile>, bool), FramingError> {
    let mut dec = UploadDecoder::new();
    let mut files: Vec<StreamFile> = Vec::new();
    let mut ended = false;
    for piece in pieces {
        let mut rest = &piece[..];
        while !rest.is_empty() {
            let step = dec.decode(rest)?;
            rest = &rest[step.consumed..];
            match step.event {
                None => assert!(rest.is_empty(), "a step without event keeps no input"),
                Some(UploadEvent::FileStart {
                    device_path,
                    host_path,
                }) => files.push(StreamFile {
                    device_path,
                    host_path,
                    content: Vec::new(),
                    error: None,
                }),
                Some(UploadEvent::Data(d)) => files
                    .last_mut()
                    .expect("data inside a file")
                    .content
                    .extend_from_slice(d),
                Some(UploadEvent::FileEnd) => {}
                Some(UploadEvent::FileError { message }) => {
                    files.last_mut().expect("error inside a file").error = Some(message);
                }
                Some(UploadEvent::BatchEnd) => ended = true,
                Some(other) => panic!("unexpected event {other:?}"),
            }
        }
    }
    Ok((files, ended))
}

fn encode_uploads(files: &[StreamFile], chunk: usize) -> Vec<u8> {
    let mut enc = UploadEncoder::with_chunk_len(chunk);
    let mut wire = Vec::new();
    for f in files {
        enc.start_file(&f.device_path, &f.host_path, &mut wire)
            .expect("start");
        enc.data(&f.content, &mut wire).expect("data");
        match &f.error {
            Some(e) => enc.fail_file(e, &mut wire).expect("fail"),
            None => enc.finish_file(&mut wire).expect("finish file"),
        }
    }
    enc.finish(&mut wire).expect("finish");
    wire
}

// ---------------------------------------------------------------------------------------------
// Properties.

proptest! {
    #[test]
    fn device_messages_round_trip(msg in device_message()) {
        let (back, used) = DeviceMessage::decode(&msg.encode()).expect("decode").expect("complete");
        prop_assert_eq!(used, msg.encode().len());
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn host_messages_round_trip(msg in host_message()) {
        let frame = msg.encode();
        prop_assert!(frame[4..].starts_with(b"bplist00"), "hosts send binary plists");
        let (back, _) = HostMessage::decode(&frame).expect("decode").expect("complete");
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn negative_status_codes_go_out_unsigned(code in i64::MIN..0) {
        let v = HostMessage::StatusResponse(StatusResponse::error(code, "x")).to_value();
        let wire_code = v.as_array().and_then(|a| a.get(1)).and_then(Value::as_unsigned_integer);
        prop_assert_eq!(wire_code, Some(code as u64));
    }

    #[test]
    fn multi_status_names_every_failed_file(
        errors in vec((path(), -20i64..0, text()), 0..5)
    ) {
        let mut seen = std::collections::HashSet::new();
        let errors: Vec<FileError> = errors
            .into_iter()
            .filter(|(p, _, _)| seen.insert(p.clone()))
            .map(|(path, code, message)| FileError { path, code, message })
            .collect();
        let s = StatusResponse::multi_status(&errors);
        let (back, _) = HostMessage::decode(&s.encode()).expect("decode").expect("complete");
        let HostMessage::StatusResponse(back) = back else { panic!("not a status") };
        prop_assert_eq!(back.is_ok(), errors.is_empty());
        prop_assert_eq!(back.file_errors(), errors);
    }

    #[test]
    fn requests_round_trip(r in request()) {
        let HostMessage::ProcessMessage(d) = r.to_message() else { panic!("process message") };
        prop_assert_eq!(Request::from_dict(&d).expect("request"), r);
    }

    #[test]
    fn responses_round_trip(
        code in any::<u64>(),
        description in option::of(text()),
        version in option::of(Just(2.1)),
        content in option::of(text().prop_map(Value::String)),
    ) {
        let r = Response { error_code: code, error_description: description, protocol_version: version, content };
        let msg = DeviceMessage::ProcessMessage(r.to_dict());
        let (back, _) = DeviceMessage::decode(&msg.encode()).expect("decode").expect("complete");
        let DeviceMessage::ProcessMessage(d) = back else { panic!("process message") };
        prop_assert_eq!(Response::from_dict(&d).expect("response"), r);
    }

    #[test]
    fn status_plist_round_trips(date in time(), full in any::<bool>(), uuid in "[0-9A-F-]{36}") {
        let s = Status {
            backup_state: "new".into(),
            date,
            is_full_backup: full,
            snapshot_state: "finished".into(),
            uuid,
            version: "3.3".into(),
        };
        prop_assert_eq!(Status::parse(&s.to_bytes()).expect("parse"), s);
    }

    #[test]
    fn manifest_plist_round_trips(
        date in time(),
        encrypted in any::<bool>(),
        lockdown in dictionary(),
        extra in dictionary(),
    ) {
        let mut extra = extra;
        for k in ["Version", "SystemDomainsVersion", "Date", "IsEncrypted", "WasPasscodeSet", "Lockdown", "Applications"] {
            extra.remove(k);
        }
        let m = ManifestProperties {
            version: "10.0".into(),
            system_domains_version: Some("24.0".into()),
            date,
            is_encrypted: encrypted,
            was_passcode_set: !encrypted,
            lockdown,
            applications: Dictionary::new(),
            extra,
        };
        prop_assert_eq!(ManifestProperties::parse(&m.to_bytes()).expect("parse"), m);
    }

    #[test]
    fn mbfile_archives_round_trip(f in mb_file()) {
        let bytes = f.to_archive();
        prop_assert!(bytes.starts_with(b"bplist00"));
        prop_assert_eq!(MbFile::from_archive(&bytes).expect("parse"), f);
    }

    #[test]
    fn uploads_survive_any_split(
        files in stream_files(),
        chunk in 1usize..5000,
        points in vec(any::<usize>(), 0..12),
    ) {
        let wire = encode_uploads(&files, chunk);
        let (back, ended) = collect_uploads(&split_at_points(&wire, &points)).expect("decode");
        prop_assert!(ended);
        prop_assert_eq!(back.len(), files.len());
        for (b, f) in back.iter().zip(&files) {
            prop_assert_eq!(&b.device_path, &f.device_path);
            prop_assert_eq!(&b.host_path, &f.host_path);
            prop_assert_eq!(&b.content, &f.content);
            prop_assert_eq!(&b.error, &f.error);
        }
    }

    #[test]
    fn every_strict_prefix_of_an_upload_is_incomplete(files in stream_files(), cut in any::<usize>()) {
        let wire = encode_uploads(&files, 1000);
        let cut = cut % wire.len();
        let (_, ended) = collect_uploads(&[wire[..cut].to_vec()]).expect("a prefix is never an error");
        prop_assert!(!ended);
    }

    #[test]
    fn downloads_survive_any_split(
        files in stream_files(),
        points in vec(any::<usize>(), 0..12),
    ) {
        let mut enc = DownloadEncoder::new();
        let mut wire = Vec::new();
        for f in &files {
            enc.start_file(&f.host_path, &mut wire).expect("start");
            match &f.error {
                Some(e) => enc.fail_file(e, &mut wire).expect("fail"),
                None => {
                    enc.data(&f.content, &mut wire).expect("data");
                    enc.finish_file(&mut wire).expect("finish file");
                }
            }
        }
        enc.finish(&mut wire).expect("finish");
        let mut dec = DownloadDecoder::new();
        let mut got: Vec<(String, Vec<u8>, Option<String>)> = Vec::new();
        let mut ended = false;
        for piece in split_at_points(&wire, &points) {
            let mut rest = &piece[..];
            while !rest.is_empty() {
                let step = dec.decode(rest).expect("decode");
                rest = &rest[step.consumed..];
                match step.event {
                    Some(DownloadEvent::FileStart { path }) => got.push((path, Vec::new(), None)),
                    Some(DownloadEvent::Data(d)) => got.last_mut().expect("file").1.extend_from_slice(d),
                    Some(DownloadEvent::FileError { message }) => got.last_mut().expect("file").2 = Some(message),
                    Some(DownloadEvent::BatchEnd) => ended = true,
                    _ => {}
                }
            }
        }
        prop_assert!(ended);
        let want: Vec<(String, Vec<u8>, Option<String>)> = files
            .iter()
            .map(|f| {
                let content = if f.error.is_some() { Vec::new() } else { f.content.clone() };
                (f.host_path.clone(), content, f.error.clone())
            })
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn download_data_comes_in_32k_frames(len in 0usize..200_000) {
        let mut enc = DownloadEncoder::new();
        let mut wire = Vec::new();
        enc.start_file("U/Manifest.db", &mut wire).expect("start");
        enc.data(&vec![7u8; len], &mut wire).expect("data");
        enc.finish_file(&mut wire).expect("finish");
        let mut at = 4 + "U/Manifest.db".len();
        let mut frames = 0;
        loop {
            let n = u32::from_be_bytes(wire[at..at + 4].try_into().expect("4 bytes")) as usize;
            let code = wire[at + 4];
            if code == devicelink::CODE_SUCCESS {
                prop_assert_eq!(n, 1);
                break;
            }
            prop_assert_eq!(code, devicelink::CODE_FILE_DATA);
            prop_assert!(n - 1 <= devicelink::DATA_CHUNK_LEN);
            frames += 1;
            at += 4 + n;
        }
        prop_assert_eq!(frames, len.div_ceil(devicelink::DATA_CHUNK_LEN));
    }

    #[test]
    fn decoders_survive_arbitrary_bytes(bytes in vec(any::<u8>(), 0..600), points in vec(any::<usize>(), 0..6)) {
        // No panic, and every error is a typed one; a decoder stops at its first error.
        let _ = collect_uploads(&split_at_points(&bytes, &points));
        let mut dec = DownloadDecoder::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            match dec.decode(rest) {
                Ok(step) => rest = &rest[step.consumed..],
                Err(_) => break,
            }
        }
    }

    #[test]
    fn hostile_lengths_are_refused_before_allocation(len in (MAX_BLOCK_LEN as u32 + 1)..=u32::MAX) {
        let mut wire = Vec::new();
        let mut enc = UploadEncoder::new();
        enc.start_file("/.ba/x", "U/ab/cd", &mut wire).expect("start");
        wire.extend_from_slice(&len.to_be_bytes());
        let err = collect_uploads(&[wire]).expect_err("refused");
        let refused = matches!(err, FramingError::BlockTooLong { .. });
        prop_assert!(refused, "{err}");
    }

    #[test]
    fn hostile_name_lengths_are_refused(len in (MAX_NAME_LEN as u32 + 1)..=u32::MAX) {
        let err = collect_uploads(&[len.to_be_bytes().to_vec()]).expect_err("refused");
        let refused = matches!(err, FramingError::NameTooLong { .. });
        prop_assert!(refused, "{err}");
    }

    #[test]
    fn safe_paths_have_only_normal_components(p in "[a-zA-Z0-9./\\\\\0-]{0,40}") {
        let udid = "00008110-001A2B3C4D5E6F01";
        let full = format!("{udid}/{p}");
        match safe_relative_path(udid, &full) {
            Ok(rel) => {
                prop_assert_eq!(rel.as_str(), full.as_str());
                let mut components = rel.components();
                prop_assert_eq!(components.next(), Some(udid));
                for c in components {
                    prop_assert!(!c.is_empty() && c != "." && c != "..", "{c:?}");
                    prop_assert!(!c.contains('\\') && !c.contains('\0'));
                }
                let joined = rel.under(Path::new("/backups"));
                prop_assert!(joined.starts_with("/backups"));
                prop_assert!(joined.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::RootDir)));
            }
            Err(e) => {
                let explained = p.is_empty()
                    || p.split('/').any(|c| c.is_empty() || c == "." || c == "..")
                    || p.contains('\\')
                    || p.contains('\0');
                prop_assert!(explained, "{p:?} refused with {e}");
            }
        }
    }

    #[test]
    fn paths_outside_the_device_folder_are_refused(other in "[A-Za-z0-9]{1,30}", rest in path()) {
        let udid = "6d1f9a3b2c4e5f60718293a4b5c6d7e8f9012345";
        prop_assume!(other != udid);
        prop_assert_eq!(
            safe_relative_path(udid, &format!("{other}/{rest}")),
            Err(PathError::OutsideDeviceFolder)
        );
        prop_assert_eq!(safe_relative_path(udid, &format!("/{udid}/{rest}")), Err(PathError::Absolute));
    }
}

#[test]
fn hostile_upload_names_the_simulator_sends_are_all_refused() {
    let udid = "00008110-001A2B3C4D5E6F01";
    for name in [
        format!("{udid}/../../escape"),
        "/etc/passwd".to_owned(),
        format!("{udid}/ab/../../x"),
        format!("{udid}/ab/x\0y"),
    ] {
        // The framing carries them faithfully; the path check is what refuses them.
        let wire = encode_uploads(
            &[StreamFile {
                device_path: "/.ba/mobile/x".into(),
                host_path: name.clone(),
                content: b"payload".to_vec(),
                error: None,
            }],
            32,
        );
        let (files, _) = collect_uploads(&[wire]).expect("decode");
        assert_eq!(files[0].host_path, name);
        assert!(safe_relative_path(udid, &name).is_err(), "{name:?}");
    }
    let long = format!("{udid}/{}", "a/".repeat(600));
    assert!(matches!(
        safe_relative_path(udid, &long),
        Err(PathError::TooLong { .. })
    ));
}

#[test]
fn unknown_device_messages_get_the_unsupported_answer() {
    let v = Value::Array(vec![
        "DLMessageAcquireLock".into(),
        Value::Integer(1u64.into()),
    ]);
    let msg = DeviceMessage::from_value(&v).expect("decode");
    assert!(matches!(&msg, DeviceMessage::Other { name, .. } if name == "DLMessageAcquireLock"));
    assert!(msg.expects_status());
    let s = StatusResponse::unsupported();
    assert_eq!(s.code, -1);
    assert_eq!(s.message.as_deref(), Some("Operation not supported"));
}

#[test]
fn malformed_messages_are_typed_errors() {
    for v in [
        Value::Dictionary(Dictionary::new()),
        Value::Array(vec![]),
        Value::Array(vec![Value::Integer(3u64.into())]),
        Value::Array(vec!["DLMessageCreateDirectory".into()]),
        Value::Array(vec![
            "DLMessageDownloadFiles".into(),
            Value::Array(vec![Value::Integer(1u64.into())]),
        ]),
        Value::Array(vec!["DLMessageMoveItems".into(), Value::Array(vec![])]),
    ] {
        assert!(DeviceMessage::from_value(&v).is_err(), "{v:?}");
    }
    assert!(
        HostMessage::from_value(&Value::Array(vec![
            "DLMessageVersionExchange".into(),
            "DLVersionsRefused".into(),
        ]))
        .is_err()
    );
}

#[test]
fn the_version_exchange_as_both_sides_write_it() {
    let device = DeviceMessage::VersionExchange {
        major: 400,
        minor: 0,
    };
    assert_eq!(
        device.to_value(),
        Value::Array(vec![
            "DLMessageVersionExchange".into(),
            Value::Integer(400u64.into()),
            Value::Integer(0u64.into()),
        ])
    );
    let host = HostMessage::VersionsOk { major: 400 };
    assert_eq!(
        host.to_value(),
        Value::Array(vec![
            "DLMessageVersionExchange".into(),
            "DLVersionsOk".into(),
            Value::Integer(400u64.into()),
        ])
    );
    let hello = Request::hello().to_dict();
    assert_eq!(
        hello.get("SupportedProtocolVersions"),
        Some(&Value::Array(vec![Value::Real(2.0), Value::Real(2.1)]))
    );
    let ok = Response::hello(mobilebackup2::PROTOCOL_VERSION).to_dict();
    assert_eq!(ok.get("ErrorCode"), Some(&Value::Integer(0u64.into())));
    assert_eq!(ok.get("ProtocolVersion"), Some(&Value::Real(2.1)));
}

#[test]
fn file_ids_and_paths_follow_the_backup_layout() {
    let id = mobilebackup2::file_id(
        "AppDomainGroup-group.net.whatsapp.WhatsApp.shared",
        "ChatStorage.sqlite",
    );
    assert_eq!(id.len(), 40);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    let udid = "6d1f9a3b2c4e5f60718293a4b5c6d7e8f9012345";
    let p = mobilebackup2::file_path(udid, &id);
    assert_eq!(p, format!("{udid}/{}/{id}", &id[..2]));
    assert!(safe_relative_path(udid, &p).is_ok());
    assert!(safe_relative_path(udid, &mobilebackup2::snapshot_file_path(udid, &id)).is_ok());
    // Empty relative paths (a domain's root) have an id too.
    assert_eq!(mobilebackup2::file_id("HomeDomain", "").len(), 40);
}

#[test]
fn an_empty_manifest_plist_is_refused_like_a_device_does() {
    let err = ManifestProperties::parse(b"").expect_err("zero-length");
    assert!(err.to_string().contains("zero-length"), "{err}");
    assert!(Status::parse(b"").is_err());
}

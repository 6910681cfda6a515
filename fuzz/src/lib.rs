//! What each fuzz target does with its input, as plain functions.
//!
//! `crates/backupd-proto/tests/fuzz_corpus.rs` includes this file as a module and replays `fuzz/corpus/*/`
//! through the same functions in an ordinary `cargo test`, so the targets and the replay cannot drift apart.
//! Besides "no panic", each function checks what must hold of anything the decoders accept: lengths stay
//! within the buffer, and whatever was read survives our own encoder (compared as bytes, so that a NaN
//! inside a value does not count as a difference).

use backupd_proto::afc;
use backupd_proto::devicelink::{
    self, DeviceMessage, DownloadDecoder, DownloadEvent, FramingError, HostMessage, UploadDecoder,
    UploadEvent,
};
use backupd_proto::lockdown::{self, MAX_FRAME_LEN, PlistFormat};
use backupd_proto::mobilebackup2::{self as mb2, ManifestProperties, MbFile};
use backupd_proto::pair::{PairRecord, PairRequestRecord};
use backupd_proto::plist_util;
use backupd_proto::services::{diagnostics, instproxy, notification};
use backupd_proto::usbmuxd::{
    self, ClientInfo, HEADER_LEN, MAX_PACKET_LEN, MAX_REQUEST_LEN, Message, Packet, Request,
};
use plist::{Dictionary, Value};

/// Target `usbmuxd_packet`: the input is what a usbmuxd socket delivered.
///
/// Packets are cut off the front as a reader does, each is interpreted both as something usbmuxd sends
/// ([`Message`]) and as something a client sends ([`Request`]), and what decodes is re-encoded and read
/// again. The input is also framed under the muxer's smaller request cap.
pub fn usbmuxd_packet(data: &[u8]) {
    for packet in packets(data, MAX_PACKET_LEN) {
        check_message(&packet);
        check_request(&packet);
    }
    for packet in packets(data, MAX_REQUEST_LEN) {
        check_request(&packet);
    }
}

/// Target `lockdown_frame`: the input is what a lockdown connection delivered.
///
/// Frames are cut off the front, every lockdown reply reader runs on each, and a frame that reads as a
/// request (as the simulated device reads it) must survive our encoder in both plist formats.
pub fn lockdown_frame(data: &[u8]) {
    for value in frames(data) {
        let _ = lockdown::parse_query_type(&value);
        let _ = lockdown::parse_get_value(&value);
        let _ = lockdown::parse_start_session(&value);
        let _ = lockdown::parse_start_service(&value);
        let _ = lockdown::parse_pair(&value);
        for request in ["GetValue", "StartSession", "Unpair", ""] {
            let _ = lockdown::check_reply(request, &value);
        }
        if let Some(Ok(request)) = value.as_dictionary().map(lockdown::Request::from_dict) {
            check_lockdown_request(&request);
        }
    }
}

/// Target `services_reply`: the input is a diagnostics_relay, installation_proxy or notification_proxy
/// message, either framed as on the wire or as a bare plist body.
///
/// Every reply reader and every device-side request reader runs on each value; what they accept must come
/// back unchanged through the matching encoder.
pub fn services_reply(data: &[u8]) {
    let bare = plist_util::parse(data).ok();
    for value in frames(data).into_iter().chain(bare) {
        check_service_value(&value);
    }
}

/// Target `devicelink_message`: the input is what a mobilebackup2 connection delivered between file streams.
///
/// Frames are cut off the front as the engine does; each is read as a device message (what the host reads),
/// a host message (what the simulated phone reads) and a mobilebackup2 request and reply; whatever reads
/// must come back unchanged through our encoder. `DeviceMessage::decode` also runs on the raw input.
pub fn devicelink_message(data: &[u8]) {
    if let Ok(Some((_, used))) = DeviceMessage::decode(data) {
        assert!(used >= 4 && used <= data.len());
    }
    let _ = HostMessage::decode(data);
    let mut rest = data;
    while let Ok(Some((value, used))) = devicelink::decode_frame(rest) {
        assert!(used >= 4 && used <= rest.len(), "decode_frame used {used}");
        rest = &rest[used..];
        if let Ok(message) = DeviceMessage::from_value(&value) {
            let _ = message.expects_status();
            let bytes = message.encode();
            let (back, used) = DeviceMessage::decode(&bytes)
                .expect("our own message decodes")
                .expect("our own message is complete");
            assert_eq!(used, bytes.len());
            assert_eq!(back.encode(), bytes, "{}", message.name());
        }
        if let Ok(message) = HostMessage::from_value(&value) {
            let bytes = message.encode();
            let (back, _) = HostMessage::decode(&bytes)
                .expect("our own message decodes")
                .expect("our own message is complete");
            assert_eq!(back.encode(), bytes, "{}", message.name());
        }
        if let Some(d) = value.as_dictionary() {
            check_mb2_dict(d);
        }
        // Process messages carry a mobilebackup2 dictionary as their argument.
        if let Some(args) = value.as_array() {
            for d in args.iter().filter_map(Value::as_dictionary) {
                check_mb2_dict(d);
            }
        }
    }
}

/// Target `mobilebackup2_message`: the input is a mobilebackup2 dictionary or a file the phone writes into
/// a backup that the host reads back (`Status.plist`, `Manifest.plist`, an `MBFile` archive), or a path
/// the phone names.
///
/// Every reader runs; what reads must survive our encoder; a path accepted by `safe_relative_path` stays
/// below the phone's folder, made of plain components.
pub fn mobilebackup2_message(data: &[u8]) {
    if let Ok(status) = mb2::Status::parse(data) {
        let back = mb2::Status::parse(&status.to_bytes()).expect("our own Status.plist reads");
        assert_eq!(back.to_bytes(), status.to_bytes());
    }
    if let Ok(props) = ManifestProperties::parse(data) {
        let _ = props.unique_device_id();
        let back =
            ManifestProperties::parse(&props.to_bytes()).expect("our own Manifest.plist reads");
        assert_eq!(back.to_bytes(), props.to_bytes());
    }
    if let Ok(file) = MbFile::from_archive(data) {
        let _ = file.modified();
        let back = MbFile::from_archive(&file.to_archive()).expect("our own archive reads");
        assert_eq!(back.to_archive(), file.to_archive());
    }
    if let Ok(Value::Dictionary(d)) = plist_util::parse(data) {
        check_mb2_dict(&d);
    }
    // The text as a path the phone names, below a UDID taken from its first component.
    if let Ok(text) = std::str::from_utf8(data) {
        let udid = text.split('/').next().unwrap_or("");
        check_phone_path(udid, text);
    }
}

/// Target `file_transfer`: the input drives the DeviceLink file-stream decoders, host side
/// ([`UploadDecoder`], the phone's files) or simulator side ([`DownloadDecoder`], the host's answers),
/// chosen by the first byte; the second sets the size of the pieces the stream arrives in.
///
/// A step without an event uses all it was given and never more; the stream read whole and read in
/// pieces gives the same events (data joined) and fails at the same place; every host path a file names
/// is checked as the engine checks it.
pub fn file_transfer(data: &[u8]) {
    let [mode, piece, stream @ ..] = data else {
        return;
    };
    let piece = usize::from(*piece).max(1);
    let whole = transfer_events(*mode & 1 == 0, stream, stream.len().max(1));
    let pieces = transfer_events(*mode & 1 == 0, stream, piece);
    assert_eq!(whole, pieces, "pieces of {piece}");
    for event in &whole {
        if let Transfer::Start(names) = event
            && let Some(host_path) = names.last()
        {
            let udid = host_path.split('/').next().unwrap_or("");
            check_phone_path(udid, host_path);
        }
    }
}

/// Target `afc_packet`: the input is what an AFC connection delivered.
///
/// Packets are cut off the front; each must re-encode to the bytes it came from, and its arguments and
/// open path read without panic.
pub fn afc_packet(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((packet, used))) = afc::Packet::decode(rest) {
        assert!(used <= rest.len() && used <= afc::MAX_PACKET_LEN);
        assert_eq!(packet.encode(), rest[..used]);
        for i in 0..4 {
            let _ = packet.arg(i);
        }
        let _ = afc::open_path(&packet);
        rest = &rest[used..];
    }
}

/// Target `pair_record`: the input is a pair record file (ours, libimobiledevice's, or usbmuxd's answer),
/// or the `PairRecord` dictionary of a `Pair` request as the simulated phone reads it.
///
/// What reads must survive our writer.
pub fn pair_record(data: &[u8]) {
    if let Ok(record) = PairRecord::from_plist(data) {
        let dict = record.to_dictionary();
        let back = PairRecord::from_dictionary(&dict).expect("our own record reads");
        assert_eq!(binary(&back.to_dictionary()), binary(&dict));
        // Debug never shows the keys.
        let _ = format!("{record:?}");
    }
    if let Ok(Value::Dictionary(d)) = plist_util::parse_strict(data)
        && let Ok(request) = PairRequestRecord::from_dictionary(&d)
    {
        let dict = request.to_dictionary();
        let back = PairRequestRecord::from_dictionary(&dict).expect("our own request record reads");
        assert_eq!(binary(&back.to_dictionary()), binary(&dict));
    }
}

fn check_mb2_dict(d: &Dictionary) {
    if let Ok(request) = mb2::Request::from_dict(d) {
        let dict = request.to_dict();
        let back = mb2::Request::from_dict(&dict).expect("our own request reads");
        assert_eq!(binary(&back.to_dict()), binary(&dict), "{}", request.name());
        let _ = request.to_message().encode();
    }
    if let Ok(response) = mb2::Response::from_dict(d) {
        let _ = response.is_ok();
        let dict = response.to_dict();
        let back = mb2::Response::from_dict(&dict).expect("our own reply reads");
        assert_eq!(binary(&back.to_dict()), binary(&dict));
    }
}

/// What `safe_relative_path` accepts is below `<udid>/`, of plain components, within the caps.
fn check_phone_path(udid: &str, path: &str) {
    let Ok(checked) = mb2::safe_relative_path(udid, path) else {
        return;
    };
    assert!(checked.as_str().len() <= mb2::MAX_RELATIVE_PATH_LEN);
    let mut components = checked.components();
    assert_eq!(components.next(), Some(udid));
    let mut below = 0;
    for c in components {
        below += 1;
        assert!(!c.is_empty() && c != "." && c != ".." && c.len() <= mb2::MAX_COMPONENT_LEN);
        assert!(!c.contains(['\\', '\0']) && !c.chars().any(char::is_control));
    }
    assert!(below >= 1);
    let root = std::path::Path::new("/backups");
    let joined = checked.under(root);
    assert!(joined.starts_with(root.join(udid)));
    assert!(joined.components().all(|c| matches!(
        c,
        std::path::Component::RootDir | std::path::Component::Normal(_)
    )));
}

/// A file-stream event in owned form, so that two readings can be compared.
#[derive(Debug, PartialEq, Eq)]
enum Transfer {
    Start(Vec<String>),
    Data(Vec<u8>),
    End,
    FileError(String),
    BatchEnd,
    Failed(FramingError),
    /// An event this reader does not know yet (the enums are non-exhaustive).
    Unknown,
}

/// The events of `stream` fed to a decoder `piece` bytes at a time, consecutive data joined.
fn transfer_events(upload: bool, stream: &[u8], piece: usize) -> Vec<Transfer> {
    let mut up = UploadDecoder::new();
    let mut down = DownloadDecoder::new();
    let mut out: Vec<Transfer> = Vec::new();
    let push = |out: &mut Vec<Transfer>, t: Transfer| match (out.last_mut(), t) {
        (Some(Transfer::Data(have)), Transfer::Data(more)) => have.extend_from_slice(&more),
        (_, Transfer::Data(d)) if d.is_empty() => {}
        (_, t) => out.push(t),
    };
    let mut offset = 0;
    while offset < stream.len() {
        let end = (offset + piece).min(stream.len());
        let mut input = &stream[offset..end];
        while !input.is_empty() {
            let step = if upload {
                up.decode(input).map(|s| {
                    let event = s.event.map(|e| match e {
                        UploadEvent::FileStart {
                            device_path,
                            host_path,
                        } => Transfer::Start(vec![device_path, host_path]),
                        UploadEvent::Data(d) => Transfer::Data(d.to_vec()),
                        UploadEvent::FileEnd => Transfer::End,
                        UploadEvent::FileError { message } => Transfer::FileError(message),
                        UploadEvent::BatchEnd => Transfer::BatchEnd,
                        _ => Transfer::Unknown,
                    });
                    (s.consumed, event)
                })
            } else {
                down.decode(input).map(|s| {
                    let event = s.event.map(|e| match e {
                        DownloadEvent::FileStart { path } => Transfer::Start(vec![path]),
                        DownloadEvent::Data(d) => Transfer::Data(d.to_vec()),
                        DownloadEvent::FileEnd => Transfer::End,
                        DownloadEvent::FileError { message } => Transfer::FileError(message),
                        DownloadEvent::BatchEnd => Transfer::BatchEnd,
                        _ => Transfer::Unknown,
                    });
                    (s.consumed, event)
                })
            };
            let (consumed, event) = match step {
                Ok(s) => s,
                Err(e) => {
                    push(&mut out, Transfer::Failed(e));
                    return out;
                }
            };
            assert!(
                consumed <= input.len(),
                "used {consumed} of {}",
                input.len()
            );
            match event {
                None => {
                    assert_eq!(consumed, input.len(), "a step without an event left input");
                }
                Some(Transfer::BatchEnd) => {
                    push(&mut out, Transfer::BatchEnd);
                    // What follows belongs to the next plist, not to this stream.
                    return out;
                }
                Some(t) => push(&mut out, t),
            }
            input = &input[consumed..];
        }
        offset = end;
    }
    out
}

/// The packets at the front of `data`, as a reader would take them one after another.
fn packets(data: &[u8], max: usize) -> Vec<Packet> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Ok(Some((packet, used))) = usbmuxd::decode_packet(rest, max) {
        assert!(
            (HEADER_LEN..=max).contains(&used) && used <= rest.len(),
            "decode_packet used {used} of {} bytes with cap {max}",
            rest.len()
        );
        assert_eq!(packet.payload.len(), used - HEADER_LEN);
        out.push(packet);
        rest = &rest[used..];
    }
    out
}

/// The frames at the front of `data`.
fn frames(data: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Ok(Some((value, used))) = lockdown::decode_frame(rest, MAX_FRAME_LEN) {
        assert!(
            used >= 4 && used <= rest.len(),
            "decode_frame used {used} of {} bytes",
            rest.len()
        );
        out.push(value);
        rest = &rest[used..];
    }
    out
}

/// Decodes a packet this crate encoded; there is no cap, the bytes are already in memory.
fn own_packet(bytes: &[u8]) -> Packet {
    let (packet, used) = usbmuxd::decode_packet(bytes, usize::MAX)
        .expect("our own packet has a valid header")
        .expect("our own packet is complete");
    assert_eq!(used, bytes.len());
    packet
}

fn own_frame(bytes: &[u8]) -> Value {
    let (value, used) = lockdown::decode_frame(bytes, usize::MAX)
        .expect("our own frame parses")
        .expect("our own frame is complete");
    assert_eq!(used, bytes.len());
    value
}

fn check_message(packet: &Packet) {
    let Ok(message) = Message::decode(packet) else {
        return;
    };
    let protocol = packet
        .protocol()
        .expect("a decoded packet has a known version");
    // Reading may normalise (a missing connection type reads as USB, ...), so the first encoding is the
    // reference: reading it back and encoding again must give the same bytes.
    let first = message.encode(packet.tag, protocol);
    let again = Message::decode(&own_packet(&first)).expect("our own encoding decodes");
    assert_eq!(again.encode(packet.tag, protocol), first);
}

fn check_request(packet: &Packet) {
    let Ok(request) = Request::decode(packet) else {
        return;
    };
    let bytes = request.encode(packet.tag, &ClientInfo::default());
    let again = Request::decode(&own_packet(&bytes)).expect("our own request decodes");
    assert_eq!(again, request);
}

fn check_lockdown_request(request: &lockdown::Request) {
    for format in [PlistFormat::Xml, PlistFormat::Binary] {
        let bytes = lockdown::encode_frame(&Value::Dictionary(request.to_dict("fuzz")), format);
        let back = own_frame(&bytes);
        let back = back
            .as_dictionary()
            .map(lockdown::Request::from_dict)
            .expect("our own request is a dictionary")
            .expect("our own request reads back");
        assert_eq!(back.name(), request.name());
        assert_eq!(
            lockdown::encode_frame(&Value::Dictionary(back.to_dict("fuzz")), format),
            bytes
        );
    }
}

fn check_service_value(value: &Value) {
    if let Ok(Some(entry)) = diagnostics::parse_ioregistry(value) {
        let _ = diagnostics::wifi_state(&entry);
        let reply = own_frame(&lockdown::encode_frame(
            &diagnostics::ioregistry_reply(Some(&entry)),
            PlistFormat::Binary,
        ));
        let back = diagnostics::parse_ioregistry(&reply)
            .expect("our own reply reads")
            .expect("a non-empty entry stays");
        assert_eq!(binary(&back), binary(&entry));
    }
    if let Ok(instproxy::BrowsePage::Apps(apps)) = instproxy::parse_browse_frame(value) {
        // Every listed dictionary with a bundle id becomes one app, in order.
        let listed: Vec<&str> = value
            .as_dictionary()
            .and_then(|d| d.get("CurrentList"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_dictionary)
                    .filter_map(|a| a.get("CFBundleIdentifier").and_then(Value::as_string))
                    .collect()
            })
            .unwrap_or_default();
        let read: Vec<&str> = apps.iter().map(|a| a.bundle_id.as_str()).collect();
        assert_eq!(read, listed);
    }
    if let Ok(apps) = instproxy::parse_lookup(value) {
        let attributes: Vec<String> = instproxy::RETURN_ATTRIBUTES
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        if let Some(result) = value
            .as_dictionary()
            .and_then(|d| d.get("LookupResult"))
            .and_then(Value::as_dictionary)
        {
            assert!(apps.len() <= result.len());
            for attrs in result.values().filter_map(Value::as_dictionary) {
                let picked = instproxy::select_attributes(attrs, &attributes);
                assert!(picked.keys().all(|k| attributes.contains(k)));
            }
        }
    }
    if let Ok(event) = notification::Event::from_value(value) {
        let back = notification::Event::from_value(&Value::Dictionary(event.to_dict()));
        assert_eq!(back.expect("our own event reads"), event);
    }
    if let Some(d) = value.as_dictionary() {
        check_service_requests(d);
    }
}

fn check_service_requests(d: &Dictionary) {
    if let Ok(request) = diagnostics::Request::from_dict(d) {
        let back = diagnostics::Request::from_dict(&request.to_dict());
        assert_eq!(back.expect("our own request reads"), request);
    }
    if let Ok(request) = instproxy::Request::from_dict(d) {
        let back = instproxy::Request::from_dict(&request.to_dict());
        assert_eq!(back.expect("our own request reads"), request);
    }
    if let Ok(request) = notification::Request::from_dict(d) {
        let back = notification::Request::from_dict(&request.to_dict());
        assert_eq!(back.expect("our own request reads"), request);
    }
}

fn binary(d: &Dictionary) -> Vec<u8> {
    plist_util::to_binary(&Value::Dictionary(d.clone()))
}

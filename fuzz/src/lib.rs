//! What each fuzz target does with its input, as plain functions.
//!
//! `crates/backupd-proto/tests/fuzz_corpus.rs` includes this file as a module and replays `fuzz/corpus/*/`
//! through the same functions in an ordinary `cargo test`, so the targets and the replay cannot drift apart.
//! Besides "no panic", each function checks what must hold of anything the decoders accept: lengths stay
//! within the buffer, and whatever was read survives our own encoder (compared as bytes, so that a NaN
//! inside a value does not count as a difference).

use backupd_proto::lockdown::{self, MAX_FRAME_LEN, PlistFormat};
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

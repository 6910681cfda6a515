//! Round-trip and robustness properties of every codec in the crate.
//!
//! `decode(encode(x)) == x` for each message type, in every wire form it has; and for the two framers
//! ([`usbmuxd::decode_packet`], [`lockdown::decode_frame`]) the "check, then parse" contract: no panic on any
//! input, no declared length above the cap, `Ok(None)` for every strict prefix of a valid packet, and the
//! exact length used when more bytes follow.

use std::time::{Duration, UNIX_EPOCH};

use backupd_proto::lockdown::{self, FrameError, MAX_FRAME_LEN, PlistFormat};
use backupd_proto::plist_util::{self, DictExt};
use backupd_proto::services::{diagnostics, instproxy, notification};
use backupd_proto::usbmuxd::{
    self, ClientInfo, ConnectionType, Device, HEADER_LEN, MAX_PACKET_LEN, MAX_REQUEST_LEN, Message,
    Packet, ProtocolVersion, Request, ResultCode, UsbmuxError,
};
use plist::{Dictionary, Value};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Strategies.

/// Text as it appears in plists: any printable characters, including leading and trailing spaces.
fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

/// A UDID in one of the spellings usbmuxd reports, or any other text a muxer might put there.
fn udid() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{40}",
        "[0-9A-F]{8}-[0-9A-F]{16}",
        "[0-9A-F]{24}",
        text(),
    ]
}

/// Any plist value that both XML and binary plists can carry exactly.
fn plist_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(|i| Value::Integer(i.into())),
        any::<u64>().prop_map(|u| Value::Integer(u.into())),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Real),
        text().prop_map(Value::String),
        vec(any::<u8>(), 0..48).prop_map(Value::Data),
        // Whole seconds: XML dates carry no fraction.
        (0u64..4_102_444_800)
            .prop_map(|s| Value::Date((UNIX_EPOCH + Duration::from_secs(s)).into())),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            dictionary_of(inner).prop_map(Value::Dictionary),
        ]
    })
}

fn dictionary_of(values: impl Strategy<Value = Value>) -> impl Strategy<Value = Dictionary> {
    btree_map(text(), values, 0..6).prop_map(|m| m.into_iter().collect())
}

fn dictionary() -> impl Strategy<Value = Dictionary> {
    dictionary_of(plist_value())
}

fn client_info() -> impl Strategy<Value = ClientInfo> {
    (text(), text()).prop_map(|(prog_name, client_version)| ClientInfo {
        prog_name,
        client_version,
    })
}

fn mux_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::ListDevices),
        Just(Request::Listen),
        (any::<u32>(), any::<u16>())
            .prop_map(|(device_id, port)| Request::Connect { device_id, port }),
        any::<u32>().prop_map(|device_id| Request::Connect {
            device_id,
            port: lockdown::LOCKDOWN_PORT,
        }),
        Just(Request::ReadBuid),
        udid().prop_map(|udid| Request::ReadPairRecord { udid }),
        (udid(), vec(any::<u8>(), 0..512), option::of(any::<u32>())).prop_map(
            |(udid, data, device_id)| Request::SavePairRecord {
                udid,
                data,
                device_id,
            }
        ),
        udid().prop_map(|udid| Request::DeletePairRecord { udid }),
        Just(Request::ListListeners),
    ]
}

fn connection_type() -> impl Strategy<Value = ConnectionType> {
    prop_oneof![
        Just(ConnectionType::Usb),
        Just(ConnectionType::Network),
        // "USB" and "Network" are the named variants, so `Other` never carries them.
        text()
            .prop_filter("not a named type", |s| s != "USB" && s != "Network")
            .prop_map(ConnectionType::Other),
    ]
}

fn device() -> impl Strategy<Value = Device> {
    (
        any::<u32>(),
        udid(),
        option::of(any::<u16>()),
        option::of(any::<u32>()),
        option::of(any::<u64>()),
        connection_type(),
    )
        .prop_map(
            |(device_id, udid, product_id, location_id, connection_speed, connection_type)| {
                Device {
                    device_id,
                    udid,
                    product_id,
                    location_id,
                    connection_speed,
                    connection_type,
                }
            },
        )
}

fn result_code() -> impl Strategy<Value = ResultCode> {
    prop_oneof![0u32..8, any::<u32>()].prop_map(ResultCode::from_number)
}

fn mux_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        result_code().prop_map(Message::Result),
        vec(device(), 0..4).prop_map(Message::DeviceList),
        text().prop_map(Message::Buid),
        vec(any::<u8>(), 0..512).prop_map(Message::PairRecordData),
        vec(dictionary(), 0..3).prop_map(Message::ListenerList),
        device().prop_map(Message::Attached),
        any::<u32>().prop_map(|device_id| Message::Detached { device_id }),
        any::<u32>().prop_map(|device_id| Message::Paired { device_id }),
    ]
}

/// The messages the binary protocol has a struct for.
fn binary_mux_message() -> impl Strategy<Value = Message> {
    // Long enough to be cut at the struct's 255 bytes, multi-byte characters included.
    let long_udid = prop_oneof!["[0-9A-Za-z-]{0,300}", "\\PC{0,150}"];
    prop_oneof![
        result_code().prop_map(Message::Result),
        (device(), long_udid).prop_map(|(mut d, udid)| {
            d.udid = udid;
            Message::Attached(d)
        }),
        any::<u32>().prop_map(|device_id| Message::Detached { device_id }),
        any::<u32>().prop_map(|device_id| Message::Paired { device_id }),
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    option::of(text())
}

fn lockdown_request() -> impl Strategy<Value = lockdown::Request> {
    use lockdown::Request as R;
    prop_oneof![
        Just(R::QueryType),
        (opt_text(), opt_text()).prop_map(|(domain, key)| R::GetValue { domain, key }),
        (opt_text(), text(), plist_value()).prop_map(|(domain, key, value)| R::SetValue {
            domain,
            key,
            value
        }),
        (opt_text(), text()).prop_map(|(domain, key)| R::RemoveValue { domain, key }),
        (dictionary(), opt_text()).prop_map(|(record, host_name)| R::Pair { record, host_name }),
        dictionary().prop_map(|record| R::ValidatePair { record }),
        dictionary().prop_map(|record| R::Unpair { record }),
        (text(), text()).prop_map(|(host_id, system_buid)| R::StartSession {
            host_id,
            system_buid
        }),
        text().prop_map(|session_id| R::StopSession { session_id }),
        (text(), option::of(vec(any::<u8>(), 0..64))).prop_map(|(service, escrow_bag)| {
            R::StartService {
                service,
                escrow_bag,
            }
        }),
        Just(R::Goodbye),
    ]
}

fn diagnostics_request() -> impl Strategy<Value = diagnostics::Request> {
    use diagnostics::Request as R;
    let report = prop_oneof![
        prop::sample::select(vec!["All", "WiFi", "GasGauge", "NAND", "HDMI", "Sleep"])
            .prop_map(str::to_owned),
        // Any other name is a canned report too; the three named requests have their own variants.
        text().prop_filter("not a named request", |s| {
            !["IORegistry", "MobileGestalt", "Goodbye"].contains(&s.as_str())
        }),
    ];
    prop_oneof![
        (opt_text(), opt_text(), opt_text()).prop_map(|(plane, entry_name, entry_class)| {
            R::IoRegistry {
                plane,
                entry_name,
                entry_class,
            }
        }),
        vec(text(), 0..5).prop_map(|keys| R::MobileGestalt { keys }),
        report.prop_map(R::Report),
        Just(R::Goodbye),
    ]
}

fn instproxy_request() -> impl Strategy<Value = instproxy::Request> {
    use instproxy::Request as R;
    let app_type = prop_oneof![
        prop::sample::select(vec!["User", "System", "Any"]).prop_map(str::to_owned),
        text(),
    ];
    prop_oneof![
        (app_type, vec(text(), 0..5)).prop_map(|(application_type, attributes)| R::Browse {
            application_type,
            attributes
        }),
        (vec(text(), 0..5), vec(text(), 0..5)).prop_map(|(bundle_ids, attributes)| R::Lookup {
            bundle_ids,
            attributes
        }),
    ]
}

fn notification_request() -> impl Strategy<Value = notification::Request> {
    use notification::Request as R;
    prop_oneof![
        text().prop_map(R::Observe),
        text().prop_map(R::Post),
        Just(R::Shutdown),
    ]
}

fn notification_event() -> impl Strategy<Value = notification::Event> {
    use notification::Event as E;
    prop_oneof![text().prop_map(E::Relay), Just(E::ProxyDeath)]
}

fn plist_format() -> impl Strategy<Value = PlistFormat> {
    prop_oneof![Just(PlistFormat::Xml), Just(PlistFormat::Binary)]
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Decodes a buffer that must hold exactly one packet.
fn one_packet(bytes: &[u8], max: usize) -> Packet {
    let (packet, used) = usbmuxd::decode_packet(bytes, max)
        .expect("valid header")
        .expect("complete packet");
    assert_eq!(used, bytes.len(), "the packet uses the whole buffer");
    packet
}

/// Frames a value and reads it back, checking the length used.
fn through_frame(value: &Value, format: PlistFormat) -> Value {
    let bytes = lockdown::encode_frame(value, format);
    let (back, used) = lockdown::decode_frame(&bytes, MAX_FRAME_LEN)
        .expect("valid frame")
        .expect("complete frame");
    assert_eq!(used, bytes.len());
    back
}

fn through_frame_dict(d: Dictionary, format: PlistFormat) -> Dictionary {
    match through_frame(&Value::Dictionary(d), format) {
        Value::Dictionary(d) => d,
        other => panic!("a dictionary came back as {other:?}"),
    }
}

/// What the binary `DEVICE_ADD` struct carries of a device: no speed or type, zero for a missing product or
/// location, and the longest whole-character prefix of the UDID that fits in 255 bytes.
fn binary_view(device: &Device) -> Device {
    let mut udid = String::new();
    for c in device.udid.chars() {
        if udid.len() + c.len_utf8() > 255 {
            break;
        }
        udid.push(c);
    }
    Device {
        device_id: device.device_id,
        udid,
        product_id: Some(device.product_id.unwrap_or(0)),
        location_id: Some(device.location_id.unwrap_or(0)),
        connection_speed: None,
        connection_type: ConnectionType::Usb,
    }
}

fn header(length: u32, version: u32, message: u32, tag: u32) -> Vec<u8> {
    [length, version, message, tag]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// usbmuxd round trips.

proptest! {
    #[test]
    fn usbmuxd_request_survives_encode_and_decode(
        request in mux_request(),
        tag in any::<u32>(),
        client in client_info(),
    ) {
        let bytes = request.encode(tag, &client);
        let packet = one_packet(&bytes, MAX_REQUEST_LEN.max(bytes.len()));
        prop_assert_eq!(packet.tag, tag);
        prop_assert_eq!(packet.protocol().expect("known version"), ProtocolVersion::Plist);
        prop_assert_eq!(Request::decode(&packet).expect("decode request"), request.clone());

        // The client names itself in every request, as libusbmuxd does.
        let d = plist_util::parse(&packet.payload).expect("plist payload");
        let d = d.as_dictionary().expect("dict payload");
        prop_assert_eq!(d.str_key("MessageType"), Some(request.message_type()));
        prop_assert_eq!(d.str_key("ProgName"), Some(client.prog_name.as_str()));
        prop_assert_eq!(d.str_key("ClientVersionString"), Some(client.client_version.as_str()));
        prop_assert_eq!(d.u64_key("kLibUSBMuxVersion"), Some(3));
    }

    #[test]
    fn usbmuxd_connect_port_travels_byte_swapped(device_id in any::<u32>(), port in any::<u16>()) {
        let bytes = Request::Connect { device_id, port }.encode(7, &ClientInfo::default());
        let packet = one_packet(&bytes, MAX_REQUEST_LEN);
        let d = plist_util::parse(&packet.payload).expect("plist payload");
        let d = d.as_dictionary().expect("dict payload");
        prop_assert_eq!(d.u64_key("PortNumber"), Some(u64::from(port.swap_bytes())));
        prop_assert_eq!(d.u32_key("DeviceID"), Some(device_id));
    }

    #[test]
    fn usbmuxd_binary_connect_request_decodes(
        device_id in any::<u32>(),
        port in any::<u16>(),
        reserved in any::<u16>(),
        tag in any::<u32>(),
    ) {
        // The binary CONNECT struct: device id little-endian, port in network order, two reserved bytes.
        let mut payload = device_id.to_le_bytes().to_vec();
        payload.extend_from_slice(&port.to_be_bytes());
        payload.extend_from_slice(&reserved.to_le_bytes());
        let mut bytes = header(16 + 8, 0, usbmuxd::message::CONNECT, tag);
        bytes.extend_from_slice(&payload);
        let packet = one_packet(&bytes, MAX_REQUEST_LEN);
        prop_assert_eq!(
            Request::decode(&packet).expect("binary connect"),
            Request::Connect { device_id, port }
        );
    }

    #[test]
    fn usbmuxd_message_survives_plist_encode_and_decode(
        message in mux_message(),
        tag in any::<u32>(),
    ) {
        let bytes = message.encode(tag, ProtocolVersion::Plist);
        let packet = one_packet(&bytes, MAX_PACKET_LEN);
        prop_assert_eq!(packet.tag, tag);
        prop_assert_eq!(packet.message, usbmuxd::message::PLIST);
        prop_assert_eq!(Message::decode(&packet).expect("decode message"), message);
    }

    #[test]
    fn usbmuxd_message_survives_binary_encode_and_decode(
        message in binary_mux_message(),
        tag in any::<u32>(),
    ) {
        let bytes = message.encode(tag, ProtocolVersion::Binary);
        let packet = one_packet(&bytes, MAX_PACKET_LEN);
        prop_assert_eq!(packet.tag, tag);
        prop_assert_eq!(packet.protocol().expect("known version"), ProtocolVersion::Binary);
        let expected = match &message {
            Message::Attached(device) => {
                prop_assert_eq!(packet.payload.len(), 268);
                Message::Attached(binary_view(device))
            }
            other => {
                prop_assert_eq!(packet.payload.len(), 4);
                other.clone()
            }
        };
        prop_assert_eq!(Message::decode(&packet).expect("decode message"), expected);
    }

    #[test]
    fn usbmuxd_plist_only_replies_stay_plists_when_the_client_spoke_binary(
        message in mux_message(),
        tag in any::<u32>(),
    ) {
        let bytes = message.encode(tag, ProtocolVersion::Binary);
        let packet = one_packet(&bytes, MAX_PACKET_LEN);
        let binary_form = matches!(
            message,
            Message::Result(_) | Message::Attached(_) | Message::Detached { .. } | Message::Paired { .. }
        );
        let expected = if binary_form { ProtocolVersion::Binary } else { ProtocolVersion::Plist };
        prop_assert_eq!(packet.protocol().expect("known version"), expected);
        if !binary_form {
            prop_assert_eq!(Message::decode(&packet).expect("decode message"), message);
        }
    }
}

#[test]
fn usbmuxd_lockdown_port_is_sent_as_32498() {
    let bytes = Request::Connect {
        device_id: 1,
        port: 62078,
    }
    .encode(1, &ClientInfo::default());
    let packet = one_packet(&bytes, MAX_REQUEST_LEN);
    let d = plist_util::parse(&packet.payload).expect("plist payload");
    assert_eq!(
        d.as_dictionary().and_then(|d| d.u64_key("PortNumber")),
        Some(32498)
    );
    assert_eq!(
        Request::decode(&packet).expect("decode"),
        Request::Connect {
            device_id: 1,
            port: 62078
        }
    );
}

#[test]
fn usbmuxd_udid_spellings_normalise_to_one() {
    let dashed = "00008101-000B1234567890AB";
    assert_eq!(usbmuxd::normalize_udid(dashed), "00008101000B1234567890AB");
    assert!(usbmuxd::same_udid(dashed, "00008101000b1234567890ab"));
}

proptest! {
    #[test]
    fn usbmuxd_normalised_udid_is_stable_and_dashless(udid in udid()) {
        let once = usbmuxd::normalize_udid(&udid);
        prop_assert!(!once.contains('-'));
        prop_assert_eq!(usbmuxd::normalize_udid(&once), once.clone());
        prop_assert!(usbmuxd::same_udid(&udid, &once));
    }

    #[test]
    fn usbmuxd_address_display_parses_back(
        path in "/[a-z0-9/._-]{0,40}",
        host in prop_oneof!["[a-z][a-z0-9.-]{0,20}", "::1", "fe80::1", "127\\.0\\.0\\.1"],
        port in any::<u16>(),
    ) {
        let unix = usbmuxd::Address::Unix(path.into());
        prop_assert_eq!(usbmuxd::Address::parse(&unix.to_string()), unix);
        let tcp = usbmuxd::Address::Tcp { host, port };
        prop_assert_eq!(usbmuxd::Address::parse(&tcp.to_string()), tcp);
    }
}

// ---------------------------------------------------------------------------------------------
// lockdown and services round trips.

proptest! {
    #[test]
    fn lockdown_request_survives_dict_round_trip(
        request in lockdown_request(),
        label in text(),
    ) {
        let d = request.to_dict(&label);
        prop_assert_eq!(d.str_key("Request"), Some(request.name()));
        prop_assert_eq!(d.str_key("Label"), Some(label.as_str()));
        prop_assert_eq!(lockdown::Request::from_dict(&d).expect("from_dict"), request);
    }

    #[test]
    fn lockdown_request_survives_framing_in_both_formats(
        request in lockdown_request(),
        format in plist_format(),
    ) {
        let d = through_frame_dict(request.to_dict("backupd"), format);
        prop_assert_eq!(lockdown::Request::from_dict(&d).expect("from_dict"), request);
    }

    #[test]
    fn lockdown_encode_is_an_xml_frame(request in lockdown_request()) {
        let bytes = request.encode("backupd");
        prop_assert!(bytes[4..].starts_with(b"<?xml"));
        let (value, used) = lockdown::decode_frame(&bytes, MAX_FRAME_LEN)
            .expect("valid frame")
            .expect("complete frame");
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(value, Value::Dictionary(request.to_dict("backupd")));
    }

    #[test]
    fn lockdown_frame_carries_any_value_in_both_formats(
        value in plist_value(),
        format in plist_format(),
    ) {
        let bytes = lockdown::encode_frame(&value, format);
        let body_len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        prop_assert_eq!(usize::try_from(body_len).expect("fits"), bytes.len() - 4);
        prop_assert_eq!(through_frame(&value, format), value);
    }

    #[test]
    fn lockdown_frame_of_a_value_xml_cannot_carry_arrives_whole(
        value in plist_value(),
        uid in any::<u64>(),
    ) {
        // NSKeyedArchiver UIDs exist only in binary plists; an "XML" frame holding one must still be whole.
        let value = Value::Array(vec![value, Value::Uid(plist::Uid::new(uid))]);
        prop_assert_eq!(through_frame(&value, PlistFormat::Xml), value);
    }

    #[test]
    fn lockdown_device_error_strings_round_trip(s in text()) {
        let parsed = lockdown::DeviceError::parse(&s);
        prop_assert_eq!(parsed.as_str(), s.as_str());
    }

    #[test]
    fn lockdown_error_reply_is_read_as_the_device_error(
        request in lockdown_request(),
        error in text(),
        format in plist_format(),
    ) {
        let parsed = lockdown::DeviceError::parse(&error);
        let reply = through_frame(&lockdown::reply_error(request.name(), &parsed), format);
        let err = lockdown::check_reply(request.name(), &reply).expect_err("an error reply");
        prop_assert_eq!(err.device_error(), Some(&parsed));
    }

    #[test]
    fn lockdown_typed_replies_round_trip(
        session_id in text(),
        enable_ssl in any::<bool>(),
        port in any::<u16>(),
        escrow in option::of(vec(any::<u8>(), 0..48)),
        format in plist_format(),
    ) {
        let mut fields = Dictionary::new();
        fields.insert("SessionID".into(), session_id.clone().into());
        fields.insert("EnableSessionSSL".into(), enable_ssl.into());
        let reply = through_frame(&lockdown::reply_ok("StartSession", fields), format);
        prop_assert_eq!(
            lockdown::parse_start_session(&reply).expect("StartSession"),
            lockdown::SessionStarted { session_id, enable_ssl }
        );

        let mut fields = Dictionary::new();
        fields.insert("Port".into(), u64::from(port).into());
        fields.insert("EnableServiceSSL".into(), enable_ssl.into());
        let reply = through_frame(&lockdown::reply_ok("StartService", fields), format);
        prop_assert_eq!(
            lockdown::parse_start_service(&reply).expect("StartService"),
            lockdown::ServiceStarted { port, enable_ssl }
        );

        let mut fields = Dictionary::new();
        if let Some(bag) = &escrow {
            fields.insert("EscrowBag".into(), Value::Data(bag.clone()));
        }
        let reply = through_frame(&lockdown::reply_ok("Pair", fields), format);
        prop_assert_eq!(lockdown::parse_pair(&reply).expect("Pair"), escrow);
    }

    #[test]
    fn diagnostics_request_survives_dict_and_frame(
        request in diagnostics_request(),
        format in plist_format(),
    ) {
        let d = request.to_dict();
        prop_assert_eq!(diagnostics::Request::from_dict(&d).expect("from_dict"), request.clone());
        let d = through_frame_dict(d, format);
        prop_assert_eq!(diagnostics::Request::from_dict(&d).expect("from_dict"), request);
    }

    #[test]
    fn diagnostics_ioregistry_reply_round_trips(
        entry in option::of(dictionary()),
        format in plist_format(),
    ) {
        let reply = through_frame(&diagnostics::ioregistry_reply(entry.as_ref()), format);
        // An empty entry is how newer devices say "no such entry".
        let expected = entry.filter(|e| !e.is_empty());
        prop_assert_eq!(diagnostics::parse_ioregistry(&reply).expect("Success"), expected);
    }

    #[test]
    fn instproxy_request_survives_dict_and_frame(
        request in instproxy_request(),
        format in plist_format(),
    ) {
        let d = request.to_dict();
        prop_assert_eq!(instproxy::Request::from_dict(&d).expect("from_dict"), request.clone());
        let d = through_frame_dict(d, format);
        prop_assert_eq!(instproxy::Request::from_dict(&d).expect("from_dict"), request);
    }

    #[test]
    fn notification_request_survives_dict_and_frame(
        request in notification_request(),
        format in plist_format(),
    ) {
        let d = request.to_dict();
        prop_assert_eq!(notification::Request::from_dict(&d).expect("from_dict"), request.clone());
        let d = through_frame_dict(d, format);
        prop_assert_eq!(notification::Request::from_dict(&d).expect("from_dict"), request);
    }

    #[test]
    fn notification_event_survives_dict_and_frame(
        event in notification_event(),
        format in plist_format(),
    ) {
        let v = through_frame(&Value::Dictionary(event.to_dict()), format);
        prop_assert_eq!(notification::Event::from_value(&v).expect("from_value"), event);
    }
}

// ---------------------------------------------------------------------------------------------
// Framing robustness: usbmuxd.

/// A valid usbmuxd packet of any kind a muxer or a client sends.
fn valid_packet() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (mux_request(), any::<u32>()).prop_map(|(r, tag)| r.encode(tag, &ClientInfo::default())),
        (mux_message(), any::<u32>()).prop_map(|(m, tag)| m.encode(tag, ProtocolVersion::Plist)),
        (binary_mux_message(), any::<u32>())
            .prop_map(|(m, tag)| m.encode(tag, ProtocolVersion::Binary)),
    ]
}

/// Arbitrary bytes, some of them behind a plausible header so that the payload readers get exercised.
fn hostile_packet_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..64),
        (0u32..10, 0u32..10, any::<u32>(), vec(any::<u8>(), 0..300)).prop_map(
            |(version, message, tag, payload)| {
                let len = u32::try_from(HEADER_LEN + payload.len()).expect("small");
                let mut bytes = header(len, version, message, tag);
                bytes.extend_from_slice(&payload);
                bytes
            }
        ),
        (
            valid_packet(),
            vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
        )
            .prop_map(|(mut bytes, edits)| {
                for (at, byte) in edits {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                bytes
            }),
    ]
}

proptest! {
    #[test]
    fn usbmuxd_decode_never_panics_and_obeys_its_header(
        bytes in hostile_packet_bytes(),
        max in prop_oneof![Just(MAX_PACKET_LEN), Just(MAX_REQUEST_LEN), 0usize..400],
    ) {
        match usbmuxd::decode_packet(&bytes, max) {
            Ok(None) => {
                let declared = bytes
                    .get(..4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
                prop_assert!(bytes.len() < HEADER_LEN || declared.is_some_and(|d| d > bytes.len()));
            }
            Ok(Some((packet, used))) => {
                let declared = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
                prop_assert_eq!(used, declared);
                prop_assert!((HEADER_LEN..=max).contains(&used));
                prop_assert!(used <= bytes.len());
                prop_assert_eq!(&packet.payload[..], &bytes[HEADER_LEN..used]);
                // Neither reader may panic, whatever the payload.
                let _ = Message::decode(&packet);
                let _ = Request::decode(&packet);
            }
            Err(UsbmuxError::BadLength { length, max: m }) => {
                prop_assert_eq!(m, max);
                let length = length as usize;
                prop_assert!(length < HEADER_LEN || length > max);
            }
            Err(other) => prop_assert!(false, "framing raised {other:?}"),
        }
    }

    #[test]
    fn usbmuxd_declared_length_above_the_cap_is_refused_from_the_header_alone(
        max in 16usize..(1 << 20),
        excess in 1u32..,
        rest in vec(any::<u8>(), 12..=12),
    ) {
        let cap = u32::try_from(max).expect("small cap");
        let length = cap.saturating_add(excess);
        prop_assume!(length > cap);
        let mut bytes = length.to_le_bytes().to_vec();
        bytes.extend_from_slice(&rest);
        let refused = matches!(
            usbmuxd::decode_packet(&bytes, max),
            Err(UsbmuxError::BadLength { length: l, .. }) if l == length
        );
        prop_assert!(refused);
    }

    #[test]
    fn usbmuxd_declared_length_below_the_header_is_refused(length in 0u32..16, rest in vec(any::<u8>(), 12..40)) {
        let mut bytes = length.to_le_bytes().to_vec();
        bytes.extend_from_slice(&rest);
        let refused = matches!(
            usbmuxd::decode_packet(&bytes, MAX_PACKET_LEN),
            Err(UsbmuxError::BadLength { .. })
        );
        prop_assert!(refused);
    }

    #[test]
    fn usbmuxd_every_strict_prefix_of_a_packet_needs_more(bytes in valid_packet()) {
        for cut in 0..bytes.len() {
            let got = usbmuxd::decode_packet(&bytes[..cut], MAX_PACKET_LEN);
            prop_assert!(matches!(got, Ok(None)), "prefix of {} bytes gave {:?}", cut, got);
        }
    }

    #[test]
    fn usbmuxd_packet_with_trailing_bytes_reports_its_own_length(
        bytes in valid_packet(),
        trailing in vec(any::<u8>(), 1..64),
    ) {
        let whole = one_packet(&bytes, MAX_PACKET_LEN);
        let mut buf = bytes.clone();
        buf.extend_from_slice(&trailing);
        let (packet, used) = usbmuxd::decode_packet(&buf, MAX_PACKET_LEN)
            .expect("valid header")
            .expect("complete packet");
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(packet, whole);
    }
}

// ---------------------------------------------------------------------------------------------
// Framing robustness: lockdown.

fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        lockdown_request().prop_map(|r| r.encode("backupd")),
        (plist_value(), plist_format()).prop_map(|(v, f)| lockdown::encode_frame(&v, f)),
    ]
}

/// Bodies that reach the plist parsers: random bytes, random bytes behind each magic, and valid frames
/// with a few bytes changed (the length prefix kept, so the damaged body is what gets parsed).
fn hostile_frame_bytes() -> impl Strategy<Value = Vec<u8>> {
    let framed = |body: Vec<u8>| {
        let mut bytes = u32::try_from(body.len())
            .expect("small")
            .to_be_bytes()
            .to_vec();
        bytes.extend_from_slice(&body);
        bytes
    };
    prop_oneof![
        vec(any::<u8>(), 0..64),
        vec(any::<u8>(), 0..300).prop_map(framed),
        vec(any::<u8>(), 0..300).prop_map(move |tail| {
            let mut body = b"bplist00".to_vec();
            body.extend_from_slice(&tail);
            framed(body)
        }),
        vec(any::<u8>(), 0..300).prop_map(move |tail| {
            let mut body = b"<?xml version=\"1.0\"?><plist><dict>".to_vec();
            body.extend_from_slice(&tail);
            framed(body)
        }),
        (
            valid_frame(),
            vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
        )
            .prop_map(|(mut bytes, edits)| {
                for (at, byte) in edits {
                    let i = 4 + at.index(bytes.len() - 4);
                    bytes[i] = byte;
                }
                bytes
            }),
    ]
}

proptest! {
    #[test]
    fn lockdown_decode_never_panics_and_obeys_its_prefix(
        bytes in hostile_frame_bytes(),
        max in prop_oneof![Just(MAX_FRAME_LEN), 0usize..400],
    ) {
        match lockdown::decode_frame(&bytes, max) {
            Ok(None) => {
                let declared = bytes
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
                prop_assert!(declared.is_none_or(|d| d + 4 > bytes.len()));
            }
            Ok(Some((value, used))) => {
                let declared = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
                prop_assert_eq!(used, declared + 4);
                prop_assert!(declared <= max);
                // None of the readers may panic on whatever came out.
                if let Some(d) = value.as_dictionary() {
                    let _ = lockdown::Request::from_dict(d);
                    let _ = diagnostics::Request::from_dict(d);
                    let _ = instproxy::Request::from_dict(d);
                    let _ = notification::Request::from_dict(d);
                }
                let _ = lockdown::parse_query_type(&value);
                let _ = lockdown::parse_get_value(&value);
                let _ = lockdown::parse_start_session(&value);
                let _ = lockdown::parse_start_service(&value);
                let _ = lockdown::parse_pair(&value);
                let _ = diagnostics::parse_ioregistry(&value);
                let _ = instproxy::parse_browse_frame(&value);
                let _ = instproxy::parse_lookup(&value);
                let _ = notification::Event::from_value(&value);
            }
            Err(FrameError::TooLong { len, max: m }) => {
                prop_assert_eq!(m, max);
                prop_assert!(len as usize > max);
            }
            Err(FrameError::Plist(_)) => {
                let declared = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
                prop_assert!(declared + 4 <= bytes.len(), "parsed before the body was complete");
            }
            Err(other) => prop_assert!(false, "framing raised {other:?}"),
        }
    }

    #[test]
    fn lockdown_declared_length_above_the_cap_is_refused_from_the_prefix_alone(
        max in 0usize..(16 << 20),
        excess in 1u32..,
    ) {
        let cap = u32::try_from(max).expect("small cap");
        let length = cap.saturating_add(excess);
        prop_assume!(length > cap);
        let refused = matches!(
            lockdown::decode_frame(&length.to_be_bytes(), max),
            Err(FrameError::TooLong { len, .. }) if len == length
        );
        prop_assert!(refused);
        let refused = matches!(
            lockdown::frame_len(&length.to_be_bytes(), max),
            Err(FrameError::TooLong { .. })
        );
        prop_assert!(refused);
    }

    #[test]
    fn lockdown_every_strict_prefix_of_a_frame_needs_more(bytes in valid_frame()) {
        for cut in 0..bytes.len() {
            let got = lockdown::decode_frame(&bytes[..cut], MAX_FRAME_LEN);
            prop_assert!(matches!(got, Ok(None)), "prefix of {} bytes gave {:?}", cut, got);
        }
    }

    #[test]
    fn lockdown_frame_with_trailing_bytes_reports_its_own_length(
        bytes in valid_frame(),
        trailing in vec(any::<u8>(), 1..64),
    ) {
        let (whole, _) = lockdown::decode_frame(&bytes, MAX_FRAME_LEN)
            .expect("valid frame")
            .expect("complete frame");
        let mut buf = bytes.clone();
        buf.extend_from_slice(&trailing);
        let (value, used) = lockdown::decode_frame(&buf, MAX_FRAME_LEN)
            .expect("valid frame")
            .expect("complete frame");
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(value, whole);
        prop_assert_eq!(
            lockdown::frame_len(&buf, MAX_FRAME_LEN).expect("valid prefix"),
            Some(bytes.len() - 4)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Nesting: a small document can nest deep enough to overflow the stack of whoever drops the value.

/// An XML plist of `depth` nested empty arrays: 15 bytes a level.
fn nested_arrays_xml(depth: usize) -> Vec<u8> {
    let mut xml = b"<?xml version=\"1.0\"?><plist version=\"1.0\">".to_vec();
    xml.extend(std::iter::repeat_n(&b"<array>"[..], depth).flatten());
    xml.extend(std::iter::repeat_n(&b"</array>"[..], depth).flatten());
    xml.extend_from_slice(b"</plist>");
    xml
}

/// A binary plist of `depth` nested arrays, written by hand: object `i` is a one-element array holding object
/// `i + 1`, and the last is empty. 9 bytes a level with 4-byte references and offsets.
fn nested_arrays_bplist(depth: usize) -> Vec<u8> {
    let count = depth.max(1);
    let mut out = b"bplist00".to_vec();
    let mut offsets = Vec::with_capacity(count);
    for i in 0..count {
        offsets.push(u32::try_from(out.len()).expect("small"));
        if i + 1 < count {
            out.push(0xA1);
            out.extend_from_slice(&u32::try_from(i + 1).expect("small").to_be_bytes());
        } else {
            out.push(0xA0);
        }
    }
    let table = u64::try_from(out.len()).expect("small");
    for offset in offsets {
        out.extend_from_slice(&offset.to_be_bytes());
    }
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&[4, 4]);
    out.extend_from_slice(&u64::try_from(count).expect("small").to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes());
    out.extend_from_slice(&table.to_be_bytes());
    out
}

fn frame_of(body: &[u8]) -> Vec<u8> {
    let mut bytes = u32::try_from(body.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    bytes.extend_from_slice(body);
    bytes
}

/// Runs `f` on a thread with a tokio worker's default stack, where the daemon decodes.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic");
}

#[test]
fn hand_built_nested_bplist_is_what_the_plist_crate_reads() {
    let value = plist_util::parse(&nested_arrays_bplist(3)).expect("parse");
    let expected = Value::Array(vec![Value::Array(vec![Value::Array(vec![])])]);
    assert_eq!(value, expected);
}

#[test]
fn lockdown_frame_nested_far_below_the_length_cap_is_refused_on_a_small_stack() {
    on_small_stack(|| {
        // 100 000 levels: 1.5 MB of XML or 0.9 MB of binary, both well under MAX_FRAME_LEN. Before the
        // nesting limit these parsed, then aborted the process with a stack overflow when dropped.
        for body in [nested_arrays_xml(100_000), nested_arrays_bplist(100_000)] {
            let bytes = frame_of(&body);
            assert!(bytes.len() < MAX_FRAME_LEN);
            assert!(matches!(
                lockdown::decode_frame(&bytes, MAX_FRAME_LEN),
                Err(FrameError::Plist(_))
            ));
        }
    });
}

#[test]
fn usbmuxd_packet_nested_far_below_the_length_cap_is_refused_on_a_small_stack() {
    on_small_stack(|| {
        let body = nested_arrays_xml(60_000);
        let mut bytes = header(
            u32::try_from(HEADER_LEN + body.len()).expect("small"),
            1,
            usbmuxd::message::PLIST,
            0,
        );
        bytes.extend_from_slice(&body);
        let packet = one_packet(&bytes, MAX_PACKET_LEN);
        assert!(matches!(
            Message::decode(&packet),
            Err(UsbmuxError::Plist(_))
        ));
        assert!(matches!(
            Request::decode(&packet),
            Err(UsbmuxError::Plist(_))
        ));
    });
}

proptest! {
    #[test]
    fn lockdown_nesting_is_accepted_up_to_the_limit_and_refused_past_it(
        depth in prop_oneof![1..=plist_util::MAX_DEPTH, plist_util::MAX_DEPTH + 1..plist_util::MAX_DEPTH + 64],
        binary in any::<bool>(),
    ) {
        let body = if binary { nested_arrays_bplist(depth) } else { nested_arrays_xml(depth) };
        let got = lockdown::decode_frame(&frame_of(&body), MAX_FRAME_LEN);
        if depth <= plist_util::MAX_DEPTH {
            prop_assert!(matches!(got, Ok(Some(_))), "{} levels refused", depth);
        } else {
            prop_assert!(matches!(got, Err(FrameError::Plist(_))), "{} levels accepted", depth);
        }
    }
}

//! Golden tests: bytes and plists captured from real iPhones and from Apple's usbmuxd, read by our decoders.
//!
//! The captures live in `tests/data/real/` (copied from the shared fixtures; its README.md and
//! `frames/SOURCE.md` name the public sources). `frames/*.bin` are raw socket reads. Every text or plist
//! file starts with a `# source:` comment line, which [`fixture_text`] strips before anything is parsed.

use std::fs;
use std::path::{Path, PathBuf};

use backupd_proto::lockdown::{self, MAX_FRAME_LEN};
use backupd_proto::plist_util::{self, DictExt};
use backupd_proto::services::diagnostics;
use backupd_proto::services::instproxy::{self, App, BrowsePage};
use backupd_proto::usbmuxd::{
    self, ConnectionType, Device, MAX_PACKET_LEN, Message, Packet, ProtocolVersion, ResultCode,
};
use plist::{Dictionary, Value};

// ---------------------------------------------------------------------------------------------
// Reading the fixtures.

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/real")
}

fn frame_bytes(name: &str) -> Vec<u8> {
    let path = data_dir().join("frames").join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The text of a fixture without its first line, which must be the `# source:` comment.
fn fixture_text(name: &str) -> String {
    let path = data_dir().join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    strip_source_line(&text)
        .unwrap_or_else(|| panic!("{name} does not start with a `# source:` line"))
        .to_owned()
}

fn strip_source_line(text: &str) -> Option<&str> {
    let (first, rest) = text.split_once('\n')?;
    first.starts_with("# source:").then_some(rest)
}

/// A plist fixture, parsed by the crate's own tolerant parser.
fn fixture_plist(name: &str) -> Value {
    let text = fixture_text(name);
    plist_util::parse(text.as_bytes()).unwrap_or_else(|e| panic!("parse {name}: {e}"))
}

fn as_dict<'a>(v: &'a Value, what: &str) -> &'a Dictionary {
    v.as_dictionary()
        .unwrap_or_else(|| panic!("{what} is not a dictionary: {v:?}"))
}

/// Decodes one usbmuxd packet that must be complete at the front of `bytes`.
fn packet_at_front(bytes: &[u8]) -> (Packet, usize) {
    usbmuxd::decode_packet(bytes, MAX_PACKET_LEN)
        .expect("a valid usbmuxd header")
        .expect("a complete usbmuxd packet")
}

/// Decodes every lockdown frame of `bytes`, which must hold whole frames and nothing else.
fn all_frames(bytes: &[u8]) -> Vec<Value> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (value, used) = lockdown::decode_frame(rest, MAX_FRAME_LEN)
            .expect("a valid lockdown frame")
            .expect("a complete lockdown frame");
        assert!(used > 4, "a frame uses its prefix and a body");
        frames.push(value);
        rest = &rest[used..];
    }
    frames
}

/// The plist payload of a usbmuxd fixture, wrapped in the packet Apple's daemon sent it in.
fn plist_packet(name: &str, tag: u32) -> Packet {
    Packet {
        version: 1,
        message: usbmuxd::message::PLIST,
        tag,
        payload: fixture_text(name).into_bytes(),
    }
}

/// The iPhone in the appium captures (iOS 12.3.1) as the frames show it.
fn appium_iphone(device_id: u32, product_id: u16) -> Device {
    Device {
        device_id,
        udid: "63c3d055c4f83e960e5980fa68be0fbf7d4ba74c".into(),
        product_id: Some(product_id),
        location_id: Some(339_881_984),
        connection_speed: Some(480_000_000),
        connection_type: ConnectionType::Usb,
    }
}

/// The WebDriverAgent test runner, the one app the captured Browse lists.
fn webdriveragent_runner() -> App {
    App {
        bundle_id: "com.apple.test.WebDriverAgentRunner-Runner".into(),
        name: Some("WebDriverAgentRunner-Runner".into()),
        version: Some("1.0".into()),
        // Developer entitlements only: application-identifier, team, get-task-allow, keychain groups.
        uses_icloud: Some(false),
    }
}

const DEVICE_TIME: f64 = 1_561_317_733.062_099;

// ---------------------------------------------------------------------------------------------
// Raw frames: usbmuxd.

#[test]
fn usbmuxd_listdevices_reply_from_real_iphone_decodes() {
    let bytes = frame_bytes("usbmuxlistdevicemessage.bin");
    let (packet, used) = packet_at_front(&bytes);
    assert_eq!(used, bytes.len());
    assert_eq!(used, 783);
    assert_eq!(
        (packet.version, packet.message, packet.tag),
        (1, usbmuxd::message::PLIST, 0)
    );
    assert_eq!(
        packet.protocol().expect("known version"),
        ProtocolVersion::Plist
    );
    let message = Message::decode(&packet).expect("decode ListDevices reply");
    assert_eq!(message, Message::DeviceList(vec![appium_iphone(1, 4776)]));
}

#[test]
fn usbmuxd_listdevices_reply_is_what_our_muxer_would_send() {
    let bytes = frame_bytes("usbmuxlistdevicemessage.bin");
    let ours = Message::DeviceList(vec![appium_iphone(1, 4776)]).encode(0, ProtocolVersion::Plist);
    assert_same_plist_packet(&ours, &bytes);
}

/// Compares two plist packets header field by header field and the XML text up to trailing white space.
///
/// Apple's daemon ends its XML with a newline after `</plist>` and the plist crate does not, so the
/// length fields differ by that one byte; key order, indentation and every value must match.
fn assert_same_plist_packet(ours: &[u8], theirs: &[u8]) {
    let (ours, _) = packet_at_front(ours);
    let (theirs, _) = packet_at_front(theirs);
    assert_eq!(
        (ours.version, ours.message, ours.tag),
        (theirs.version, theirs.message, theirs.tag)
    );
    assert_eq!(
        String::from_utf8_lossy(ours.payload.trim_ascii_end()),
        String::from_utf8_lossy(theirs.payload.trim_ascii_end())
    );
}

#[test]
fn usbmuxd_listdevices_second_capture_uses_the_outer_device_id() {
    // The second capture differs from the first in its tag (1), ProductID (4777) and the top-level DeviceID
    // (2), while Properties still says DeviceID 1. The decoder takes the top-level one, as pymobiledevice3
    // does; libusbmuxd reads the one inside Properties. Real daemons write the same number in both.
    let bytes = frame_bytes("usbmuxlistdevicemessage2.bin");
    let (packet, used) = packet_at_front(&bytes);
    assert_eq!(used, bytes.len());
    assert_eq!(packet.tag, 1);
    let message = Message::decode(&packet).expect("decode ListDevices reply");
    assert_eq!(message, Message::DeviceList(vec![appium_iphone(2, 4777)]));
}

#[test]
fn usbmuxd_connect_result_ok_from_real_daemon_decodes() {
    let bytes = frame_bytes("usbmuxconnectmessage.bin");
    let (packet, used) = packet_at_front(&bytes);
    assert_eq!(used, bytes.len());
    assert_eq!(used, 294);
    assert_eq!(
        (packet.version, packet.message, packet.tag),
        (1, usbmuxd::message::PLIST, 1)
    );
    let message = Message::decode(&packet).expect("decode Result");
    assert_eq!(message, Message::Result(ResultCode::Ok));
    // Our muxer's answer to a plist Connect is the same document.
    assert_same_plist_packet(
        &Message::Result(ResultCode::Ok).encode(1, ProtocolVersion::Plist),
        &bytes,
    );
}

#[test]
fn usbmuxd_connect_result_then_lockdown_frame_on_the_same_read_decodes() {
    // After Result 0 the socket is the tunnel: the first read holds the usbmuxd packet and the device's
    // first lockdown frame back to back, and the packet decoder must stop exactly at its end.
    let bytes = frame_bytes("usbmuxconnectandlockdown.bin");
    let (packet, used) = packet_at_front(&bytes);
    assert_eq!(used, 294);
    assert!(bytes.len() > used, "lockdown bytes follow the packet");
    assert_eq!(packet.tag, 1);
    assert_eq!(
        Message::decode(&packet).expect("decode Result"),
        Message::Result(ResultCode::Ok)
    );

    let tunnel = &bytes[used..];
    assert_eq!(&tunnel[..4], &[0, 0, 0x01, 0x55], "big-endian length 341");
    let (reply, frame_used) = lockdown::decode_frame(tunnel, MAX_FRAME_LEN)
        .expect("valid frame")
        .expect("complete frame");
    assert_eq!(frame_used, tunnel.len());
    assert_eq!(frame_used, 4 + 341);
    let d = as_dict(&reply, "GetValue reply");
    assert_eq!(d.str_key("Key"), Some("TimeIntervalSince1970"));
    let value = lockdown::parse_get_value(&reply).expect("GetValue succeeded");
    assert_eq!(value, Some(Value::Real(DEVICE_TIME)));
}

// ---------------------------------------------------------------------------------------------
// Raw frames: lockdown and installation_proxy.

#[test]
fn lockdown_querytype_reply_from_real_iphone_decodes() {
    let bytes = frame_bytes("lockdownquerytypemessage.bin");
    let frames = all_frames(&bytes);
    assert_eq!(frames.len(), 1);
    let kind = lockdown::parse_query_type(&frames[0]).expect("QueryType reply");
    assert_eq!(kind, "com.apple.mobile.lockdown");
    assert_eq!(kind, lockdown::LOCKDOWN_TYPE);
    // The simulator's reply builder gives the same dictionary.
    let mut fields = Dictionary::new();
    fields.insert("Type".into(), lockdown::LOCKDOWN_TYPE.into());
    assert_eq!(frames[0], lockdown::reply_ok("QueryType", fields));
}

#[test]
fn lockdown_getvalue_productversion_reply_from_real_iphone_decodes() {
    let bytes = frame_bytes("lockdowngetvaluemessage.bin");
    let frames = all_frames(&bytes);
    assert_eq!(frames.len(), 1);
    let value = lockdown::parse_get_value(&frames[0]).expect("GetValue reply");
    assert_eq!(value, Some(Value::String("12.3.1".into())));
    let d = as_dict(&frames[0], "GetValue reply");
    assert_eq!(d.str_key("Key"), Some("ProductVersion"));
    // iOS 12 sends no `Result` key on success, only the echo.
    assert_eq!(d.get("Result"), None);
    assert_eq!(d.len(), 3);
}

#[test]
fn lockdown_getvalue_timeintervalsince1970_reply_from_real_iphone_decodes() {
    let bytes = frame_bytes("lockdowngettimemessage.bin");
    let frames = all_frames(&bytes);
    assert_eq!(frames.len(), 1);
    let value = lockdown::parse_get_value(&frames[0]).expect("GetValue reply");
    assert_eq!(value, Some(Value::Real(DEVICE_TIME)));
    // A reply to another request must not be taken for this one.
    let err =
        lockdown::parse_query_type(&frames[0]).expect_err("GetValue is not a QueryType reply");
    assert!(matches!(
        err,
        lockdown::LockdownError::WrongReply { ref got, .. } if got == "GetValue"
    ));
}

#[test]
fn installation_proxy_browse_capture_holds_a_page_then_complete() {
    // SOURCE.md calls this "one Browse status frame", but the read holds two frames: a binary-plist page
    // with one app (2359 bytes), then a binary-plist `Status: Complete` (62 bytes).
    let bytes = frame_bytes("installationproxylistmessage.bin");
    let frames = all_frames(&bytes);
    assert_eq!(frames.len(), 2);
    assert_eq!(&bytes[..4], &[0, 0, 0x09, 0x37]);
    assert_eq!(&bytes[4..12], b"bplist00");
    assert_eq!(&bytes[4 + 2359 + 4..4 + 2359 + 12], b"bplist00");

    let page = as_dict(&frames[0], "Browse page");
    assert_eq!(page.str_key("Status"), Some("BrowsingApplications"));
    assert_eq!(page.u64_key("CurrentIndex"), Some(0));
    assert_eq!(page.u64_key("CurrentAmount"), Some(1));
    assert_eq!(page.get("Total"), None, "iOS 12 sends no Total");
    assert_eq!(
        instproxy::parse_browse_frame(&frames[0]).expect("Browse page"),
        BrowsePage::Apps(vec![webdriveragent_runner()])
    );
    assert_eq!(
        instproxy::parse_browse_frame(&frames[1]).expect("Browse end"),
        BrowsePage::Complete
    );
}

#[test]
fn every_frame_capture_decodes_completely_and_not_before_its_last_byte() {
    let mut seen = 0;
    for entry in fs::read_dir(data_dir().join("frames")).expect("list frames/") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_owned();
        if !name.ends_with(".bin") {
            continue;
        }
        seen += 1;
        let bytes = fs::read(&path).expect("read frame");
        // usbmuxd replies carry the 16-byte LE header; anything after the packet is tunnel traffic.
        let lockdown_part = if name.starts_with("usbmux") {
            let (packet, used) = packet_at_front(&bytes);
            Message::decode(&packet).unwrap_or_else(|e| panic!("{name}: {e}"));
            for cut in 0..used {
                assert!(
                    usbmuxd::decode_packet(&bytes[..cut], MAX_PACKET_LEN)
                        .expect("a prefix is never an error")
                        .is_none(),
                    "{name}: a {cut}-byte prefix was taken for a whole packet"
                );
            }
            &bytes[used..]
        } else {
            &bytes[..]
        };
        let mut rest = lockdown_part;
        while !rest.is_empty() {
            let (_, used) = lockdown::decode_frame(rest, MAX_FRAME_LEN)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .unwrap_or_else(|| panic!("{name}: truncated frame"));
            for cut in 0..used {
                assert!(
                    lockdown::decode_frame(&rest[..cut], MAX_FRAME_LEN)
                        .expect("a prefix is never an error")
                        .is_none(),
                    "{name}: a {cut}-byte prefix was taken for a whole frame"
                );
            }
            rest = &rest[used..];
        }
    }
    assert_eq!(seen, 8, "every capture in frames/ was checked");
}

// ---------------------------------------------------------------------------------------------
// Plist fixtures: usbmuxd.

#[test]
fn usbmuxd_listdevices_reply_plist_decodes_through_message() {
    let message =
        Message::decode(&plist_packet("usbmuxd-listdevices-reply-usb.plist", 0)).expect("decode");
    let mut expected = appium_iphone(1, 4776);
    // The plist copy has an anonymised SerialNumber.
    expected.udid = "e979100b473bd674db9701db4650fe648be3d77d".into();
    assert_eq!(message, Message::DeviceList(vec![expected]));
}

#[test]
fn usbmuxd_connect_result_ok_plist_decodes_through_message() {
    let message =
        Message::decode(&plist_packet("usbmuxd-connect-result-ok.plist", 1)).expect("decode");
    assert_eq!(message, Message::Result(ResultCode::Ok));
}

#[test]
fn usbmuxd_readpairrecord_record_from_apple_host_has_every_record_key() {
    // Apple's daemon returned this record as a binary plist inside `PairRecordData`; the fixture is it
    // re-encoded as XML with keys and the escrow bag redacted.
    let record = fixture_plist("usbmuxd-readpairrecord-pairrecorddata-decoded.plist");
    let d = as_dict(&record, "pair record");
    for key in [
        "DeviceCertificate",
        "HostCertificate",
        "HostPrivateKey",
        "RootCertificate",
        "RootPrivateKey",
    ] {
        let pem = d.data_key(key).unwrap_or_else(|| panic!("{key} is data"));
        assert!(pem.starts_with(b"-----BEGIN "), "{key} is PEM");
    }
    assert_eq!(d.data_key("EscrowBag").map(<[u8]>::len), Some(32));
    assert_eq!(
        d.str_key("SystemBUID"),
        Some("306408A9-D543-281B-DF18-2EFDD6290815")
    );
    assert_eq!(d.str_key("WiFiMACAddress"), Some("09:84:c0:ed:70:24"));
    assert!(d.str_key("HostID").is_some_and(|id| id.len() == 36));

    // Carried as `PairRecordData` in binary form, as Apple's daemon sent it, the record comes back intact.
    let data = plist_util::to_binary(&record);
    let packet = Message::PairRecordData(data.clone()).encode(0, ProtocolVersion::Plist);
    let (packet, _) = packet_at_front(&packet);
    let Message::PairRecordData(back) = Message::decode(&packet).expect("decode") else {
        panic!("not a PairRecordData reply");
    };
    assert_eq!(back, data);
    assert_eq!(plist_util::parse(&back).expect("parse record"), record);
}

// ---------------------------------------------------------------------------------------------
// Plist fixtures: lockdown.

#[test]
fn lockdown_querytype_reply_plist_decodes() {
    let reply = fixture_plist("lockdown-querytype-reply.plist");
    assert_eq!(
        lockdown::parse_query_type(&reply).expect("QueryType"),
        "com.apple.mobile.lockdown"
    );
}

#[test]
fn lockdown_getvalue_productversion_reply_plist_decodes() {
    let reply = fixture_plist("lockdown-getvalue-productversion-reply.plist");
    assert_eq!(
        lockdown::parse_get_value(&reply).expect("GetValue"),
        Some(Value::String("12.3.1".into()))
    );
    // The plist is the body of the captured frame.
    assert_eq!(
        all_frames(&frame_bytes("lockdowngetvaluemessage.bin")),
        vec![reply]
    );
}

#[test]
fn lockdown_getvalue_timeintervalsince1970_reply_plist_decodes() {
    let reply = fixture_plist("lockdown-getvalue-timeintervalsince1970-reply.plist");
    assert_eq!(
        lockdown::parse_get_value(&reply).expect("GetValue"),
        Some(Value::Real(DEVICE_TIME))
    );
    assert_eq!(
        all_frames(&frame_bytes("lockdowngettimemessage.bin")),
        vec![reply]
    );
}

#[test]
fn lockdown_startsession_request_from_ideviceinfo_decodes_and_reencodes() {
    let request = fixture_plist("lockdown-startsession-request-issue510.plist");
    let d = as_dict(&request, "StartSession request");
    let parsed = lockdown::Request::from_dict(d).expect("StartSession request");
    assert_eq!(
        parsed,
        lockdown::Request::StartSession {
            host_id: "2B38D896-C3D2-FFEE-6A17-995CDEF45320".into(),
            system_buid: "E36852D8-7543-6FC5-B958-D07A987989A5".into(),
        }
    );
    // Our encoder, given ideviceinfo's label, writes the same dictionary libimobiledevice sent.
    assert_eq!(&parsed.to_dict("ideviceinfo"), d);
}

// ---------------------------------------------------------------------------------------------
// Plist fixtures: diagnostics_relay and installation_proxy.

/// Rebuilds the wire reply around what `idevicediagnostics` printed.
///
/// libimobiledevice's diagnostics_relay client returns only the `Diagnostics` sub-dictionary, and only after
/// checking `Status == "Success"`, so a printed dump implies a reply of this shape.
fn diagnostics_reply_around(printed: Value) -> Value {
    let mut d = Dictionary::new();
    d.insert("Diagnostics".into(), printed);
    d.insert("Status".into(), "Success".into());
    Value::Dictionary(d)
}

#[test]
fn diagnostics_relay_empty_ioregistry_reply_reads_as_no_entry() {
    let printed = fixture_plist("diagnostics-relay-ioregistry-empty-issue689.plist");
    let entry = as_dict(&printed, "printed Diagnostics")
        .dict_key("IORegistry")
        .expect("IORegistry dict");
    assert!(entry.is_empty());
    let reply = diagnostics_reply_around(printed);
    assert_eq!(
        diagnostics::parse_ioregistry(&reply).expect("Success"),
        None
    );
    // It is also what the simulator sends for a missing entry.
    assert_eq!(reply, diagnostics::ioregistry_reply(None));
}

#[test]
fn diagnostics_relay_printed_dump_alone_is_not_a_reply() {
    // Without the `Status` the client checked, the printed sub-dictionary must not pass for success.
    let printed = fixture_plist("diagnostics-relay-ioregistry-empty-issue689.plist");
    assert!(matches!(
        diagnostics::parse_ioregistry(&printed),
        Err(backupd_proto::services::ServiceError::Malformed { what: "Status", .. })
    ));
}

#[test]
fn diagnostics_relay_wifi_report_says_inactive() {
    let printed = fixture_plist("diagnostics-relay-wifi-reply-issue1209.plist");
    let wifi = as_dict(&printed, "printed Diagnostics")
        .dict_key("WiFi")
        .expect("WiFi dict");
    assert_eq!(wifi.str_key("Active"), Some("NO"));
    assert_eq!(wifi.str_key("Status"), Some("Success"));
}

#[test]
fn diagnostics_relay_mobilegestalt_reply_on_ios_17_4_is_deprecated() {
    let printed = fixture_plist("diagnostics-relay-mobilegestalt-deprecated-issue1542.plist");
    let gestalt = as_dict(&printed, "printed Diagnostics")
        .dict_key("MobileGestalt")
        .expect("MobileGestalt dict");
    assert_eq!(gestalt.str_key("Status"), Some("MobileGestaltDeprecated"));
    assert_eq!(gestalt.len(), 1, "no key is answered");
}

#[test]
fn diagnostics_relay_gasgauge_fragment_parses_with_fixed_full_charge_capacity() {
    // Only the GasGauge sub-dictionary was quoted: a bare `<dict>` without XML declaration or `<plist>`.
    let gauge = fixture_plist("diagnostics-relay-gasgauge-partial-issue1068.plist");
    let gauge = as_dict(&gauge, "GasGauge");
    assert_eq!(gauge.u64_key("CycleCount"), Some(425));
    assert_eq!(gauge.u64_key("DesignCapacity"), Some(1751));
    assert_eq!(gauge.u64_key("FullChargeCapacity"), Some(100));
    assert_eq!(gauge.str_key("Status"), Some("Success"));
}

/// Cuts a truncated XML excerpt at `marker` and closes the elements still open there.
fn close_truncated_xml(text: &str, marker: &str) -> String {
    let cut = text.find(marker).expect("truncation marker");
    let head = &text[..cut];
    let mut open: Vec<&str> = Vec::new();
    let mut rest = head;
    while let Some(start) = rest.find('<') {
        let end = rest[start..]
            .find('>')
            .expect("tags are whole before the marker")
            + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name), "well nested before the marker");
        } else {
            open.push(tag.split_whitespace().next().expect("tag name"));
        }
    }
    let mut out = head.to_owned();
    for name in open.iter().rev() {
        // A dictionary cut right after a key would be invalid; this excerpt ends between values.
        out.push_str(&format!("</{name}>\n"));
    }
    out
}

#[test]
fn diagnostics_relay_applesmartbattery_excerpt_is_rejected_whole_and_reads_once_closed() {
    const NAME: &str = "diagnostics-relay-ioregistry-applesmartbattery-partial-whatbattery1.plist";
    let text = fixture_text(NAME);
    // The excerpt ends mid-document: the parser must refuse it, not panic or guess.
    assert!(plist_util::parse(text.as_bytes()).is_err());

    let closed = close_truncated_xml(&text, "[...truncated");
    let reply = plist_util::parse(closed.as_bytes()).expect("closed excerpt parses");
    let entry = as_dict(&reply, "reply")
        .dict_key("Diagnostics")
        .and_then(|d| d.dict_key("IORegistry"))
        .expect("Diagnostics.IORegistry");
    // The battery discharges: a negative amperage, which is signed and must not read as unsigned.
    assert_eq!(entry.i64_key("Amperage"), Some(-1274));
    assert_eq!(entry.u64_key("Amperage"), None);
    let adapter = entry.dict_key("AdapterDetails").expect("AdapterDetails");
    assert_eq!(adapter.u64_key("AdapterVoltage"), Some(5000));
    assert_eq!(adapter.bool_key("IsWireless"), Some(false));
}

#[test]
fn installation_proxy_browse_reply_plist_decodes_as_the_captured_page() {
    let reply = fixture_plist("installation-proxy-browse-reply.plist");
    assert_eq!(
        instproxy::parse_browse_frame(&reply).expect("Browse page"),
        BrowsePage::Apps(vec![webdriveragent_runner()])
    );
    // The XML copy and the binary frame agree on everything but the anonymised SignerIdentity.
    let captured = all_frames(&frame_bytes("installationproxylistmessage.bin"));
    let strip_signer = |v: &Value| {
        let mut v = v.clone();
        let page = v.as_dictionary_mut().expect("page dict");
        let list = page
            .get_mut("CurrentList")
            .and_then(Value::as_array_mut)
            .expect("list");
        for app in list {
            app.as_dictionary_mut()
                .expect("app dict")
                .remove("SignerIdentity");
        }
        v
    };
    assert_eq!(strip_signer(&reply), strip_signer(&captured[0]));
    assert_ne!(reply, captured[0], "the signer was anonymised");
}

// ---------------------------------------------------------------------------------------------
// Plist fixtures of services backupd does not decode yet: they must at least parse.

#[test]
fn mobilebackup2_fixtures_parse_as_devicelink_arrays() {
    let cases: [(&str, &[&str]); 4] = [
        (
            "mobilebackup2-backup-request-and-208-reply-issue1380.plist",
            &["DLMessageProcessMessage", "DLMessageProcessMessage"],
        ),
        (
            "mobilebackup2-backup-request-issue153.plist",
            &["DLMessageProcessMessage"],
        ),
        (
            "mobilebackup2-dl-downloadfiles-empty-issue112.plist",
            &["DLMessageDownloadFiles"],
        ),
        (
            "mobilebackup2-dl-versionexchange-device-issue1379.plist",
            &["DLMessageVersionExchange"],
        ),
    ];
    for (name, kinds) in cases {
        let text = fixture_text(name);
        // One file holds a request and its reply, separated by a `---` line.
        let docs: Vec<&str> = text.split("\n---\n").collect();
        assert_eq!(docs.len(), kinds.len(), "{name}");
        for (doc, kind) in docs.iter().zip(kinds) {
            let value = plist_util::parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let array = value
                .as_array()
                .unwrap_or_else(|| panic!("{name}: not an array"));
            assert_eq!(
                array.first().and_then(Value::as_string),
                Some(*kind),
                "{name}"
            );
        }
    }
}

#[test]
fn mobilebackup2_devicelink_values_are_as_documented() {
    let version = fixture_plist("mobilebackup2-dl-versionexchange-device-issue1379.plist");
    let version = version.as_array().expect("array");
    assert_eq!(
        version.get(1).and_then(Value::as_unsigned_integer),
        Some(400)
    );
    assert_eq!(version.get(2).and_then(Value::as_unsigned_integer), Some(0));

    let text = fixture_text("mobilebackup2-backup-request-and-208-reply-issue1380.plist");
    let (_, reply) = text.split_once("\n---\n").expect("two documents");
    let reply = plist_util::parse(reply.as_bytes()).expect("parse reply");
    let body = reply
        .as_array()
        .and_then(|a| a.get(1))
        .and_then(Value::as_dictionary)
        .expect("reply body");
    assert_eq!(body.u64_key("ErrorCode"), Some(208));
    assert_eq!(body.str_key("MessageName"), Some("Response"));
    assert_eq!(
        body.str_key("ErrorDescription"),
        Some("Device locked (MBErrorDomain/208)")
    );

    let download = fixture_plist("mobilebackup2-dl-downloadfiles-empty-issue112.plist");
    let paths = download
        .as_array()
        .and_then(|a| a.get(1))
        .and_then(Value::as_array);
    assert_eq!(paths.map(Vec::len), Some(0), "an empty path list");
}

// ---------------------------------------------------------------------------------------------
// The fixture set itself.

#[test]
fn every_text_and_plist_fixture_names_its_source_on_line_one() {
    let mut checked = 0;
    for entry in fs::read_dir(data_dir()).expect("list data/real") {
        let path = entry.expect("dir entry").path();
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if ext != "plist" && ext != "txt" {
            continue;
        }
        let text = fs::read_to_string(&path).expect("utf-8 fixture");
        assert!(
            strip_source_line(&text).is_some(),
            "{} lacks its `# source:` line",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} fixtures found");
}

#[test]
fn every_plist_fixture_is_covered_by_a_golden_test() {
    // Keep in step with the tests above: a new capture needs a test that says what it shows.
    const COVERED: &[&str] = &[
        "diagnostics-relay-gasgauge-partial-issue1068.plist",
        "diagnostics-relay-ioregistry-applesmartbattery-partial-whatbattery1.plist",
        "diagnostics-relay-ioregistry-empty-issue689.plist",
        "diagnostics-relay-mobilegestalt-deprecated-issue1542.plist",
        "diagnostics-relay-wifi-reply-issue1209.plist",
        "installation-proxy-browse-reply.plist",
        "lockdown-getvalue-productversion-reply.plist",
        "lockdown-getvalue-timeintervalsince1970-reply.plist",
        "lockdown-querytype-reply.plist",
        "lockdown-startsession-request-issue510.plist",
        "mobilebackup2-backup-request-and-208-reply-issue1380.plist",
        "mobilebackup2-backup-request-issue153.plist",
        "mobilebackup2-dl-downloadfiles-empty-issue112.plist",
        "mobilebackup2-dl-versionexchange-device-issue1379.plist",
        "usbmuxd-connect-result-ok.plist",
        "usbmuxd-listdevices-reply-usb.plist",
        "usbmuxd-readpairrecord-pairrecorddata-decoded.plist",
    ];
    let mut found: Vec<String> = fs::read_dir(data_dir())
        .expect("list data/real")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".plist"))
        .collect();
    found.sort();
    assert_eq!(found, COVERED);
}

//! Pair records, pair certificate generation and the TLS configurations built from them.
//!
//! TLS handshakes run in memory: bytes are pumped between a `rustls::ClientConnection` and a
//! `rustls::ServerConnection` without sockets.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backupd_proto::pair::{
    DeviceKey, PAIR_CERTIFICATE_VALIDITY, PairError, PairRecord, PairRequestRecord,
    generate_pair_record,
};
use backupd_proto::tls::{
    DeviceIdentity, DevicePinning, TlsError, device_server_config, device_server_name,
    host_client_config,
};
use proptest::prelude::*;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConnection, Connection, DigitallySignedStruct, ProtocolVersion,
    ServerConnection, SignatureScheme,
};
use sha1::{Digest, Sha1};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Version};
use x509_parser::public_key::PublicKey;

// ---------------------------------------------------------------------------------------------
// Shared keys: RSA key generation is slow, so each test binary generates these once.

/// The simulated phone's key, and a second phone's.
fn device_key() -> &'static DeviceKey {
    static KEY: OnceLock<DeviceKey> = OnceLock::new();
    KEY.get_or_init(|| DeviceKey::generate().expect("generate device key"))
}

fn other_device_key() -> &'static DeviceKey {
    static KEY: OnceLock<DeviceKey> = OnceLock::new();
    KEY.get_or_init(|| DeviceKey::generate().expect("generate second device key"))
}

/// 2023-11-14T22:13:20.75Z: a fraction of a second, which certificates must drop.
fn pairing_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_750)
}

const HOST_ID: &str = "5E1C0F4B-6A84-4F5B-9C1E-2D9B8B3C7A10";
const SYSTEM_BUID: &str = "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0";

/// A record for [`device_key`], as a host generates it.
fn record() -> &'static PairRecord {
    static RECORD: OnceLock<PairRecord> = OnceLock::new();
    RECORD.get_or_init(|| {
        generate_pair_record(
            device_key().public_key_pkcs1_pem().as_bytes(),
            HOST_ID.to_owned(),
            SYSTEM_BUID.to_owned(),
            pairing_time(),
        )
        .expect("generate pair record")
    })
}

/// A record another host made for the same phone.
fn other_host_record() -> &'static PairRecord {
    static RECORD: OnceLock<PairRecord> = OnceLock::new();
    RECORD.get_or_init(|| {
        generate_pair_record(
            device_key().public_key_pkcs1_pem().as_bytes(),
            "OTHER-HOST".to_owned(),
            SYSTEM_BUID.to_owned(),
            pairing_time(),
        )
        .expect("generate second pair record")
    })
}

/// A record some host made for the second phone.
fn other_device_record() -> &'static PairRecord {
    static RECORD: OnceLock<PairRecord> = OnceLock::new();
    RECORD.get_or_init(|| {
        generate_pair_record(
            other_device_key().public_key_pkcs1_pem().as_bytes(),
            HOST_ID.to_owned(),
            SYSTEM_BUID.to_owned(),
            pairing_time(),
        )
        .expect("generate record for second device")
    })
}

fn fixture_xml() -> &'static str {
    // Line 1 of the shared fixture names its source and is not part of the plist.
    let (first_line, plist) = REAL_RECORD_FIXTURE
        .split_once('\n')
        .expect("fixture has a source line");
    assert!(first_line.starts_with("# source:"));
    plist
}

fn fixture_record() -> PairRecord {
    PairRecord::from_plist(fixture_xml().as_bytes()).expect("real pair record parses")
}

// ---------------------------------------------------------------------------------------------
// Parsing and writing pair records.

#[test]
fn real_record_fields_come_out_right() {
    let record = fixture_record();
    assert_eq!(record.host_id, "A22BCE95-8700-8D98-4605-8E1CE8B1C343");
    assert_eq!(record.system_buid, "306408A9-D543-281B-DF18-2EFDD6290815");
    assert_eq!(
        record.wifi_mac_address.as_deref(),
        Some("09:84:c0:ed:70:24")
    );
    assert_eq!(record.escrow_bag.as_deref(), Some(&[0u8; 32][..]));
    assert_eq!(record.udid, None);
    for pem in [
        &record.device_certificate,
        &record.host_certificate,
        &record.root_certificate,
    ] {
        assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----\n"));
    }
    for pem in [&record.host_private_key, &record.root_private_key] {
        assert!(pem.starts_with(b"-----BEGIN PRIVATE KEY-----\n"));
    }

    // The certificates are the real ones from an Apple host: serial 0, SHA-1, empty names.
    for (der, name) in [
        (record.device_certificate_der(), "device"),
        (record.host_certificate_der(), "host"),
        (record.root_certificate_der(), "root"),
    ] {
        let der = der.unwrap_or_else(|e| panic!("{name} certificate decodes: {e}"));
        let (rest, cert) = X509Certificate::from_der(&der).expect("x509 parses");
        assert!(rest.is_empty());
        assert_eq!(cert.raw_serial(), &[0], "{name}");
        assert_eq!(cert.subject().as_raw(), &[0x30, 0x00], "{name}");
        assert_eq!(
            cert.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.113549.1.1.5",
            "{name}"
        );
    }

    let device_der = record.device_certificate_der().expect("device certificate");
    let (_, device_cert) = X509Certificate::from_der(&device_der).expect("x509 parses");
    let spki = record.device_public_key_spki().expect("device key");
    assert_eq!(spki.as_ref(), device_cert.public_key().raw);
}

#[test]
fn real_record_round_trips_through_xml() {
    let record = fixture_record();
    let xml = record.to_xml().expect("write xml");
    assert!(xml.starts_with(b"<?xml"), "libimobiledevice writes XML");
    assert_eq!(PairRecord::from_plist(&xml).expect("reparse"), record);

    // Same keys, same types, same values as the original file: certificates, keys and the
    // escrow bag as <data>, identifiers as <string>.
    let written = plist::Value::from_reader_xml(xml.as_slice()).expect("plist");
    let original = plist::Value::from_reader_xml(fixture_xml().as_bytes()).expect("plist");
    assert_eq!(written, original);
}

#[test]
fn binary_plist_parses_like_xml() {
    let original = plist::Value::from_reader_xml(fixture_xml().as_bytes()).expect("plist");
    let mut binary = Vec::new();
    original
        .to_writer_binary(&mut binary)
        .expect("binary plist");
    assert!(binary.starts_with(b"bplist00"));
    assert_eq!(
        PairRecord::from_plist(&binary).expect("binary pair record parses"),
        fixture_record()
    );
}

#[test]
fn generated_record_round_trips_and_tolerates_extra_keys() {
    let mut record = record().clone();
    record.escrow_bag = Some(vec![0xab; 32]);
    record.wifi_mac_address = Some("02:00:00:00:00:01".to_owned());
    record.udid = Some("00008101-000B1D2E3F405060".to_owned());
    let xml = record.to_xml().expect("write xml");
    assert_eq!(PairRecord::from_plist(&xml).expect("reparse"), record);

    let mut dict = record.to_dictionary();
    dict.insert("SomethingNew".to_owned(), plist::Value::Boolean(true));
    assert_eq!(
        PairRecord::from_dictionary(&dict).expect("extra key"),
        record
    );
}

#[test]
fn missing_and_mistyped_keys_are_typed_errors() {
    let full = fixture_record().to_dictionary();

    let mut missing = full.clone();
    missing.remove("HostID");
    assert!(matches!(
        PairRecord::from_dictionary(&missing),
        Err(PairError::MissingKey { key: "HostID" })
    ));

    let mut missing = full.clone();
    missing.remove("RootPrivateKey");
    assert!(matches!(
        PairRecord::from_dictionary(&missing),
        Err(PairError::MissingKey {
            key: "RootPrivateKey"
        })
    ));

    let mut mistyped = full.clone();
    mistyped.insert("SystemBUID".to_owned(), plist::Value::Integer(7.into()));
    assert!(matches!(
        PairRecord::from_dictionary(&mistyped),
        Err(PairError::WrongType {
            key: "SystemBUID",
            ..
        })
    ));

    let mut mistyped = full;
    mistyped.insert(
        "EscrowBag".to_owned(),
        plist::Value::String("bag".to_owned()),
    );
    assert!(matches!(
        PairRecord::from_dictionary(&mistyped),
        Err(PairError::WrongType {
            key: "EscrowBag",
            ..
        })
    ));

    let mut array = Vec::new();
    plist::Value::Array(vec![])
        .to_writer_xml(&mut array)
        .expect("xml");
    assert!(matches!(
        PairRecord::from_plist(&array),
        Err(PairError::NotADictionary)
    ));
    assert!(matches!(
        PairRecord::from_plist(b"not a plist"),
        Err(PairError::Plist(_))
    ));
    let huge = vec![b' '; backupd_proto::pair::MAX_PAIR_RECORD_LEN + 1];
    assert!(matches!(
        PairRecord::from_plist(&huge),
        Err(PairError::TooLarge { .. })
    ));
}

#[test]
fn debug_output_hides_private_keys_and_escrow_bag() {
    let mut record = record().clone();
    record.escrow_bag = Some(vec![0xab; 32]);
    let debug = format!("{record:?}");
    assert!(
        debug.contains(HOST_ID),
        "debug output is still useful: {debug}"
    );
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    // Byte vectors would print as decimal lists: PEM starts with '-' (45), the bag is 0xab (171).
    assert!(!debug.contains("45, 45"), "{debug}");
    assert!(!debug.contains("171"), "{debug}");
    assert!(
        !debug.contains("ab, ab") && !debug.contains("AB, AB"),
        "{debug}"
    );
    let pretty = format!("{record:#?}");
    assert!(!pretty.contains("PRIVATE KEY") && !pretty.contains("171"));

    let fixture_debug = format!("{:?}", fixture_record());
    assert!(!fixture_debug.contains("PRIVATE KEY"));
    assert!(
        !fixture_debug.contains("0, 0, 0"),
        "escrow bag bytes: {fixture_debug}"
    );

    let key_debug = format!("{:?}", device_key());
    assert!(
        !key_debug.contains("PRIVATE KEY") && !key_debug.contains("48, "),
        "{key_debug}"
    );
}

// ---------------------------------------------------------------------------------------------
// Generating pair records.

const OID_SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_SUBJECT_KEY_IDENTIFIER: &str = "2.5.29.14";

fn parse_certificate(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).expect("x509 parses");
    assert!(rest.is_empty(), "no trailing bytes");
    cert
}

/// (OID, critical) of every extension, in order.
fn extension_list(cert: &X509Certificate<'_>) -> Vec<(String, bool)> {
    cert.extensions()
        .iter()
        .map(|ext| (ext.oid.to_id_string(), ext.critical))
        .collect()
}

fn basic_constraints_ca(cert: &X509Certificate<'_>) -> bool {
    let ext = cert
        .extensions()
        .iter()
        .find(|ext| ext.oid.to_id_string() == OID_BASIC_CONSTRAINTS)
        .expect("basic constraints present");
    match ext.parsed_extension() {
        ParsedExtension::BasicConstraints(bc) => {
            assert_eq!(bc.path_len_constraint, None);
            bc.ca
        }
        other => panic!("basic constraints parse as {other:?}"),
    }
}

fn key_usage_flags(cert: &X509Certificate<'_>) -> u16 {
    let ext = cert
        .extensions()
        .iter()
        .find(|ext| ext.oid.to_id_string() == OID_KEY_USAGE)
        .expect("key usage present");
    match ext.parsed_extension() {
        ParsedExtension::KeyUsage(usage) => usage.flags,
        other => panic!("key usage parses as {other:?}"),
    }
}

/// Checks what all three pair certificates share (protocol.md §3.4).
fn assert_pair_certificate_basics(cert: &X509Certificate<'_>, name: &str) {
    assert_eq!(cert.version(), X509Version::V3, "{name}");
    assert_eq!(
        cert.subject().as_raw(),
        &[0x30, 0x00],
        "{name}: empty subject"
    );
    assert_eq!(
        cert.issuer().as_raw(),
        &[0x30, 0x00],
        "{name}: empty issuer"
    );
    assert_eq!(cert.raw_serial(), &[1], "{name}: serial 1");
    assert_eq!(
        cert.signature_algorithm.algorithm.to_id_string(),
        OID_SHA256_WITH_RSA,
        "{name}"
    );
    assert_eq!(
        cert.tbs_certificate.signature.algorithm.to_id_string(),
        OID_SHA256_WITH_RSA,
        "{name}"
    );
    match cert.public_key().parsed().expect("public key parses") {
        PublicKey::RSA(rsa) => {
            assert_eq!(rsa.key_size(), 2048, "{name}");
            assert_eq!(rsa.exponent, &[0x01, 0x00, 0x01], "{name}");
        }
        other => panic!("{name} key is {other:?}"),
    }
    let now = 1_700_000_000;
    assert_eq!(cert.validity().not_before.timestamp(), now, "{name}");
    assert_eq!(
        cert.validity().not_after.timestamp(),
        now + 10 * 365 * 86_400,
        "{name}: ten years of 365 days"
    );
}

#[test]
fn generated_certificates_match_what_real_hosts_make() {
    assert_eq!(PAIR_CERTIFICATE_VALIDITY, time::Duration::days(3650));
    let record = record();
    assert_eq!(record.host_id, HOST_ID);
    assert_eq!(record.system_buid, SYSTEM_BUID);
    assert_eq!(record.escrow_bag, None);

    let root_der = record.root_certificate_der().expect("root");
    let host_der = record.host_certificate_der().expect("host");
    let device_der = record.device_certificate_der().expect("device");
    let root = parse_certificate(&root_der);
    let host = parse_certificate(&host_der);
    let device = parse_certificate(&device_der);

    assert_pair_certificate_basics(&root, "root");
    assert_pair_certificate_basics(&host, "host");
    assert_pair_certificate_basics(&device, "device");

    // Root: BasicConstraints critical CA:TRUE and nothing else.
    assert_eq!(
        extension_list(&root),
        [(OID_BASIC_CONSTRAINTS.to_owned(), true)]
    );
    assert!(basic_constraints_ca(&root));

    // Host: BasicConstraints critical CA:FALSE; KeyUsage critical digitalSignature+keyEncipherment.
    assert_eq!(
        extension_list(&host),
        [
            (OID_BASIC_CONSTRAINTS.to_owned(), true),
            (OID_KEY_USAGE.to_owned(), true)
        ]
    );
    assert!(!basic_constraints_ca(&host));
    assert_eq!(key_usage_flags(&host), 0b101);

    // Device: as the host, plus a SubjectKeyIdentifier (SHA-1 of the key bits, as OpenSSL).
    assert_eq!(
        extension_list(&device),
        [
            (OID_BASIC_CONSTRAINTS.to_owned(), true),
            (OID_SUBJECT_KEY_IDENTIFIER.to_owned(), false),
            (OID_KEY_USAGE.to_owned(), true)
        ]
    );
    assert!(!basic_constraints_ca(&device));
    assert_eq!(key_usage_flags(&device), 0b101);
    let ski = device
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
        .expect("subject key identifier");
    assert_eq!(
        ski,
        Sha1::digest(device_key().public_key_pkcs1_der()).to_vec()
    );

    // The device certificate certifies the phone's key; the root key signed everything.
    assert_eq!(
        device.public_key().raw,
        device_key().subject_public_key_info().as_ref()
    );
    assert_eq!(
        record.device_public_key_spki().expect("spki").as_ref(),
        device_key().subject_public_key_info().as_ref()
    );
    for (cert, name) in [(&root, "root"), (&host, "host"), (&device, "device")] {
        cert.verify_signature(Some(root.public_key()))
            .unwrap_or_else(|e| panic!("{name} is signed by the root key: {e}"));
    }
    assert!(
        device.verify_signature(Some(host.public_key())).is_err(),
        "the signature check can fail"
    );
    assert_ne!(host.public_key().raw, root.public_key().raw);

    // Private keys are PKCS#8 PEM and load.
    for pem in [&record.host_private_key, &record.root_private_key] {
        assert!(pem.starts_with(b"-----BEGIN PRIVATE KEY-----\n"));
    }
    assert!(matches!(
        record.host_private_key_der(),
        Ok(PrivateKeyDer::Pkcs8(_))
    ));
    assert!(matches!(
        record.root_private_key_der(),
        Ok(PrivateKeyDer::Pkcs8(_))
    ));
}

#[test]
fn pair_request_has_exactly_the_five_public_keys() {
    let dict = record().pair_request_dictionary();
    let keys: BTreeSet<&str> = dict.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "DeviceCertificate",
            "HostCertificate",
            "HostID",
            "RootCertificate",
            "SystemBUID"
        ])
    );
    for key in ["DeviceCertificate", "HostCertificate", "RootCertificate"] {
        let data = dict
            .get(key)
            .and_then(plist::Value::as_data)
            .expect("certificates are <data>");
        assert!(data.starts_with(b"-----BEGIN CERTIFICATE-----"));
    }
    assert_eq!(
        dict.get("HostID").and_then(plist::Value::as_string),
        Some(HOST_ID)
    );
    assert_eq!(
        dict.get("SystemBUID").and_then(plist::Value::as_string),
        Some(SYSTEM_BUID)
    );
    let mut xml = Vec::new();
    plist::Value::Dictionary(dict.clone())
        .to_writer_xml(&mut xml)
        .expect("xml");
    assert!(!String::from_utf8_lossy(&xml).contains("PrivateKey"));

    // The device side reads it back; pymobiledevice3's extra RootPrivateKey is ignored.
    let mut from_pymobiledevice3 = dict;
    from_pymobiledevice3.insert(
        "RootPrivateKey".to_owned(),
        plist::Value::Data(record().root_private_key.clone()),
    );
    let request =
        PairRequestRecord::from_dictionary(&from_pymobiledevice3).expect("device parses Pair");
    assert_eq!(request, record().pair_request());
    assert_eq!(
        request.trusted_client_certificates().expect("certs"),
        vec![
            record().root_certificate_der().expect("root"),
            record().host_certificate_der().expect("host")
        ]
    );
    let mut incomplete = request.to_dictionary();
    incomplete.remove("DeviceCertificate");
    assert!(matches!(
        PairRequestRecord::from_dictionary(&incomplete),
        Err(PairError::MissingKey {
            key: "DeviceCertificate"
        })
    ));
}

#[test]
fn device_public_key_in_spki_form_is_accepted() {
    let spki_pem = pem::encode(&pem::Pem::new(
        "PUBLIC KEY",
        device_key().subject_public_key_info().as_ref().to_vec(),
    ));
    let record = generate_pair_record(
        spki_pem.as_bytes(),
        HOST_ID.to_owned(),
        SYSTEM_BUID.to_owned(),
        pairing_time(),
    )
    .expect("spki device key");
    assert_eq!(
        record.device_public_key_spki().expect("spki").as_ref(),
        device_key().subject_public_key_info().as_ref()
    );
}

#[test]
fn bad_device_public_keys_are_rejected() {
    let generate = |pem: &[u8]| {
        generate_pair_record(
            pem,
            HOST_ID.to_owned(),
            SYSTEM_BUID.to_owned(),
            pairing_time(),
        )
    };
    assert!(matches!(generate(b"garbage"), Err(PairError::Pem { .. })));
    let certificate_pem = &record().host_certificate;
    assert!(matches!(
        generate(certificate_pem),
        Err(PairError::PemLabel { .. })
    ));
    let not_rsa = pem::encode(&pem::Pem::new(
        "RSA PUBLIC KEY",
        vec![0x30, 0x03, 0x02, 0x01, 0x05],
    ));
    assert!(matches!(
        generate(not_rsa.as_bytes()),
        Err(PairError::InvalidDevicePublicKey { .. })
    ));
    let far_future = UNIX_EPOCH + Duration::from_secs(253_402_300_000); // year 9999
    assert!(matches!(
        generate_pair_record(
            device_key().public_key_pkcs1_pem().as_bytes(),
            HOST_ID.to_owned(),
            SYSTEM_BUID.to_owned(),
            far_future
        ),
        Err(PairError::ValidityOutOfRange)
    ));
}

#[test]
fn device_key_reports_pkcs1_and_reloads() {
    let key = device_key();
    let pem = key.public_key_pkcs1_pem();
    assert!(pem.starts_with("-----BEGIN RSA PUBLIC KEY-----\n"), "{pem}");
    let block = pem::parse(&pem).expect("pem");
    assert_eq!(block.contents(), key.public_key_pkcs1_der());
    // PKCS#1 RSAPublicKey: SEQUENCE { INTEGER modulus, INTEGER exponent }.
    assert_eq!(key.public_key_pkcs1_der().first(), Some(&0x30));

    let private = key.to_pkcs8_pem();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let reloaded = DeviceKey::from_pkcs8_pem(private.as_bytes()).expect("reload");
    assert_eq!(reloaded.public_key_pkcs1_der(), key.public_key_pkcs1_der());
    assert!(matches!(
        DeviceKey::from_pkcs8_pem(record().host_certificate.as_slice()),
        Err(PairError::PemLabel { .. })
    ));
}

#[test]
fn device_identity_requires_the_matching_certificate() {
    let own = record().device_certificate_der().expect("device cert");
    let identity = device_key().tls_identity(own.clone()).expect("identity");
    assert_eq!(identity.cert_chain(), std::slice::from_ref(&own));
    assert!(!format!("{identity:?}").contains("PRIVATE"));
    assert!(matches!(
        other_device_key().tls_identity(own),
        Err(PairError::KeyMismatch)
    ));
}

// ---------------------------------------------------------------------------------------------
// TLS handshakes in memory.

/// Which side of a handshake failed, and how.
#[derive(Debug)]
enum Failure {
    Client(rustls::Error),
    Server(rustls::Error),
}

/// Moves everything `from` wants to send into `to`.
fn transfer(from: &mut Connection, to: &mut Connection) -> Result<usize, rustls::Error> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire)
            .expect("writing to a Vec cannot fail");
    }
    let mut unread = wire.as_slice();
    while !unread.is_empty() {
        to.read_tls(&mut unread).expect("reading from a slice");
        to.process_new_packets()?;
    }
    Ok(wire.len())
}

/// Runs a handshake to completion or to the first error.
fn handshake(client: &mut Connection, server: &mut Connection) -> Result<(), Failure> {
    for _ in 0..32 {
        let to_server = transfer(client, server).map_err(Failure::Server)?;
        let to_client = transfer(server, client).map_err(Failure::Client)?;
        if to_server == 0 && to_client == 0 {
            break;
        }
    }
    assert!(!client.is_handshaking() && !server.is_handshaking());
    Ok(())
}

fn connect(
    client_config: Arc<rustls::ClientConfig>,
    server_config: Arc<rustls::ServerConfig>,
) -> (Connection, Connection, Result<(), Failure>) {
    let mut client = Connection::from(
        ClientConnection::new(client_config, device_server_name()).expect("client connection"),
    );
    let mut server =
        Connection::from(ServerConnection::new(server_config).expect("server connection"));
    let outcome = handshake(&mut client, &mut server);
    (client, server, outcome)
}

fn assert_data_flows(client: &mut Connection, server: &mut Connection) {
    client
        .writer()
        .write_all(b"<plist>Request</plist>")
        .expect("client writes");
    transfer(client, server).expect("server reads");
    let mut received = [0u8; 64];
    let n = server
        .reader()
        .read(&mut received)
        .expect("server has data");
    assert_eq!(&received[..n], b"<plist>Request</plist>");

    server
        .writer()
        .write_all(b"<plist>Reply</plist>")
        .expect("server writes");
    transfer(server, client).expect("client reads");
    let n = client
        .reader()
        .read(&mut received)
        .expect("client has data");
    assert_eq!(&received[..n], b"<plist>Reply</plist>");
}

/// The phone of [`device_key`] serving the host of `record`, trusting `trusted`.
fn device_config(
    record: &PairRecord,
    key: &DeviceKey,
    trusted: Vec<CertificateDer<'static>>,
) -> Arc<rustls::ServerConfig> {
    let identity = key
        .tls_identity(record.device_certificate_der().expect("device cert"))
        .expect("identity");
    device_server_config(identity, trusted).expect("device config")
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Accepts any server certificate but checks handshake signatures with webpki, like a
/// reference client that does not pin (an independent check of our verifiers).
#[derive(Debug)]
struct AcceptAnyDevice(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyDevice {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client like libimobiledevice's OpenSSL build: it presents the ROOT certificate and key.
fn root_identity_client(
    record: &PairRecord,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<rustls::ClientConfig> {
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyDevice(provider)))
        .with_client_auth_cert(
            vec![record.root_certificate_der().expect("root cert")],
            record.root_private_key_der().expect("root key"),
        )
        .expect("root identity");
    Arc::new(config)
}

/// A device server restricted to one protocol version that requests no client certificate,
/// presenting `cert` and signing with `key` (which need not match).
fn plain_device_server(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<rustls::ServerConfig> {
    let provider = provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .expect("device key loads");
    let certified = rustls::sign::CertifiedKey::new(vec![cert], signing_key);
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    Arc::new(config)
}

#[test]
fn pinned_host_and_device_trusting_the_host_certificate_talk() {
    let host = host_client_config(record(), DevicePinning::Pinned).expect("host config");
    let device = device_config(
        record(),
        device_key(),
        vec![record().host_certificate_der().expect("host cert")],
    );
    let (mut client, mut server, outcome) = connect(host, device);
    outcome.expect("handshake succeeds");
    assert_eq!(client.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    // The device saw the host certificate, as pymobiledevice3 presents it.
    assert_eq!(
        server.peer_certificates().expect("client certificate"),
        &[record().host_certificate_der().expect("host cert")]
    );
    assert_data_flows(&mut client, &mut server);
}

#[test]
fn pinned_host_verifies_tls12_devices_too() {
    let device_cert = record().device_certificate_der().expect("device cert");
    let device = plain_device_server(
        device_cert.clone(),
        device_key().private_key_der(),
        &rustls::version::TLS12,
    );
    let host = host_client_config(record(), DevicePinning::Pinned).expect("host config");
    let (mut client, mut server, outcome) = connect(host, device);
    outcome.expect("tls 1.2 handshake succeeds");
    assert_eq!(client.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    assert_data_flows(&mut client, &mut server);
}

#[test]
fn root_certificate_client_is_accepted_when_trusted() {
    let request = record().pair_request();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let device = device_config(
            record(),
            device_key(),
            request.trusted_client_certificates().expect("certs"),
        );
        let (mut client, mut server, outcome) =
            connect(root_identity_client(record(), version), device);
        outcome.unwrap_or_else(|e| panic!("{version:?}: root client accepted: {e:?}"));
        assert_eq!(
            server.peer_certificates().expect("client certificate"),
            &[record().root_certificate_der().expect("root cert")]
        );
        assert_data_flows(&mut client, &mut server);
    }
}

#[test]
fn root_certificate_client_is_rejected_when_only_the_host_certificate_is_trusted() {
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let device = device_config(
            record(),
            device_key(),
            vec![record().host_certificate_der().expect("host cert")],
        );
        let (_, _, outcome) = connect(root_identity_client(record(), version), device);
        assert!(
            matches!(
                outcome,
                Err(Failure::Server(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer
                )))
            ),
            "{version:?}: {outcome:?}"
        );
    }
}

#[test]
fn client_with_an_untrusted_certificate_is_rejected() {
    // Another host's record for the same phone: a well-formed pair, but not one this phone
    // trusts.
    let stranger =
        host_client_config(other_host_record(), DevicePinning::Pinned).expect("host config");
    let device = device_config(
        record(),
        device_key(),
        record()
            .pair_request()
            .trusted_client_certificates()
            .expect("certs"),
    );
    let (_, _, outcome) = connect(stranger, device);
    assert!(
        matches!(
            outcome,
            Err(Failure::Server(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            )))
        ),
        "{outcome:?}"
    );
}

#[test]
fn device_with_another_key_fails_pinning_and_passes_without_it() {
    // The second phone answers with a certificate for its own key.
    let impostor = || {
        device_config(
            other_device_record(),
            other_device_key(),
            vec![record().host_certificate_der().expect("host cert")],
        )
    };

    let pinned = host_client_config(record(), DevicePinning::Pinned).expect("host config");
    let (_, _, outcome) = connect(pinned, impostor());
    assert!(
        matches!(
            outcome,
            Err(Failure::Client(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure
            )))
        ),
        "{outcome:?}"
    );

    let unpinned = host_client_config(record(), DevicePinning::Disabled).expect("host config");
    let (mut client, mut server, outcome) = connect(unpinned, impostor());
    outcome.expect("pinning disabled accepts any device key");
    assert_data_flows(&mut client, &mut server);

    // Over TLS 1.2 the pin holds as well.
    let tls12_impostor = plain_device_server(
        other_device_record()
            .device_certificate_der()
            .expect("cert"),
        other_device_key().private_key_der(),
        &rustls::version::TLS12,
    );
    let pinned = host_client_config(record(), DevicePinning::Pinned).expect("host config");
    let (_, _, outcome) = connect(pinned, tls12_impostor);
    assert!(
        matches!(
            outcome,
            Err(Failure::Client(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure
            )))
        ),
        "{outcome:?}"
    );
}

#[test]
fn device_presenting_our_certificate_without_its_key_fails_even_unpinned() {
    // A man in the middle replays the real DeviceCertificate but cannot sign with its key.
    let stolen = record().device_certificate_der().expect("device cert");
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        for pinning in [DevicePinning::Pinned, DevicePinning::Disabled] {
            let device = plain_device_server(
                stolen.clone(),
                other_device_key().private_key_der(),
                version,
            );
            let host = host_client_config(record(), pinning).expect("host config");
            let (_, _, outcome) = connect(host, device);
            assert!(
                matches!(
                    outcome,
                    Err(Failure::Client(rustls::Error::InvalidCertificate(
                        CertificateError::BadSignature
                    )))
                ),
                "{version:?} {pinning:?}: {outcome:?}"
            );
        }
    }
}

#[test]
fn configurations_refuse_inconsistent_inputs() {
    let device_cert = record().device_certificate_der().expect("device cert");
    let trusted = vec![record().host_certificate_der().expect("host cert")];

    let mismatched = DeviceIdentity::new(
        vec![device_cert.clone()],
        other_device_key().private_key_der(),
    );
    assert!(matches!(
        device_server_config(mismatched, trusted.clone()),
        Err(TlsError::KeyMismatch { role: "device" })
    ));
    let empty = DeviceIdentity::new(Vec::new(), device_key().private_key_der());
    assert!(matches!(
        device_server_config(empty, trusted.clone()),
        Err(TlsError::EmptyCertificateChain)
    ));
    let identity = device_key()
        .tls_identity(device_cert.clone())
        .expect("identity");
    assert!(matches!(
        device_server_config(identity, Vec::new()),
        Err(TlsError::NoTrustedClientCertificates)
    ));
    let identity = device_key().tls_identity(device_cert).expect("identity");
    assert!(matches!(
        device_server_config(identity, vec![CertificateDer::from(vec![0x30, 0x00])]),
        Err(TlsError::MalformedCertificate { .. })
    ));

    // Host key and certificate from different records.
    let mut crossed = record().clone();
    crossed.host_private_key = other_host_record().host_private_key.clone();
    assert!(matches!(
        host_client_config(&crossed, DevicePinning::Pinned),
        Err(TlsError::KeyMismatch { role: "host" })
    ));

    // The shared fixture's private keys were redacted to text that is not base64: a typed
    // error, not a panic. A key that is valid PEM but not a key is rustls' to reject.
    let outcome = host_client_config(&fixture_record(), DevicePinning::Pinned);
    assert!(
        matches!(
            outcome,
            Err(TlsError::PairRecord(PairError::Pem {
                field: "HostPrivateKey",
                ..
            }))
        ),
        "{outcome:?}"
    );
    let mut not_a_key = record().clone();
    not_a_key.host_private_key =
        pem::encode(&pem::Pem::new("PRIVATE KEY", b"not a key".to_vec())).into_bytes();
    let outcome = host_client_config(&not_a_key, DevicePinning::Pinned);
    assert!(
        matches!(outcome, Err(TlsError::PrivateKey { role: "host", .. })),
        "{outcome:?}"
    );
}

/// Counts WARN events; enough of a `tracing` subscriber to observe the pinning warning.
struct WarnCounter(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for WarnCounter {
    fn enabled(&self, _metadata: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _span: &tracing::span::Id, _values: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0
                .lock()
                .expect("lock")
                .push(event.metadata().target().to_owned());
        }
    }

    fn enter(&self, _span: &tracing::span::Id) {}

    fn exit(&self, _span: &tracing::span::Id) {}
}

#[test]
fn disabled_pinning_warns_once_per_config() {
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let subscriber = WarnCounter(warnings.clone());
    let host = tracing::subscriber::with_default(subscriber, || {
        host_client_config(record(), DevicePinning::Pinned).expect("pinned config");
        assert!(warnings.lock().expect("lock").is_empty(), "pinned is quiet");
        let host = host_client_config(record(), DevicePinning::Disabled).expect("config");
        // Handshakes with the config add no further warnings.
        for _ in 0..2 {
            let device = device_config(
                record(),
                device_key(),
                vec![record().host_certificate_der().expect("host cert")],
            );
            let (_, _, outcome) = connect(host.clone(), device);
            outcome.expect("handshake");
        }
        host
    });
    assert_eq!(
        warnings.lock().expect("lock").as_slice(),
        ["backupd_proto::tls"]
    );
    drop(host);
}

// ---------------------------------------------------------------------------------------------
// Property tests.

fn fixture_binary() -> &'static [u8] {
    static BINARY: OnceLock<Vec<u8>> = OnceLock::new();
    BINARY.get_or_init(|| {
        let value = plist::Value::from_reader_xml(fixture_xml().as_bytes()).expect("plist");
        let mut binary = Vec::new();
        value.to_writer_binary(&mut binary).expect("binary");
        binary
    })
}

fn printable() -> impl Strategy<Value = String> {
    // Control characters are not representable in XML plists, which is fine for identifiers.
    "[ -~]{0,48}"
}

fn arbitrary_record() -> impl Strategy<Value = PairRecord> {
    let blob = || proptest::collection::vec(any::<u8>(), 0..300);
    (
        (blob(), blob(), blob(), blob(), blob()),
        (printable(), printable()),
        (
            proptest::option::of(blob()),
            proptest::option::of(printable()),
            proptest::option::of(printable()),
        ),
    )
        .prop_map(
            |(
                (
                    device_certificate,
                    host_certificate,
                    host_private_key,
                    root_certificate,
                    root_private_key,
                ),
                (host_id, system_buid),
                (escrow_bag, wifi_mac_address, udid),
            )| PairRecord {
                device_certificate,
                host_certificate,
                host_private_key,
                root_certificate,
                root_private_key,
                host_id,
                system_buid,
                escrow_bag,
                wifi_mac_address,
                udid,
            },
        )
}

/// Overwrites bytes of `base` at the given positions.
fn mutate(base: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for &(at, byte) in edits {
        if !bytes.is_empty() {
            let len = bytes.len();
            bytes[at % len] = byte;
        }
    }
    bytes
}

proptest! {
    #[test]
    fn parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = PairRecord::from_plist(&bytes);
    }

    #[test]
    fn parser_never_panics_on_damaged_records(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        binary in any::<bool>(),
    ) {
        let base = if binary { fixture_binary() } else { fixture_xml().as_bytes() };
        let damaged = mutate(base, &edits);
        if let Ok(record) = PairRecord::from_plist(&damaged) {
            // Whatever parsed must survive decoding attempts without panicking.
            let _ = record.device_certificate_der();
            let _ = record.device_public_key_spki();
            let _ = record.host_private_key_der();
        }
    }

    #[test]
    fn certificate_decoding_never_panics(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        truncate in any::<usize>(),
    ) {
        let der = record().device_certificate_der().expect("device cert");
        let mut damaged = mutate(&der, &edits);
        damaged.truncate(truncate % (damaged.len() + 1));
        let mut record = record().clone();
        record.device_certificate = pem::encode(&pem::Pem::new("CERTIFICATE", damaged)).into_bytes();
        let _ = record.device_public_key_spki();
        let _ = device_key().tls_identity(CertificateDer::from(record.device_certificate.clone()));
    }

    #[test]
    fn records_round_trip_through_xml(record in arbitrary_record()) {
        let xml = record.to_xml().expect("write xml");
        prop_assert_eq!(PairRecord::from_plist(&xml).expect("reparse"), record);
    }

    #[test]
    fn records_round_trip_through_binary(record in arbitrary_record()) {
        let mut binary = Vec::new();
        plist::Value::Dictionary(record.to_dictionary())
            .to_writer_binary(&mut binary)
            .expect("binary");
        prop_assert_eq!(PairRecord::from_plist(&binary).expect("reparse"), record);
    }
}

// ---------------------------------------------------------------------------------------------
// The real pair record from the shared fixtures (fixtures/real/usbmuxd-readpairrecord-
// pairrecorddata-decoded.plist), embedded so the test does not depend on files outside the
// crate. Its private keys and escrow bag were redacted at the source.

const REAL_RECORD_FIXTURE: &str = r#"# source: appium/appium-ios-device test/fixtures/usbmuxreadpairmessage.bin. usbmuxd reply {PairRecordData: <data>} (LE header length=9452 version=1 message=8 tag=0). PairRecordData was a BINARY plist (bplist00); re-encoded here as XML. Private keys and the 32-byte EscrowBag redacted (zeroed, same length); WiFiMACAddress/HostID/SystemBUID anonymised; certificates kept as-is (sha1WithRSAEncryption, serial 0, empty subject/issuer, 10-year validity, dated 2019-11-09)
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>DeviceCertificate</key>
	<data>
	LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUN1akNDQWFLZ0F3SUJBZ0lCQURB
	TkJna3Foa2lHOXcwQkFRVUZBREFBTUI0WERURTVNVEV3T1RFMU5ETTAKTkZvWERUSTVN
	VEV3TmpFMU5ETTBORm93QURDQ0FTSXdEUVlKS29aSWh2Y05BUUVCQlFBRGdnRVBBREND
	QVFvQwpnZ0VCQU5WNEQxdkhPbmlBT0ZKaGdEMkl2SzFHbW4xbGVscnVEVXNNUndOT2hy
	QXZjZUdFVVFxVmx1RDBGbjhNCnVWWjB5SEI1eXVmZ0dxWXl5aHRnWTNsbjVRSHhXaWhE
	TVkxc1IwbG5Nd0ZPZkpUM3VmTllJc1dFdVdIbkxiNnUKSE9QRFZuTzRDSGUrTUE3QXZQ
	Y202RlpzR3QrRElrUjBxbjdsT0d3b1dGMmh3WlJVV29XL2xONXhoazAyU25PRQp5UWw2
	d1M4UzdGZHB4MUFnd3FOUHFlVlRuejYxWDBUNXl5cHBjemlFeTh1M1lWSTNSL20vMS9R
	WDIxVUluMlh4CnpaQjZFd1hpQnpRdnY5bVFXRnRzRlFTb1FPRkhvMXZEbThlZkk2Ymt6
	SlVvQmo2cjBPYnN4eFM0aE04dTJreTMKMzV2YUFnMDVRZzhnRzF6WWhhT05qL2NJMkkw
	Q0F3RUFBYU0vTUQwd0RBWURWUjBUQVFIL0JBSXdBREFkQmdOVgpIUTRFRmdRVTRDNXU2
	TzI1c0dCTDhET3BKN0V0elYvcHo0Z3dEZ1lEVlIwUEFRSC9CQVFEQWdXZ01BMEdDU3FH
	ClNJYjNEUUVCQlFVQUE0SUJBUUE1ZFpEbkpYT1d4OHVVQk1TNFZ2RWZEd1ZZZEVzVGRN
	MU1GWUMzY0pxOHZ3c2QKM3VYVjRIcndOOHZwQjBtRUJyZUZ2aVdoOVJMTXZWNGxnQy90
	VnpZU2tiUzdHQmNaWnk0aXNVc0JRZmREcGxZSApsVmwvaWJHOFRPV3pLY2pyMVdVNFJB
	VVBSN0VVQ0pHZkRvQnBrZityOU5ldE81Wk9xQUgzUC8rekN6U0NPZG1VCithOFRXcytO
	QTV1cGZKbDVTdEp1NXM5akxBWTFISVd5MnRQZ2hpRWtIUzNaRFAxQ1I0Ymo5SnExNVFL
	RVNTT04KU0U5MWMvcEc0b0Q2b24wZUNTRCtBNnB3UTZKM0dGdVloWGlHQlhhcEJ1VkJq
	NnZCUTZreDdFSm9mVW8vMm1KTgo2WWIyc1phM1NYT0dPaGpoMWFzeDFiVFJSeWVBbnMz
	aklTMm9TaWxKCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K
	</data>
	<key>EscrowBag</key>
	<data>
	AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
	</data>
	<key>HostCertificate</key>
	<data>
	LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUNtekNDQVlPZ0F3SUJBZ0lCQURB
	TkJna3Foa2lHOXcwQkFRVUZBREFBTUI0WERURTVNVEV3T1RFMU5ETTAKTkZvWERUSTVN
	VEV3TmpFMU5ETTBORm93QURDQ0FTSXdEUVlKS29aSWh2Y05BUUVCQlFBRGdnRVBBREND
	QVFvQwpnZ0VCQU1TS2MvbzBxaml3anpRYmFTa2RES1BQbjF5THErYnA1dFptUjk2b3Nn
	TVphZjR6M2RLU250bUdPNDlHCkdGQW9reVRSSStyWnFlRlplQ2c5VUFWWWVSY3ZGNFE0
	NXJaNnNxQWhseU1JM0RrMmk0N1MwcVVKWTROeExxOEMKN0tSL3hVcEZkSFlCdHlSSDRD
	WXVkbVgySTVOclpBUmp5c3E5dTVmaVM0a09nUTh1VVhaTm5aT2V6ZmJpUE5qbAo4L2dl
	TG54NnpkUXBlQU1iellsMjZmcVorbXRpMUl2bTlBTkMweEk4eDdrcDRKUTc1THFJMThH
	NmFiWURDc21RCjdDNlVyTjNsZ2VmZU04NUdFcEgxNFhUK1FmTUZqVnlZc09ZMllndk9W
	M0o4VC9GcThuRENmMTdMRHh6MjVOSlkKM2xxaW1BbERReURVSGczamNkZUtLUXRkaUYw
	Q0F3RUFBYU1nTUI0d0RBWURWUjBUQVFIL0JBSXdBREFPQmdOVgpIUThCQWY4RUJBTUNC
	YUF3RFFZSktvWklodmNOQVFFRkJRQURnZ0VCQUhCOVBiUHAxcm5KUmdTS0t3N21BL3Vz
	CnZxYm54cnlyYWsrd0xibnNkSWI1RTEzMWVXOGZEMjAyWDN2RUlBUmJXUEptbGFhb0hC
	anJ6RVVJNjVtNmdpR2EKWFRpL1FIaGN2RXlwLzFlY05FM2ttZC90aThyc2YrR2JBWUk1
	ZE9WaFR2MytaMXoyWVE0di9YT3E0MjRnR3RpbwpHdnVqRHlESCtubDkyRVRKRlBucU1H
	MDIrTlMxVUx6WHRudkpnWGJTWXJ5Qm5zN3lZdEw5K0NQUkxQQVp2RjdOClk0TmNZZklJ
	K2xia3pQdmg1YVBwblVIb0V0MUE5R2lIcDlyeU1YQWFTVDVCRlN3T3JJMDJJcjh6OFpy
	TDBHVG0KSmJrT2lxYmt2NUI1TjJRT1BRL3lsMnZ0TDFqMHVnZTJDcGdTWVV1d1J3WDhE
	K2dnT2x3TlFENUM1cjV0UExnPQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==
	</data>
	<key>HostID</key>
	<string>A22BCE95-8700-8D98-4605-8E1CE8B1C343</string>
	<key>HostPrivateKey</key>
	<data>
	LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tClJFREFDVEVEICgyMDQ4LWJpdCBSU0Eg
	a2V5LCBQS0NTIzggUEVNIGluIHRoZSBvcmlnaW5hbCkKLS0tLS1FTkQgUFJJVkFURSBL
	RVktLS0tLQo=
	</data>
	<key>RootCertificate</key>
	<data>
	LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUNqakNDQVhhZ0F3SUJBZ0lCQURB
	TkJna3Foa2lHOXcwQkFRVUZBREFBTUI0WERURTVNVEV3T1RFMU5ETTAKTkZvWERUSTVN
	VEV3TmpFMU5ETTBORm93QURDQ0FTSXdEUVlKS29aSWh2Y05BUUVCQlFBRGdnRVBBREND
	QVFvQwpnZ0VCQUp2NXBVOVFtcjFaM3JrL2RmVjR5MjMwMFc0RjZ5RWtRcXNiMTNwOHpE
	YWNnTlcrVkc5aVZYaFNPaUdXCk04OTNjYUFIeXVhK3k5dW9FRC9ITXVzRklFVmQxQ0tV
	R2tyRm1pVnAwUzlNcTE4cDV0QVpKbWJIaDcrNTNmelUKQkJQaG90Q0kzUlVUWkcvK1ND
	VzE2Q1VZRGxBTzBuRnVOV2ZGWERUejJrbndQVko3T2Z5cEZoc29EV1pSbDZ6eApKQlFs
	WlNtbHI0MDlqT0RPM2NzVjQzQzhONlA4UWJIMmJRelVjU2xkQWJLWDZOY0JXV21xL2N4
	UjlJaGFGcFZWCkxzSlVaZUhrS2kyWVdLMlZlYzFMSVZsa3FVcCtVTkR0RnRoTGhMTG9u
	WGhJUzNkMEx1cGQ3QmJEeHlvOUw4cUoKejc4ZEhxelNBUDRUQ1FVdTJ4UjV6L3hpQVVN
	Q0F3RUFBYU1UTUJFd0R3WURWUjBUQVFIL0JBVXdBd0VCL3pBTgpCZ2txaGtpRzl3MEJB
	UVVGQUFPQ0FRRUFiell1TkwvN1ZBNGJnZXRkUkcvUktNUlBUQ3RVcVROcTRRSGN0SFlm
	Cndyb0V1UkJBdEFUcUpPNW9Tb1d4djlGcENHTGtRei81UDAvcmJnV1kxUm9CUi9SejA4
	ek9QcGhVbGZET3IwaXgKUUFzNFRJUm5hTktqc3ZQNUFjZTVBZjZPTzFsTVR1MlpwQTE1
	emVET2pnN2dBR002L2pvSEVzOTFiOHlTUzlMRQpDTW9PNDJVcWxDaFpyWEtSNHJncjdN
	RmxUc3FUQzI0L1dPTFNNM21KTVZXN1FJNnVaczVBdGlGWGdUZlgxaHVsCmJnM2VyRUd3
	K2NIYW9wUkRGT1BqRlVJTjM4TEZnV05mWUdPMGE0N1ZXUnlYTGJPaUhKU2lLT3VjZGhZ
	eWtqNHEKYkw3NkVjZldGclRyRzRjMEt5SURHQ000bzlKMU0veW5waitUNkdwTG02VWFt
	UT09Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K
	</data>
	<key>RootPrivateKey</key>
	<data>
	LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tClJFREFDVEVEICgyMDQ4LWJpdCBSU0Eg
	a2V5LCBQS0NTIzggUEVNIGluIHRoZSBvcmlnaW5hbCkKLS0tLS1FTkQgUFJJVkFURSBL
	RVktLS0tLQo=
	</data>
	<key>SystemBUID</key>
	<string>306408A9-D543-281B-DF18-2EFDD6290815</string>
	<key>WiFiMACAddress</key>
	<string>09:84:c0:ed:70:24</string>
</dict>
</plist>
"#;

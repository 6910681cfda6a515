//! Pair records: parsing, writing and generating the certificates a host and an iPhone share.
//!
//! Pairing gives the host three certificates and two private keys (protocol.md §3.3–§3.5):
//! a self-signed root certificate, a host certificate and a device certificate, the latter two
//! signed by the root key. The device certificate certifies the phone's own RSA key, which the
//! phone reports as `DevicePublicKey` before pairing. Everything here is pure: no files, no
//! sockets, and the caller passes `now`.
//!
//! A pair record holds private keys and the escrow bag that unlocks the phone's data protection,
//! so [`PairRecord`]'s `Debug` output redacts them; never log a record any other way.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use plist::{Dictionary, Value};
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
    SubjectPublicKeyInfoDer,
};
use sha1::{Digest, Sha1};
use time::{Duration, OffsetDateTime};

use crate::tls::DeviceIdentity;

/// The largest pair record [`PairRecord::from_plist`] accepts, in bytes.
///
/// Real records are about 10 KB; the cap keeps a hostile usbmuxd or a corrupt file from making
/// the plist parser allocate without bound.
pub const MAX_PAIR_RECORD_LEN: usize = 1 << 20;

/// How long generated pair certificates are valid.
///
/// libimobiledevice and Apple's hosts use 10 × 365 days rather than ten calendar years (the real
/// record in the shared fixtures runs from 2019-11-09 to 2029-11-06).
pub const PAIR_CERTIFICATE_VALIDITY: Duration = Duration::days(10 * 365);

const DEVICE_CERTIFICATE: &str = "DeviceCertificate";
const ESCROW_BAG: &str = "EscrowBag";
const HOST_CERTIFICATE: &str = "HostCertificate";
const HOST_ID: &str = "HostID";
const HOST_PRIVATE_KEY: &str = "HostPrivateKey";
const ROOT_CERTIFICATE: &str = "RootCertificate";
const ROOT_PRIVATE_KEY: &str = "RootPrivateKey";
const SYSTEM_BUID: &str = "SystemBUID";
const UDID: &str = "UDID";
const WIFI_MAC_ADDRESS: &str = "WiFiMACAddress";
const DEVICE_PUBLIC_KEY: &str = "DevicePublicKey";

const PEM_CERTIFICATE: &str = "CERTIFICATE";
const PEM_PKCS8_PRIVATE_KEY: &str = "PRIVATE KEY";
const PEM_PKCS1_PRIVATE_KEY: &str = "RSA PRIVATE KEY";
const PEM_SEC1_PRIVATE_KEY: &str = "EC PRIVATE KEY";
const PEM_PKCS1_PUBLIC_KEY: &str = "RSA PUBLIC KEY";
const PEM_SPKI_PUBLIC_KEY: &str = "PUBLIC KEY";

/// A host's pair record for one device, as libimobiledevice stores it in
/// `/var/lib/lockdown/<UDID>.plist` and usbmuxd hands it out in `PairRecordData`.
///
/// Certificates and keys are kept as the PEM bytes found in the record so that a record
/// round-trips unchanged; the `*_der` accessors decode them on demand. Keys other than the ones
/// below are tolerated when parsing and dropped when writing.
#[derive(Clone, PartialEq, Eq)]
pub struct PairRecord {
    /// `DeviceCertificate`: PEM certificate for the device's public key, signed by the root key.
    pub device_certificate: Vec<u8>,
    /// `HostCertificate`: PEM certificate for the host key, signed by the root key.
    pub host_certificate: Vec<u8>,
    /// `HostPrivateKey`: PEM private key (PKCS#8 from us, OpenSSL and pymobiledevice3).
    pub host_private_key: Vec<u8>,
    /// `RootCertificate`: PEM self-signed root certificate.
    pub root_certificate: Vec<u8>,
    /// `RootPrivateKey`: PEM private key of the root certificate.
    pub root_private_key: Vec<u8>,
    /// `HostID`: the host's identity in StartSession, usually an upper-case UUID.
    pub host_id: String,
    /// `SystemBUID`: the usbmuxd system identifier that paired, sent with StartSession.
    pub system_buid: String,
    /// `EscrowBag`: returned by the device on Pair; needed to start mobilebackup2.
    pub escrow_bag: Option<Vec<u8>>,
    /// `WiFiMACAddress`: the device's Wi-Fi address, read before pairing.
    pub wifi_mac_address: Option<String>,
    /// `UDID`: present in records written by jkcoxson/idevice, absent in libimobiledevice's.
    pub udid: Option<String>,
}

impl PairRecord {
    /// Parses a pair record from an XML or binary property list.
    pub fn from_plist(bytes: &[u8]) -> Result<Self, PairError> {
        if bytes.len() > MAX_PAIR_RECORD_LEN {
            return Err(PairError::TooLarge {
                len: bytes.len(),
                max: MAX_PAIR_RECORD_LEN,
            });
        }
        // Depth-limited: a deeply nested document would overflow the stack when dropped.
        let value = crate::plist_util::parse_strict(bytes).map_err(PairError::Plist)?;
        let dict = value.into_dictionary().ok_or(PairError::NotADictionary)?;
        Self::from_dictionary(&dict)
    }

    /// Reads a pair record from an already parsed plist dictionary.
    pub fn from_dictionary(dict: &Dictionary) -> Result<Self, PairError> {
        Ok(Self {
            device_certificate: required_pem(dict, DEVICE_CERTIFICATE)?,
            host_certificate: required_pem(dict, HOST_CERTIFICATE)?,
            host_private_key: required_pem(dict, HOST_PRIVATE_KEY)?,
            root_certificate: required_pem(dict, ROOT_CERTIFICATE)?,
            root_private_key: required_pem(dict, ROOT_PRIVATE_KEY)?,
            host_id: required_string(dict, HOST_ID)?,
            system_buid: required_string(dict, SYSTEM_BUID)?,
            escrow_bag: optional_data(dict, ESCROW_BAG)?,
            wifi_mac_address: optional_string(dict, WIFI_MAC_ADDRESS)?,
            udid: optional_string(dict, UDID)?,
        })
    }

    /// Builds the plist dictionary of this record: PEM blobs and the escrow bag as `<data>`,
    /// identifiers as `<string>`, keys in the sorted order libimobiledevice writes them.
    pub fn to_dictionary(&self) -> Dictionary {
        let mut dict = Dictionary::new();
        insert_data(&mut dict, DEVICE_CERTIFICATE, &self.device_certificate);
        if let Some(bag) = &self.escrow_bag {
            insert_data(&mut dict, ESCROW_BAG, bag);
        }
        insert_data(&mut dict, HOST_CERTIFICATE, &self.host_certificate);
        insert_string(&mut dict, HOST_ID, &self.host_id);
        insert_data(&mut dict, HOST_PRIVATE_KEY, &self.host_private_key);
        insert_data(&mut dict, ROOT_CERTIFICATE, &self.root_certificate);
        insert_data(&mut dict, ROOT_PRIVATE_KEY, &self.root_private_key);
        insert_string(&mut dict, SYSTEM_BUID, &self.system_buid);
        if let Some(udid) = &self.udid {
            insert_string(&mut dict, UDID, udid);
        }
        if let Some(mac) = &self.wifi_mac_address {
            insert_string(&mut dict, WIFI_MAC_ADDRESS, mac);
        }
        dict
    }

    /// Writes the record as an XML plist, the format of `/var/lib/lockdown/<UDID>.plist`.
    pub fn to_xml(&self) -> Result<Vec<u8>, PairError> {
        let mut out = Vec::new();
        Value::Dictionary(self.to_dictionary())
            .to_writer_xml(&mut out)
            .map_err(PairError::Write)?;
        Ok(out)
    }

    /// The public part of the record that the lockdown `Pair` request carries.
    ///
    /// It never holds a private key: pymobiledevice3 sends `RootPrivateKey` too, which
    /// libimobiledevice (and we) deliberately do not.
    pub fn pair_request(&self) -> PairRequestRecord {
        PairRequestRecord {
            device_certificate: self.device_certificate.clone(),
            host_certificate: self.host_certificate.clone(),
            host_id: self.host_id.clone(),
            root_certificate: self.root_certificate.clone(),
            system_buid: self.system_buid.clone(),
        }
    }

    /// The `PairRecord` dictionary of a lockdown `Pair` request: exactly `DeviceCertificate`,
    /// `HostCertificate`, `HostID`, `RootCertificate` and `SystemBUID`.
    pub fn pair_request_dictionary(&self) -> Dictionary {
        self.pair_request().to_dictionary()
    }

    /// The DER of `DeviceCertificate`.
    pub fn device_certificate_der(&self) -> Result<CertificateDer<'static>, PairError> {
        certificate_der(&self.device_certificate, DEVICE_CERTIFICATE)
    }

    /// The DER of `HostCertificate`.
    pub fn host_certificate_der(&self) -> Result<CertificateDer<'static>, PairError> {
        certificate_der(&self.host_certificate, HOST_CERTIFICATE)
    }

    /// The DER of `RootCertificate`.
    pub fn root_certificate_der(&self) -> Result<CertificateDer<'static>, PairError> {
        certificate_der(&self.root_certificate, ROOT_CERTIFICATE)
    }

    /// The DER of `HostPrivateKey` (PKCS#8, PKCS#1 or SEC1, as the PEM label says).
    pub fn host_private_key_der(&self) -> Result<PrivateKeyDer<'static>, PairError> {
        private_key_der(&self.host_private_key, HOST_PRIVATE_KEY)
    }

    /// The DER of `RootPrivateKey` (PKCS#8, PKCS#1 or SEC1, as the PEM label says).
    pub fn root_private_key_der(&self) -> Result<PrivateKeyDer<'static>, PairError> {
        private_key_der(&self.root_private_key, ROOT_PRIVATE_KEY)
    }

    /// The device's public key: the SubjectPublicKeyInfo inside `DeviceCertificate`.
    pub fn device_public_key_spki(&self) -> Result<SubjectPublicKeyInfoDer<'static>, PairError> {
        certificate_spki(&self.device_certificate_der()?, DEVICE_CERTIFICATE)
    }
}

impl fmt::Debug for PairRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Private keys and the escrow bag unlock the phone; only their presence is shown.
        f.debug_struct("PairRecord")
            .field("host_id", &self.host_id)
            .field("system_buid", &self.system_buid)
            .field("udid", &self.udid)
            .field("wifi_mac_address", &self.wifi_mac_address)
            .field(
                "device_certificate",
                &ByteCount(self.device_certificate.len()),
            )
            .field("host_certificate", &ByteCount(self.host_certificate.len()))
            .field("root_certificate", &ByteCount(self.root_certificate.len()))
            .field("host_private_key", &Redacted)
            .field("root_private_key", &Redacted)
            .field("escrow_bag", &self.escrow_bag.as_ref().map(|_| Redacted))
            .finish()
    }
}

/// The `PairRecord` dictionary of a lockdown `Pair` request: the public half of a pair record.
///
/// The host builds it with [`PairRecord::pair_request`]; the device side (the simulator) parses
/// it with [`PairRequestRecord::from_dictionary`] and trusts its root and host certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRequestRecord {
    /// `DeviceCertificate` as PEM.
    pub device_certificate: Vec<u8>,
    /// `HostCertificate` as PEM.
    pub host_certificate: Vec<u8>,
    /// `HostID`.
    pub host_id: String,
    /// `RootCertificate` as PEM.
    pub root_certificate: Vec<u8>,
    /// `SystemBUID`.
    pub system_buid: String,
}

impl PairRequestRecord {
    /// Parses the `PairRecord` dictionary of a `Pair` request, as a device does.
    ///
    /// Extra keys are ignored (pymobiledevice3 adds `RootPrivateKey`, and also `HostName` and
    /// `WiFiMACAddress` next to the dictionary); missing ones are an error.
    pub fn from_dictionary(dict: &Dictionary) -> Result<Self, PairError> {
        Ok(Self {
            device_certificate: required_pem(dict, DEVICE_CERTIFICATE)?,
            host_certificate: required_pem(dict, HOST_CERTIFICATE)?,
            host_id: required_string(dict, HOST_ID)?,
            root_certificate: required_pem(dict, ROOT_CERTIFICATE)?,
            system_buid: required_string(dict, SYSTEM_BUID)?,
        })
    }

    /// Builds the dictionary with exactly the five keys, certificates as `<data>`.
    pub fn to_dictionary(&self) -> Dictionary {
        let mut dict = Dictionary::new();
        insert_data(&mut dict, DEVICE_CERTIFICATE, &self.device_certificate);
        insert_data(&mut dict, HOST_CERTIFICATE, &self.host_certificate);
        insert_string(&mut dict, HOST_ID, &self.host_id);
        insert_data(&mut dict, ROOT_CERTIFICATE, &self.root_certificate);
        insert_string(&mut dict, SYSTEM_BUID, &self.system_buid);
        dict
    }

    /// The DER of `DeviceCertificate`.
    pub fn device_certificate_der(&self) -> Result<CertificateDer<'static>, PairError> {
        certificate_der(&self.device_certificate, DEVICE_CERTIFICATE)
    }

    /// The DER of `HostCertificate`.
    pub fn host_certificate_der(&self) -> Result<CertificateDer<'static>, PairError> {
        certificate_der(&self.host_certificate, HOST_CERTIFICATE)
    }

    /// The DER of `RootCertificate`.
    pub fn root_certificate_der(&self) -> Result<CertificateDer<'static>, PairError> {
        certificate_der(&self.root_certificate, ROOT_CERTIFICATE)
    }

    /// The client certificates a device accepts from this host: the root certificate (which
    /// libimobiledevice's OpenSSL build presents) and the host certificate (pymobiledevice3).
    pub fn trusted_client_certificates(&self) -> Result<Vec<CertificateDer<'static>>, PairError> {
        Ok(vec![
            self.root_certificate_der()?,
            self.host_certificate_der()?,
        ])
    }
}

/// Generates a new pair record for a device, as a host does before sending `Pair`.
///
/// `device_public_key_pem` is lockdown's `DevicePublicKey`: a PKCS#1 `RSA PUBLIC KEY` PEM (an
/// SPKI `PUBLIC KEY` PEM is accepted too). New RSA-2048 root and host keys are generated; the
/// three certificates are X.509 v3 with empty subject and issuer, serial 1, sha256WithRSAEncryption
/// signatures by the root key, valid from `now` (whole seconds) for
/// [`PAIR_CERTIFICATE_VALIDITY`], with the extensions libimobiledevice gives them (protocol.md §3.4).
/// The escrow bag, Wi-Fi address and UDID are left empty: the device and the caller supply them.
pub fn generate_pair_record(
    device_public_key_pem: &[u8],
    host_id: String,
    system_buid: String,
    now: SystemTime,
) -> Result<PairRecord, PairError> {
    let device_key = ForeignRsaPublicKey {
        pkcs1: device_public_key_pkcs1(device_public_key_pem)?,
    };
    let (not_before, not_after) = validity(now)?;

    let root_key = generate_rsa_key()?;
    let host_key = generate_rsa_key()?;

    let root_params = pair_certificate_params(not_before, not_after, vec![basic_constraints(true)]);
    let root_cert = root_params
        .self_signed(&root_key)
        .map_err(|source| PairError::Sign {
            certificate: ROOT_CERTIFICATE,
            source,
        })?;
    let issuer = rcgen::Issuer::from_params(&root_params, &root_key);

    let host_params = pair_certificate_params(
        not_before,
        not_after,
        vec![basic_constraints(false), key_usage()],
    );
    let host_cert = host_params
        .signed_by(&host_key, &issuer)
        .map_err(|source| PairError::Sign {
            certificate: HOST_CERTIFICATE,
            source,
        })?;

    let device_params = pair_certificate_params(
        not_before,
        not_after,
        vec![
            basic_constraints(false),
            subject_key_identifier(&device_key.pkcs1),
            key_usage(),
        ],
    );
    let device_cert = device_params
        .signed_by(&device_key, &issuer)
        .map_err(|source| PairError::Sign {
            certificate: DEVICE_CERTIFICATE,
            source,
        })?;

    Ok(PairRecord {
        device_certificate: pem_encode(PEM_CERTIFICATE, device_cert.der()),
        host_certificate: pem_encode(PEM_CERTIFICATE, host_cert.der()),
        host_private_key: pem_encode(PEM_PKCS8_PRIVATE_KEY, host_key.serialized_der()),
        root_certificate: pem_encode(PEM_CERTIFICATE, root_cert.der()),
        root_private_key: pem_encode(PEM_PKCS8_PRIVATE_KEY, root_key.serialized_der()),
        host_id,
        system_buid,
        escrow_bag: None,
        wifi_mac_address: None,
        udid: None,
    })
}

/// The RSA key pair of a (simulated) iPhone: what lockdown reports as `DevicePublicKey` and what
/// signs the device side of every TLS handshake.
pub struct DeviceKey {
    key_pair: rcgen::KeyPair,
}

impl DeviceKey {
    /// Generates a new RSA-2048 device key.
    pub fn generate() -> Result<Self, PairError> {
        Ok(Self {
            key_pair: generate_rsa_key()?,
        })
    }

    /// Loads a device key from a PKCS#8 `PRIVATE KEY` PEM, as [`DeviceKey::to_pkcs8_pem`] writes.
    pub fn from_pkcs8_pem(pem: &[u8]) -> Result<Self, PairError> {
        const FIELD: &str = "device private key";
        let der = pem_decode(pem, FIELD, &[PEM_PKCS8_PRIVATE_KEY])?.into_contents();
        let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(der.as_slice()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .map_err(PairError::InvalidPrivateKey)?;
        Ok(Self { key_pair })
    }

    /// The private key as a PKCS#8 `PRIVATE KEY` PEM.
    pub fn to_pkcs8_pem(&self) -> String {
        pem_encode_string(PEM_PKCS8_PRIVATE_KEY, self.key_pair.serialized_der())
    }

    /// The public key as a PKCS#1 RSAPublicKey DER.
    pub fn public_key_pkcs1_der(&self) -> &[u8] {
        rcgen::PublicKeyData::der_bytes(&self.key_pair)
    }

    /// The public key as the `RSA PUBLIC KEY` PEM a real phone returns for GetValue
    /// `DevicePublicKey`.
    pub fn public_key_pkcs1_pem(&self) -> String {
        pem_encode_string(PEM_PKCS1_PUBLIC_KEY, self.public_key_pkcs1_der())
    }

    /// The public key as an X.509 SubjectPublicKeyInfo DER.
    pub fn subject_public_key_info(&self) -> SubjectPublicKeyInfoDer<'static> {
        SubjectPublicKeyInfoDer::from(der::rsa_spki(self.public_key_pkcs1_der()))
    }

    /// The private key in the form rustls loads.
    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            self.key_pair.serialized_der().to_vec(),
        ))
    }

    /// The device's TLS server identity for one host: that host's `DeviceCertificate` with this
    /// key. Fails if the certificate certifies another key.
    pub fn tls_identity(
        &self,
        device_certificate: CertificateDer<'static>,
    ) -> Result<DeviceIdentity, PairError> {
        let spki =
            der::certificate_spki(&device_certificate).ok_or(PairError::MalformedCertificate {
                field: DEVICE_CERTIFICATE,
            })?;
        let certified = der::spki_parts(spki).map(|parts| parts.public_key);
        if certified != Some(self.public_key_pkcs1_der()) {
            return Err(PairError::KeyMismatch);
        }
        Ok(DeviceIdentity::new(
            vec![device_certificate],
            self.private_key_der(),
        ))
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKey")
            .field("private_key", &Redacted)
            .finish_non_exhaustive()
    }
}

/// Errors from parsing, writing and generating pair records.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PairError {
    /// The pair record is larger than [`MAX_PAIR_RECORD_LEN`].
    #[error("pair record of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are neither an XML nor a binary property list.
    #[error("failed to parse the pair record plist")]
    Plist(#[source] plist::Error),
    /// The top-level plist value is not a dictionary.
    #[error("pair record plist is not a dictionary")]
    NotADictionary,
    /// A required key is absent.
    #[error("pair record has no {key}")]
    MissingKey {
        /// The plist key.
        key: &'static str,
    },
    /// A key holds a value of the wrong plist type.
    #[error("pair record {key} is not {expected}")]
    WrongType {
        /// The plist key.
        key: &'static str,
        /// The plist type(s) expected, e.g. "data".
        expected: &'static str,
    },
    /// Writing the plist failed.
    #[error("failed to write the pair record plist")]
    Write(#[source] plist::Error),
    /// A certificate or key field is not PEM.
    #[error("failed to decode {field} as pem")]
    Pem {
        /// The field, e.g. "HostCertificate".
        field: &'static str,
        /// What the PEM decoder reported.
        #[source]
        source: pem::PemError,
    },
    /// A PEM block has a label other than the ones the field allows.
    #[error("{field} is a pem {found:?} block, expected one of {expected:?}")]
    PemLabel {
        /// The field, e.g. "HostCertificate".
        field: &'static str,
        /// The label found after `-----BEGIN `.
        found: String,
        /// The labels allowed.
        expected: &'static [&'static str],
    },
    /// A certificate is not well-formed enough to find its public key.
    #[error("{field} is not a well-formed x.509 certificate")]
    MalformedCertificate {
        /// The field, e.g. "DeviceCertificate".
        field: &'static str,
    },
    /// The device public key is not an RSA public key we can certify.
    #[error("device public key is unusable: {reason}")]
    InvalidDevicePublicKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `now`, or `now` plus the validity period, is outside what a certificate can express.
    #[error("certificate validity period is out of range")]
    ValidityOutOfRange,
    /// Generating an RSA key failed.
    #[error("failed to generate an rsa key")]
    KeyGeneration(#[source] rcgen::Error),
    /// Building or signing a certificate failed.
    #[error("failed to sign the {certificate}")]
    Sign {
        /// Which certificate, e.g. "RootCertificate".
        certificate: &'static str,
        /// What rcgen reported.
        #[source]
        source: rcgen::Error,
    },
    /// A device private key could not be loaded as an RSA key.
    #[error("failed to load the device private key")]
    InvalidPrivateKey(#[source] rcgen::Error),
    /// A device certificate certifies another key than the device key.
    #[error("device certificate does not certify this device key")]
    KeyMismatch,
}

/// Shows a byte string only by its length.
struct ByteCount(usize);

impl fmt::Debug for ByteCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

/// Stands in for a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An RSA public key we certify without holding its private key (the device's).
struct ForeignRsaPublicKey {
    pkcs1: Vec<u8>,
}

impl rcgen::PublicKeyData for ForeignRsaPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.pkcs1
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        // rcgen only uses this to write the SPKI algorithm (rsaEncryption with NULL parameters);
        // the certificate's signature algorithm comes from the issuer key.
        &rcgen::PKCS_RSA_SHA256
    }
}

fn required_pem(dict: &Dictionary, key: &'static str) -> Result<Vec<u8>, PairError> {
    optional_pem(dict, key)?.ok_or(PairError::MissingKey { key })
}

fn optional_pem(dict: &Dictionary, key: &'static str) -> Result<Option<Vec<u8>>, PairError> {
    match dict.get(key) {
        None => Ok(None),
        Some(Value::Data(data)) => Ok(Some(data.clone())),
        // Some hand-edited and third-party records store PEM as a string; it is the same bytes.
        Some(Value::String(text)) => Ok(Some(text.clone().into_bytes())),
        Some(_) => Err(PairError::WrongType {
            key,
            expected: "data",
        }),
    }
}

fn optional_data(dict: &Dictionary, key: &'static str) -> Result<Option<Vec<u8>>, PairError> {
    match dict.get(key) {
        None => Ok(None),
        Some(Value::Data(data)) => Ok(Some(data.clone())),
        Some(_) => Err(PairError::WrongType {
            key,
            expected: "data",
        }),
    }
}

fn required_string(dict: &Dictionary, key: &'static str) -> Result<String, PairError> {
    optional_string(dict, key)?.ok_or(PairError::MissingKey { key })
}

fn optional_string(dict: &Dictionary, key: &'static str) -> Result<Option<String>, PairError> {
    match dict.get(key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(PairError::WrongType {
            key,
            expected: "a string",
        }),
    }
}

fn insert_data(dict: &mut Dictionary, key: &str, data: &[u8]) {
    dict.insert(key.to_owned(), Value::Data(data.to_vec()));
}

fn insert_string(dict: &mut Dictionary, key: &str, text: &str) {
    dict.insert(key.to_owned(), Value::String(text.to_owned()));
}

/// Decodes the first PEM block of `input` and checks its label against `labels`.
fn pem_decode(
    input: &[u8],
    field: &'static str,
    labels: &'static [&'static str],
) -> Result<pem::Pem, PairError> {
    let block = pem::parse(input).map_err(|source| PairError::Pem { field, source })?;
    if labels.contains(&block.tag()) {
        Ok(block)
    } else {
        Err(PairError::PemLabel {
            field,
            found: block.tag().to_owned(),
            expected: labels,
        })
    }
}

/// PEM with `\n` line endings on every platform, like OpenSSL and the phone write it.
fn pem_encode_string(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), config)
}

fn pem_encode(label: &str, der: &[u8]) -> Vec<u8> {
    pem_encode_string(label, der).into_bytes()
}

fn certificate_der(pem: &[u8], field: &'static str) -> Result<CertificateDer<'static>, PairError> {
    let der = pem_decode(pem, field, &[PEM_CERTIFICATE])?.into_contents();
    // Check now that the public key can be found, so TLS setup fails early and typed.
    if der::certificate_spki(&der).is_none() {
        return Err(PairError::MalformedCertificate { field });
    }
    Ok(CertificateDer::from(der))
}

fn certificate_spki(
    cert: &CertificateDer<'_>,
    field: &'static str,
) -> Result<SubjectPublicKeyInfoDer<'static>, PairError> {
    der::certificate_spki(cert)
        .map(|spki| SubjectPublicKeyInfoDer::from(spki.to_vec()))
        .ok_or(PairError::MalformedCertificate { field })
}

fn private_key_der(pem: &[u8], field: &'static str) -> Result<PrivateKeyDer<'static>, PairError> {
    // OpenSSL and pymobiledevice3 write PKCS#8; GnuTLS and mbedTLS builds of libimobiledevice
    // write the traditional PKCS#1 form.
    const LABELS: &[&str] = &[
        PEM_PKCS8_PRIVATE_KEY,
        PEM_PKCS1_PRIVATE_KEY,
        PEM_SEC1_PRIVATE_KEY,
    ];
    let block = pem_decode(pem, field, LABELS)?;
    let key = match block.tag() {
        PEM_PKCS1_PRIVATE_KEY => {
            PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(block.into_contents()))
        }
        PEM_SEC1_PRIVATE_KEY => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(block.into_contents())),
        _ => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(block.into_contents())),
    };
    Ok(key)
}

/// Reads `DevicePublicKey` and returns the PKCS#1 RSAPublicKey DER inside it.
fn device_public_key_pkcs1(pem: &[u8]) -> Result<Vec<u8>, PairError> {
    const LABELS: &[&str] = &[PEM_PKCS1_PUBLIC_KEY, PEM_SPKI_PUBLIC_KEY];
    let block = pem_decode(pem, DEVICE_PUBLIC_KEY, LABELS)?;
    let pkcs1 = if block.tag() == PEM_SPKI_PUBLIC_KEY {
        let spki = der::spki_parts(block.contents()).ok_or(PairError::InvalidDevicePublicKey {
            reason: "malformed subject public key info",
        })?;
        if !der::is_rsa_encryption(spki.algorithm) {
            return Err(PairError::InvalidDevicePublicKey {
                reason: "not an rsa key",
            });
        }
        spki.public_key.to_vec()
    } else {
        block.into_contents()
    };
    der::check_rsa_public_key(&pkcs1)
        .map_err(|reason| PairError::InvalidDevicePublicKey { reason })?;
    Ok(pkcs1)
}

fn generate_rsa_key() -> Result<rcgen::KeyPair, PairError> {
    // With aws-lc-rs, rcgen generates RSA-2048 keys with e = 65537 for this algorithm.
    rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(PairError::KeyGeneration)
}

/// `now`, truncated to whole seconds (X.509 times have no fractions), and the end of validity.
fn validity(now: SystemTime) -> Result<(OffsetDateTime, OffsetDateTime), PairError> {
    let unix_seconds = match now.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok(),
        // Before 1970: round towards the past so truncation never moves `now` forward.
        Err(before) => {
            let before = before.duration();
            let whole = before.as_secs() + u64::from(before.subsec_nanos() > 0);
            i64::try_from(whole).ok().and_then(i64::checked_neg)
        }
    }
    .ok_or(PairError::ValidityOutOfRange)?;
    let not_before = OffsetDateTime::from_unix_timestamp(unix_seconds)
        .map_err(|_| PairError::ValidityOutOfRange)?;
    let not_after = not_before
        .checked_add(PAIR_CERTIFICATE_VALIDITY)
        .ok_or(PairError::ValidityOutOfRange)?;
    // UTCTime covers 1950–2049 and rcgen writes GeneralizedTime (four-digit years) otherwise.
    if not_before.year() < 1950 || not_after.year() > 9999 {
        return Err(PairError::ValidityOutOfRange);
    }
    Ok((not_before, not_after))
}

fn pair_certificate_params(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    extensions: Vec<rcgen::CustomExtension>,
) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[1]));
    // Pair certificates have empty subject and issuer names; rcgen's default has a CN.
    params.distinguished_name = rcgen::DistinguishedName::new();
    // rcgen adds a SubjectKeyIdentifier whenever it writes BasicConstraints itself, which
    // libimobiledevice's root and host certificates do not have. So rcgen writes no extension of
    // its own, and every extension comes from the list below, in libimobiledevice's order.
    params.is_ca = rcgen::IsCa::NoCa;
    params.key_usages = Vec::new();
    params.use_authority_key_identifier_extension = false;
    params.custom_extensions = extensions;
    params
}

const OID_SUBJECT_KEY_IDENTIFIER: &[u64] = &[2, 5, 29, 14];
const OID_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const OID_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];

/// BasicConstraints, critical: `SEQUENCE { BOOLEAN TRUE }` for a CA, the empty `SEQUENCE {}`
/// otherwise (cA defaults to FALSE and DER omits defaults).
fn basic_constraints(ca: bool) -> rcgen::CustomExtension {
    let content = if ca {
        vec![0x30, 0x03, 0x01, 0x01, 0xff]
    } else {
        vec![0x30, 0x00]
    };
    let mut ext = rcgen::CustomExtension::from_oid_content(OID_BASIC_CONSTRAINTS, content);
    ext.set_criticality(true);
    ext
}

/// KeyUsage, critical: digitalSignature (bit 0) and keyEncipherment (bit 2), a BIT STRING of
/// one byte 0b1010_0000 with five unused bits.
fn key_usage() -> rcgen::CustomExtension {
    let mut ext =
        rcgen::CustomExtension::from_oid_content(OID_KEY_USAGE, vec![0x03, 0x02, 0x05, 0xa0]);
    ext.set_criticality(true);
    ext
}

/// SubjectKeyIdentifier, not critical: the SHA-1 of the subjectPublicKey bits (RFC 5280
/// §4.2.1.2 method 1), which is what OpenSSL's `hash` and libimobiledevice's GnuTLS path compute.
fn subject_key_identifier(pkcs1: &[u8]) -> rcgen::CustomExtension {
    let digest = Sha1::digest(pkcs1);
    let mut content = Vec::with_capacity(2 + digest.len());
    der::write_tlv(der::TAG_OCTET_STRING, &digest, &mut content);
    rcgen::CustomExtension::from_oid_content(OID_SUBJECT_KEY_IDENTIFIER, content)
}

/// A small DER reader and writer, just enough to find and build public keys.
///
/// It reads only definite lengths of at most four bytes and never reads past its input, so it
/// is safe on attacker-supplied certificates; it allocates nothing while reading.
pub(crate) mod der {
    pub(crate) const TAG_INTEGER: u8 = 0x02;
    pub(crate) const TAG_BIT_STRING: u8 = 0x03;
    pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
    pub(crate) const TAG_SEQUENCE: u8 = 0x30;
    const TAG_EXPLICIT_0: u8 = 0xa0;

    /// The content of the rsaEncryption AlgorithmIdentifier: OID 1.2.840.113549.1.1.1, NULL.
    const RSA_ENCRYPTION_ALGORITHM: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];

    /// One TLV: its tag, its content and the whole encoding including the header.
    pub(crate) struct Tlv<'a> {
        pub(crate) tag: u8,
        pub(crate) content: &'a [u8],
        pub(crate) whole: &'a [u8],
    }

    /// Reads the TLV at the front of `input`; returns it and what follows.
    pub(crate) fn read_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
        let (&tag, after_tag) = input.split_first()?;
        // High tag numbers (low five bits all set) never occur in the structures we walk.
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, after_first) = after_tag.split_first()?;
        let (len, after_len) = if first < 0x80 {
            (usize::from(first), after_first)
        } else {
            let count = usize::from(first & 0x7f);
            // 0x80 is BER's indefinite length; over four length bytes is far beyond any key.
            if count == 0 || count > 4 {
                return None;
            }
            let bytes = after_first.get(..count)?;
            let len = bytes
                .iter()
                .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte));
            (usize::try_from(len).ok()?, after_first.get(count..)?)
        };
        let content = after_len.get(..len)?;
        let rest = after_len.get(len..)?;
        let whole = input.get(..input.len() - rest.len())?;
        Some((
            Tlv {
                tag,
                content,
                whole,
            },
            rest,
        ))
    }

    /// Reads a TLV that must have tag `tag`.
    pub(crate) fn expect_tlv(input: &[u8], tag: u8) -> Option<(Tlv<'_>, &[u8])> {
        let (tlv, rest) = read_tlv(input)?;
        (tlv.tag == tag).then_some((tlv, rest))
    }

    /// The whole SubjectPublicKeyInfo TLV of an X.509 certificate, without validating anything
    /// else about it (pair certificates have empty names and sometimes serial 0).
    pub(crate) fn certificate_spki(cert: &[u8]) -> Option<&[u8]> {
        let (certificate, trailing) = expect_tlv(cert, TAG_SEQUENCE)?;
        if !trailing.is_empty() {
            return None;
        }
        let (tbs, _signature) = expect_tlv(certificate.content, TAG_SEQUENCE)?;
        let mut fields = tbs.content;
        // The version is optional: v1 certificates omit it.
        if fields.first() == Some(&TAG_EXPLICIT_0) {
            fields = read_tlv(fields)?.1;
        }
        let (_serial, fields) = expect_tlv(fields, TAG_INTEGER)?;
        let (_signature, fields) = expect_tlv(fields, TAG_SEQUENCE)?;
        let (_issuer, fields) = expect_tlv(fields, TAG_SEQUENCE)?;
        let (_validity, fields) = expect_tlv(fields, TAG_SEQUENCE)?;
        let (_subject, fields) = expect_tlv(fields, TAG_SEQUENCE)?;
        let (spki, _extensions) = expect_tlv(fields, TAG_SEQUENCE)?;
        spki_parts(spki.whole)?;
        Some(spki.whole)
    }

    /// The two halves of a SubjectPublicKeyInfo.
    pub(crate) struct Spki<'a> {
        /// The content of the AlgorithmIdentifier SEQUENCE (OID and parameters).
        pub(crate) algorithm: &'a [u8],
        /// The subjectPublicKey bits; for RSA the PKCS#1 RSAPublicKey DER.
        pub(crate) public_key: &'a [u8],
    }

    /// Splits a SubjectPublicKeyInfo DER into algorithm and key bits.
    pub(crate) fn spki_parts(spki: &[u8]) -> Option<Spki<'_>> {
        let (outer, trailing) = expect_tlv(spki, TAG_SEQUENCE)?;
        if !trailing.is_empty() {
            return None;
        }
        let (algorithm, rest) = expect_tlv(outer.content, TAG_SEQUENCE)?;
        let (bits, rest) = expect_tlv(rest, TAG_BIT_STRING)?;
        if !rest.is_empty() {
            return None;
        }
        // Key bits are always whole bytes.
        let (&unused_bits, public_key) = bits.content.split_first()?;
        (unused_bits == 0).then_some(Spki {
            algorithm: algorithm.content,
            public_key,
        })
    }

    /// Whether an AlgorithmIdentifier content is rsaEncryption (NULL parameters or none).
    pub(crate) fn is_rsa_encryption(algorithm: &[u8]) -> bool {
        algorithm == RSA_ENCRYPTION_ALGORITHM
            || Some(algorithm) == RSA_ENCRYPTION_ALGORITHM.get(..11)
    }

    /// Checks that `pkcs1` is an RSAPublicKey `SEQUENCE { INTEGER n, INTEGER e }` with a
    /// positive modulus of 1024 to 8192 bits and an odd exponent above 1.
    pub(crate) fn check_rsa_public_key(pkcs1: &[u8]) -> Result<(), &'static str> {
        const MALFORMED: &str = "malformed rsa public key";
        let (outer, trailing) = expect_tlv(pkcs1, TAG_SEQUENCE).ok_or(MALFORMED)?;
        if !trailing.is_empty() {
            return Err(MALFORMED);
        }
        let (modulus, rest) = expect_tlv(outer.content, TAG_INTEGER).ok_or(MALFORMED)?;
        let (exponent, rest) = expect_tlv(rest, TAG_INTEGER).ok_or(MALFORMED)?;
        if !rest.is_empty() {
            return Err(MALFORMED);
        }
        let modulus = positive_magnitude(modulus.content).ok_or("rsa modulus is not positive")?;
        let exponent =
            positive_magnitude(exponent.content).ok_or("rsa exponent is not positive")?;
        let bits = bit_length(modulus);
        if !(1024..=8192).contains(&bits) {
            return Err("rsa modulus is not 1024 to 8192 bits");
        }
        let exponent_is_one = exponent == [1];
        if exponent_is_one || exponent.last().is_none_or(|low| low & 1 == 0) {
            return Err("rsa exponent is not an odd number above 1");
        }
        Ok(())
    }

    /// The magnitude of a positive INTEGER without leading zero bytes, or `None` if the
    /// integer is zero or negative.
    fn positive_magnitude(integer: &[u8]) -> Option<&[u8]> {
        if integer.first().is_none_or(|first| first & 0x80 != 0) {
            return None;
        }
        let start = integer.iter().position(|&byte| byte != 0)?;
        integer.get(start..)
    }

    fn bit_length(magnitude: &[u8]) -> usize {
        match magnitude.split_first() {
            None => 0,
            Some((first, rest)) => rest.len() * 8 + (8 - first.leading_zeros() as usize),
        }
    }

    /// Appends a TLV with a definite length to `out`.
    pub(crate) fn write_tlv(tag: u8, content: &[u8], out: &mut Vec<u8>) {
        out.push(tag);
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|&&byte| byte == 0).count();
            let significant = bytes.get(skip..).unwrap_or_default();
            out.push(0x80 | significant.len() as u8);
            out.extend_from_slice(significant);
        }
        out.extend_from_slice(content);
    }

    /// Wraps a PKCS#1 RSAPublicKey into a SubjectPublicKeyInfo with the rsaEncryption algorithm.
    pub(crate) fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
        let mut algorithm = Vec::with_capacity(2 + RSA_ENCRYPTION_ALGORITHM.len());
        write_tlv(TAG_SEQUENCE, RSA_ENCRYPTION_ALGORITHM, &mut algorithm);
        let mut bits = Vec::with_capacity(1 + pkcs1.len());
        bits.push(0);
        bits.extend_from_slice(pkcs1);
        let mut content = algorithm;
        write_tlv(TAG_BIT_STRING, &bits, &mut content);
        let mut spki = Vec::with_capacity(content.len() + 6);
        write_tlv(TAG_SEQUENCE, &content, &mut spki);
        spki
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reads_short_and_long_lengths() {
            let (tlv, rest) = read_tlv(&[0x04, 0x01, 0xaa, 0xff]).expect("short form");
            assert_eq!(
                (tlv.tag, tlv.content, tlv.whole),
                (0x04, &[0xaa][..], &[0x04, 0x01, 0xaa][..])
            );
            assert_eq!(rest, &[0xff]);

            let mut long = vec![0x04, 0x81, 0x80];
            long.extend(std::iter::repeat_n(7, 0x80));
            let (tlv, rest) = read_tlv(&long).expect("long form");
            assert_eq!(tlv.content.len(), 0x80);
            assert!(rest.is_empty());
        }

        #[test]
        fn rejects_truncated_and_unbounded_lengths() {
            assert!(read_tlv(&[]).is_none());
            assert!(read_tlv(&[0x30]).is_none());
            assert!(read_tlv(&[0x30, 0x02, 0x00]).is_none());
            assert!(
                read_tlv(&[0x30, 0x80, 0x00, 0x00]).is_none(),
                "indefinite length"
            );
            assert!(
                read_tlv(&[0x30, 0x85, 1, 0, 0, 0, 0]).is_none(),
                "five length bytes"
            );
            assert!(
                read_tlv(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none(),
                "4 GiB claimed"
            );
            assert!(read_tlv(&[0x1f, 0x01, 0x00]).is_none(), "high tag number");
        }

        #[test]
        fn writer_and_reader_agree() {
            for len in [0usize, 1, 0x7f, 0x80, 0xff, 0x100, 0x1_0000] {
                let content = vec![0x5a; len];
                let mut out = Vec::new();
                write_tlv(TAG_OCTET_STRING, &content, &mut out);
                let (tlv, rest) = read_tlv(&out).expect("round trip");
                assert_eq!(tlv.content, &content[..]);
                assert_eq!(tlv.whole.len(), out.len());
                assert!(rest.is_empty());
            }
        }

        #[test]
        fn rsa_public_key_checks() {
            let mut modulus = vec![0x00, 0xc0];
            modulus.extend(std::iter::repeat_n(0x11, 255));
            let key = |modulus: &[u8], exponent: &[u8]| {
                let mut content = Vec::new();
                write_tlv(TAG_INTEGER, modulus, &mut content);
                write_tlv(TAG_INTEGER, exponent, &mut content);
                let mut out = Vec::new();
                write_tlv(TAG_SEQUENCE, &content, &mut out);
                out
            };
            assert_eq!(
                check_rsa_public_key(&key(&modulus, &[0x01, 0x00, 0x01])),
                Ok(())
            );
            assert!(check_rsa_public_key(&key(&modulus, &[0x01])).is_err());
            assert!(check_rsa_public_key(&key(&modulus, &[0x02])).is_err());
            assert!(
                check_rsa_public_key(&key(&modulus[1..], &[0x03])).is_err(),
                "negative"
            );
            assert!(
                check_rsa_public_key(&key(&modulus[..64], &[0x03])).is_err(),
                "too short"
            );
            let spki = rsa_spki(&key(&modulus, &[0x03]));
            let parts = spki_parts(&spki).expect("spki");
            assert!(is_rsa_encryption(parts.algorithm));
            assert_eq!(parts.public_key, &key(&modulus, &[0x03])[..]);
        }
    }
}

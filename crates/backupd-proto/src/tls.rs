//! rustls configurations for lockdown's TLS, for the host (client) and the device (server) side.
//!
//! The host is the TLS client and proves itself with a certificate from the pair record; the
//! phone is the server and presents its `DeviceCertificate` (protocol.md §3.6, §9). Pair
//! certificates have empty names and, from libimobiledevice's OpenSSL build, serial 0, so no
//! WebPKI path validation happens here: certificates are recognised by their public key (host
//! side) or byte for byte (device side), and handshake signatures are checked against the key
//! in the presented certificate. rustls is sans-IO, so this module only builds configurations;
//! the transport drives the connections.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SigningKey, SingleCertAndKey};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, PeerMisbehaved, SignatureScheme,
};
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime,
};

use crate::pair::{PairError, PairRecord, der};

/// The server name the host uses for the phone, as jkcoxson/idevice does.
///
/// Nothing checks it, and [`host_client_config`] turns SNI off (libimobiledevice sends none and
/// pymobiledevice3 an empty one), so it only satisfies rustls' API.
pub const DEVICE_SERVER_NAME: &str = "Device";

/// Both versions current iOS speaks; older protocol versions are out of rustls' reach.
static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// [`DEVICE_SERVER_NAME`] as the `ServerName` `rustls::ClientConnection::new` takes.
pub fn device_server_name() -> ServerName<'static> {
    ServerName::DnsName(
        DEVICE_SERVER_NAME
            .try_into()
            .expect("\"Device\" is a syntactically valid DNS name"),
    )
}

/// How the host checks the certificate the phone presents.
///
/// The clients we interoperate with (libimobiledevice, pymobiledevice3, idevice) accept any
/// certificate from the device. We can do better, because the pair record holds the
/// `DeviceCertificate` we issued for the phone's own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevicePinning {
    /// Accept the device only if its certificate's SubjectPublicKeyInfo equals the one in the
    /// pair record's `DeviceCertificate`, and check its handshake signature against that key.
    /// The certificate itself may differ (a phone may present another certificate for the same
    /// key); the key may not. This defeats a machine-in-the-middle on the usbmuxd socket.
    Pinned,
    /// Accept any device certificate, as the reference clients do, while still checking the
    /// handshake signature against the key in the presented certificate. Building a
    /// configuration with this logs a warning.
    Disabled,
}

/// The phone's own TLS identity: its certificate chain (in practice the one `DeviceCertificate`
/// of the pair record for the host it talks to) and the device private key.
///
/// Build it with [`crate::pair::DeviceKey::tls_identity`], which checks that key and
/// certificate belong together, or with [`DeviceIdentity::new`].
pub struct DeviceIdentity {
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl DeviceIdentity {
    /// Pairs a certificate chain (end entity first) with the private key of its end entity.
    pub fn new(cert_chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self { cert_chain, key }
    }

    /// The certificate chain, end entity first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.cert_chain
    }
}

impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("certificates", &self.cert_chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The host's TLS client configuration for lockdown sessions and services of one device.
///
/// The host presents `HostCertificate` with `HostPrivateKey` as its client certificate, like
/// pymobiledevice3 and idevice. `pinning` chooses how the device certificate is checked. TLS
/// 1.3 and 1.2 are offered, with the aws-lc-rs provider (never the process-wide default) and
/// SNI off. Connect with [`device_server_name`].
pub fn host_client_config(
    record: &PairRecord,
    pinning: DevicePinning,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let host_certificate = record.host_certificate_der()?;
    let host_key = load_signing_key(
        &provider,
        record.host_private_key_der()?,
        &host_certificate,
        "host",
    )?;
    let pinned_spki = match pinning {
        DevicePinning::Pinned => Some(record.device_public_key_spki()?.as_ref().to_vec()),
        DevicePinning::Disabled => {
            tracing::warn!(
                host_id = %record.host_id,
                "device certificate pinning is disabled: any device key will be accepted"
            );
            None
        }
    };
    let verifier = DeviceCertVerifier {
        pinned_spki,
        algorithms: provider.signature_verification_algorithms,
    };
    let identity = CertifiedKey::new(vec![host_certificate], host_key);
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(TlsError::Config)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(identity)));
    config.enable_sni = false;
    Ok(Arc::new(config))
}

/// The (simulated) phone's TLS server configuration.
///
/// The device presents `identity` and requires a client certificate that is byte for byte one
/// of `trusted_client_certs`. Pass both the `RootCertificate` and the `HostCertificate` of
/// every trusted pair record: libimobiledevice's OpenSSL build presents the root certificate,
/// pymobiledevice3 the host certificate. The client's handshake signature is checked against
/// the key of the certificate it presented; no CA names are hinted. TLS 1.3 and 1.2 are
/// offered with the aws-lc-rs provider, whose RSA PKCS#1 and PSS schemes OpenSSL clients at
/// `@SECLEVEL=0` negotiate.
pub fn device_server_config(
    identity: DeviceIdentity,
    trusted_client_certs: Vec<CertificateDer<'static>>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    if trusted_client_certs.is_empty() {
        return Err(TlsError::NoTrustedClientCertificates);
    }
    // A certificate whose key cannot be found could never sign a handshake; say so now.
    if trusted_client_certs
        .iter()
        .any(|cert| der::certificate_spki(cert).is_none())
    {
        return Err(TlsError::MalformedCertificate {
            role: "trusted client",
        });
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let DeviceIdentity { cert_chain, key } = identity;
    let end_entity = cert_chain.first().ok_or(TlsError::EmptyCertificateChain)?;
    let key = load_signing_key(&provider, key, end_entity, "device")?;
    let verifier = TrustedClientVerifier {
        trusted: trusted_client_certs,
        algorithms: provider.signature_verification_algorithms,
    };
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(CertifiedKey::new(
            cert_chain, key,
        ))));
    Ok(Arc::new(config))
}

/// Errors from building TLS configurations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key in the pair record could not be decoded.
    #[error("failed to read the pair record")]
    PairRecord(#[from] PairError),
    /// rustls could not load a private key.
    #[error("failed to load the {role} private key")]
    PrivateKey {
        /// Whose key: "host" or "device".
        role: &'static str,
        /// What rustls reported.
        #[source]
        source: rustls::Error,
    },
    /// A private key does not belong to the certificate presented with it.
    #[error("the {role} private key does not match its certificate")]
    KeyMismatch {
        /// Whose key: "host" or "device".
        role: &'static str,
    },
    /// A certificate is not well-formed enough to find its public key.
    #[error("the {role} certificate is malformed")]
    MalformedCertificate {
        /// Which certificate: "device" or "trusted client".
        role: &'static str,
    },
    /// The device identity has no certificate.
    #[error("the device identity has no certificate")]
    EmptyCertificateChain,
    /// No client certificate was given to trust, so no host could ever connect.
    #[error("no trusted client certificates were given")]
    NoTrustedClientCertificates,
    /// rustls rejected the configuration.
    #[error("failed to configure tls")]
    Config(#[source] rustls::Error),
}

/// Loads `key` with the provider and checks that it is the key certified by `certificate`.
fn load_signing_key(
    provider: &CryptoProvider,
    key: PrivateKeyDer<'static>,
    certificate: &CertificateDer<'_>,
    role: &'static str,
) -> Result<Arc<dyn SigningKey>, TlsError> {
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::PrivateKey { role, source })?;
    let certified = der::certificate_spki(certificate)
        .and_then(der::spki_parts)
        .ok_or(TlsError::MalformedCertificate { role })?;
    // rustls' own check (`CertifiedKey::keys_match`) parses the certificate with webpki; ours
    // only needs the key bits, so unusual pair certificates still load.
    let own = key.public_key();
    let own_bits = own
        .as_ref()
        .and_then(|spki| der::spki_parts(spki))
        .map(|parts| parts.public_key);
    if own_bits != Some(certified.public_key) {
        return Err(TlsError::KeyMismatch { role });
    }
    Ok(key)
}

/// Which TLS version's signature rules apply.
#[derive(Clone, Copy)]
enum Version {
    Tls12,
    Tls13,
}

/// Checks a handshake signature against a SubjectPublicKeyInfo, without parsing a certificate.
fn verify_with_spki(
    message: &[u8],
    spki: &[u8],
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
    version: Version,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    match version {
        Version::Tls13 => rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki),
            dss,
            algorithms,
        ),
        Version::Tls12 => verify_tls12_with_spki(message, spki, dss, algorithms),
    }
}

/// TLS 1.2 has no raw-key helper in rustls, so this does what `verify_tls12_signature` does
/// after webpki parsed the certificate: try every algorithm mapped to the scheme whose public
/// key algorithm matches the key's.
fn verify_tls12_with_spki(
    message: &[u8],
    spki: &[u8],
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let candidates = algorithms
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == dss.scheme)
        .map(|(_, candidates)| *candidates)
        .ok_or(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
    let key = der::spki_parts(spki).ok_or(rustls::Error::InvalidCertificate(
        CertificateError::BadEncoding,
    ))?;
    let algorithm = candidates
        .iter()
        .find(|candidate| candidate.public_key_alg_id().as_ref() == key.algorithm)
        .ok_or_else(|| {
            rustls::Error::InvalidCertificate(
                CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                    signature_algorithm_id: candidates
                        .first()
                        .map(|candidate| candidate.signature_alg_id().as_ref().to_vec())
                        .unwrap_or_default(),
                    public_key_algorithm_id: key.algorithm.to_vec(),
                },
            )
        })?;
    algorithm
        .verify_signature(key.public_key, message, dss.signature())
        .map(|()| HandshakeSignatureValid::assertion())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadSignature))
}

/// The SubjectPublicKeyInfo of a presented certificate, or rustls' error for a bad one.
fn presented_spki<'a>(cert: &'a CertificateDer<'_>) -> Result<&'a [u8], rustls::Error> {
    der::certificate_spki(cert).ok_or(rustls::Error::InvalidCertificate(
        CertificateError::BadEncoding,
    ))
}

/// The host's check of the device certificate (see [`DevicePinning`]).
#[derive(Debug)]
struct DeviceCertVerifier {
    /// The SPKI DER of the pair record's device certificate, or `None` when pinning is off.
    pinned_spki: Option<Vec<u8>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl DeviceCertVerifier {
    fn verify(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        version: Version,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // With pinning the pinned key is used directly: it is the key the device must hold.
        let spki = match &self.pinned_spki {
            Some(pinned) => pinned.as_slice(),
            None => presented_spki(cert)?,
        };
        verify_with_spki(message, spki, dss, &self.algorithms, version)
    }
}

impl ServerCertVerifier for DeviceCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = presented_spki(end_entity)?;
        match &self.pinned_spki {
            Some(pinned) if pinned.as_slice() != presented => Err(
                rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure),
            ),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, cert, dss, Version::Tls12)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, cert, dss, Version::Tls13)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The device's check of the host's client certificate: an exact match against a list.
#[derive(Debug)]
struct TrustedClientVerifier {
    trusted: Vec<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for TrustedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Pair certificates have empty names, so there is nothing useful to hint.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self
            .trusted
            .iter()
            .any(|trusted| trusted.as_ref() == end_entity.as_ref())
        {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_with_spki(
            message,
            presented_spki(cert)?,
            dss,
            &self.algorithms,
            Version::Tls12,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_with_spki(
            message,
            presented_spki(cert)?,
            dss,
            &self.algorithms,
            Version::Tls13,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

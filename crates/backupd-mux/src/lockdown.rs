//! A lockdownd client: values, pairing, sessions and service start-up over a usbmuxd tunnel.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use plist::Value;
use rustls::pki_types::ServerName;

use backupd_proto::lockdown::{self as proto, DeviceError, LOCKDOWN_PORT, Request, ServiceStarted};
use backupd_proto::pair::{self, PairRecord};
use backupd_proto::tls::{self, DevicePinning};
use backupd_proto::usbmuxd::Device;

use crate::conn::PlistConn;
use crate::error::TransportError;
use crate::muxd::Muxd;
use crate::stream::{DeviceStream, MuxStream};

/// The label backupd gives itself in lockdown requests.
pub const LABEL: &str = "backupd";

/// Upgrades a device stream to TLS with the pair record's host identity.
pub(crate) async fn start_tls(
    stream: MuxStream,
    config: Arc<rustls::ClientConfig>,
) -> Result<DeviceStream, TransportError> {
    let connector = tokio_rustls::TlsConnector::from(config);
    // The device's certificate has no name; pinning, not the name, decides whom we talk to.
    let name = ServerName::try_from("Device").map_err(|_| TransportError::Timeout("tls name"))?;
    let tls = connector
        .connect(name, stream)
        .await
        .map_err(TransportError::TlsHandshake)?;
    Ok(DeviceStream::Tls(Box::new(tls)))
}

/// A lockdownd connection, with or without a session.
#[derive(Debug)]
pub struct Lockdown {
    conn: PlistConn,
    muxd: Muxd,
    device: Device,
    session: Option<Session>,
}

#[derive(Debug)]
struct Session {
    #[expect(
        dead_code,
        reason = "kept for a StopSession; backupd reconnects instead of stopping"
    )]
    id: String,
    tls: Arc<rustls::ClientConfig>,
}

/// What happened when backupd asked the phone to trust this host.
#[derive(Debug)]
#[non_exhaustive]
pub enum PairOutcome {
    /// Trusted; the record was saved through usbmuxd.
    Paired(Box<PairRecord>),
    /// The Trust dialog is on the screen; ask again after the person answers.
    Pending,
    /// The person tapped "Don't Trust".
    Denied,
    /// The phone is locked with a passcode; it must be unlocked first.
    PasscodeLocked,
}

impl Lockdown {
    /// Opens a plaintext lockdownd connection to `device`.
    pub async fn connect(muxd: &Muxd, device: &Device) -> Result<Self, TransportError> {
        let stream = muxd.connect(device.device_id, LOCKDOWN_PORT).await?;
        Ok(Self {
            conn: PlistConn::new(DeviceStream::Plain(stream)),
            muxd: muxd.clone(),
            device: device.clone(),
            session: None,
        })
    }

    /// The device this connection talks to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    async fn call(&mut self, request: Request) -> Result<Value, TransportError> {
        self.conn.request(request.to_dict(LABEL)).await
    }

    /// `QueryType`; lockdownd answers `com.apple.mobile.lockdown`.
    pub async fn query_type(&mut self) -> Result<String, TransportError> {
        let reply = self.call(Request::QueryType).await?;
        Ok(proto::parse_query_type(&reply)?)
    }

    /// `GetValue` of one key or of a whole domain; `None` when the device has no value.
    pub async fn get_value(
        &mut self,
        domain: Option<&str>,
        key: Option<&str>,
    ) -> Result<Option<Value>, TransportError> {
        let request = Request::GetValue {
            domain: domain.map(str::to_owned),
            key: key.map(str::to_owned),
        };
        let reply = self.call(request).await?;
        Ok(proto::parse_get_value(&reply)?)
    }

    /// `SetValue` (needs a session).
    pub async fn set_value(
        &mut self,
        domain: Option<&str>,
        key: &str,
        value: Value,
    ) -> Result<(), TransportError> {
        let request = Request::SetValue {
            domain: domain.map(str::to_owned),
            key: key.to_owned(),
            value,
        };
        let reply = self.call(request).await?;
        proto::check_reply("SetValue", &reply)?;
        Ok(())
    }

    /// Asks the phone to trust this host with a freshly made pair record, and saves it through usbmuxd on
    /// success.
    ///
    /// `pending` carries the record of an earlier attempt whose Trust dialog is still showing, so that retries
    /// present the same host and the phone shows one dialog.
    pub async fn pair(
        &mut self,
        pending: &mut Option<PairRecord>,
        now: SystemTime,
    ) -> Result<PairOutcome, TransportError> {
        let record = match pending.take() {
            Some(record) => record,
            None => {
                let key = self.get_value(None, Some("DevicePublicKey")).await?;
                let key = key.as_ref().and_then(Value::as_data).ok_or(
                    proto::LockdownError::Malformed {
                        request: "GetValue".into(),
                        what: "DevicePublicKey",
                    },
                )?;
                let key = key.to_vec();
                // iOS 7 refuses WiFiAddress once Pair has been sent, so it is read first.
                let wifi = self.get_value(None, Some("WiFiAddress")).await?;
                let buid = self.muxd.read_buid().await?;
                let host_id = uuid_upper();
                let mut record = pair::generate_pair_record(&key, host_id, buid, now)?;
                record.wifi_mac_address =
                    wifi.as_ref().and_then(Value::as_string).map(str::to_owned);
                record.udid = Some(self.device.udid.clone());
                record
            }
        };
        let request = Request::Pair {
            record: record.pair_request_dictionary(),
            host_name: host_name(),
        };
        let reply = self.call(request).await?;
        match proto::parse_pair(&reply) {
            Ok(escrow) => {
                let mut record = record;
                record.escrow_bag = escrow;
                self.muxd
                    .save_pair_record(
                        &self.device.udid,
                        Some(self.device.device_id),
                        record.to_xml()?,
                    )
                    .await?;
                Ok(PairOutcome::Paired(Box::new(record)))
            }
            Err(e) => match e.device_error() {
                Some(DeviceError::PairingDialogResponsePending) => {
                    *pending = Some(record);
                    Ok(PairOutcome::Pending)
                }
                Some(DeviceError::UserDeniedPairing) => Ok(PairOutcome::Denied),
                Some(DeviceError::PasswordProtected) => {
                    *pending = Some(record);
                    Ok(PairOutcome::PasscodeLocked)
                }
                _ => Err(e.into()),
            },
        }
    }

    /// Starts a session with `record` and, when the phone asks for it, TLS on this connection.
    pub async fn start_session(
        mut self,
        record: &PairRecord,
        pinning: DevicePinning,
    ) -> Result<Self, TransportError> {
        let request = Request::StartSession {
            host_id: record.host_id.clone(),
            system_buid: record.system_buid.clone(),
        };
        let reply = self.call(request).await?;
        let started = proto::parse_start_session(&reply)?;
        let config = tls::host_client_config(record, pinning)?;
        if started.enable_ssl {
            // The TLS handshake starts right after the reply: nothing else may have been read.
            let (DeviceStream::Plain(stream), rest) = self.conn.into_parts() else {
                return Err(TransportError::UnexpectedMuxReply {
                    request: "StartSession",
                });
            };
            if !rest.is_empty() {
                return Err(TransportError::UnexpectedMuxReply {
                    request: "StartSession",
                });
            }
            self.conn = PlistConn::new(start_tls(stream, config.clone()).await?);
        }
        self.session = Some(Session {
            id: started.session_id,
            tls: config,
        });
        Ok(self)
    }

    /// Starts a service and opens a connection to it, in TLS when the phone says so.
    pub async fn start_service(
        &mut self,
        service: &str,
        escrow_bag: Option<Vec<u8>>,
    ) -> Result<PlistConn, TransportError> {
        let request = Request::StartService {
            service: service.to_owned(),
            escrow_bag,
        };
        let reply = self.call(request).await?;
        let ServiceStarted { port, enable_ssl } = proto::parse_start_service(&reply)?;
        let stream = self.muxd.connect(self.device.device_id, port).await?;
        let stream = match (&self.session, enable_ssl) {
            (Some(session), true) => start_tls(stream, session.tls.clone()).await?,
            (None, true) => {
                return Err(proto::LockdownError::Device {
                    request: "StartService".into(),
                    error: DeviceError::SessionInactive,
                }
                .into());
            }
            (_, false) => DeviceStream::Plain(stream),
        };
        Ok(PlistConn::new(stream))
    }

    /// Says goodbye and closes the connection.
    pub async fn close(mut self) {
        let _ = self
            .conn
            .send(
                &Value::Dictionary(Request::Goodbye.to_dict(LABEL)),
                proto::PlistFormat::Xml,
            )
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.conn.recv()).await;
        let _ = self.conn.shutdown().await;
    }
}

fn uuid_upper() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

//! lockdownd: length-prefixed plist framing, typed requests and replies, and device error strings.
//!
//! Lockdown and every lockdown service frame a plist with a 4-byte **big-endian** length. Replies may be XML
//! or binary plists. The conversation is a strict request/reply sequence, so this module gives typed
//! requests that encode themselves and typed parsers for each reply; the transport only moves the bytes.

use plist::{Dictionary, Value};

use crate::plist_util::{self, DictExt};

/// lockdownd's TCP port on the device.
pub const LOCKDOWN_PORT: u16 = 62078;
/// The largest frame accepted by default. Lockdown replies are a few KiB; service replies such as an
/// installation_proxy page stay far below this, and a larger length is treated as hostile.
pub const MAX_FRAME_LEN: usize = 16 << 20;
/// The `Type` lockdownd answers to `QueryType`.
pub const LOCKDOWN_TYPE: &str = "com.apple.mobile.lockdown";

/// Which plist encoding a frame is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlistFormat {
    /// XML, as libimobiledevice sends to lockdownd.
    Xml,
    /// Binary, as DeviceLink services expect.
    Binary,
}

/// Errors of the length-prefixed plist framing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix exceeded the cap.
    #[error("plist frame of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// The announced length.
        len: u32,
        /// The cap.
        max: usize,
    },
    /// The body was not a plist.
    #[error("failed to parse plist frame")]
    Plist(#[source] plist::Error),
}

/// Serialises a value as one frame.
pub fn encode_frame(value: &Value, format: PlistFormat) -> Vec<u8> {
    let body = match format {
        PlistFormat::Xml => plist_util::to_xml(value),
        PlistFormat::Binary => plist_util::to_binary(value),
    };
    let mut out = Vec::with_capacity(4 + body.len());
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads the 4-byte length prefix at the front of `buf` and checks it against `max`.
///
/// Returns `Ok(None)` when fewer than 4 bytes are buffered.
pub fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let n = usize::try_from(len).unwrap_or(usize::MAX);
    if n > max {
        return Err(FrameError::TooLong { len, max });
    }
    Ok(Some(n))
}

/// Reads one frame from the front of `buf`: `Ok(None)` until it is complete, then the value and the number of
/// bytes used.
pub fn decode_frame(buf: &[u8], max: usize) -> Result<Option<(Value, usize)>, FrameError> {
    let Some(n) = frame_len(buf, max)? else {
        return Ok(None);
    };
    let Some(body) = buf.get(4..4 + n) else {
        return Ok(None);
    };
    let value = plist_util::parse(body).map_err(FrameError::Plist)?;
    Ok(Some((value, 4 + n)))
}

macro_rules! device_errors {
    ($($(#[$doc:meta])* $variant:ident),* $(,)?) => {
        /// An `Error` string lockdownd puts in a reply.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum DeviceError {
            $($(#[$doc])* $variant,)*
            /// A string this code does not know, kept verbatim.
            Other(String),
        }

        impl DeviceError {
            /// Reads the device's string.
            pub fn parse(s: &str) -> Self {
                match s {
                    $(stringify!($variant) => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }

            /// The device's string.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => stringify!($variant),)*
                    Self::Other(s) => s,
                }
            }
        }
    };
}

device_errors! {
    /// The device is locked with a passcode; unlock it.
    PasswordProtected,
    /// The Trust dialog is showing and the user has not answered yet.
    PairingDialogResponsePending,
    /// The user tapped "Don't Trust".
    UserDeniedPairing,
    /// The device does not know this host (trust was reset on the phone): pair again.
    InvalidHostID,
    /// The request needs a session and none is active.
    SessionInactive,
    /// A session is already active.
    SessionActive,
    /// The host presented no pair record the device knows.
    MissingPairRecord,
    /// The pair record sent is malformed.
    InvalidPairRecord,
    /// The device failed to save the pair record.
    SavePairRecordFailed,
    /// A required key is missing from the request.
    MissingKey,
    /// A required value is missing from the request.
    MissingValue,
    /// The request is malformed.
    InvalidResponse,
    /// The value may not be read.
    GetProhibited,
    /// The value may not be written.
    SetProhibited,
    /// The value may not be removed.
    RemoveProhibited,
    /// The value is read-only.
    ImmutableValue,
    /// `HostID` is missing from StartSession.
    MissingHostID,
    /// `SessionID` is missing.
    MissingSessionID,
    /// The session id is unknown.
    InvalidSessionID,
    /// `Service` is missing from StartService.
    MissingService,
    /// No such service, or not available in this state.
    InvalidService,
    /// Too many connections to the service.
    ServiceLimit,
    /// The service needs an unlocked escrow bag or another condition.
    ServiceProhibited,
    /// The escrow bag could not be unlocked.
    EscrowLocked,
    /// Pairing is not allowed over this connection (e.g. Wi-Fi).
    PairingProhibitedOverThisConnection,
    /// Find My protects the device.
    FMiPProtected,
    /// Managed configuration forbids it.
    MCProtected,
    /// Supervised pairing needs a challenge response.
    MCChallengeRequired,
    /// The activation record is invalid.
    InvalidActivationRecord,
    /// The activation record is missing.
    MissingActivationRecord,
    /// The connection is not valid for this request.
    InvalidConnection,
}

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of the lockdown layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockdownError {
    /// The framing failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The device answered with an error string.
    #[error("lockdownd refused {request}: {error}")]
    Device {
        /// The request that was refused.
        request: String,
        /// The device's reason.
        error: DeviceError,
    },
    /// The reply was not a dictionary, or lacked a key the request needs.
    #[error("lockdownd reply to {request} lacks {what}")]
    Malformed {
        /// The request being answered.
        request: String,
        /// What was missing.
        what: &'static str,
    },
    /// The reply answered another request.
    #[error("lockdownd answered {got} to a {expected} request")]
    WrongReply {
        /// The request sent.
        expected: String,
        /// The request echoed.
        got: String,
    },
    /// A request received by the device side could not be understood.
    #[error("malformed lockdown request: {0}")]
    BadRequest(&'static str),
}

impl LockdownError {
    /// The device's error string, when the device refused.
    pub fn device_error(&self) -> Option<&DeviceError> {
        match self {
            Self::Device { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A request to lockdownd.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Request {
    /// `QueryType`: is this lockdownd?
    QueryType,
    /// `GetValue`, of one key, of a domain, or of everything.
    GetValue {
        /// The domain; `None` is the root domain.
        domain: Option<String>,
        /// The key; `None` asks for the whole domain.
        key: Option<String>,
    },
    /// `SetValue` (needs a session).
    SetValue {
        /// The domain; `None` is the root domain.
        domain: Option<String>,
        /// The key.
        key: String,
        /// The new value.
        value: Value,
    },
    /// `RemoveValue` (needs a session).
    RemoveValue {
        /// The domain.
        domain: Option<String>,
        /// The key.
        key: String,
    },
    /// `Pair` with the public part of a pair record.
    Pair {
        /// `PairRecord`: DeviceCertificate, HostCertificate, HostID, RootCertificate, SystemBUID.
        record: Dictionary,
        /// `HostName`, shown by some iOS versions.
        host_name: Option<String>,
    },
    /// `ValidatePair` (iOS < 7 only; iOS 11 removed it).
    ValidatePair {
        /// As for `Pair`.
        record: Dictionary,
    },
    /// `Unpair`.
    Unpair {
        /// As for `Pair`; only `HostID` matters to the device.
        record: Dictionary,
    },
    /// `StartSession` with the HostID and SystemBUID of the same pair record.
    StartSession {
        /// The record's HostID.
        host_id: String,
        /// The record's SystemBUID.
        system_buid: String,
    },
    /// `StopSession`.
    StopSession {
        /// The id StartSession returned.
        session_id: String,
    },
    /// `StartService`.
    StartService {
        /// The service name, e.g. `com.apple.mobile.diagnostics_relay`.
        service: String,
        /// The pair record's EscrowBag, for services that need data protection unlocked.
        escrow_bag: Option<Vec<u8>>,
    },
    /// `Goodbye`: the client is leaving.
    Goodbye,
}

impl Request {
    /// The `Request` string.
    pub fn name(&self) -> &'static str {
        match self {
            Self::QueryType => "QueryType",
            Self::GetValue { .. } => "GetValue",
            Self::SetValue { .. } => "SetValue",
            Self::RemoveValue { .. } => "RemoveValue",
            Self::Pair { .. } => "Pair",
            Self::ValidatePair { .. } => "ValidatePair",
            Self::Unpair { .. } => "Unpair",
            Self::StartSession { .. } => "StartSession",
            Self::StopSession { .. } => "StopSession",
            Self::StartService { .. } => "StartService",
            Self::Goodbye => "Goodbye",
        }
    }

    /// The request as a dictionary, with `Label` naming the client.
    pub fn to_dict(&self, label: &str) -> Dictionary {
        let mut d = Dictionary::new();
        d.insert("Label".into(), label.into());
        d.insert("Request".into(), self.name().into());
        let opt = |d: &mut Dictionary, k: &str, v: &Option<String>| {
            if let Some(v) = v {
                d.insert(k.into(), v.clone().into());
            }
        };
        match self {
            Self::QueryType | Self::Goodbye => {}
            Self::GetValue { domain, key } => {
                opt(&mut d, "Domain", domain);
                opt(&mut d, "Key", key);
            }
            Self::SetValue { domain, key, value } => {
                opt(&mut d, "Domain", domain);
                d.insert("Key".into(), key.clone().into());
                d.insert("Value".into(), value.clone());
            }
            Self::RemoveValue { domain, key } => {
                opt(&mut d, "Domain", domain);
                d.insert("Key".into(), key.clone().into());
            }
            Self::Pair { record, host_name } => {
                d.insert("PairRecord".into(), Value::Dictionary(record.clone()));
                d.insert("ProtocolVersion".into(), "2".into());
                let mut options = Dictionary::new();
                options.insert("ExtendedPairingErrors".into(), true.into());
                d.insert("PairingOptions".into(), Value::Dictionary(options));
                opt(&mut d, "HostName", host_name);
            }
            Self::ValidatePair { record } | Self::Unpair { record } => {
                d.insert("PairRecord".into(), Value::Dictionary(record.clone()));
                d.insert("ProtocolVersion".into(), "2".into());
            }
            Self::StartSession {
                host_id,
                system_buid,
            } => {
                d.insert("HostID".into(), host_id.clone().into());
                d.insert("SystemBUID".into(), system_buid.clone().into());
            }
            Self::StopSession { session_id } => {
                d.insert("SessionID".into(), session_id.clone().into());
            }
            Self::StartService {
                service,
                escrow_bag,
            } => {
                d.insert("Service".into(), service.clone().into());
                if let Some(bag) = escrow_bag {
                    d.insert("EscrowBag".into(), Value::Data(bag.clone()));
                }
            }
        }
        d
    }

    /// Encodes the request as an XML frame, as libimobiledevice does for lockdownd.
    pub fn encode(&self, label: &str) -> Vec<u8> {
        encode_frame(&Value::Dictionary(self.to_dict(label)), PlistFormat::Xml)
    }

    /// Reads a request on the device side.
    pub fn from_dict(d: &Dictionary) -> Result<Self, LockdownError> {
        let name = d
            .str_key("Request")
            .ok_or(LockdownError::BadRequest("no Request"))?;
        let string = |k: &'static str| d.str_key(k).map(str::to_owned);
        let need = |k: &'static str| string(k).ok_or(LockdownError::BadRequest(k));
        let record = || {
            d.dict_key("PairRecord")
                .cloned()
                .ok_or(LockdownError::BadRequest("PairRecord"))
        };
        Ok(match name {
            "QueryType" => Self::QueryType,
            "Goodbye" => Self::Goodbye,
            "GetValue" => Self::GetValue {
                domain: string("Domain"),
                key: string("Key"),
            },
            "SetValue" => Self::SetValue {
                domain: string("Domain"),
                key: need("Key")?,
                value: d
                    .get("Value")
                    .cloned()
                    .ok_or(LockdownError::BadRequest("Value"))?,
            },
            "RemoveValue" => Self::RemoveValue {
                domain: string("Domain"),
                key: need("Key")?,
            },
            "Pair" => Self::Pair {
                record: record()?,
                host_name: string("HostName"),
            },
            "ValidatePair" => Self::ValidatePair { record: record()? },
            "Unpair" => Self::Unpair { record: record()? },
            "StartSession" => Self::StartSession {
                host_id: need("HostID")?,
                system_buid: string("SystemBUID").unwrap_or_default(),
            },
            "StopSession" => Self::StopSession {
                session_id: need("SessionID")?,
            },
            "StartService" => Self::StartService {
                service: need("Service")?,
                escrow_bag: d.data_key("EscrowBag").map(<[u8]>::to_vec),
            },
            _ => return Err(LockdownError::BadRequest("unknown Request")),
        })
    }
}

/// Checks a reply to `request`: a dictionary, no `Error`, and an echo of the request name when one is present.
///
/// `Unpair` is answered with `Request = ValidatePair` by some firmware, so that pair is not a mismatch.
pub fn check_reply<'a>(request: &str, reply: &'a Value) -> Result<&'a Dictionary, LockdownError> {
    let d = reply
        .as_dictionary()
        .ok_or_else(|| LockdownError::Malformed {
            request: request.into(),
            what: "a dictionary",
        })?;
    if let Some(err) = d.str_key("Error") {
        return Err(LockdownError::Device {
            request: request.into(),
            error: DeviceError::parse(err),
        });
    }
    if let Some(echo) = d.str_key("Request") {
        let quirk = request == "Unpair" && echo == "ValidatePair";
        if echo != request && !quirk {
            return Err(LockdownError::WrongReply {
                expected: request.into(),
                got: echo.into(),
            });
        }
    }
    Ok(d)
}

/// The answer to `QueryType`.
pub fn parse_query_type(reply: &Value) -> Result<String, LockdownError> {
    let d = check_reply("QueryType", reply)?;
    d.str_key("Type")
        .map(str::to_owned)
        .ok_or(LockdownError::Malformed {
            request: "QueryType".into(),
            what: "Type",
        })
}

/// The answer to `GetValue`: the value, or `None` when the device has no such key.
pub fn parse_get_value(reply: &Value) -> Result<Option<Value>, LockdownError> {
    let d = check_reply("GetValue", reply)?;
    Ok(d.get("Value").cloned())
}

/// The answer to `StartSession`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStarted {
    /// The session id, needed by StopSession.
    pub session_id: String,
    /// Whether TLS starts on this connection right away.
    pub enable_ssl: bool,
}

/// Reads the answer to `StartSession`.
pub fn parse_start_session(reply: &Value) -> Result<SessionStarted, LockdownError> {
    let d = check_reply("StartSession", reply)?;
    let session_id = d
        .str_key("SessionID")
        .ok_or(LockdownError::Malformed {
            request: "StartSession".into(),
            what: "SessionID",
        })?
        .to_owned();
    Ok(SessionStarted {
        session_id,
        enable_ssl: d.bool_key("EnableSessionSSL").unwrap_or(false),
    })
}

/// The answer to `StartService`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStarted {
    /// The device port to connect to through usbmuxd.
    pub port: u16,
    /// Whether the service connection must be wrapped in TLS.
    pub enable_ssl: bool,
}

/// Reads the answer to `StartService`.
pub fn parse_start_service(reply: &Value) -> Result<ServiceStarted, LockdownError> {
    let d = check_reply("StartService", reply)?;
    let port = d
        .u64_key("Port")
        .and_then(|p| u16::try_from(p).ok())
        .ok_or(LockdownError::Malformed {
            request: "StartService".into(),
            what: "Port",
        })?;
    Ok(ServiceStarted {
        port,
        enable_ssl: d.bool_key("EnableServiceSSL").unwrap_or(false),
    })
}

/// Reads the answer to `Pair`: the escrow bag the device hands out.
pub fn parse_pair(reply: &Value) -> Result<Option<Vec<u8>>, LockdownError> {
    let d = check_reply("Pair", reply)?;
    Ok(d.data_key("EscrowBag").map(<[u8]>::to_vec))
}

/// Builds a device-side success reply: the request echo plus `fields`.
pub fn reply_ok(request: &str, fields: Dictionary) -> Value {
    let mut d = fields;
    d.insert("Request".into(), request.into());
    Value::Dictionary(d)
}

/// Builds a device-side error reply.
pub fn reply_error(request: &str, error: &DeviceError) -> Value {
    let mut d = Dictionary::new();
    d.insert("Request".into(), request.into());
    d.insert("Error".into(), error.as_str().into());
    Value::Dictionary(d)
}

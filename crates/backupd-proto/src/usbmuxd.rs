//! The usbmuxd socket protocol, spoken between a host program and the usbmuxd daemon.
//!
//! Every packet starts with a 16-byte little-endian header (length including the header, version, message,
//! tag). Version 1 carries an XML plist (message 8); version 0 is the older binary protocol, which the
//! simulator still answers because usbmuxd does. The one big-endian field is the port of `Connect`, in both
//! protocols (see [`Request::Connect`]).
//!
//! Decoding follows "check, then parse": [`decode_packet`] returns `Ok(None)` until a whole packet is
//! buffered, and refuses a declared length outside `HEADER_LEN..=max_len` before allocating anything.

use plist::{Dictionary, Value};

use crate::plist_util::{self, DictExt};

/// Length of the packet header, included in the header's own length field.
pub const HEADER_LEN: usize = 16;
/// The largest packet a host accepts from usbmuxd: a device list with many phones or a pair record stays far
/// below it.
pub const MAX_PACKET_LEN: usize = 1 << 20;
/// The largest packet a muxer accepts from a client; usbmuxd's own input buffer is 64 KiB.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;
/// The version number of the current client library, sent as `kLibUSBMuxVersion` as libusbmuxd does.
const LIB_USBMUX_VERSION: u64 = 3;
/// Size of the binary `DEVICE_ADD` payload: id, product id, 256-byte serial, padding, location.
const BINARY_DEVICE_ADD_LEN: usize = 4 + 2 + 256 + 2 + 4;

/// Errors of the usbmuxd layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsbmuxError {
    /// The header announced a length outside the accepted range.
    #[error("usbmuxd packet length {length} outside {HEADER_LEN}..={max}")]
    BadLength {
        /// The announced length.
        length: u32,
        /// The largest accepted length.
        max: usize,
    },
    /// A plist payload could not be parsed.
    #[error("failed to parse usbmuxd plist payload")]
    Plist(#[source] plist::Error),
    /// A message lacked a key or had it with the wrong type.
    #[error("usbmuxd message lacks {0} or has it with the wrong type")]
    MissingKey(&'static str),
    /// A plist message named a message type this code does not know.
    #[error("unknown usbmuxd message type {0:?}")]
    UnknownMessageType(String),
    /// A binary packet had a message number this code does not know or a payload of the wrong size.
    #[error("malformed binary usbmuxd message {message} with {len} payload bytes")]
    BadBinary {
        /// The message number.
        message: u32,
        /// The payload length.
        len: usize,
    },
    /// The header's version field is neither 0 (binary) nor 1 (plist).
    #[error("unsupported usbmuxd protocol version {0}")]
    BadVersion(u32),
}

/// The protocol flavour of a packet, from the header's version field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    /// Version 0: fixed binary structs.
    Binary,
    /// Version 1: an XML plist in a message of type 8.
    Plist,
}

impl ProtocolVersion {
    fn number(self) -> u32 {
        match self {
            Self::Binary => 0,
            Self::Plist => 1,
        }
    }
}

/// Message numbers of the header.
pub mod message {
    /// A result code reply.
    pub const RESULT: u32 = 1;
    /// Binary connect request.
    pub const CONNECT: u32 = 2;
    /// Binary listen request.
    pub const LISTEN: u32 = 3;
    /// Binary device-attached event.
    pub const DEVICE_ADD: u32 = 4;
    /// Binary device-detached event.
    pub const DEVICE_REMOVE: u32 = 5;
    /// Binary device-paired event.
    pub const DEVICE_PAIRED: u32 = 6;
    /// Any plist message.
    pub const PLIST: u32 = 8;
}

/// One packet as framed on the socket, before its payload is interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Header version field: 0 binary, 1 plist.
    pub version: u32,
    /// Header message field; see [`message`].
    pub message: u32,
    /// Request id; replies echo it and events carry 0.
    pub tag: u32,
    /// The bytes after the header.
    pub payload: Vec<u8>,
}

impl Packet {
    /// Serialises the packet with its header.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        // Payloads are built by this crate and bounded well below u32::MAX.
        let len = u32::try_from(HEADER_LEN + self.payload.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.message.to_le_bytes());
        out.extend_from_slice(&self.tag.to_le_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    fn plist(tag: u32, dict: Dictionary) -> Self {
        Self {
            version: ProtocolVersion::Plist.number(),
            message: message::PLIST,
            tag,
            payload: plist_util::to_xml(&Value::Dictionary(dict)),
        }
    }

    fn binary(message: u32, tag: u32, payload: Vec<u8>) -> Self {
        Self {
            version: ProtocolVersion::Binary.number(),
            message,
            tag,
            payload,
        }
    }

    /// The protocol flavour the packet is in.
    pub fn protocol(&self) -> Result<ProtocolVersion, UsbmuxError> {
        match self.version {
            0 => Ok(ProtocolVersion::Binary),
            1 => Ok(ProtocolVersion::Plist),
            v => Err(UsbmuxError::BadVersion(v)),
        }
    }

    fn payload_dict(&self) -> Result<Dictionary, UsbmuxError> {
        let value = plist_util::parse_strict(&self.payload).map_err(UsbmuxError::Plist)?;
        match value {
            Value::Dictionary(d) => Ok(d),
            _ => Err(UsbmuxError::MissingKey("a dictionary payload")),
        }
    }
}

/// Reads one packet from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, or the packet and how many bytes it used. A declared length
/// below the header size or above `max_len` is an error, raised before any allocation.
pub fn decode_packet(buf: &[u8], max_len: usize) -> Result<Option<(Packet, usize)>, UsbmuxError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let field = |i: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&header[i * 4..i * 4 + 4]);
        u32::from_le_bytes(b)
    };
    let length = field(0);
    let len = usize::try_from(length).unwrap_or(usize::MAX);
    if len < HEADER_LEN || len > max_len {
        return Err(UsbmuxError::BadLength {
            length,
            max: max_len,
        });
    }
    let Some(payload) = buf.get(HEADER_LEN..len) else {
        return Ok(None);
    };
    let packet = Packet {
        version: field(1),
        message: field(2),
        tag: field(3),
        payload: payload.to_vec(),
    };
    Ok(Some((packet, len)))
}

/// How a client names itself in plist requests; usbmuxd keeps it for `ListListeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// `ProgName`.
    pub prog_name: String,
    /// `ClientVersionString`.
    pub client_version: String,
}

impl Default for ClientInfo {
    fn default() -> Self {
        Self {
            prog_name: "backupd".into(),
            client_version: concat!("backupd-", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

/// A request from a client to usbmuxd.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// `ListDevices`: the attached devices.
    ListDevices,
    /// `Listen`: turn this connection into an event stream.
    Listen,
    /// `Connect`: turn this connection into a byte tunnel to `port` on the device.
    ///
    /// `port` is the ordinary port number; on the wire it travels byte-swapped into network order, so lockdown's
    /// 62078 is sent as 32498.
    Connect {
        /// usbmuxd's handle for the device.
        device_id: u32,
        /// The TCP port on the device.
        port: u16,
    },
    /// `ReadBUID`: the host's SystemBUID.
    ReadBuid,
    /// `ReadPairRecord` for a UDID.
    ReadPairRecord {
        /// The device UDID (`PairRecordID`).
        udid: String,
    },
    /// `SavePairRecord`.
    SavePairRecord {
        /// The device UDID (`PairRecordID`).
        udid: String,
        /// The record as plist bytes.
        data: Vec<u8>,
        /// The device's handle, so that listeners get a `Paired` event.
        device_id: Option<u32>,
    },
    /// `DeletePairRecord`.
    DeletePairRecord {
        /// The device UDID (`PairRecordID`).
        udid: String,
    },
    /// `ListListeners`.
    ListListeners,
}

/// Converts a port to the integer usbmuxd expects: the port's network-order bytes read as little-endian.
fn port_to_wire(port: u16) -> u16 {
    u16::from_le_bytes(port.to_be_bytes())
}

fn port_from_wire(wire: u16) -> u16 {
    u16::from_be_bytes(wire.to_le_bytes())
}

impl Request {
    /// The `MessageType` string of the plist form.
    pub fn message_type(&self) -> &'static str {
        match self {
            Self::ListDevices => "ListDevices",
            Self::Listen => "Listen",
            Self::Connect { .. } => "Connect",
            Self::ReadBuid => "ReadBUID",
            Self::ReadPairRecord { .. } => "ReadPairRecord",
            Self::SavePairRecord { .. } => "SavePairRecord",
            Self::DeletePairRecord { .. } => "DeletePairRecord",
            Self::ListListeners => "ListListeners",
        }
    }

    /// Encodes the request as a plist packet with `tag`.
    pub fn encode(&self, tag: u32, client: &ClientInfo) -> Vec<u8> {
        let mut d = Dictionary::new();
        d.insert("MessageType".into(), self.message_type().into());
        d.insert("ProgName".into(), client.prog_name.clone().into());
        d.insert(
            "ClientVersionString".into(),
            client.client_version.clone().into(),
        );
        d.insert("kLibUSBMuxVersion".into(), LIB_USBMUX_VERSION.into());
        match self {
            Self::ListDevices | Self::Listen | Self::ReadBuid | Self::ListListeners => {}
            Self::Connect { device_id, port } => {
                d.insert("DeviceID".into(), u64::from(*device_id).into());
                d.insert("PortNumber".into(), u64::from(port_to_wire(*port)).into());
            }
            Self::ReadPairRecord { udid } | Self::DeletePairRecord { udid } => {
                d.insert("PairRecordID".into(), udid.clone().into());
            }
            Self::SavePairRecord {
                udid,
                data,
                device_id,
            } => {
                d.insert("PairRecordID".into(), udid.clone().into());
                d.insert("PairRecordData".into(), Value::Data(data.clone()));
                if let Some(id) = device_id {
                    d.insert("DeviceID".into(), u64::from(*id).into());
                }
            }
        }
        Packet::plist(tag, d).encode()
    }

    /// Interprets a packet received by a muxer, in either protocol flavour.
    pub fn decode(packet: &Packet) -> Result<Self, UsbmuxError> {
        match packet.protocol()? {
            ProtocolVersion::Binary => Self::decode_binary(packet),
            ProtocolVersion::Plist => {
                if packet.message != message::PLIST {
                    return Err(UsbmuxError::BadBinary {
                        message: packet.message,
                        len: packet.payload.len(),
                    });
                }
                Self::from_plist(&packet.payload_dict()?)
            }
        }
    }

    fn decode_binary(packet: &Packet) -> Result<Self, UsbmuxError> {
        let bad = || UsbmuxError::BadBinary {
            message: packet.message,
            len: packet.payload.len(),
        };
        match packet.message {
            message::LISTEN => Ok(Self::Listen),
            message::CONNECT => {
                let p = packet.payload.get(..8).ok_or_else(bad)?;
                let device_id = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
                let port = u16::from_be_bytes([p[4], p[5]]);
                Ok(Self::Connect { device_id, port })
            }
            _ => Err(bad()),
        }
    }

    fn from_plist(d: &Dictionary) -> Result<Self, UsbmuxError> {
        let kind = d
            .str_key("MessageType")
            .ok_or(UsbmuxError::MissingKey("MessageType"))?;
        let udid = || {
            d.str_key("PairRecordID")
                .map(str::to_owned)
                .ok_or(UsbmuxError::MissingKey("PairRecordID"))
        };
        Ok(match kind {
            "ListDevices" => Self::ListDevices,
            "Listen" => Self::Listen,
            "ReadBUID" => Self::ReadBuid,
            "ListListeners" => Self::ListListeners,
            "Connect" => {
                let device_id = d
                    .u32_key("DeviceID")
                    .ok_or(UsbmuxError::MissingKey("DeviceID"))?;
                let wire = d
                    .u64_key("PortNumber")
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or(UsbmuxError::MissingKey("PortNumber"))?;
                Self::Connect {
                    device_id,
                    port: port_from_wire(wire),
                }
            }
            "ReadPairRecord" => Self::ReadPairRecord { udid: udid()? },
            "DeletePairRecord" => Self::DeletePairRecord { udid: udid()? },
            "SavePairRecord" => Self::SavePairRecord {
                udid: udid()?,
                data: d
                    .data_key("PairRecordData")
                    .map(<[u8]>::to_vec)
                    .ok_or(UsbmuxError::MissingKey("PairRecordData"))?,
                device_id: d.u32_key("DeviceID"),
            },
            other => return Err(UsbmuxError::UnknownMessageType(other.to_owned())),
        })
    }
}

/// A usbmuxd result code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResultCode {
    /// 0: success.
    Ok,
    /// 1: the command was not understood.
    BadCommand,
    /// 2: no such device.
    BadDevice,
    /// 3: the device refused the connection (nothing listens on that port).
    ConnectionRefused,
    /// 6: unsupported protocol version.
    BadVersion,
    /// Any other number; open-source usbmuxd puts errno values here for pair-record commands (2 = ENOENT).
    Other(u32),
}

impl ResultCode {
    /// The wire number.
    pub fn number(self) -> u32 {
        match self {
            Self::Ok => 0,
            Self::BadCommand => 1,
            Self::BadDevice => 2,
            Self::ConnectionRefused => 3,
            Self::BadVersion => 6,
            Self::Other(n) => n,
        }
    }

    /// Reads a wire number.
    pub fn from_number(n: u32) -> Self {
        match n {
            0 => Self::Ok,
            1 => Self::BadCommand,
            2 => Self::BadDevice,
            3 => Self::ConnectionRefused,
            6 => Self::BadVersion,
            n => Self::Other(n),
        }
    }
}

/// How a device is connected to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionType {
    /// Plugged in by USB.
    Usb,
    /// Reachable over the network (Wi-Fi sync); only Apple's usbmuxd and a few others list these.
    Network,
    /// Anything else, kept verbatim.
    Other(String),
}

/// A device as usbmuxd reports it in `ListDevices` and `Attached`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// usbmuxd's handle for the device; not stable across replugs.
    pub device_id: u32,
    /// The UDID (`SerialNumber`), as usbmuxd spells it.
    pub udid: String,
    /// USB product id, when reported.
    pub product_id: Option<u16>,
    /// `(bus << 16) | address` for USB devices, when reported.
    pub location_id: Option<u32>,
    /// Link speed in bit/s, when reported.
    pub connection_speed: Option<u64>,
    /// USB or network.
    pub connection_type: ConnectionType,
}

impl Device {
    fn from_properties(device_id: u32, p: &Dictionary) -> Result<Self, UsbmuxError> {
        let udid = p
            .str_key("SerialNumber")
            .ok_or(UsbmuxError::MissingKey("SerialNumber"))?
            .to_owned();
        let connection_type = match p.str_key("ConnectionType") {
            Some("USB") | None => ConnectionType::Usb,
            Some("Network") => ConnectionType::Network,
            Some(other) => ConnectionType::Other(other.to_owned()),
        };
        Ok(Self {
            device_id,
            udid,
            product_id: p.u64_key("ProductID").and_then(|v| u16::try_from(v).ok()),
            location_id: p.u32_key("LocationID"),
            connection_speed: p.u64_key("ConnectionSpeed"),
            connection_type,
        })
    }

    fn properties(&self) -> Dictionary {
        let mut p = Dictionary::new();
        if let Some(speed) = self.connection_speed {
            p.insert("ConnectionSpeed".into(), speed.into());
        }
        let kind = match &self.connection_type {
            ConnectionType::Usb => "USB",
            ConnectionType::Network => "Network",
            ConnectionType::Other(s) => s.as_str(),
        };
        p.insert("ConnectionType".into(), kind.into());
        p.insert("DeviceID".into(), u64::from(self.device_id).into());
        if let Some(loc) = self.location_id {
            p.insert("LocationID".into(), u64::from(loc).into());
        }
        if let Some(pid) = self.product_id {
            p.insert("ProductID".into(), u64::from(pid).into());
        }
        p.insert("SerialNumber".into(), self.udid.clone().into());
        p
    }

    fn attached_dict(&self) -> Dictionary {
        let mut d = Dictionary::new();
        d.insert("DeviceID".into(), u64::from(self.device_id).into());
        d.insert("MessageType".into(), "Attached".into());
        d.insert("Properties".into(), Value::Dictionary(self.properties()));
        d
    }

    fn binary_add_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(BINARY_DEVICE_ADD_LEN);
        out.extend_from_slice(&self.device_id.to_le_bytes());
        out.extend_from_slice(&self.product_id.unwrap_or(0).to_le_bytes());
        let mut serial = [0u8; 256];
        // The C struct keeps a terminating NUL, so at most 255 bytes of the UDID fit; cut at a character
        // boundary so that the serial stays valid UTF-8.
        let udid = self.udid.as_bytes();
        let mut n = udid.len().min(255);
        while !self.udid.is_char_boundary(n) {
            n -= 1;
        }
        serial[..n].copy_from_slice(&udid[..n]);
        out.extend_from_slice(&serial);
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.location_id.unwrap_or(0).to_le_bytes());
        out
    }

    fn from_binary_add(p: &[u8]) -> Option<Self> {
        if p.len() != BINARY_DEVICE_ADD_LEN {
            return None;
        }
        let device_id = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
        let product_id = u16::from_le_bytes([p[4], p[5]]);
        let serial = &p[6..262];
        let end = serial.iter().position(|&b| b == 0).unwrap_or(serial.len());
        let udid = String::from_utf8_lossy(&serial[..end]).into_owned();
        let location_id = u32::from_le_bytes([p[264], p[265], p[266], p[267]]);
        Some(Self {
            device_id,
            udid,
            product_id: Some(product_id),
            location_id: Some(location_id),
            connection_speed: None,
            connection_type: ConnectionType::Usb,
        })
    }
}

/// Something usbmuxd sends to a client: a reply to a request or a `Listen` event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// `Result` with a code.
    Result(ResultCode),
    /// The reply to `ListDevices`.
    DeviceList(Vec<Device>),
    /// The reply to `ReadBUID`.
    Buid(String),
    /// The reply to `ReadPairRecord`: the record's plist bytes.
    PairRecordData(Vec<u8>),
    /// The reply to `ListListeners`, kept as raw dictionaries.
    ListenerList(Vec<Dictionary>),
    /// Event: a device was attached.
    Attached(Device),
    /// Event: a device was detached.
    Detached {
        /// The handle of the device that left.
        device_id: u32,
    },
    /// Event: a pair record was saved for an attached device.
    Paired {
        /// The handle of the device.
        device_id: u32,
    },
}

impl Message {
    /// Interprets a packet received from usbmuxd, in either protocol flavour.
    pub fn decode(packet: &Packet) -> Result<Self, UsbmuxError> {
        match packet.protocol()? {
            ProtocolVersion::Binary => Self::decode_binary(packet),
            ProtocolVersion::Plist => Self::from_plist(&packet.payload_dict()?),
        }
    }

    fn decode_binary(packet: &Packet) -> Result<Self, UsbmuxError> {
        let bad = || UsbmuxError::BadBinary {
            message: packet.message,
            len: packet.payload.len(),
        };
        let u32_payload = || {
            let p: [u8; 4] = packet.payload.as_slice().try_into().map_err(|_| bad())?;
            Ok::<u32, UsbmuxError>(u32::from_le_bytes(p))
        };
        match packet.message {
            message::RESULT => Ok(Self::Result(ResultCode::from_number(u32_payload()?))),
            message::DEVICE_ADD => Device::from_binary_add(&packet.payload)
                .map(Self::Attached)
                .ok_or_else(bad),
            message::DEVICE_REMOVE => Ok(Self::Detached {
                device_id: u32_payload()?,
            }),
            message::DEVICE_PAIRED => Ok(Self::Paired {
                device_id: u32_payload()?,
            }),
            _ => Err(bad()),
        }
    }

    fn from_plist(d: &Dictionary) -> Result<Self, UsbmuxError> {
        if let Some(list) = d.get("DeviceList") {
            let list = list
                .as_array()
                .ok_or(UsbmuxError::MissingKey("DeviceList"))?;
            let mut devices = Vec::with_capacity(list.len().min(256));
            for entry in list {
                let entry = entry
                    .as_dictionary()
                    .ok_or(UsbmuxError::MissingKey("DeviceList"))?;
                devices.push(Self::attached_device(entry)?);
            }
            return Ok(Self::DeviceList(devices));
        }
        if let Some(buid) = d.str_key("BUID") {
            return Ok(Self::Buid(buid.to_owned()));
        }
        if let Some(data) = d.data_key("PairRecordData") {
            return Ok(Self::PairRecordData(data.to_vec()));
        }
        if let Some(list) = d.get("ListenerList") {
            let list = list
                .as_array()
                .ok_or(UsbmuxError::MissingKey("ListenerList"))?;
            return Ok(Self::ListenerList(
                list.iter()
                    .filter_map(|v| v.as_dictionary().cloned())
                    .collect(),
            ));
        }
        let kind = d
            .str_key("MessageType")
            .ok_or(UsbmuxError::MissingKey("MessageType"))?;
        let device_id = || {
            d.u32_key("DeviceID")
                .ok_or(UsbmuxError::MissingKey("DeviceID"))
        };
        match kind {
            "Result" => {
                let n = d
                    .u32_key("Number")
                    .ok_or(UsbmuxError::MissingKey("Number"))?;
                Ok(Self::Result(ResultCode::from_number(n)))
            }
            "Attached" => Ok(Self::Attached(Self::attached_device(d)?)),
            "Detached" => Ok(Self::Detached {
                device_id: device_id()?,
            }),
            "Paired" => Ok(Self::Paired {
                device_id: device_id()?,
            }),
            other => Err(UsbmuxError::UnknownMessageType(other.to_owned())),
        }
    }

    fn attached_device(d: &Dictionary) -> Result<Device, UsbmuxError> {
        let props = d
            .get("Properties")
            .and_then(Value::as_dictionary)
            .ok_or(UsbmuxError::MissingKey("Properties"))?;
        let device_id = d
            .u32_key("DeviceID")
            .or_else(|| props.u32_key("DeviceID"))
            .ok_or(UsbmuxError::MissingKey("DeviceID"))?;
        Device::from_properties(device_id, props)
    }

    /// Encodes the message as a muxer would, in the protocol flavour the client used.
    ///
    /// Replies that only exist as plists (device list, BUID, pair record, listener list) are always sent as
    /// plists, as usbmuxd does.
    pub fn encode(&self, tag: u32, protocol: ProtocolVersion) -> Vec<u8> {
        if protocol == ProtocolVersion::Binary {
            let binary = match self {
                Self::Result(code) => Some(Packet::binary(
                    message::RESULT,
                    tag,
                    code.number().to_le_bytes().to_vec(),
                )),
                Self::Attached(dev) => Some(Packet::binary(
                    message::DEVICE_ADD,
                    tag,
                    dev.binary_add_payload(),
                )),
                Self::Detached { device_id } => Some(Packet::binary(
                    message::DEVICE_REMOVE,
                    tag,
                    device_id.to_le_bytes().to_vec(),
                )),
                Self::Paired { device_id } => Some(Packet::binary(
                    message::DEVICE_PAIRED,
                    tag,
                    device_id.to_le_bytes().to_vec(),
                )),
                _ => None,
            };
            if let Some(packet) = binary {
                return packet.encode();
            }
        }
        let mut d = Dictionary::new();
        match self {
            Self::Result(code) => {
                d.insert("MessageType".into(), "Result".into());
                d.insert("Number".into(), u64::from(code.number()).into());
            }
            Self::DeviceList(devices) => {
                let list = devices
                    .iter()
                    .map(|dev| Value::Dictionary(dev.attached_dict()))
                    .collect();
                d.insert("DeviceList".into(), Value::Array(list));
            }
            Self::Buid(buid) => {
                d.insert("BUID".into(), buid.clone().into());
            }
            Self::PairRecordData(data) => {
                d.insert("PairRecordData".into(), Value::Data(data.clone()));
            }
            Self::ListenerList(list) => {
                let list = list.iter().cloned().map(Value::Dictionary).collect();
                d.insert("ListenerList".into(), Value::Array(list));
            }
            Self::Attached(dev) => d = dev.attached_dict(),
            Self::Detached { device_id } => {
                d.insert("DeviceID".into(), u64::from(*device_id).into());
                d.insert("MessageType".into(), "Detached".into());
            }
            Self::Paired { device_id } => {
                d.insert("DeviceID".into(), u64::from(*device_id).into());
                d.insert("MessageType".into(), "Paired".into());
            }
        }
        Packet::plist(tag, d).encode()
    }
}

/// Where the usbmuxd socket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix socket path.
    Unix(std::path::PathBuf),
    /// A TCP `host:port` (Windows' Apple Mobile Device Service, or a test muxer).
    Tcp {
        /// Host name or address, without IPv6 brackets.
        host: String,
        /// TCP port.
        port: u16,
    },
}

/// The default socket of usbmuxd on Linux and macOS.
pub const DEFAULT_SOCKET: &str = "/var/run/usbmuxd";

impl Address {
    /// Parses every spelling in use: libusbmuxd's `UNIX:/path`, pymobiledevice3's bare `/path`, and
    /// `host:port` or `[v6]:port`. A value that is none of these is taken as a path.
    pub fn parse(s: &str) -> Self {
        if let Some(path) = s.strip_prefix("UNIX:") {
            return Self::Unix(path.into());
        }
        if s.starts_with('/') || s.starts_with('.') {
            return Self::Unix(s.into());
        }
        if let Some((host, port)) = s.rsplit_once(':')
            && let Ok(port) = port.parse::<u16>()
        {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            return Self::Tcp {
                host: host.to_owned(),
                port,
            };
        }
        Self::Unix(s.into())
    }

    /// The address a client uses when nothing is configured: `USBMUXD_SOCKET_ADDRESS` (passed in by the
    /// caller, this crate reads no environment) or the platform default.
    pub fn from_env_value(value: Option<&str>) -> Self {
        match value {
            Some(v) if !v.trim().is_empty() => Self::parse(v.trim()),
            _ => Self::Unix(DEFAULT_SOCKET.into()),
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "UNIX:{}", p.display()),
            Self::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// Reduces a UDID to the form used for comparisons: dashes removed, upper case.
///
/// usbmuxd inserts a dash after 8 characters of a 24-character serial, other tools do not; the same phone must
/// compare equal either way.
pub fn normalize_udid(udid: &str) -> String {
    udid.chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Whether two UDID spellings name the same phone.
pub fn same_udid(a: &str, b: &str) -> bool {
    normalize_udid(a) == normalize_udid(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_is_byte_swapped_on_the_wire() {
        assert_eq!(port_to_wire(62078), 32498);
        assert_eq!(port_from_wire(32498), 62078);
    }

    #[test]
    fn address_spellings() {
        assert_eq!(
            Address::parse("UNIX:/tmp/s"),
            Address::Unix("/tmp/s".into())
        );
        assert_eq!(Address::parse("/tmp/s"), Address::Unix("/tmp/s".into()));
        assert_eq!(
            Address::parse("127.0.0.1:27015"),
            Address::Tcp {
                host: "127.0.0.1".into(),
                port: 27015
            }
        );
        assert_eq!(
            Address::parse("[::1]:27015"),
            Address::Tcp {
                host: "::1".into(),
                port: 27015
            }
        );
        assert_eq!(
            Address::from_env_value(None),
            Address::Unix(DEFAULT_SOCKET.into())
        );
    }

    #[test]
    fn udids_compare_without_dashes() {
        assert!(same_udid(
            "00008101-000B1234567890AB",
            "00008101000b1234567890ab"
        ));
        assert!(!same_udid(
            "00008101-000B1234567890AB",
            "00008101000B1234567890AC"
        ));
    }
}

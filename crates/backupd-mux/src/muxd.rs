//! A usbmuxd client: one fresh socket per request, as usbmuxd expects.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use backupd_proto::usbmuxd::{
    self, Address, ClientInfo, Device, HEADER_LEN, MAX_PACKET_LEN, Message, Packet, Request,
    ResultCode,
};

use crate::error::TransportError;
use crate::stream::MuxStream;

/// Reads one usbmuxd packet, refusing a declared length over [`MAX_PACKET_LEN`] before allocating.
pub(crate) async fn read_packet(stream: &mut MuxStream) -> Result<Packet, TransportError> {
    let mut buf = vec![0u8; HEADER_LEN];
    stream.read_exact(&mut buf).await?;
    loop {
        match usbmuxd::decode_packet(&buf, MAX_PACKET_LEN)? {
            Some((packet, _)) => return Ok(packet),
            None => {
                // The header was accepted, so its length is bounded by MAX_PACKET_LEN.
                let want = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                let have = buf.len();
                buf.resize(want, 0);
                stream.read_exact(&mut buf[have..]).await?;
            }
        }
    }
}

/// A client of the usbmuxd at one address.
#[derive(Debug, Clone)]
pub struct Muxd {
    address: Address,
    client: ClientInfo,
}

impl Muxd {
    /// A client for `address`.
    pub fn new(address: Address) -> Self {
        Self {
            address,
            client: ClientInfo::default(),
        }
    }

    /// The address this client talks to.
    pub fn address(&self) -> &Address {
        &self.address
    }

    async fn open(&self) -> Result<MuxStream, TransportError> {
        MuxStream::connect(&self.address)
            .await
            .map_err(|source| TransportError::Muxer {
                address: self.address.to_string(),
                source,
            })
    }

    async fn request(&self, request: &Request) -> Result<(MuxStream, Message), TransportError> {
        let mut stream = self.open().await?;
        stream.write_all(&request.encode(1, &self.client)).await?;
        let packet = read_packet(&mut stream).await?;
        if packet.tag != 1 {
            tracing::debug!(tag = packet.tag, "usbmuxd reply tag mismatch");
        }
        Ok((stream, Message::decode(&packet)?))
    }

    fn check_result(request: &'static str, message: Message) -> Result<(), TransportError> {
        match message {
            Message::Result(ResultCode::Ok) => Ok(()),
            Message::Result(code) => Err(TransportError::MuxerResult { request, code }),
            _ => Err(TransportError::UnexpectedMuxReply { request }),
        }
    }

    /// The attached devices.
    pub async fn list_devices(&self) -> Result<Vec<Device>, TransportError> {
        match self.request(&Request::ListDevices).await?.1 {
            Message::DeviceList(devices) => Ok(devices),
            Message::Result(code) => Err(TransportError::MuxerResult {
                request: "ListDevices",
                code,
            }),
            _ => Err(TransportError::UnexpectedMuxReply {
                request: "ListDevices",
            }),
        }
    }

    /// The host's SystemBUID.
    pub async fn read_buid(&self) -> Result<String, TransportError> {
        match self.request(&Request::ReadBuid).await?.1 {
            Message::Buid(buid) => Ok(buid),
            Message::Result(code) => Err(TransportError::MuxerResult {
                request: "ReadBUID",
                code,
            }),
            _ => Err(TransportError::UnexpectedMuxReply {
                request: "ReadBUID",
            }),
        }
    }

    /// The stored pair record for `udid`, or `None` when there is none.
    pub async fn read_pair_record(&self, udid: &str) -> Result<Option<Vec<u8>>, TransportError> {
        let request = Request::ReadPairRecord {
            udid: udid.to_owned(),
        };
        match self.request(&request).await?.1 {
            Message::PairRecordData(data) => Ok(Some(data)),
            // usbmuxd answers a missing record with an errno (ENOENT) in the result.
            Message::Result(_) => Ok(None),
            _ => Err(TransportError::UnexpectedMuxReply {
                request: "ReadPairRecord",
            }),
        }
    }

    /// Stores a pair record; `device_id` lets usbmuxd tell listeners the device is now paired.
    pub async fn save_pair_record(
        &self,
        udid: &str,
        device_id: Option<u32>,
        data: Vec<u8>,
    ) -> Result<(), TransportError> {
        let request = Request::SavePairRecord {
            udid: udid.to_owned(),
            data,
            device_id,
        };
        Self::check_result("SavePairRecord", self.request(&request).await?.1)
    }

    /// Deletes the pair record of `udid`.
    pub async fn delete_pair_record(&self, udid: &str) -> Result<(), TransportError> {
        let request = Request::DeletePairRecord {
            udid: udid.to_owned(),
        };
        Self::check_result("DeletePairRecord", self.request(&request).await?.1)
    }

    /// Opens a byte tunnel to `port` on the device.
    pub async fn connect(&self, device_id: u32, port: u16) -> Result<MuxStream, TransportError> {
        let (stream, reply) = self.request(&Request::Connect { device_id, port }).await?;
        Self::check_result("Connect", reply)?;
        Ok(stream)
    }

    /// Subscribes to attach, detach and paired events.
    pub async fn listen(&self) -> Result<Listener, TransportError> {
        let (stream, reply) = self.request(&Request::Listen).await?;
        Self::check_result("Listen", reply)?;
        Ok(Listener { stream })
    }
}

/// An event from usbmuxd's `Listen` stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MuxEvent {
    /// A device appeared (also sent for every device present when listening starts).
    Attached(Device),
    /// A device went away.
    Detached {
        /// Its handle.
        device_id: u32,
    },
    /// A pair record was saved for a device.
    Paired {
        /// Its handle.
        device_id: u32,
    },
}

/// A `Listen` subscription.
#[derive(Debug)]
pub struct Listener {
    stream: MuxStream,
}

impl Listener {
    /// The next event; an error means the subscription ended (usbmuxd went away).
    pub async fn next_event(&mut self) -> Result<MuxEvent, TransportError> {
        loop {
            let packet = read_packet(&mut self.stream).await?;
            match Message::decode(&packet)? {
                Message::Attached(device) => return Ok(MuxEvent::Attached(device)),
                Message::Detached { device_id } => return Ok(MuxEvent::Detached { device_id }),
                Message::Paired { device_id } => return Ok(MuxEvent::Paired { device_id }),
                other => tracing::debug!(?other, "ignoring non-event on the listen socket"),
            }
        }
    }
}

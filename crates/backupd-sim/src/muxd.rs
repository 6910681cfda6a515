//! The simulated usbmuxd: device list, Listen events, Connect tunnels, BUID and a pair-record store.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

use backupd_proto::lockdown::LOCKDOWN_PORT;
use backupd_proto::usbmuxd::{
    self, ConnectionType, Device, HEADER_LEN, MAX_REQUEST_LEN, Message, Packet, ProtocolVersion,
    Request, ResultCode,
};

use crate::phone::{Phone, write_private};
use crate::wire::SimStream;

/// errno ENOENT, which usbmuxd puts in the result of a pair-record command for a missing record.
const ENOENT: u32 = 2;
/// errno EINVAL.
const EINVAL: u32 = 22;

#[derive(Debug)]
struct Slot {
    phone: Arc<Phone>,
    device_id: Option<u32>,
}

#[derive(Debug)]
struct Inner {
    slots: Vec<Slot>,
    next_device_id: u32,
    location: u32,
}

/// The muxer's shared state.
#[derive(Debug)]
pub struct Muxd {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Message>,
    pair_dir: PathBuf,
    buid: String,
}

impl Muxd {
    /// A muxer serving `phones`, all attached, with pair records kept in `pair_dir`.
    pub fn new(phones: Vec<Arc<Phone>>, pair_dir: PathBuf) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(&pair_dir)?;
        let buid = Self::load_or_make_buid(&pair_dir)?;
        let (events, _) = broadcast::channel(256);
        let mux = Arc::new(Self {
            inner: Mutex::new(Inner {
                slots: Vec::new(),
                next_device_id: 1,
                location: 0x0114_0000,
            }),
            events,
            pair_dir,
            buid,
        });
        for phone in phones {
            mux.lock().slots.push(Slot {
                phone: phone.clone(),
                device_id: None,
            });
            mux.attach(phone.udid());
        }
        Ok(mux)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn device_of(inner: &Inner, slot: &Slot) -> Option<Device> {
        let id = slot.device_id?;
        Some(Device {
            device_id: id,
            udid: slot.phone.udid().to_owned(),
            product_id: Some(slot.phone.profile().identity.usb_product_id),
            location_id: Some(inner.location + id),
            connection_speed: Some(480_000_000),
            connection_type: ConnectionType::Usb,
        })
    }

    /// The phones, whether attached or not.
    pub fn phones(&self) -> Vec<(Arc<Phone>, Option<u32>)> {
        self.lock()
            .slots
            .iter()
            .map(|s| (s.phone.clone(), s.device_id))
            .collect()
    }

    /// Finds a phone by UDID in any spelling.
    pub fn phone(&self, udid: &str) -> Option<Arc<Phone>> {
        self.lock()
            .slots
            .iter()
            .find(|s| usbmuxd::same_udid(s.phone.udid(), udid))
            .map(|s| s.phone.clone())
    }

    /// Plugs a phone in: it gets a new device id, as after a real replug. Returns false if unknown or attached.
    pub fn attach(&self, udid: &str) -> bool {
        let mut inner = self.lock();
        let next = inner.next_device_id;
        let Some(i) = inner
            .slots
            .iter()
            .position(|s| usbmuxd::same_udid(s.phone.udid(), udid))
        else {
            return false;
        };
        if inner.slots[i].device_id.is_some() {
            return false;
        }
        inner.slots[i].device_id = Some(next);
        inner.next_device_id += 1;
        if let Some(dev) = Self::device_of(&inner, &inner.slots[i]) {
            let _ = self.events.send(Message::Attached(dev));
        }
        tracing::info!(udid, device_id = next, "attached");
        true
    }

    /// Unplugs a phone. Returns false if unknown or not attached.
    pub fn detach(&self, udid: &str) -> bool {
        let mut inner = self.lock();
        let Some(slot) = inner
            .slots
            .iter_mut()
            .find(|s| usbmuxd::same_udid(s.phone.udid(), udid))
        else {
            return false;
        };
        let Some(id) = slot.device_id.take() else {
            return false;
        };
        let _ = self.events.send(Message::Detached { device_id: id });
        tracing::info!(udid, device_id = id, "detached");
        true
    }

    fn attached(&self, device_id: u32) -> Option<Arc<Phone>> {
        self.lock()
            .slots
            .iter()
            .find(|s| s.device_id == Some(device_id))
            .map(|s| s.phone.clone())
    }

    fn device_list(&self) -> Vec<Device> {
        let inner = self.lock();
        inner
            .slots
            .iter()
            .filter_map(|s| Self::device_of(&inner, s))
            .collect()
    }

    /// The host's SystemBUID, kept in `SystemConfiguration.plist` as usbmuxd does.
    pub fn buid(&self) -> &str {
        &self.buid
    }

    /// Reads the stored SystemBUID or makes and stores one; done once, before any client can ask.
    fn load_or_make_buid(pair_dir: &Path) -> std::io::Result<String> {
        let path = pair_dir.join("SystemConfiguration.plist");
        if let Ok(bytes) = std::fs::read(&path)
            && let Ok(plist::Value::Dictionary(d)) = backupd_proto::plist_util::parse(&bytes)
            && let Some(b) = d.get("SystemBUID").and_then(plist::Value::as_string)
        {
            return Ok(b.to_owned());
        }
        let buid = uuid::Uuid::new_v4().to_string().to_uppercase();
        let mut d = plist::Dictionary::new();
        d.insert("SystemBUID".into(), buid.clone().into());
        write_private(
            &path,
            &backupd_proto::plist_util::to_xml(&plist::Value::Dictionary(d)),
        )?;
        Ok(buid)
    }

    fn record_path(&self, udid: &str) -> Option<PathBuf> {
        // Names come from clients: only plain UDID characters may reach the file system.
        let ok = !udid.is_empty()
            && udid.len() <= 64
            && udid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        ok.then(|| self.pair_dir.join(format!("{udid}.plist")))
    }

    fn find_record(&self, udid: &str) -> Option<PathBuf> {
        let direct = self.record_path(udid)?;
        if direct.exists() {
            return Some(direct);
        }
        let want = usbmuxd::normalize_udid(udid);
        std::fs::read_dir(&self.pair_dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.extension().is_some_and(|x| x == "plist")
                    && p.file_stem()
                        .and_then(|s| s.to_str())
                        .is_some_and(|s| usbmuxd::normalize_udid(s) == want)
            })
    }

    /// Serves one client connection.
    pub async fn serve_client(self: Arc<Self>, mut stream: SimStream) {
        loop {
            let packet = match read_request(&mut stream).await {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "muxer client dropped");
                    return;
                }
            };
            let protocol = packet.protocol().unwrap_or(ProtocolVersion::Plist);
            let tag = packet.tag;
            let request = match Request::decode(&packet) {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "bad muxer request");
                    let code = if packet.protocol().is_err() {
                        ResultCode::BadVersion
                    } else {
                        ResultCode::BadCommand
                    };
                    if send(&mut stream, &Message::Result(code), tag, protocol)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    continue;
                }
            };
            tracing::debug!(request = request.message_type(), "muxer request");
            let reply = match request {
                Request::ListDevices => Message::DeviceList(self.device_list()),
                Request::ReadBuid => Message::Buid(self.buid.clone()),
                Request::ListListeners => Message::ListenerList(Vec::new()),
                Request::ReadPairRecord { udid } => {
                    match self.find_record(&udid).map(std::fs::read) {
                        Some(Ok(data)) => Message::PairRecordData(data),
                        _ => Message::Result(ResultCode::Other(ENOENT)),
                    }
                }
                Request::SavePairRecord {
                    udid,
                    data,
                    device_id,
                } => match self.record_path(&udid) {
                    Some(path) if backupd_proto::plist_util::parse(&data).is_ok() => {
                        let target = self.find_record(&udid).unwrap_or(path);
                        match write_private(&target, &data) {
                            Ok(()) => {
                                if let Some(id) =
                                    device_id.filter(|id| self.attached(*id).is_some())
                                {
                                    let _ = self.events.send(Message::Paired { device_id: id });
                                }
                                Message::Result(ResultCode::Ok)
                            }
                            Err(_) => Message::Result(ResultCode::Other(EINVAL)),
                        }
                    }
                    _ => Message::Result(ResultCode::Other(EINVAL)),
                },
                Request::DeletePairRecord { udid } => match self.find_record(&udid) {
                    Some(path) => match std::fs::remove_file(path) {
                        Ok(()) => Message::Result(ResultCode::Ok),
                        Err(_) => Message::Result(ResultCode::Other(ENOENT)),
                    },
                    None => Message::Result(ResultCode::Other(ENOENT)),
                },
                Request::Listen => {
                    self.listen(stream, tag, protocol).await;
                    return;
                }
                Request::Connect { device_id, port } => {
                    let Some(phone) = self.attached(device_id) else {
                        let _ = send(
                            &mut stream,
                            &Message::Result(ResultCode::BadDevice),
                            tag,
                            protocol,
                        )
                        .await;
                        continue;
                    };
                    if port != LOCKDOWN_PORT && !phone.has_service_port(port) {
                        let _ = send(
                            &mut stream,
                            &Message::Result(ResultCode::ConnectionRefused),
                            tag,
                            protocol,
                        )
                        .await;
                        continue;
                    }
                    if send(&mut stream, &Message::Result(ResultCode::Ok), tag, protocol)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    // From here on the socket is a raw tunnel to the phone's port.
                    if port == LOCKDOWN_PORT {
                        phone.serve_lockdown(stream).await;
                    } else {
                        phone.serve_service(port, stream).await;
                    }
                    return;
                }
                _ => Message::Result(ResultCode::BadCommand),
            };
            if send(&mut stream, &reply, tag, protocol).await.is_err() {
                return;
            }
        }
    }

    async fn listen(&self, mut stream: SimStream, tag: u32, protocol: ProtocolVersion) {
        let mut events = self.events.subscribe();
        if send(&mut stream, &Message::Result(ResultCode::Ok), tag, protocol)
            .await
            .is_err()
        {
            return;
        }
        for dev in self.device_list() {
            if send(&mut stream, &Message::Attached(dev), 0, protocol)
                .await
                .is_err()
            {
                return;
            }
        }
        let mut probe = [0u8; 1];
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(msg) => if send(&mut stream, &msg, 0, protocol).await.is_err() { return },
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                // A listener never speaks again; reading tells us when it hangs up.
                n = stream.read(&mut probe) => if matches!(n, Ok(0) | Err(_)) { return },
            }
        }
    }

    /// Where pair records are kept.
    pub fn pair_dir(&self) -> &Path {
        &self.pair_dir
    }
}

async fn send(
    stream: &mut SimStream,
    msg: &Message,
    tag: u32,
    protocol: ProtocolVersion,
) -> std::io::Result<()> {
    stream.write_all(&msg.encode(tag, protocol)).await?;
    stream.flush().await
}

async fn read_request(stream: &mut SimStream) -> std::io::Result<Option<Packet>> {
    let mut buf = vec![0u8; HEADER_LEN];
    match stream.read_exact(&mut buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    loop {
        match usbmuxd::decode_packet(&buf, MAX_REQUEST_LEN) {
            Ok(Some((packet, _))) => return Ok(Some(packet)),
            Ok(None) => {
                let want = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                let have = buf.len();
                buf.resize(want, 0);
                stream.read_exact(&mut buf[have..]).await?;
            }
            // usbmuxd closes a client whose message does not fit its buffer.
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }
}

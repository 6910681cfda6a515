//! The host side of a mobilebackup2 backup, driven over a trusted lockdown session.
//!
//! The choreography is the one real hosts follow (protocol.md §5.8): observe the sync notifications, take the
//! `/com.apple.itunes.lock_sync` lock through AFC, start mobilebackup2 with the escrow bag, exchange versions,
//! say Hello, write Info.plist, send Backup, then answer every DeviceLink message until the phone's final
//! Response. Everything the phone writes goes into the store's staging folder through checked paths; the
//! backup is verified and only then committed.
//!
//! This module spawns nothing: [`backup`] is one future. Dropping it (cancellation) drops the connections,
//! which releases the phone's lock, and leaves staging behind for the next run to discard.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use plist::{Dictionary, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use backupd_mux::services::NotificationProxy;
use backupd_mux::stream::DeviceStream;
use backupd_mux::{Lockdown, TransportError};
use backupd_proto::afc;
use backupd_proto::devicelink::{
    self, DeviceMessage, DirectoryEntry, DownloadEncoder, FileError, HostMessage, StatusResponse,
    UploadDecoder, UploadEvent,
};
use backupd_proto::mobilebackup2::{
    self as mb2, BackupOptions, Request, Response, notifications as notification,
};
use backupd_proto::pair::PairRecord;

use crate::store::{Staging, Store, StoreError};
use crate::verify;

/// Where a backup is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Connecting, locking, exchanging versions.
    Preparing,
    /// The phone shows its passcode prompt: the person must enter it on the phone.
    WaitingForPasscode,
    /// Files are moving.
    Transferring,
    /// Checking what was written.
    Verifying,
    /// Making it the newest backup.
    Committing,
    /// Done.
    Done,
}

/// Progress of a backup, published on a watch channel.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Where it is.
    pub stage: Stage,
    /// File bytes received from the phone.
    pub bytes: u64,
    /// Files received.
    pub files: u64,
    /// The phone's own percentage.
    pub device_percent: f64,
    /// Bytes the phone announced for the current batch, summed over batches.
    pub announced_bytes: u64,
    /// Seconds since the start.
    pub elapsed_secs: f64,
}

impl Progress {
    fn new() -> Self {
        Self {
            stage: Stage::Preparing,
            bytes: 0,
            files: 0,
            device_percent: 0.0,
            announced_bytes: 0,
            elapsed_secs: 0.0,
        }
    }
}

/// How a backup ended well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Files received in this run (an incremental run receives only what changed).
    pub files: u64,
    /// Bytes received.
    pub bytes: u64,
    /// The verification of the committed backup.
    pub report: verify::Report,
    /// Whether the phone encrypts its backups.
    pub encrypted: bool,
}

/// Why a backup failed. The previous backup is intact in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Talking to the phone failed (it was unplugged, or went away).
    #[error("failed to talk to the iPhone")]
    Transport(#[from] TransportError),
    /// The store refused something.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The phone sent something this host cannot understand.
    #[error("the iPhone sent a malformed backup message: {0}")]
    Protocol(String),
    /// The phone ended the operation with an error code.
    #[error("the iPhone stopped the {operation}: {description}")]
    Device {
        /// What it stopped: `backup` or `encryption change`.
        operation: &'static str,
        /// The MBErrorDomain code (208: passcode not entered; 105: host disk full; …).
        code: u64,
        /// The phone's words, or ours for a known code.
        description: String,
    },
    /// The phone named files outside its backup folder; nothing was written there, and the backup is not kept.
    #[error(
        "the iPhone sent {count} unsafe file names (e.g. {example:?}); the backup was not kept"
    )]
    UnsafePaths {
        /// How many.
        count: u64,
        /// One of them.
        example: String,
    },
    /// Not enough room on the host.
    #[error("not enough free space where backups go: {free} bytes free, about {needed} needed")]
    HostDiskFull {
        /// Free bytes.
        free: u64,
        /// Estimated need.
        needed: u64,
    },
    /// The backup was received but does not verify; it was not kept.
    #[error("the backup did not verify: {}", .0.problems.join("; "))]
    Verification(verify::Report),
    /// The phone is busy with another sync (its lock is held).
    #[error("the iPhone is busy with another sync (its backup lock is held)")]
    Busy,
}

impl BackupError {
    /// The device's MBErrorDomain code, when the phone refused.
    pub fn device_code(&self) -> Option<u64> {
        match self {
            Self::Device { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// What to do.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// Ask for a full backup even when an incremental one is possible.
    pub full: bool,
    /// Earlier versions to keep.
    pub keep_versions: usize,
    /// Refuse to start with less free space than this where backups go. The phone checks for itself too:
    /// it asks for the free space and stops with error 105 when its backup will not fit.
    pub min_free_bytes: u64,
    /// The backup password, when the person gave it: an encrypted backup is then opened and checked in
    /// full. Never stored.
    pub password: Option<crate::encrypted::Password>,
}

/// The phone's DeviceLink connection: one buffer shared by plist messages and raw file streams, so that no
/// byte read for one is lost to the other.
struct DlConn {
    stream: DeviceStream,
    buf: Vec<u8>,
    start: usize,
}

const READ_CHUNK: usize = 256 << 10;

impl DlConn {
    /// Wraps a service's stream; `pending` are bytes already read from it.
    fn new(stream: DeviceStream, pending: Vec<u8>) -> Self {
        let mut buf = Vec::with_capacity(READ_CHUNK.max(pending.len()));
        buf.extend_from_slice(&pending);
        Self {
            stream,
            buf,
            start: 0,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Reads more bytes into the buffer. Cancel-safe: `read_buf` only lengthens the buffer by what it read,
    /// so a `select!` that drops this future (a notification arrived first) loses nothing and adds nothing.
    async fn fill(&mut self) -> Result<(), BackupError> {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(READ_CHUNK);
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(TransportError::Io)?;
        if n == 0 {
            return Err(TransportError::Io(std::io::ErrorKind::UnexpectedEof.into()).into());
        }
        Ok(())
    }

    async fn recv(&mut self) -> Result<DeviceMessage, BackupError> {
        loop {
            match DeviceMessage::decode(self.pending()) {
                Ok(Some((msg, used))) => {
                    self.consume(used);
                    return Ok(msg);
                }
                Ok(None) => self.fill().await?,
                Err(e) => return Err(BackupError::Protocol(e.to_string())),
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(TransportError::Io)?;
        self.stream.flush().await.map_err(TransportError::Io)?;
        Ok(())
    }

    async fn status(&mut self, status: StatusResponse) -> Result<(), BackupError> {
        let bytes = status.encode();
        self.send(&bytes).await
    }
}

/// An AFC connection holding the sync lock.
struct SyncLock {
    stream: DeviceStream,
    handle: u64,
    number: u64,
}

impl SyncLock {
    async fn call(
        stream: &mut DeviceStream,
        packet: afc::Packet,
    ) -> Result<afc::Packet, BackupError> {
        stream
            .write_all(&packet.encode())
            .await
            .map_err(TransportError::Io)?;
        let mut buf = vec![0u8; afc::HEADER_LEN];
        stream
            .read_exact(&mut buf)
            .await
            .map_err(TransportError::Io)?;
        loop {
            match afc::Packet::decode(&buf) {
                Ok(Some((p, _))) => return Ok(p),
                Ok(None) => {
                    let entire = u64::from_le_bytes(buf[8..16].try_into().unwrap_or([0; 8]));
                    let want = usize::try_from(entire)
                        .unwrap_or(usize::MAX)
                        .min(afc::MAX_PACKET_LEN);
                    let have = buf.len();
                    if want <= have {
                        return Err(BackupError::Protocol("afc length".into()));
                    }
                    buf.resize(want, 0);
                    stream
                        .read_exact(&mut buf[have..])
                        .await
                        .map_err(TransportError::Io)?;
                }
                Err(e) => return Err(BackupError::Protocol(e.to_string())),
            }
        }
    }

    /// Opens the lock file and takes the lock, retrying 50 times every 200 ms while another sync holds it.
    async fn take(lockdown: &mut Lockdown) -> Result<Self, BackupError> {
        let conn = lockdown.start_service(mb2::AFC_SERVICE_NAME, None).await?;
        let mut stream = conn.into_stream();
        let opened = Self::call(
            &mut stream,
            afc::open(1, mb2::LOCK_SYNC_PATH, afc::mode::READ_WRITE),
        )
        .await?;
        if opened.operation != afc::op::FILE_OPEN_RES {
            return Err(BackupError::Protocol(format!(
                "afc open answered {:#x}",
                opened.operation
            )));
        }
        let handle = opened
            .arg(0)
            .map_err(|e| BackupError::Protocol(e.to_string()))?;
        for number in 2..52 {
            let answer = Self::call(
                &mut stream,
                afc::file_lock(number, handle, afc::lock::EXCLUSIVE_NONBLOCKING),
            )
            .await?;
            match answer.arg(0) {
                Ok(afc::status::SUCCESS) => {
                    return Ok(Self {
                        stream,
                        handle,
                        number: number + 1,
                    });
                }
                Ok(afc::status::OP_WOULD_BLOCK) => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Ok(code) => {
                    return Err(BackupError::Protocol(format!(
                        "afc lock failed with status {code}"
                    )));
                }
                Err(e) => return Err(BackupError::Protocol(e.to_string())),
            }
        }
        Err(BackupError::Busy)
    }

    async fn release(mut self) {
        let n = self.number;
        let _ = Self::call(
            &mut self.stream,
            afc::file_lock(n, self.handle, afc::lock::UNLOCK),
        )
        .await;
        let _ = Self::call(&mut self.stream, afc::close(n + 1, self.handle)).await;
    }
}

fn free_bytes(path: &Path) -> u64 {
    let mut p = path;
    loop {
        if p.exists() {
            return nix::sys::statvfs::statvfs(p)
                .map(|s| {
                    #[allow(
                        clippy::useless_conversion,
                        reason = "field types differ between Linux and macOS"
                    )]
                    let v = u64::from(s.blocks_available())
                        .saturating_mul(u64::from(s.fragment_size()));
                    v
                })
                .unwrap_or(0);
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return 0,
        }
    }
}

/// Writes `bytes` to `path` by creating a new file and renaming it into place, so that a hard link shared
/// with an earlier backup is replaced, never written through.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = part_path(path);
    let mut f = create_new(&tmp)?;
    f.write_all(bytes)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

fn part_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".backupd-part");
    path.with_file_name(name)
}

fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    // O_NOFOLLOW and O_EXCL: never through a symbolic link, never into an existing file.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)
}

/// Builds Info.plist as hosts write it (protocol.md §5.5), from the root lockdown values.
fn info_plist(udid: &str, root: &Dictionary, apps: &[String]) -> Value {
    let s = |k: &str| {
        root.get(k)
            .and_then(Value::as_string)
            .unwrap_or("")
            .to_owned()
    };
    let mut d = Dictionary::new();
    d.insert("Build Version".into(), s("BuildVersion").into());
    d.insert("Device Name".into(), s("DeviceName").into());
    d.insert("Display Name".into(), s("DeviceName").into());
    let guid: String = uuid_hex();
    d.insert("GUID".into(), guid.into());
    for (key, lockdown_key) in [
        ("ICCID", "IntegratedCircuitCardIdentity"),
        ("IMEI", "InternationalMobileEquipmentIdentity"),
        ("MEID", "MobileEquipmentIdentifier"),
        ("Phone Number", "PhoneNumber"),
    ] {
        if let Some(v) = root.get(lockdown_key).and_then(Value::as_string) {
            d.insert(key.into(), v.into());
        }
    }
    d.insert(
        "Installed Applications".into(),
        Value::Array(apps.iter().cloned().map(Value::String).collect()),
    );
    d.insert(
        "Last Backup Date".into(),
        Value::Date(SystemTime::now().into()),
    );
    d.insert("Product Name".into(), s("ProductName").into());
    d.insert("Product Type".into(), s("ProductType").into());
    d.insert("Product Version".into(), s("ProductVersion").into());
    d.insert("Serial Number".into(), s("SerialNumber").into());
    d.insert("Target Identifier".into(), udid.into());
    d.insert("Target Type".into(), "Device".into());
    d.insert("Unique Identifier".into(), udid.to_uppercase().into());
    d.insert("iTunes Version".into(), "12.13.2.3".into());
    Value::Dictionary(d)
}

fn uuid_hex() -> String {
    // 32 random uppercase hex digits, as iTunes writes GUID; the OS's randomness is enough here.
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A file the phone is sending: where it goes (target, temporary name, open file) unless refused, the path
/// the phone named, and the bytes so far.
struct Incoming {
    open: Option<(PathBuf, PathBuf, std::fs::File)>,
    host_path: String,
    size: u64,
}

/// The work of one run: the staging folder, counters, what was received, and the unsafe names refused.
struct Run<'a> {
    udid: String,
    staging: &'a Staging,
    store_root: PathBuf,
    progress: Progress,
    started: Instant,
    tx: &'a watch::Sender<Progress>,
    /// Every file this run wrote, by its relative path where the phone left it, with its length.
    received: BTreeMap<String, u64>,
    unsafe_paths: u64,
    unsafe_example: Option<String>,
}

impl Run<'_> {
    fn publish(&mut self) {
        self.progress.elapsed_secs = self.started.elapsed().as_secs_f64();
        let _ = self.tx.send(self.progress.clone());
    }

    /// Resolves a path the phone named, refusing anything outside `<UDID>/` or through a symbolic link.
    fn path(&mut self, device_path: &str) -> Option<PathBuf> {
        let checked = mb2::safe_relative_path(&self.udid, device_path)
            .ok()
            .and_then(|rel| self.staging.resolve(rel.as_str()).ok());
        if checked.is_none() {
            self.unsafe_paths += 1;
            self.unsafe_example
                .get_or_insert_with(|| device_path.to_owned());
            tracing::warn!(
                udid = self.udid,
                path = device_path,
                "refused an unsafe path from the phone"
            );
        }
        checked
    }

    fn status_of(result: std::io::Result<()>) -> StatusResponse {
        match result {
            Ok(()) => StatusResponse::ok(),
            Err(e) => StatusResponse::error(devicelink::device_error_code(&e), e.to_string()),
        }
    }

    async fn download(&mut self, conn: &mut DlConn, paths: &[String]) -> Result<(), BackupError> {
        let mut enc = DownloadEncoder::new();
        let mut errors = Vec::new();
        for p in paths {
            let mut out = Vec::new();
            let proto = |e: devicelink::FramingError| BackupError::Protocol(e.to_string());
            enc.start_file(p, &mut out).map_err(proto)?;
            match self.path(p).map(std::fs::File::open) {
                Some(Ok(mut file)) => {
                    use std::io::Read;
                    let mut chunk = vec![0u8; devicelink::DATA_CHUNK_LEN];
                    loop {
                        let n = file
                            .read(&mut chunk)
                            .map_err(|e| BackupError::Protocol(e.to_string()))?;
                        if n == 0 {
                            break;
                        }
                        enc.data(&chunk[..n], &mut out).map_err(proto)?;
                        if out.len() >= READ_CHUNK {
                            conn.send(&out).await?;
                            out.clear();
                        }
                    }
                    enc.finish_file(&mut out).map_err(proto)?;
                }
                Some(Err(e)) => {
                    let code = devicelink::device_error_code(&e);
                    enc.fail_file(&e.to_string(), &mut out).map_err(proto)?;
                    errors.push(FileError {
                        path: p.clone(),
                        code,
                        message: e.to_string(),
                    });
                }
                None => {
                    enc.fail_file("refused path", &mut out).map_err(proto)?;
                    errors.push(FileError {
                        path: p.clone(),
                        code: devicelink::ERROR_NOT_FOUND,
                        message: "refused".into(),
                    });
                }
            }
            conn.send(&out).await?;
        }
        let mut out = Vec::new();
        enc.finish(&mut out)
            .map_err(|e| BackupError::Protocol(e.to_string()))?;
        conn.send(&out).await?;
        let status = if errors.is_empty() {
            StatusResponse::ok()
        } else {
            StatusResponse::multi_status(&errors)
        };
        conn.status(status).await
    }

    async fn upload(&mut self, conn: &mut DlConn) -> Result<(), BackupError> {
        let mut dec = UploadDecoder::new();
        let mut current: Option<Incoming> = None;
        let mut failures = 0u64;
        let mut last_publish = Instant::now();
        loop {
            if conn.pending().is_empty() {
                conn.fill().await?;
            }
            let step = dec
                .decode(conn.pending())
                .map_err(|e| BackupError::Protocol(e.to_string()))?;
            let consumed = step.consumed;
            match step.event {
                Some(UploadEvent::FileStart { host_path, .. }) => {
                    let target = self.path(&host_path);
                    let open = match target {
                        Some(t) => {
                            let part = part_path(&t);
                            let made = t
                                .parent()
                                .map(std::fs::create_dir_all)
                                .transpose()
                                .and_then(|_| create_new(&part));
                            match made {
                                Ok(f) => Some((t, part, f)),
                                Err(e) => {
                                    tracing::warn!(error = %e, path = host_path, "cannot write a backup file");
                                    failures += 1;
                                    None
                                }
                            }
                        }
                        None => None,
                    };
                    current = Some(Incoming {
                        open,
                        host_path,
                        size: 0,
                    });
                }
                Some(UploadEvent::Data(bytes)) => {
                    let n = bytes.len() as u64;
                    if let Some(Incoming {
                        open: Some((_, _, f)),
                        size,
                        ..
                    }) = current.as_mut()
                    {
                        // A write failure (e.g. the host disk full) ends the backup cleanly, staging discarded.
                        f.write_all(bytes).map_err(|e| {
                            if e.raw_os_error() == Some(nix::libc::ENOSPC) {
                                BackupError::HostDiskFull { free: 0, needed: n }
                            } else {
                                BackupError::Protocol(format!("cannot write: {e}"))
                            }
                        })?;
                        *size += n;
                    }
                    self.progress.bytes += n;
                    if last_publish.elapsed() > Duration::from_millis(200) {
                        self.publish();
                        last_publish = Instant::now();
                    }
                }
                Some(UploadEvent::FileEnd) => {
                    if let Some(Incoming {
                        open: Some((target, part, f)),
                        host_path,
                        size,
                    }) = current.take()
                    {
                        drop(f);
                        std::fs::rename(&part, &target).map_err(|e| {
                            BackupError::Protocol(format!("cannot place a file: {e}"))
                        })?;
                        self.received.insert(relative(&host_path), size);
                        self.progress.files += 1;
                    }
                }
                Some(UploadEvent::FileError { message }) => {
                    if let Some(Incoming {
                        open, host_path, ..
                    }) = current.take()
                    {
                        tracing::info!(
                            path = host_path,
                            message,
                            "the phone could not send a file"
                        );
                        if let Some((_, part, f)) = open {
                            drop(f);
                            let _ = std::fs::remove_file(part);
                        }
                        failures += 1;
                    }
                }
                Some(UploadEvent::BatchEnd) => {
                    conn.consume(consumed);
                    self.publish();
                    let status = if failures == 0 {
                        StatusResponse::ok()
                    } else {
                        StatusResponse::error(
                            devicelink::STATUS_FAILED,
                            format!("{failures} files could not be written"),
                        )
                    };
                    return conn.status(status).await;
                }
                Some(_) | None => {}
            }
            conn.consume(consumed);
        }
    }

    fn create_dir(&mut self, path: &str) -> StatusResponse {
        match self.path(path) {
            Some(p) => Self::status_of(std::fs::create_dir_all(p)),
            None => StatusResponse::error(devicelink::ERROR_NOT_FOUND, "refused path"),
        }
    }

    /// Forgets what this run received at `rel` or below it.
    fn forget(&mut self, rel: &str) -> Vec<(String, u64)> {
        let below = format!("{rel}/");
        let keys: Vec<String> = self
            .received
            .range(rel.to_owned()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(rel))
            .filter(|k| *k == rel || k.starts_with(&below))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| self.received.remove(&k).map(|v| (k, v)))
            .collect()
    }

    fn remove(&mut self, paths: &[String]) -> StatusResponse {
        for p in paths {
            self.forget(&relative(p));
            let Some(path) = self.path(p) else { continue };
            let result = match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
                Ok(_) => std::fs::remove_file(&path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                return Self::status_of(Err(e));
            }
        }
        StatusResponse::ok()
    }

    fn moves(&mut self, moves: &[(String, String)]) -> StatusResponse {
        for (from, to) in moves {
            let (Some(src), Some(dst)) = (self.path(from), self.path(to)) else {
                continue;
            };
            let result = (|| {
                if let Ok(m) = std::fs::symlink_metadata(&dst) {
                    if m.is_dir() {
                        std::fs::remove_dir_all(&dst)?
                    } else {
                        std::fs::remove_file(&dst)?
                    }
                }
                if let Some(parent) = dst.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::rename(&src, &dst)
            })();
            if let Err(e) = result {
                return Self::status_of(Err(e));
            }
            // What the phone moved is checked where it now is (an encrypted backup is checked by these).
            let (from, to) = (relative(from), relative(to));
            self.forget(&to);
            for (k, v) in self.forget(&from) {
                self.received.insert(format!("{to}{}", &k[from.len()..]), v);
            }
        }
        StatusResponse::ok()
    }

    fn copy(&mut self, from: &str, to: &str) -> StatusResponse {
        let (Some(src), Some(dst)) = (self.path(from), self.path(to)) else {
            return StatusResponse::error(devicelink::ERROR_NOT_FOUND, "refused path");
        };
        Self::status_of(copy_tree(&src, &dst))
    }

    fn list(&mut self, path: &str) -> StatusResponse {
        let Some(dir) = self.path(path) else {
            return StatusResponse::error(devicelink::ERROR_NOT_FOUND, "refused path");
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => return Self::status_of(Err(e)),
        };
        let list: Vec<DirectoryEntry> = entries
            .flatten()
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                let file_type = if meta.is_dir() {
                    devicelink::FILE_TYPE_DIRECTORY
                } else if meta.is_file() {
                    devicelink::FILE_TYPE_REGULAR
                } else {
                    devicelink::FILE_TYPE_UNKNOWN
                };
                Some(DirectoryEntry {
                    name: e.file_name().to_string_lossy().into_owned(),
                    file_type,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                })
            })
            .collect();
        StatusResponse::directory_listing(&list)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A path the phone named (`<UDID>/…`) relative to the backup folder.
fn relative(device_path: &str) -> String {
    device_path
        .split_once('/')
        .map(|(_, r)| r.trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(src)?;
    if meta.is_dir() {
        std::fs::create_dir_all(dst)?;
        for e in std::fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        Ok(())
    } else if meta.is_file() {
        let bytes = std::fs::read(src)?;
        replace_file(dst, &bytes)
    } else {
        Ok(())
    }
}

/// Runs file-system work that can take seconds (linking a staging copy, verifying Manifest.db, `sync`, the
/// commit) without holding up the other tasks of a multi-threaded runtime; on a single-threaded runtime it
/// just runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Starts mobilebackup2 with the escrow bag and gets through the version exchange and Hello.
async fn open_mobilebackup2(
    lockdown: &mut Lockdown,
    record: &PairRecord,
) -> Result<DlConn, BackupError> {
    let service = lockdown
        .start_service(mb2::SERVICE_NAME, record.escrow_bag.clone())
        .await?;
    let (stream, pending) = service.into_parts();
    let mut conn = DlConn::new(stream, pending);
    match conn.recv().await? {
        DeviceMessage::VersionExchange { major, .. } if major <= devicelink::VERSION_MAJOR => {}
        other => {
            return Err(BackupError::Protocol(format!(
                "expected a version exchange, got {}",
                other.name()
            )));
        }
    }
    conn.send(
        &HostMessage::VersionsOk {
            major: devicelink::VERSION_MAJOR,
        }
        .encode(),
    )
    .await?;
    match conn.recv().await? {
        DeviceMessage::DeviceReady => {}
        other => {
            return Err(BackupError::Protocol(format!(
                "expected DeviceReady, got {}",
                other.name()
            )));
        }
    }
    conn.send(&Request::hello().to_message().encode()).await?;
    match conn.recv().await? {
        DeviceMessage::ProcessMessage(d) => {
            let r = Response::from_dict(&d).map_err(|e| BackupError::Protocol(e.to_string()))?;
            if !r.is_ok() {
                return Err(device_error("backup", &r));
            }
        }
        other => {
            return Err(BackupError::Protocol(format!(
                "expected the Hello response, got {}",
                other.name()
            )));
        }
    }
    Ok(conn)
}

fn device_error(operation: &'static str, r: &Response) -> BackupError {
    BackupError::Device {
        operation,
        code: r.error_code,
        description: r
            .error_description
            .clone()
            .unwrap_or_else(|| mb2::error_description(r.error_code)),
    }
}

/// The next notification the phone relays. Pends forever without a proxy, and drops the proxy when it ends,
/// so it can sit in a `select!` beside the DeviceLink connection; [`NotificationProxy::next_event`] is
/// cancel-safe, so losing the race loses nothing.
async fn relayed(np: &mut Option<NotificationProxy>) -> String {
    loop {
        let Some(proxy) = np.as_mut() else {
            return std::future::pending().await;
        };
        match proxy.next_event().await {
            Ok(backupd_proto::services::notification::Event::Relay(name)) => return name,
            Ok(_) | Err(_) => *np = None,
        }
    }
}

/// Answers the phone's DeviceLink requests until its final Response.
async fn serve(
    run: &mut Run<'_>,
    conn: &mut DlConn,
    np: &mut Option<NotificationProxy>,
) -> Result<Response, BackupError> {
    loop {
        let msg = tokio::select! {
            msg = conn.recv() => msg?,
            name = relayed(np) => {
                if name == notification::LOCAL_AUTH_PRESENTED {
                    run.progress.stage = Stage::WaitingForPasscode;
                    run.publish();
                } else if name == notification::LOCAL_AUTH_DISMISSED {
                    run.progress.stage = Stage::Transferring;
                    run.publish();
                } else if name == notification::SYNC_CANCEL_REQUEST {
                    tracing::info!(udid = run.udid, "the phone asked to cancel the sync");
                }
                continue;
            }
        };
        if run.progress.stage == Stage::Preparing || run.progress.stage == Stage::WaitingForPasscode
        {
            run.progress.stage = Stage::Transferring;
            run.publish();
        }
        match msg {
            DeviceMessage::DownloadFiles { paths, progress } => {
                run.progress.device_percent = progress;
                run.download(conn, &paths).await?;
            }
            DeviceMessage::UploadFiles {
                progress,
                total_bytes,
            } => {
                run.progress.device_percent = progress;
                run.progress.announced_bytes += total_bytes.unwrap_or(0);
                run.upload(conn).await?;
            }
            DeviceMessage::GetFreeDiskSpace => {
                conn.status(StatusResponse::free_space(free_bytes(&run.store_root)))
                    .await?;
            }
            DeviceMessage::CreateDirectory { path } => {
                let s = run.create_dir(&path);
                conn.status(s).await?;
            }
            DeviceMessage::MoveFiles(m) | DeviceMessage::MoveItems(m) => {
                run.progress.device_percent = m.progress;
                let s = run.moves(&m.moves);
                conn.status(s).await?;
            }
            DeviceMessage::RemoveFiles(r) | DeviceMessage::RemoveItems(r) => {
                run.progress.device_percent = r.progress;
                let s = run.remove(&r.paths);
                conn.status(s).await?;
            }
            DeviceMessage::CopyItem {
                source,
                destination,
            } => {
                let s = run.copy(&source, &destination);
                conn.status(s).await?;
            }
            DeviceMessage::ContentsOfDirectory { path } => {
                let s = run.list(&path);
                conn.status(s).await?;
            }
            DeviceMessage::ProcessMessage(d) => {
                return Response::from_dict(&d).map_err(|e| BackupError::Protocol(e.to_string()));
            }
            DeviceMessage::Disconnect { reason } => {
                return Err(BackupError::Protocol(format!(
                    "the iPhone disconnected before finishing ({})",
                    reason.unwrap_or_default()
                )));
            }
            // PurgeDiskSpace and unknown requests: not supported, as libimobiledevice answers.
            _ => conn.status(StatusResponse::unsupported()).await?,
        }
    }
}

/// Makes a backup of the phone behind `lockdown` (a trusted session) into `store`.
///
/// Progress is published on `progress`. On success the new backup is the newest one and verified; on any
/// error the previous newest backup is untouched.
pub async fn backup(
    lockdown: &mut Lockdown,
    record: &PairRecord,
    store: &Store,
    request: &BackupRequest,
    progress: &watch::Sender<Progress>,
) -> Result<Outcome, BackupError> {
    let udid = lockdown.device().udid.clone();
    let root = lockdown
        .get_value(None, None)
        .await?
        .and_then(Value::into_dictionary)
        .unwrap_or_default();
    let encrypted = lockdown
        .get_value(Some("com.apple.mobile.backup"), Some("WillEncrypt"))
        .await
        .ok()
        .flatten()
        .and_then(|v| v.as_boolean())
        .unwrap_or(false);
    // The phone's used data bounds a full backup; an incremental one needs only what changed.
    let used = lockdown
        .get_value(Some("com.apple.disk_usage"), None)
        .await
        .ok()
        .flatten()
        .and_then(Value::into_dictionary)
        .and_then(|d| {
            let cap = d.get("TotalDataCapacity")?.as_unsigned_integer()?;
            let avail = d.get("TotalDataAvailable")?.as_unsigned_integer()?;
            Some(cap.saturating_sub(avail))
        })
        .unwrap_or(0);
    let free = free_bytes(store.root());
    if free < request.min_free_bytes {
        return Err(BackupError::HostDiskFull {
            free,
            needed: request.min_free_bytes,
        });
    }
    let existing = crate::store::describe("current", &store.current_dir(&udid), false).size;
    if free < used.saturating_sub(existing) {
        // Used data overestimates a backup (apps are not backed up), so this is a warning, not a refusal.
        tracing::warn!(
            udid,
            free,
            used,
            "the host may not have room for this backup"
        );
    }

    let mut np = match NotificationProxy::start(lockdown).await {
        Ok(mut np) => {
            for name in [
                notification::SYNC_CANCEL_REQUEST,
                notification::SYNC_SUSPEND_REQUEST,
                notification::SYNC_RESUME_REQUEST,
                notification::LOCAL_AUTH_PRESENTED,
                notification::LOCAL_AUTH_DISMISSED,
            ] {
                np.observe(name).await?;
            }
            np.post(notification::SYNC_WILL_START).await?;
            Some(np)
        }
        Err(e) => {
            tracing::info!(udid, error = %e, "notification_proxy unavailable; going on without it");
            None
        }
    };
    let lock = SyncLock::take(lockdown).await?;
    if let Some(np) = np.as_mut() {
        np.post(notification::SYNC_LOCK_REQUEST).await?;
        np.post(notification::SYNC_DID_START).await?;
    }
    let result = run_locked(
        lockdown, record, store, request, progress, &udid, &root, &mut np, encrypted,
    )
    .await;
    lock.release().await;
    if let Some(np) = np.as_mut() {
        let _ = np.post(notification::SYNC_DID_FINISH).await;
    }
    result
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the arguments are the run's whole context"
)]
async fn run_locked(
    lockdown: &mut Lockdown,
    record: &PairRecord,
    store: &Store,
    request: &BackupRequest,
    progress: &watch::Sender<Progress>,
    udid: &str,
    root: &Dictionary,
    np: &mut Option<NotificationProxy>,
    encrypted: bool,
) -> Result<Outcome, BackupError> {
    let apps = match backupd_mux::services::InstallationProxy::start(lockdown).await {
        Ok(mut p) => p
            .browse_user_apps(100_000)
            .await
            .map(|a| a.into_iter().map(|a| a.bundle_id).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mut conn = open_mobilebackup2(lockdown, record).await?;
    let staging = blocking(|| store.begin(udid))?;
    let info = backupd_proto::plist_util::to_xml(&info_plist(udid, root, &apps));
    replace_file(&staging.dir().join(mb2::INFO_PLIST), &info)
        .map_err(|e| BackupError::Protocol(format!("cannot write Info.plist: {e}")))?;
    let mut run = Run {
        udid: udid.to_owned(),
        staging: &staging,
        store_root: store.root().to_owned(),
        progress: Progress::new(),
        started: Instant::now(),
        tx: progress,
        received: BTreeMap::new(),
        unsafe_paths: 0,
        unsafe_example: None,
    };
    run.publish();
    let backup = Request::Backup {
        target: udid.to_owned(),
        source: None,
        options: BackupOptions {
            force_full: request.full,
            extra: Dictionary::new(),
        },
    };
    conn.send(&backup.to_message().encode()).await?;
    let response = serve(&mut run, &mut conn, np).await?;
    let _ = conn
        .send(&HostMessage::Disconnect { reason: None }.encode())
        .await;
    if !response.is_ok() {
        return Err(device_error("backup", &response));
    }
    if run.unsafe_paths > 0 {
        return Err(BackupError::UnsafePaths {
            count: run.unsafe_paths,
            example: run.unsafe_example.clone().unwrap_or_default(),
        });
    }
    run.progress.stage = Stage::Verifying;
    run.publish();
    let report =
        blocking(|| verify::verify_with(&staging.dir(), &run.received, request.password.as_ref()));
    if !report.ok {
        return Err(BackupError::Verification(report));
    }
    run.progress.stage = Stage::Committing;
    run.publish();
    // Everything written must be on disk before the commit makes it the newest backup.
    blocking(nix::unistd::sync);
    let (files, bytes) = (run.progress.files, run.progress.bytes);
    let mut last = run.progress.clone();
    drop(run);
    blocking(|| store.commit(staging, request.keep_versions))?;
    blocking(|| store.record_verification(udid, &report))?;
    // A backup opened with the password is a password check of its own.
    if let (Some(true), Some(keybag_id)) = (report.password_ok, &report.keybag_id) {
        let check = crate::store::PasswordCheck {
            keybag_id: keybag_id.clone(),
            checked_at: unix_now(),
        };
        blocking(|| store.record_password_check(udid, &check))?;
    }
    last.stage = Stage::Done;
    let _ = progress.send(last);
    Ok(Outcome {
        files,
        bytes,
        report,
        encrypted,
    })
}

/// Turns backup encryption on (`old` none), off (`new` none) or changes its password.
///
/// From iOS 13 the phone asks for its passcode on screen; `progress` shows `waiting_for_passcode` while the
/// prompt is up. The passwords go only to the phone.
pub async fn change_password(
    lockdown: &mut Lockdown,
    record: &PairRecord,
    old: Option<String>,
    new: Option<String>,
    progress: &watch::Sender<Progress>,
) -> Result<(), BackupError> {
    let udid = lockdown.device().udid.clone();
    let mut np = match NotificationProxy::start(lockdown).await {
        Ok(mut np) => {
            np.observe(notification::LOCAL_AUTH_PRESENTED).await?;
            np.observe(notification::LOCAL_AUTH_DISMISSED).await?;
            Some(np)
        }
        Err(_) => None,
    };
    let mut conn = open_mobilebackup2(lockdown, record).await?;
    let request = Request::ChangePassword {
        target: Some(udid),
        old,
        new,
    };
    conn.send(&request.to_message().encode()).await?;
    let mut state = Progress::new();
    loop {
        let msg = tokio::select! {
            msg = conn.recv() => msg?,
            name = relayed(&mut np) => {
                state.stage = if name == notification::LOCAL_AUTH_PRESENTED {
                    Stage::WaitingForPasscode
                } else {
                    Stage::Preparing
                };
                let _ = progress.send(state.clone());
                continue;
            }
        };
        match msg {
            DeviceMessage::ProcessMessage(d) => {
                let r =
                    Response::from_dict(&d).map_err(|e| BackupError::Protocol(e.to_string()))?;
                let _ = conn
                    .send(&HostMessage::Disconnect { reason: None }.encode())
                    .await;
                if !r.is_ok() {
                    return Err(device_error("encryption change", &r));
                }
                state.stage = Stage::Done;
                let _ = progress.send(state);
                return Ok(());
            }
            DeviceMessage::Disconnect { reason } => {
                return Err(BackupError::Protocol(format!(
                    "the iPhone disconnected ({})",
                    reason.unwrap_or_default()
                )));
            }
            _ => conn.status(StatusResponse::unsupported()).await?,
        }
    }
}

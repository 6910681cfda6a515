//! The device end of a DeviceLink connection: plists and raw file streams over one buffered stream, driven
//! by the protocol crate's codecs.

use std::io;
use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use backupd_proto::devicelink::{
    self, DeviceMessage, DlError, DownloadDecoder, DownloadEvent, FramingError, HostMessage,
    StatusResponse, UploadEncoder,
};

use super::files::Content;
use crate::wire::DeviceConn;

/// How much is written to the socket at once.
const FLUSH_AT: usize = 256 << 10;
/// How much is read from the socket at once.
const READ_CHUNK: usize = 64 << 10;

/// Why a DeviceLink conversation stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// The socket failed.
    #[error("connection failed")]
    Io(#[from] io::Error),
    /// The host sent something that is not a DeviceLink message.
    #[error("host sent a bad message")]
    Message(#[from] DlError),
    /// The host's file stream was malformed.
    #[error("host sent a bad file stream")]
    Framing(#[from] FramingError),
    /// The host went away.
    #[error("host disconnected")]
    Disconnected,
    /// The profile's `disconnect_after_bytes` fault fired.
    #[error("dropped the connection after {0} bytes as scripted")]
    Scripted(u64),
    /// A file the host sent exceeds what the phone accepts for it.
    #[error("{path} from the host exceeds {max} bytes")]
    TooBig {
        /// The path.
        path: String,
        /// The cap.
        max: u64,
    },
    /// The host answered a file it was not asked for.
    #[error("host sent {0}, which was not asked for")]
    Unexpected(String),
}

/// Where a downloaded file goes.
#[derive(Debug)]
pub(crate) enum Sink {
    /// Kept in memory, up to this many bytes.
    Memory(u64),
    /// Written to this file.
    File(PathBuf),
}

/// What the host answered for one path.
#[derive(Debug)]
pub(crate) enum Downloaded {
    /// The host could not send it (its text).
    Missing(String),
    /// Its bytes.
    Bytes(Vec<u8>),
    /// Written to the sink's file, this many bytes.
    File(u64),
}

/// Where an uploaded file's bytes come from.
#[derive(Debug)]
pub(crate) enum Source {
    /// Generated content.
    Content(Content),
    /// Generated content, encrypted with this key as the phone stores a file of an encrypted backup.
    Encrypted(
        Content,
        zeroize::Zeroizing<[u8; backupd_proto::keybag::KEY_LEN]>,
    ),
    /// Bytes in memory.
    Bytes(Vec<u8>),
    /// A file on the simulator's disk.
    File(PathBuf),
}

/// One file of an upload batch.
#[derive(Debug)]
pub(crate) struct Upload {
    /// The path on the phone.
    pub(crate) device_path: String,
    /// The path the host must store it at.
    pub(crate) host_path: String,
    /// The bytes.
    pub(crate) source: Source,
}

/// A DeviceLink connection seen from the phone.
#[derive(Debug)]
pub(crate) struct Link {
    conn: DeviceConn,
    inbox: Vec<u8>,
    outbox: Vec<u8>,
    /// File data bytes uploaded so far.
    pub(crate) data_sent: u64,
    /// Drop the connection once `data_sent` reaches this.
    pub(crate) disconnect_after: Option<u64>,
    /// DeviceLink messages sent since the count was last reset.
    pub(crate) messages_sent: u64,
    /// Drop the connection instead of sending message number `messages_sent` when it reaches this.
    pub(crate) disconnect_before_message: Option<u64>,
}

impl Link {
    /// Drops the connection as an unplug would, for the scripted faults.
    pub(crate) async fn unplug(&mut self) -> LinkError {
        use tokio::io::AsyncWriteExt;
        let _ = self.conn.shutdown().await;
        LinkError::Scripted(self.data_sent)
    }

    pub(crate) fn new(conn: DeviceConn) -> Self {
        Self {
            conn,
            inbox: Vec::new(),
            outbox: Vec::new(),
            data_sent: 0,
            disconnect_after: None,
            messages_sent: 0,
            disconnect_before_message: None,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.outbox.is_empty() {
            self.conn.write_all(&self.outbox).await?;
            self.outbox.clear();
        }
        self.conn.flush().await
    }

    /// Sends a message.
    pub(crate) async fn send(&mut self, msg: &DeviceMessage) -> Result<(), LinkError> {
        if self.disconnect_before_message == Some(self.messages_sent) {
            return Err(self.unplug().await);
        }
        self.messages_sent += 1;
        self.outbox.extend_from_slice(&msg.encode());
        self.flush().await?;
        Ok(())
    }

    /// Reads more bytes; `false` at the end of the stream.
    async fn fill(&mut self) -> io::Result<bool> {
        let old = self.inbox.len();
        self.inbox.resize(old + READ_CHUNK, 0);
        let n = self.conn.read(&mut self.inbox[old..]).await;
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                self.inbox.truncate(old);
                return Err(e);
            }
        };
        self.inbox.truncate(old + n);
        Ok(n > 0)
    }

    /// The next message from the host; `None` when it hung up.
    pub(crate) async fn recv(&mut self) -> Result<Option<HostMessage>, LinkError> {
        loop {
            if let Some((msg, used)) = HostMessage::decode(&self.inbox)? {
                self.inbox.drain(..used);
                return Ok(Some(msg));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Waits for the host's status answer, skipping pings.
    pub(crate) async fn recv_status(&mut self) -> Result<StatusResponse, LinkError> {
        loop {
            match self.recv().await? {
                Some(HostMessage::StatusResponse(s)) => return Ok(s),
                Some(HostMessage::Disconnect { .. }) | None => return Err(LinkError::Disconnected),
                Some(other) => {
                    tracing::debug!(
                        message = other.name(),
                        "ignoring a host message mid-operation"
                    );
                }
            }
        }
    }

    /// Sends a message and waits for the status answer.
    pub(crate) async fn request(
        &mut self,
        msg: &DeviceMessage,
    ) -> Result<StatusResponse, LinkError> {
        self.send(msg).await?;
        self.recv_status().await
    }

    /// Asks the host for files (`DLMessageDownloadFiles`) and reads its answer into the sinks, one per path.
    pub(crate) async fn download(
        &mut self,
        paths: &[String],
        sinks: Vec<Sink>,
        progress: f64,
    ) -> Result<Vec<Downloaded>, LinkError> {
        self.send(&DeviceMessage::DownloadFiles {
            paths: paths.to_vec(),
            progress,
        })
        .await?;
        let mut results: Vec<Option<Downloaded>> = paths.iter().map(|_| None).collect();
        let mut writers: Vec<Option<std::fs::File>> = Vec::new();
        for sink in &sinks {
            writers.push(match sink {
                Sink::File(p) => Some(std::fs::File::create(p)?),
                Sink::Memory(_) => None,
            });
        }
        let mut decoder = DownloadDecoder::new();
        let mut current: Option<usize> = None;
        let mut buffer: Vec<u8> = Vec::new();
        let mut written: u64 = 0;
        loop {
            if self.inbox.is_empty() && !self.fill().await? {
                return Err(LinkError::Disconnected);
            }
            let step = decoder.decode(&self.inbox)?;
            let consumed = step.consumed;
            let mut done = false;
            match step.event {
                None => {}
                Some(DownloadEvent::FileStart { path }) => {
                    let i = paths
                        .iter()
                        .position(|p| *p == path)
                        .ok_or_else(|| LinkError::Unexpected(path.clone()))?;
                    current = Some(i);
                    buffer.clear();
                    written = 0;
                }
                Some(DownloadEvent::Data(d)) => {
                    let i = current.ok_or_else(|| LinkError::Unexpected("data".into()))?;
                    written += d.len() as u64;
                    match (&sinks[i], &mut writers[i]) {
                        (Sink::Memory(max), _) => {
                            if written > *max {
                                return Err(LinkError::TooBig {
                                    path: paths[i].clone(),
                                    max: *max,
                                });
                            }
                            buffer.extend_from_slice(d);
                        }
                        (Sink::File(_), Some(f)) => std::io::Write::write_all(f, d)?,
                        (Sink::File(_), None) => {}
                    }
                }
                Some(DownloadEvent::FileEnd) => {
                    let i = current
                        .take()
                        .ok_or_else(|| LinkError::Unexpected("end".into()))?;
                    results[i] = Some(match sinks[i] {
                        Sink::Memory(_) => Downloaded::Bytes(std::mem::take(&mut buffer)),
                        Sink::File(_) => Downloaded::File(written),
                    });
                }
                Some(DownloadEvent::FileError { message }) => {
                    let i = current
                        .take()
                        .ok_or_else(|| LinkError::Unexpected("error".into()))?;
                    results[i] = Some(Downloaded::Missing(message));
                }
                Some(DownloadEvent::BatchEnd) => done = true,
                Some(_) => {}
            }
            self.inbox.drain(..consumed);
            if done {
                break;
            }
        }
        let status = self.recv_status().await?;
        if !status.is_ok() {
            tracing::debug!(code = status.code, "host reported errors for a download");
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Downloaded::Missing("not sent".into())))
            .collect())
    }

    /// Queues bytes and writes them out once enough are pending.
    async fn queue(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.outbox.extend_from_slice(bytes);
        if self.outbox.len() >= FLUSH_AT {
            self.conn.write_all(&self.outbox).await?;
            self.outbox.clear();
        }
        Ok(())
    }

    /// Sends file data of the open file, honouring the scripted disconnect.
    async fn send_data(
        &mut self,
        encoder: &mut UploadEncoder,
        data: &[u8],
    ) -> Result<(), LinkError> {
        let mut data = data;
        let mut cut = false;
        if let Some(limit) = self.disconnect_after {
            let left = limit.saturating_sub(self.data_sent);
            if (data.len() as u64) >= left {
                data = &data[..usize::try_from(left).unwrap_or(data.len())];
                cut = true;
            }
        }
        let mut frame = Vec::with_capacity(data.len() + 16);
        encoder.data(data, &mut frame)?;
        self.queue(&frame).await?;
        self.data_sent += data.len() as u64;
        if cut {
            self.flush().await?;
            let _ = self.conn.shutdown().await;
            return Err(LinkError::Scripted(self.data_sent));
        }
        Ok(())
    }

    /// Uploads files (`DLMessageUploadFiles` and the stream after it) and gives the host's status.
    pub(crate) async fn upload(
        &mut self,
        files: Vec<Upload>,
        progress: f64,
    ) -> Result<StatusResponse, LinkError> {
        let mut total = 0u64;
        for f in &files {
            total += match &f.source {
                Source::Content(c) => c.remaining(),
                Source::Encrypted(c, _) => backupd_proto::backup_cipher::padded_len(c.remaining()),
                Source::Bytes(b) => b.len() as u64,
                Source::File(p) => std::fs::metadata(p)?.len(),
            };
        }
        self.send(&DeviceMessage::UploadFiles {
            progress,
            total_bytes: Some(total),
        })
        .await?;
        let mut encoder = UploadEncoder::new();
        let mut buf = vec![0u8; devicelink::DATA_CHUNK_LEN];
        for f in files {
            let mut head = Vec::new();
            encoder.start_file(&f.device_path, &f.host_path, &mut head)?;
            self.queue(&head).await?;
            match f.source {
                Source::Content(mut c) => loop {
                    let n = c.fill(&mut buf);
                    if n == 0 {
                        break;
                    }
                    self.send_data(&mut encoder, &buf[..n]).await?;
                },
                Source::Encrypted(mut c, key) => {
                    use backupd_proto::backup_cipher::{Encryptor, Padding};
                    let mut enc = Encryptor::new(&key, Padding::Pkcs7);
                    let mut out = Vec::with_capacity(buf.len() + 16);
                    loop {
                        let n = c.fill(&mut buf);
                        out.clear();
                        if n == 0 {
                            enc.finish(&mut out).map_err(std::io::Error::other)?;
                            self.send_data(&mut encoder, &out).await?;
                            break;
                        }
                        enc.update(&buf[..n], &mut out);
                        if !out.is_empty() {
                            self.send_data(&mut encoder, &out).await?;
                        }
                    }
                }
                Source::Bytes(b) => {
                    for chunk in b.chunks(devicelink::DATA_CHUNK_LEN) {
                        self.send_data(&mut encoder, chunk).await?;
                    }
                }
                Source::File(p) => {
                    let mut file = std::fs::File::open(&p)?;
                    loop {
                        let n = std::io::Read::read(&mut file, &mut buf)?;
                        if n == 0 {
                            break;
                        }
                        self.send_data(&mut encoder, &buf[..n]).await?;
                    }
                }
            }
            let mut tail = Vec::new();
            encoder.finish_file(&mut tail)?;
            self.queue(&tail).await?;
        }
        let mut end = Vec::new();
        encoder.finish(&mut end)?;
        self.queue(&end).await?;
        self.flush().await?;
        self.recv_status().await
    }
}

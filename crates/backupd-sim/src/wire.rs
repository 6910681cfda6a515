//! Server-side byte streams and plist framing for the simulator.

use std::io;

use plist::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use backupd_proto::lockdown::{self, MAX_FRAME_LEN, PlistFormat};

/// A client connection to the simulated muxer: the same Unix-or-TCP stream the host side uses.
pub use backupd_mux::stream::MuxStream as SimStream;

/// A device-side connection in plaintext or TLS (the phone is the TLS server).
pub type DeviceConn = backupd_mux::stream::MaybeTls<tokio_rustls::server::TlsStream<SimStream>>;

/// Reads one length-prefixed plist; `Ok(None)` at a clean end of stream.
pub async fn read_plist<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Option<Value>> {
    let mut prefix = [0u8; 4];
    match stream.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = lockdown::frame_len(&prefix, MAX_FRAME_LEN)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    backupd_proto::plist_util::parse(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes one length-prefixed XML plist, as lockdownd does.
pub async fn write_plist<S: AsyncWrite + Unpin>(stream: &mut S, value: &Value) -> io::Result<()> {
    stream
        .write_all(&lockdown::encode_frame(value, PlistFormat::Xml))
        .await?;
    stream.flush().await
}

//! Server-side byte streams and plist framing for the simulator.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use plist::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use backupd_proto::lockdown::{self, MAX_FRAME_LEN, PlistFormat};

/// A client connection to the simulated muxer: the same Unix-or-TCP stream the host side uses.
pub use backupd_usb::stream::MuxStream as SimStream;

/// A device-side connection in plaintext or TLS (the phone is the TLS server).
#[derive(Debug)]
pub enum DeviceConn {
    /// Plaintext.
    Plain(SimStream),
    /// TLS.
    Tls(Box<tokio_rustls::server::TlsStream<SimStream>>),
}

impl AsyncRead for DeviceConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DeviceConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

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

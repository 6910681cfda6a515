//! A connection that exchanges length-prefixed plists: lockdownd and every lockdown service.

use plist::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use backupd_proto::lockdown::{self, MAX_FRAME_LEN, PlistFormat};

use crate::error::TransportError;
use crate::stream::DeviceStream;

/// How much is asked of the socket at a time.
const READ_CHUNK: usize = 16 << 10;

/// A plist connection to lockdownd or to a service.
///
/// Reading is cancel-safe: bytes read before a `select!` drops [`PlistConn::recv`] stay in the connection's
/// buffer for the next call, so a connection can be raced against others.
#[derive(Debug)]
pub struct PlistConn {
    stream: DeviceStream,
    max_frame: usize,
    buf: Vec<u8>,
}

impl PlistConn {
    /// Wraps a device stream.
    pub fn new(stream: DeviceStream) -> Self {
        Self {
            stream,
            max_frame: MAX_FRAME_LEN,
            buf: Vec::new(),
        }
    }

    /// Sends one plist.
    pub async fn send(&mut self, value: &Value, format: PlistFormat) -> Result<(), TransportError> {
        self.stream
            .write_all(&lockdown::encode_frame(value, format))
            .await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Receives one plist; a length over the cap is refused before its body is awaited.
    pub async fn recv(&mut self) -> Result<Value, TransportError> {
        loop {
            match lockdown::decode_frame(&self.buf, self.max_frame) {
                Ok(Some((value, used))) => {
                    self.buf.drain(..used);
                    return Ok(value);
                }
                Ok(None) => {
                    // Bounded: the frame's declared length passed the cap, so the buffer stays below it.
                    self.buf.reserve(READ_CHUNK);
                    if self.stream.read_buf(&mut self.buf).await? == 0 {
                        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
                    }
                }
                Err(e) => return Err(lockdown::LockdownError::Frame(e).into()),
            }
        }
    }

    /// Sends a request dictionary as XML and waits for the reply.
    pub async fn request(&mut self, dict: plist::Dictionary) -> Result<Value, TransportError> {
        self.send(&Value::Dictionary(dict), PlistFormat::Xml)
            .await?;
        self.recv().await
    }

    /// Gives back the stream and any bytes already read past the last frame, e.g. to start TLS on it or to
    /// speak another framing.
    pub fn into_parts(self) -> (DeviceStream, Vec<u8>) {
        (self.stream, self.buf)
    }

    /// Gives back the stream of a connection on which nothing is pending, such as a service just started;
    /// bytes read past the last frame, if any, are dropped with a warning (use [`PlistConn::into_parts`] to
    /// keep them).
    pub fn into_stream(self) -> DeviceStream {
        let (stream, rest) = self.into_parts();
        if !rest.is_empty() {
            tracing::warn!(
                bytes = rest.len(),
                "dropping bytes read past the last plist frame"
            );
        }
        stream
    }

    /// Closes the write side.
    pub async fn shutdown(&mut self) -> Result<(), TransportError> {
        self.stream.shutdown().await?;
        Ok(())
    }
}

//! A connection that exchanges length-prefixed plists: lockdownd and every lockdown service.

use plist::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use backupd_proto::lockdown::{self, MAX_FRAME_LEN, PlistFormat};

use crate::error::TransportError;
use crate::stream::DeviceStream;

/// A plist connection to lockdownd or to a service.
#[derive(Debug)]
pub struct PlistConn {
    stream: DeviceStream,
    max_frame: usize,
}

impl PlistConn {
    /// Wraps a device stream.
    pub fn new(stream: DeviceStream) -> Self {
        Self {
            stream,
            max_frame: MAX_FRAME_LEN,
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

    /// Receives one plist; a length over the cap is refused before reading the body.
    pub async fn recv(&mut self) -> Result<Value, TransportError> {
        let mut prefix = [0u8; 4];
        self.stream.read_exact(&mut prefix).await?;
        let len = lockdown::frame_len(&prefix, self.max_frame)
            .map_err(backupd_proto::lockdown::LockdownError::from)?
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).await?;
        backupd_proto::plist_util::parse(&body).map_err(|e| {
            TransportError::Lockdown(lockdown::LockdownError::Frame(lockdown::FrameError::Plist(
                e,
            )))
        })
    }

    /// Sends a request dictionary as XML and waits for the reply.
    pub async fn request(&mut self, dict: plist::Dictionary) -> Result<Value, TransportError> {
        self.send(&Value::Dictionary(dict), PlistFormat::Xml)
            .await?;
        self.recv().await
    }

    /// Gives back the stream, e.g. to start TLS on it.
    pub fn into_stream(self) -> DeviceStream {
        self.stream
    }

    /// Closes the write side.
    pub async fn shutdown(&mut self) -> Result<(), TransportError> {
        self.stream.shutdown().await?;
        Ok(())
    }
}

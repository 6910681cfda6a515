//! The transport's error, with a stable kind the daemon turns into findings.

use backupd_proto::lockdown::{DeviceError, FrameError, LockdownError};
use backupd_proto::pair::PairError;
use backupd_proto::services::ServiceError;
use backupd_proto::tls::TlsError;
use backupd_proto::usbmuxd::{ResultCode, UsbmuxError};

/// What kind of failure a [`TransportError`] is; stable, so callers match on it rather than on text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// usbmuxd is not running or its socket is not reachable.
    MuxerUnavailable,
    /// The device went away or closed the connection.
    Disconnected,
    /// The device or muxer sent something malformed or unexpected.
    Protocol,
    /// The device refused a request (see [`TransportError::device_error`]).
    Refused,
    /// The TLS handshake failed, e.g. because the device's key does not match the pair record.
    Tls,
    /// No pair record exists for the device.
    NotPaired,
    /// Timed out waiting for the device.
    Timeout,
    /// Anything else.
    Other,
}

/// The transport's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Connecting to usbmuxd failed.
    #[error("failed to reach usbmuxd at {address}")]
    Muxer {
        /// Where usbmuxd was looked for.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// I/O on an established connection failed.
    #[error("failed to talk to the device")]
    Io(#[from] std::io::Error),
    /// usbmuxd answered a request with a failure code.
    #[error("usbmuxd refused {request} with result {code:?}")]
    MuxerResult {
        /// The request.
        request: &'static str,
        /// The code.
        code: ResultCode,
    },
    /// A usbmuxd packet was malformed.
    #[error(transparent)]
    Usbmux(#[from] UsbmuxError),
    /// usbmuxd answered with a message that does not answer the request.
    #[error("usbmuxd answered {request} unexpectedly")]
    UnexpectedMuxReply {
        /// The request.
        request: &'static str,
    },
    /// A lockdown exchange failed.
    #[error(transparent)]
    Lockdown(#[from] LockdownError),
    /// A service exchange failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A pair record could not be read or made.
    #[error(transparent)]
    Pair(#[from] PairError),
    /// TLS could not be configured.
    #[error(transparent)]
    TlsConfig(#[from] TlsError),
    /// The TLS handshake failed.
    #[error("failed the TLS handshake with the device")]
    TlsHandshake(#[source] std::io::Error),
    /// No pair record exists for the device.
    #[error("no pair record for device {udid}")]
    NotPaired {
        /// The device.
        udid: String,
    },
    /// A wait exceeded its limit.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

impl TransportError {
    /// The stable kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Muxer { .. } => ErrorKind::MuxerUnavailable,
            Self::Io(e) if is_disconnect(e) => ErrorKind::Disconnected,
            Self::Io(_) => ErrorKind::Other,
            Self::MuxerResult { .. } => ErrorKind::Refused,
            Self::Usbmux(_) | Self::UnexpectedMuxReply { .. } | Self::Service(_) => {
                ErrorKind::Protocol
            }
            Self::Lockdown(LockdownError::Device { .. }) => ErrorKind::Refused,
            Self::Lockdown(LockdownError::Frame(FrameError::TooLong { .. })) => ErrorKind::Protocol,
            Self::Lockdown(_) => ErrorKind::Protocol,
            Self::Pair(_) => ErrorKind::Other,
            Self::TlsConfig(_) | Self::TlsHandshake(_) => ErrorKind::Tls,
            Self::NotPaired { .. } => ErrorKind::NotPaired,
            Self::Timeout(_) => ErrorKind::Timeout,
        }
    }

    /// The device's error string, when lockdownd refused.
    pub fn device_error(&self) -> Option<&DeviceError> {
        match self {
            Self::Lockdown(e) => e.device_error(),
            _ => None,
        }
    }
}

fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe | K::ConnectionAborted
    )
}

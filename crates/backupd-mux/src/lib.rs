//! The thin tokio layer under backupd: it moves `backupd-proto`'s bytes over usbmuxd sockets and TLS.
//!
//! Nothing here parses the protocols; [`backupd_proto`] does. This crate opens sockets, reads exactly the
//! bytes proto's bounded framing asks for, and runs rustls over the device connections. It spawns no tasks:
//! every operation is a future its caller drives.

pub mod conn;
pub mod error;
pub mod lockdown;
pub mod muxd;
pub mod services;
pub mod stream;
pub mod trust;

pub use conn::PlistConn;
pub use error::{ErrorKind, TransportError};
pub use lockdown::{Lockdown, PairOutcome};
pub use muxd::{Listener, MuxEvent, Muxd};
pub use trust::{Pairing, TrustProblem, Trusted};

//! AFC (Apple File Conduit), as far as a backup needs it: the sync lock file `/com.apple.itunes.lock_sync`.
//!
//! A packet is a 40-byte little-endian header (magic `CFA6LPAA`, entire length, header-and-data length,
//! packet number, operation) followed by header data and a payload. Both directions use the same shape, so
//! one codec serves the host and the simulated phone.

/// The magic that opens every packet.
pub const MAGIC: &[u8; 8] = b"CFA6LPAA";
/// Header size.
pub const HEADER_LEN: usize = 40;
/// The largest packet accepted: the lock choreography and small reads stay far below it.
pub const MAX_PACKET_LEN: usize = 1 << 20;

/// Operation numbers.
pub mod op {
    /// A status answer (`u64` error code).
    pub const STATUS: u64 = 0x01;
    /// Data answer.
    pub const DATA: u64 = 0x02;
    /// Read a directory (path, NUL-terminated).
    pub const READ_DIR: u64 = 0x03;
    /// Get file information.
    pub const GET_FILE_INFO: u64 = 0x0A;
    /// Open a file (mode `u64`, then path, NUL-terminated).
    pub const FILE_OPEN: u64 = 0x0D;
    /// The answer to an open (handle `u64`).
    pub const FILE_OPEN_RES: u64 = 0x0E;
    /// Read from a handle (handle `u64`, length `u64`).
    pub const FILE_READ: u64 = 0x0F;
    /// Close a handle (handle `u64`).
    pub const FILE_CLOSE: u64 = 0x14;
    /// Lock a handle (handle `u64`, operation `u64`).
    pub const FILE_LOCK: u64 = 0x1B;
}

/// Open modes.
pub mod mode {
    /// `r+`: read and write, the file must exist... or is created by the device for the lock file.
    pub const READ_WRITE: u64 = 2;
}

/// Lock operations (`flock` values with AFC's `4` for non-blocking).
pub mod lock {
    /// Exclusive, non-blocking.
    pub const EXCLUSIVE_NONBLOCKING: u64 = 2 | 4;
    /// Unlock.
    pub const UNLOCK: u64 = 8 | 4;
}

/// Status codes.
pub mod status {
    /// Success.
    pub const SUCCESS: u64 = 0;
    /// Unknown error.
    pub const UNKNOWN: u64 = 1;
    /// No such file or directory.
    pub const OBJECT_NOT_FOUND: u64 = 8;
    /// The lock is held by someone else: try again.
    pub const OP_WOULD_BLOCK: u64 = 19;
}

/// Errors of the AFC codec.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AfcError {
    /// The packet does not start with the magic.
    #[error("afc packet without magic")]
    BadMagic,
    /// The lengths in the header are inconsistent or exceed the cap.
    #[error("afc packet lengths {entire}/{this} invalid")]
    BadLength {
        /// Entire length.
        entire: u64,
        /// Header-and-data length.
        this: u64,
    },
    /// The payload is too short for the operation.
    #[error("afc operation {0:#x} with a short payload")]
    ShortPayload(u64),
}

/// One AFC packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The packet number; answers echo the request's.
    pub number: u64,
    /// The operation.
    pub operation: u64,
    /// Header data (fixed-size arguments, e.g. a handle).
    pub header_data: Vec<u8>,
    /// Payload after the header data (e.g. a path, file bytes).
    pub payload: Vec<u8>,
}

impl Packet {
    /// A packet with header data only.
    pub fn new(number: u64, operation: u64, header_data: Vec<u8>) -> Self {
        Self {
            number,
            operation,
            header_data,
            payload: Vec::new(),
        }
    }

    /// Serialises the packet.
    pub fn encode(&self) -> Vec<u8> {
        let this = (HEADER_LEN + self.header_data.len()) as u64;
        let entire = this + self.payload.len() as u64;
        let mut out = Vec::with_capacity(usize::try_from(entire).unwrap_or(0));
        out.extend_from_slice(MAGIC);
        for v in [entire, this, self.number, self.operation] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.header_data);
        out.extend_from_slice(&self.payload);
        out
    }

    /// Reads one packet from the front of `buf`: `Ok(None)` until complete, then the packet and its length.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, AfcError> {
        let Some(head) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        if &head[..8] != MAGIC {
            return Err(AfcError::BadMagic);
        }
        let field = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[8 + i * 8..16 + i * 8]);
            u64::from_le_bytes(b)
        };
        let (entire, this, number, operation) = (field(0), field(1), field(2), field(3));
        let bad = || AfcError::BadLength { entire, this };
        let entire_n = usize::try_from(entire).map_err(|_| bad())?;
        let this_n = usize::try_from(this).map_err(|_| bad())?;
        if this_n < HEADER_LEN || this_n > entire_n || entire_n > MAX_PACKET_LEN {
            return Err(bad());
        }
        let Some(body) = buf.get(HEADER_LEN..entire_n) else {
            return Ok(None);
        };
        let split = this_n - HEADER_LEN;
        Ok(Some((
            Self {
                number,
                operation,
                header_data: body[..split].to_vec(),
                payload: body[split..].to_vec(),
            },
            entire_n,
        )))
    }

    /// The `i`th little-endian `u64` of the header data, falling back to the payload (devices differ in which
    /// part they put fixed arguments).
    pub fn arg(&self, i: usize) -> Result<u64, AfcError> {
        let all: Vec<u8> = if self.header_data.len() >= (i + 1) * 8 {
            self.header_data.clone()
        } else {
            [self.header_data.as_slice(), self.payload.as_slice()].concat()
        };
        let b = all
            .get(i * 8..(i + 1) * 8)
            .ok_or(AfcError::ShortPayload(self.operation))?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

/// `FILE_OPEN` of `path` with `mode`.
pub fn open(number: u64, path: &str, mode: u64) -> Packet {
    let mut header = mode.to_le_bytes().to_vec();
    header.extend_from_slice(path.as_bytes());
    header.push(0);
    Packet::new(number, op::FILE_OPEN, header)
}

/// `FILE_LOCK` of `handle` with `operation`.
pub fn file_lock(number: u64, handle: u64, operation: u64) -> Packet {
    let mut header = handle.to_le_bytes().to_vec();
    header.extend_from_slice(&operation.to_le_bytes());
    Packet::new(number, op::FILE_LOCK, header)
}

/// `FILE_CLOSE` of `handle`.
pub fn close(number: u64, handle: u64) -> Packet {
    Packet::new(number, op::FILE_CLOSE, handle.to_le_bytes().to_vec())
}

/// A `STATUS` answer.
pub fn status_reply(number: u64, code: u64) -> Packet {
    Packet::new(number, op::STATUS, code.to_le_bytes().to_vec())
}

/// The path in an open request, after the mode.
pub fn open_path(p: &Packet) -> Result<(u64, String), AfcError> {
    let all = [p.header_data.as_slice(), p.payload.as_slice()].concat();
    let mode = all.get(..8).ok_or(AfcError::ShortPayload(p.operation))?;
    let mut m = [0u8; 8];
    m.copy_from_slice(mode);
    let rest = &all[8..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    Ok((
        u64::from_le_bytes(m),
        String::from_utf8_lossy(&rest[..end]).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_round_trips_and_prefixes_wait() {
        let p = open(3, "/com.apple.itunes.lock_sync", mode::READ_WRITE);
        let bytes = p.encode();
        for n in 0..bytes.len() {
            assert_eq!(Packet::decode(&bytes[..n]), Ok(None));
        }
        let (q, used) = Packet::decode(&bytes).expect("decode").expect("whole");
        assert_eq!(used, bytes.len());
        assert_eq!(open_path(&q), Ok((2, "/com.apple.itunes.lock_sync".into())));
    }

    #[test]
    fn hostile_lengths_are_refused_before_allocating() {
        let mut bytes = status_reply(1, 0).encode();
        bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Packet::decode(&bytes).is_err());
        let mut bytes = status_reply(1, 0).encode();
        bytes[16..24].copy_from_slice(&8u64.to_le_bytes());
        assert!(Packet::decode(&bytes).is_err());
    }
}

//! The phone's AFC service (`com.apple.afc`): a small in-memory media folder with the files hosts touch
//! around a backup — the sync lock `/com.apple.itunes.lock_sync`, `/iTunes_Control/iTunes/`, `/Books/`.
//!
//! Packets use the protocol crate's codec ([`backupd_proto::afc`]). Supported: read directory, file info,
//! device info, make directory, remove, rename, open, read, write, seek, tell, truncate, close and lock;
//! anything else answers `OP_NOT_SUPPORTED`. The lock is the phone's, shared by every AFC connection.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use backupd_proto::afc::{self, Packet};

use crate::phone::Phone;
use crate::wire::DeviceConn;

/// AFC operation codes beyond the ones the protocol crate names.
mod op {
    pub(super) const REMOVE_PATH: u64 = 0x08;
    pub(super) const MAKE_DIR: u64 = 0x09;
    pub(super) const GET_DEVINFO: u64 = 0x0B;
    pub(super) const FILE_WRITE: u64 = 0x10;
    pub(super) const FILE_SEEK: u64 = 0x11;
    pub(super) const FILE_TELL: u64 = 0x12;
    pub(super) const FILE_TELL_RES: u64 = 0x13;
    pub(super) const FILE_SET_SIZE: u64 = 0x15;
    pub(super) const RENAME_PATH: u64 = 0x18;
}

/// AFC status codes.
mod status {
    pub(super) const SUCCESS: u64 = 0;
    pub(super) const INVALID_ARG: u64 = 7;
    pub(super) const OBJECT_NOT_FOUND: u64 = 8;
    pub(super) const OBJECT_IS_DIR: u64 = 9;
    pub(super) const OP_NOT_SUPPORTED: u64 = 15;
    pub(super) const OBJECT_EXISTS: u64 = 16;
    pub(super) const NO_SPACE_LEFT: u64 = 18;
    pub(super) const OP_WOULD_BLOCK: u64 = 19;
    pub(super) const DIR_NOT_EMPTY: u64 = 33;
}

/// The most file data the in-memory folder holds.
const MAX_STORED: usize = 16 << 20;
/// The largest read answered at once.
const MAX_READ: u64 = 4 << 20;

/// A node of the in-memory folder.
#[derive(Debug, Clone)]
enum Node {
    Dir,
    File(Vec<u8>),
}

/// The phone's media folder as AFC shows it, and who holds the sync lock.
#[derive(Debug)]
pub(crate) struct AfcState {
    nodes: BTreeMap<String, Node>,
    lock_owner: Option<u64>,
    /// Another client holds the lock forever (profile fault `lock_sync_held`).
    pub(crate) lock_held_elsewhere: bool,
}

impl AfcState {
    pub(crate) fn new(lock_held_elsewhere: bool) -> Self {
        let mut nodes = BTreeMap::new();
        for dir in [
            "/",
            "/Books",
            "/DCIM",
            "/Downloads",
            "/iTunes_Control",
            "/iTunes_Control/iTunes",
            "/Photos",
            "/PublicStaging",
        ] {
            nodes.insert(dir.to_owned(), Node::Dir);
        }
        Self {
            nodes,
            lock_owner: None,
            lock_held_elsewhere,
        }
    }

    fn stored(&self) -> usize {
        self.nodes
            .values()
            .map(|n| match n {
                Node::File(b) => b.len(),
                Node::Dir => 0,
            })
            .sum()
    }
}

/// Normalises an AFC path: absolute, no `.`/`..`/empty components. `None` for a path leaving the root.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// An open file of one connection.
#[derive(Debug)]
struct Handle {
    path: String,
    position: u64,
    writable: bool,
}

/// Identifies connections for lock ownership.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// The bytes of a request: header data and payload together (clients split them differently).
fn body(p: &Packet) -> Vec<u8> {
    [p.header_data.as_slice(), p.payload.as_slice()].concat()
}

fn cstring(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn u64_at(bytes: &[u8], i: usize) -> Option<u64> {
    let b = bytes.get(i * 8..i * 8 + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

fn data_reply(number: u64, data: Vec<u8>) -> Packet {
    Packet {
        number,
        operation: afc::op::DATA,
        header_data: Vec::new(),
        payload: data,
    }
}

fn key_values(pairs: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// One connection's view: its handles and its identity for the lock.
struct Session<'a> {
    phone: &'a Phone,
    id: u64,
    handles: BTreeMap<u64, Handle>,
    next_handle: u64,
}

impl Session<'_> {
    fn handle(&mut self, p: &Packet) -> Packet {
        let n = p.number;
        let b = body(p);
        let st = |code| afc::status_reply(n, code);
        let phone = self.phone;
        let mut state = phone.backup().afc();
        match p.operation {
            afc::op::READ_DIR => {
                let Some(path) = normalize(&cstring(&b)) else {
                    return st(status::OBJECT_NOT_FOUND);
                };
                match state.nodes.get(&path) {
                    Some(Node::Dir) => {}
                    Some(Node::File(_)) => return st(status::INVALID_ARG),
                    None => return st(status::OBJECT_NOT_FOUND),
                }
                let mut out = b".\0..\0".to_vec();
                let prefix = if path == "/" {
                    "/".to_owned()
                } else {
                    format!("{path}/")
                };
                for k in state.nodes.keys() {
                    if let Some(name) = k.strip_prefix(&prefix)
                        && !name.is_empty()
                        && !name.contains('/')
                    {
                        out.extend_from_slice(name.as_bytes());
                        out.push(0);
                    }
                }
                data_reply(n, out)
            }
            afc::op::GET_FILE_INFO => {
                let Some(path) = normalize(&cstring(&b)) else {
                    return st(status::OBJECT_NOT_FOUND);
                };
                let (size, kind, links) = match state.nodes.get(&path) {
                    Some(Node::Dir) => {
                        let prefix = format!("{}/", path.trim_end_matches('/'));
                        let children = state
                            .nodes
                            .keys()
                            .filter(|k| {
                                k.strip_prefix(&prefix)
                                    .is_some_and(|r| !r.is_empty() && !r.contains('/'))
                            })
                            .count();
                        (64 * (children as u64 + 2), "S_IFDIR", 2 + children as u64)
                    }
                    Some(Node::File(d)) => (d.len() as u64, "S_IFREG", 1),
                    None => return st(status::OBJECT_NOT_FOUND),
                };
                let ns = "1767225600000000000".to_owned();
                data_reply(
                    n,
                    key_values(&[
                        ("st_size", size.to_string()),
                        ("st_blocks", size.div_ceil(512).to_string()),
                        ("st_nlink", links.to_string()),
                        ("st_ifmt", kind.to_owned()),
                        ("st_mtime", ns.clone()),
                        ("st_birthtime", ns),
                    ]),
                )
            }
            op::GET_DEVINFO => {
                let model = phone.profile().identity.product_type.clone();
                data_reply(
                    n,
                    key_values(&[
                        ("Model", model),
                        ("FSTotalBytes", "128000000000".into()),
                        ("FSFreeBytes", "64000000000".into()),
                        ("FSBlockSize", "4096".into()),
                    ]),
                )
            }
            op::MAKE_DIR => {
                let Some(path) = normalize(&cstring(&b)) else {
                    return st(status::INVALID_ARG);
                };
                let mut at = String::new();
                for c in path.split('/').filter(|c| !c.is_empty()) {
                    at.push('/');
                    at.push_str(c);
                    match state.nodes.get(&at) {
                        Some(Node::File(_)) => return st(status::OBJECT_EXISTS),
                        Some(Node::Dir) => {}
                        None => {
                            state.nodes.insert(at.clone(), Node::Dir);
                        }
                    }
                }
                st(status::SUCCESS)
            }
            op::REMOVE_PATH => {
                let Some(path) = normalize(&cstring(&b)) else {
                    return st(status::INVALID_ARG);
                };
                let prefix = format!("{path}/");
                if state.nodes.keys().any(|k| k.starts_with(&prefix)) {
                    return st(status::DIR_NOT_EMPTY);
                }
                if path == "/" || state.nodes.remove(&path).is_none() {
                    return st(status::OBJECT_NOT_FOUND);
                }
                st(status::SUCCESS)
            }
            op::RENAME_PATH => {
                let from = cstring(&b);
                let rest = b.get(from.len() + 1..).unwrap_or_default();
                let (Some(from), Some(to)) = (normalize(&from), normalize(&cstring(rest))) else {
                    return st(status::INVALID_ARG);
                };
                if !matches!(state.nodes.get(parent(&to)), Some(Node::Dir)) {
                    return st(status::OBJECT_NOT_FOUND);
                }
                match state.nodes.get(&from) {
                    Some(Node::File(_)) => {
                        if let Some(node) = state.nodes.remove(&from) {
                            state.nodes.insert(to, node);
                        }
                        st(status::SUCCESS)
                    }
                    Some(Node::Dir) => st(status::OP_NOT_SUPPORTED),
                    None => st(status::OBJECT_NOT_FOUND),
                }
            }
            afc::op::FILE_OPEN => {
                let Some(mode) = u64_at(&b, 0) else {
                    return st(status::INVALID_ARG);
                };
                let Some(path) = normalize(&cstring(b.get(8..).unwrap_or_default())) else {
                    return st(status::OBJECT_NOT_FOUND);
                };
                let (create, truncate, writable) = match mode {
                    1 => (false, false, false),
                    2 => (true, false, true),
                    3 | 4 => (true, true, true),
                    5 | 6 => (true, false, true),
                    _ => return st(status::INVALID_ARG),
                };
                match state.nodes.get_mut(&path) {
                    Some(Node::Dir) => return st(status::OBJECT_IS_DIR),
                    Some(Node::File(d)) => {
                        if truncate {
                            d.clear();
                        }
                    }
                    None if create => {
                        if !matches!(state.nodes.get(parent(&path)), Some(Node::Dir)) {
                            return st(status::OBJECT_NOT_FOUND);
                        }
                        state.nodes.insert(path.clone(), Node::File(Vec::new()));
                    }
                    None => return st(status::OBJECT_NOT_FOUND),
                }
                let position = match (mode, state.nodes.get(&path)) {
                    (5 | 6, Some(Node::File(d))) => d.len() as u64,
                    _ => 0,
                };
                let h = self.next_handle;
                self.next_handle += 1;
                self.handles.insert(
                    h,
                    Handle {
                        path,
                        position,
                        writable,
                    },
                );
                Packet::new(n, afc::op::FILE_OPEN_RES, h.to_le_bytes().to_vec())
            }
            afc::op::FILE_READ => {
                let (Some(h), Some(len)) = (u64_at(&b, 0), u64_at(&b, 1)) else {
                    return st(status::INVALID_ARG);
                };
                let Some(handle) = self.handles.get_mut(&h) else {
                    return st(status::INVALID_ARG);
                };
                let Some(Node::File(d)) = state.nodes.get(&handle.path) else {
                    return st(status::OBJECT_NOT_FOUND);
                };
                let start = usize::try_from(handle.position)
                    .unwrap_or(usize::MAX)
                    .min(d.len());
                let take = usize::try_from(len.min(MAX_READ)).unwrap_or(0);
                let end = start.saturating_add(take).min(d.len());
                handle.position = end as u64;
                data_reply(n, d[start..end].to_vec())
            }
            op::FILE_WRITE => {
                let Some(h) = u64_at(&b, 0) else {
                    return st(status::INVALID_ARG);
                };
                let data = &b[8..];
                let stored = state.stored();
                let Some(handle) = self.handles.get_mut(&h) else {
                    return st(status::INVALID_ARG);
                };
                if !handle.writable {
                    return st(status::INVALID_ARG);
                }
                let Some(Node::File(d)) = state.nodes.get_mut(&handle.path) else {
                    return st(status::OBJECT_NOT_FOUND);
                };
                let start = usize::try_from(handle.position)
                    .unwrap_or(usize::MAX)
                    .min(MAX_STORED);
                // A write past the end fills the gap with zeros: that counts against the cap too.
                let growth = (start + data.len()).saturating_sub(d.len());
                if stored + growth > MAX_STORED {
                    return st(status::NO_SPACE_LEFT);
                }
                if d.len() < start + data.len() {
                    d.resize(start + data.len(), 0);
                }
                d[start..start + data.len()].copy_from_slice(data);
                handle.position = (start + data.len()) as u64;
                st(status::SUCCESS)
            }
            op::FILE_SEEK => {
                let (Some(h), Some(whence), Some(offset)) =
                    (u64_at(&b, 0), u64_at(&b, 1), u64_at(&b, 2))
                else {
                    return st(status::INVALID_ARG);
                };
                let Some(handle) = self.handles.get_mut(&h) else {
                    return st(status::INVALID_ARG);
                };
                let len = match state.nodes.get(&handle.path) {
                    Some(Node::File(d)) => d.len() as i64,
                    _ => 0,
                };
                // The offset is a signed 64-bit number on the wire.
                let offset = offset as i64;
                let base = match whence {
                    0 => 0,
                    1 => handle.position as i64,
                    2 => len,
                    _ => return st(status::INVALID_ARG),
                };
                let Some(to) = base.checked_add(offset).filter(|t| *t >= 0) else {
                    return st(status::INVALID_ARG);
                };
                handle.position = to as u64;
                st(status::SUCCESS)
            }
            op::FILE_TELL => {
                let Some(handle) = u64_at(&b, 0).and_then(|h| self.handles.get(&h)) else {
                    return st(status::INVALID_ARG);
                };
                Packet::new(n, op::FILE_TELL_RES, handle.position.to_le_bytes().to_vec())
            }
            op::FILE_SET_SIZE => {
                let (Some(h), Some(size)) = (u64_at(&b, 0), u64_at(&b, 1)) else {
                    return st(status::INVALID_ARG);
                };
                let Some(handle) = self.handles.get(&h) else {
                    return st(status::INVALID_ARG);
                };
                let Ok(size) = usize::try_from(size) else {
                    return st(status::NO_SPACE_LEFT);
                };
                let stored = state.stored();
                let Some(Node::File(d)) = state.nodes.get_mut(&handle.path) else {
                    return st(status::OBJECT_NOT_FOUND);
                };
                if size > d.len() && stored + (size - d.len()) > MAX_STORED {
                    return st(status::NO_SPACE_LEFT);
                }
                d.resize(size, 0);
                st(status::SUCCESS)
            }
            afc::op::FILE_CLOSE => {
                let Some(h) = u64_at(&b, 0) else {
                    return st(status::INVALID_ARG);
                };
                if self.handles.remove(&h).is_none() {
                    return st(status::INVALID_ARG);
                }
                if state.lock_owner == Some(self.owner(h)) {
                    state.lock_owner = None;
                }
                st(status::SUCCESS)
            }
            afc::op::FILE_LOCK => {
                let (Some(h), Some(operation)) = (u64_at(&b, 0), u64_at(&b, 1)) else {
                    return st(status::INVALID_ARG);
                };
                if !self.handles.contains_key(&h) {
                    return st(status::INVALID_ARG);
                }
                let me = self.owner(h);
                if operation & 8 != 0 {
                    if state.lock_owner == Some(me) {
                        state.lock_owner = None;
                    }
                    return st(status::SUCCESS);
                }
                if state.lock_held_elsewhere {
                    return st(status::OP_WOULD_BLOCK);
                }
                match state.lock_owner {
                    Some(o) if o != me => st(status::OP_WOULD_BLOCK),
                    _ => {
                        state.lock_owner = Some(me);
                        st(status::SUCCESS)
                    }
                }
            }
            _ => st(status::OP_NOT_SUPPORTED),
        }
    }

    /// The lock owner id of a handle of this connection.
    fn owner(&self, handle: u64) -> u64 {
        (self.id << 32) | (handle & 0xffff_ffff)
    }
}

/// Serves one AFC connection until the host leaves.
pub(crate) async fn serve(phone: &Phone, mut conn: DeviceConn) -> std::io::Result<()> {
    let mut session = Session {
        phone,
        id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
        handles: BTreeMap::new(),
        next_handle: 1,
    };
    let mut inbox: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let result = loop {
        match Packet::decode(&inbox) {
            Ok(Some((packet, used))) => {
                inbox.drain(..used);
                let reply = session.handle(&packet);
                if let Err(e) = conn.write_all(&reply.encode()).await {
                    break Err(e);
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "bad AFC packet");
                break Ok(());
            }
        }
        match conn.read(&mut chunk).await {
            Ok(0) => break Ok(()),
            Ok(n) => inbox.extend_from_slice(&chunk[..n]),
            Err(e) => break Err(e),
        }
    };
    // A connection that goes away releases the lock it held, as the kernel would for its file.
    let mut state = phone.backup().afc();
    if let Some(owner) = state.lock_owner
        && owner >> 32 == session.id
    {
        state.lock_owner = None;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(phone: &Phone) -> Session<'_> {
        Session {
            phone,
            id: 99,
            handles: BTreeMap::new(),
            next_handle: 1,
        }
    }

    fn request(operation: u64, args: &[u64], tail: &[u8]) -> Packet {
        let mut header: Vec<u8> = args.iter().flat_map(|a| a.to_le_bytes()).collect();
        header.extend_from_slice(tail);
        Packet::new(7, operation, header)
    }

    fn status_of(p: &Packet) -> u64 {
        assert_eq!(p.operation, afc::op::STATUS, "{p:?}");
        p.arg(0).expect("status")
    }

    #[test]
    fn the_media_folder_answers_what_backup_hosts_ask() {
        let phone =
            Phone::new(crate::profile::builtin("healthy").expect("profile"), None).expect("phone");
        let mut s = session(&phone);
        let listing = s.handle(&request(
            afc::op::READ_DIR,
            &[],
            b"/iTunes_Control/iTunes\0",
        ));
        assert_eq!(listing.operation, afc::op::DATA);
        assert_eq!(listing.payload, b".\0..\0");
        let info = s.handle(&request(
            afc::op::GET_FILE_INFO,
            &[],
            b"/iTunes_Control/iTunes/iTunesPrefs\0",
        ));
        assert_eq!(status_of(&info), status::OBJECT_NOT_FOUND);

        let opened = s.handle(&request(afc::op::FILE_OPEN, &[3], b"/Books/x.plist\0"));
        assert_eq!(opened.operation, afc::op::FILE_OPEN_RES);
        let h = opened.arg(0).expect("handle");
        let wrote = s.handle(&request(op::FILE_WRITE, &[h], b"hello"));
        assert_eq!(status_of(&wrote), status::SUCCESS);
        // A write far past the end would make a 16 MiB gap: refused, nothing allocated.
        let seek = s.handle(&request(op::FILE_SEEK, &[h, 0, MAX_STORED as u64], b""));
        assert_eq!(status_of(&seek), status::SUCCESS);
        let far = s.handle(&request(op::FILE_WRITE, &[h], b"x"));
        assert_eq!(status_of(&far), status::NO_SPACE_LEFT);
        let info = s.handle(&request(afc::op::GET_FILE_INFO, &[], b"/Books/x.plist\0"));
        let text = String::from_utf8_lossy(&info.payload).into_owned();
        assert_eq!(
            text.split('\0').take(2).collect::<Vec<_>>(),
            ["st_size", "5"]
        );
        let closed = s.handle(&request(afc::op::FILE_CLOSE, &[h], b""));
        assert_eq!(status_of(&closed), status::SUCCESS);
        let unknown = s.handle(&request(0x30, &[], b""));
        assert_eq!(status_of(&unknown), status::OP_NOT_SUPPORTED);
    }

    #[test]
    fn paths_normalise_inside_the_root() {
        assert_eq!(
            normalize("/iTunes_Control//iTunes/"),
            Some("/iTunes_Control/iTunes".into())
        );
        assert_eq!(normalize("a/./b"), Some("/a/b".into()));
        assert_eq!(normalize("/.."), None);
        assert_eq!(parent("/com.apple.itunes.lock_sync"), "/");
        assert_eq!(parent("/a/b"), "/a");
    }
}

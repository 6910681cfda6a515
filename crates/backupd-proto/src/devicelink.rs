//! DeviceLink: the message layer under mobilebackup2, and the raw file framing between its plists.
//!
//! DeviceLink messages are plist arrays `["DLMessage…", arguments…]` in the lockdown framing (4-byte
//! big-endian length, then the plist); hosts send binary plists. The device drives a backup: it sends
//! requests such as [`DeviceMessage::UploadFiles`] and the host answers each with a
//! [`StatusResponse`]. Two of those requests are followed by raw bytes on the same stream, outside any
//! plist:
//!
//! - **device → host** after `DLMessageUploadFiles`: per file a u32 BE length and the device path, a u32 BE
//!   length and the host path, then blocks `[u32 BE (n + 1)][code][n bytes]` (code [`CODE_FILE_DATA`]
//!   repeated, then [`CODE_SUCCESS`] or [`CODE_ERROR_REMOTE`] with a message); a u32 zero where the next
//!   device path length would be ends the batch. [`UploadDecoder`] reads it (host), [`UploadEncoder`] writes
//!   it (device).
//! - **host → device** after `DLMessageDownloadFiles`: per path a u32 BE length and the path, then data
//!   blocks and a success block, or one [`CODE_ERROR_LOCAL`] block with the error text; a u32 zero after the
//!   last path. [`DownloadEncoder`] writes it (host), [`DownloadDecoder`] reads it (device).
//!
//! Everything here is sans-IO: bytes in, events and bytes out. Every length read from the wire is checked
//! against a cap before anything is allocated for it.

use plist::{Dictionary, Value};

use crate::lockdown::{self, FrameError, PlistFormat};

/// The DeviceLink protocol major version mobilebackup2 announces (iOS 4 to current).
pub const VERSION_MAJOR: u64 = 400;
/// The DeviceLink protocol minor version mobilebackup2 announces.
pub const VERSION_MINOR: u64 = 0;
/// The placeholder DeviceLink puts where a string or value argument is absent.
pub const EMPTY_PARAMETER: &str = "___EmptyParameterString___";
/// The largest DeviceLink plist accepted. A `DLMessageMoveItems` naming every file of a large backup is the
/// biggest message seen; some 100 bytes a file leaves room for several hundred thousand files.
pub const MAX_MESSAGE_LEN: usize = 64 << 20;
/// The longest file name accepted in the raw file framing; libimobiledevice treats a longer one as the end
/// of the batch, this crate as an error.
pub const MAX_NAME_LEN: usize = 4096;
/// The largest block accepted in the raw file framing, counting its code byte: 4 MiB of payload and the code.
/// Real peers send 32 KiB frames.
pub const MAX_BLOCK_LEN: usize = (4 << 20) + 1;
/// The longest error text accepted in an error block.
pub const MAX_ERROR_TEXT_LEN: usize = 64 << 10;
/// The payload size of a data frame, as Apple's DeviceLink, libimobiledevice and pymobiledevice3 send them.
pub const DATA_CHUNK_LEN: usize = 32 << 10;

/// Block code: file data follows.
pub const CODE_FILE_DATA: u8 = 0x0C;
/// Block code: the file is complete.
pub const CODE_SUCCESS: u8 = 0x00;
/// Block code: the host could not read the file; the error text follows.
pub const CODE_ERROR_LOCAL: u8 = 0x06;
/// Block code: the device could not read the file; the error text follows.
pub const CODE_ERROR_REMOTE: u8 = 0x0B;

/// Status code of a successful operation.
pub const STATUS_OK: i64 = 0;
/// Status code of a generic failure, e.g. an operation the host does not support.
pub const STATUS_FAILED: i64 = -1;
/// Status code of a bulk operation in which some files failed; the value names them.
pub const STATUS_MULTI_STATUS: i64 = -13;
/// Device error code for ENOENT.
pub const ERROR_NOT_FOUND: i64 = -6;
/// Device error code for EEXIST.
pub const ERROR_EXISTS: i64 = -7;
/// Device error code for ENOTDIR.
pub const ERROR_NOT_A_DIRECTORY: i64 = -8;
/// Device error code for EISDIR.
pub const ERROR_IS_A_DIRECTORY: i64 = -9;
/// Device error code for ELOOP.
pub const ERROR_LOOP: i64 = -10;
/// Device error code for EIO.
pub const ERROR_IO: i64 = -11;
/// Device error code for ENOSPC.
pub const ERROR_NO_SPACE: i64 = -15;

/// `DLFileType` of a directory in a `DLContentsOfDirectory` answer.
pub const FILE_TYPE_DIRECTORY: &str = "DLFileTypeDirectory";
/// `DLFileType` of a regular file.
pub const FILE_TYPE_REGULAR: &str = "DLFileTypeRegular";
/// `DLFileType` of anything else.
pub const FILE_TYPE_UNKNOWN: &str = "DLFileTypeUnknown";

const NAME_VERSION_EXCHANGE: &str = "DLMessageVersionExchange";
const NAME_VERSIONS_OK: &str = "DLVersionsOk";
const NAME_DEVICE_READY: &str = "DLMessageDeviceReady";
const NAME_PROCESS_MESSAGE: &str = "DLMessageProcessMessage";
const NAME_STATUS_RESPONSE: &str = "DLMessageStatusResponse";
const NAME_DISCONNECT: &str = "DLMessageDisconnect";
const NAME_PING: &str = "DLMessagePing";
const NAME_DOWNLOAD_FILES: &str = "DLMessageDownloadFiles";
const NAME_UPLOAD_FILES: &str = "DLMessageUploadFiles";
const NAME_GET_FREE_DISK_SPACE: &str = "DLMessageGetFreeDiskSpace";
const NAME_PURGE_DISK_SPACE: &str = "DLMessagePurgeDiskSpace";
const NAME_CREATE_DIRECTORY: &str = "DLMessageCreateDirectory";
const NAME_MOVE_FILES: &str = "DLMessageMoveFiles";
const NAME_MOVE_ITEMS: &str = "DLMessageMoveItems";
const NAME_REMOVE_FILES: &str = "DLMessageRemoveFiles";
const NAME_REMOVE_ITEMS: &str = "DLMessageRemoveItems";
const NAME_COPY_ITEM: &str = "DLMessageCopyItem";
const NAME_CONTENTS_OF_DIRECTORY: &str = "DLContentsOfDirectory";

/// The device error code for a host I/O error, as libimobiledevice and pymobiledevice3 map errno values.
pub fn device_error_code(error: &std::io::Error) -> i64 {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::NotFound => ERROR_NOT_FOUND,
        ErrorKind::AlreadyExists => ERROR_EXISTS,
        ErrorKind::NotADirectory => ERROR_NOT_A_DIRECTORY,
        ErrorKind::IsADirectory => ERROR_IS_A_DIRECTORY,
        ErrorKind::StorageFull => ERROR_NO_SPACE,
        // EIO is 5 on every platform backupd runs on; it has no stable ErrorKind.
        _ if error.raw_os_error() == Some(5) => ERROR_IO,
        _ => STATUS_FAILED,
    }
}

/// Errors reading DeviceLink messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DlError {
    /// The length-prefixed plist framing failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The plist is not an array starting with a message name.
    #[error("devicelink message is not an array starting with a name")]
    NotAMessage,
    /// A known message lacks an argument or has one of the wrong type.
    #[error("malformed {message}: {what}")]
    Malformed {
        /// The message name.
        message: &'static str,
        /// What was wrong.
        what: &'static str,
    },
}

fn malformed(message: &'static str, what: &'static str) -> DlError {
    DlError::Malformed { message, what }
}

/// Encodes a DeviceLink plist as one frame, as a binary plist.
pub fn encode_frame(value: &Value) -> Vec<u8> {
    lockdown::encode_frame(value, PlistFormat::Binary)
}

/// Reads one DeviceLink frame from the front of `buf`: `Ok(None)` until it is complete, then the plist and the
/// number of bytes used.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Value, usize)>, DlError> {
    Ok(lockdown::decode_frame(buf, MAX_MESSAGE_LEN)?)
}

/// The name and arguments of a DeviceLink array.
fn split_message(value: &Value) -> Result<(&str, &[Value]), DlError> {
    let array = value.as_array().ok_or(DlError::NotAMessage)?;
    let (first, rest) = array.split_first().ok_or(DlError::NotAMessage)?;
    let name = first.as_string().ok_or(DlError::NotAMessage)?;
    Ok((name, rest))
}

/// Reads a plist integer as a signed value, taking unsigned values above `i64::MAX` as 64-bit two's
/// complement (how DeviceLink sends negative status codes).
pub fn integer_as_i64(value: &Value) -> Option<i64> {
    let i = value.as_signed_integer();
    // A u64 above i64::MAX is a negative number sent as its two's complement.
    i.or_else(|| value.as_unsigned_integer().map(|u| u as i64))
}

/// A signed code as DeviceLink sends it: a plist unsigned integer, negative values in two's complement.
pub fn code_to_value(code: i64) -> Value {
    // Reinterpreting the bits is the wire format.
    Value::Integer((code as u64).into())
}

fn real_or_integer(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Real(r) => Some(*r),
        // Progress is a real; an integer is read as the same number.
        v => integer_as_i64(v).map(|i| i as f64),
    }
}

fn optional_string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if s == EMPTY_PARAMETER => None,
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn string_arg(
    args: &[Value],
    index: usize,
    message: &'static str,
    what: &'static str,
) -> Result<String, DlError> {
    args.get(index)
        .and_then(Value::as_string)
        .map(str::to_owned)
        .ok_or_else(|| malformed(message, what))
}

fn string_list(
    value: Option<&Value>,
    message: &'static str,
    what: &'static str,
) -> Result<Vec<String>, DlError> {
    let array = value
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(message, what))?;
    array
        .iter()
        .map(|v| {
            v.as_string()
                .map(str::to_owned)
                .ok_or_else(|| malformed(message, what))
        })
        .collect()
}

fn strings_value(list: &[String]) -> Value {
    Value::Array(list.iter().cloned().map(Value::String).collect())
}

fn progress_value(progress: f64) -> Value {
    Value::Real(progress)
}

/// The paths and progress of a `DLMessageMoveFiles` or `DLMessageMoveItems`.
#[derive(Debug, Clone, PartialEq)]
pub struct Moves {
    /// Source and destination of each rename, relative to the backup root, in the device's order.
    pub moves: Vec<(String, String)>,
    /// Overall progress in percent after this step.
    pub progress: f64,
}

/// The paths and progress of a `DLMessageRemoveFiles` or `DLMessageRemoveItems`.
#[derive(Debug, Clone, PartialEq)]
pub struct Removals {
    /// Paths to remove (recursively when a directory), relative to the backup root.
    pub paths: Vec<String>,
    /// Overall progress in percent after this step.
    pub progress: f64,
}

/// A DeviceLink message the device sends.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DeviceMessage {
    /// `["DLMessageVersionExchange", major, minor]`: the first message on the connection.
    VersionExchange {
        /// Major version (400).
        major: u64,
        /// Minor version (0).
        minor: u64,
    },
    /// `["DLMessageDeviceReady"]`: the device accepted the host's version.
    DeviceReady,
    /// `["DLMessageProcessMessage", {…}]`: a mobilebackup2 message, e.g. the final `Response`.
    ProcessMessage(Dictionary),
    /// `["DLMessageDownloadFiles", [paths], {…}, progress, 0]`: send these files (see [`DownloadEncoder`]).
    DownloadFiles {
        /// Paths relative to the backup root.
        paths: Vec<String>,
        /// Overall progress in percent (0 when the device sent none).
        progress: f64,
    },
    /// `["DLMessageUploadFiles", {…}, progress, total]`: files follow on the stream (see [`UploadDecoder`]).
    UploadFiles {
        /// Overall progress in percent (0 when the device sent none).
        progress: f64,
        /// Bytes of file data in this batch, when the device says.
        total_bytes: Option<u64>,
    },
    /// `["DLMessageGetFreeDiskSpace"]`: answer with the free bytes at the backup root.
    GetFreeDiskSpace,
    /// `["DLMessagePurgeDiskSpace", amount, urgency]`: free this many bytes (iOS 14+).
    PurgeDiskSpace {
        /// Bytes the device asks the host to free.
        amount: Option<u64>,
        /// How urgent it is.
        urgency: Option<u64>,
    },
    /// `["DLMessageCreateDirectory", path]`: make the directory and its parents.
    CreateDirectory {
        /// Path relative to the backup root.
        path: String,
    },
    /// `["DLMessageMoveFiles", {src: dst}, {…}, progress]` (older name).
    MoveFiles(Moves),
    /// `["DLMessageMoveItems", {src: dst}, {…}, progress]`.
    MoveItems(Moves),
    /// `["DLMessageRemoveFiles", [paths], {…}, progress]` (older name).
    RemoveFiles(Removals),
    /// `["DLMessageRemoveItems", [paths], {…}, progress]`.
    RemoveItems(Removals),
    /// `["DLMessageCopyItem", src, dst]`: copy a file or a directory.
    CopyItem {
        /// Source, relative to the backup root.
        source: String,
        /// Destination, relative to the backup root.
        destination: String,
    },
    /// `["DLContentsOfDirectory", path]`: list a directory.
    ContentsOfDirectory {
        /// Path relative to the backup root.
        path: String,
    },
    /// `["DLMessageDisconnect", reason]`: the device is going away.
    Disconnect {
        /// The reason, when one is given.
        reason: Option<String>,
    },
    /// A message this crate does not know (`DLMessageAcquireLock`, …); hosts answer
    /// [`StatusResponse::unsupported`].
    Other {
        /// The message name.
        name: String,
        /// Its arguments.
        arguments: Vec<Value>,
    },
}

impl DeviceMessage {
    /// The message name on the wire.
    pub fn name(&self) -> &str {
        match self {
            Self::VersionExchange { .. } => NAME_VERSION_EXCHANGE,
            Self::DeviceReady => NAME_DEVICE_READY,
            Self::ProcessMessage(_) => NAME_PROCESS_MESSAGE,
            Self::DownloadFiles { .. } => NAME_DOWNLOAD_FILES,
            Self::UploadFiles { .. } => NAME_UPLOAD_FILES,
            Self::GetFreeDiskSpace => NAME_GET_FREE_DISK_SPACE,
            Self::PurgeDiskSpace { .. } => NAME_PURGE_DISK_SPACE,
            Self::CreateDirectory { .. } => NAME_CREATE_DIRECTORY,
            Self::MoveFiles(_) => NAME_MOVE_FILES,
            Self::MoveItems(_) => NAME_MOVE_ITEMS,
            Self::RemoveFiles(_) => NAME_REMOVE_FILES,
            Self::RemoveItems(_) => NAME_REMOVE_ITEMS,
            Self::CopyItem { .. } => NAME_COPY_ITEM,
            Self::ContentsOfDirectory { .. } => NAME_CONTENTS_OF_DIRECTORY,
            Self::Disconnect { .. } => NAME_DISCONNECT,
            Self::Other { name, .. } => name,
        }
    }

    /// Whether the host must answer this message with a [`StatusResponse`].
    pub fn expects_status(&self) -> bool {
        !matches!(
            self,
            Self::VersionExchange { .. }
                | Self::DeviceReady
                | Self::ProcessMessage(_)
                | Self::Disconnect { .. }
        )
    }

    /// The message as the plist array the device sends.
    pub fn to_value(&self) -> Value {
        let mut a = vec![Value::String(self.name().to_owned())];
        let callbacks = || Value::Dictionary(Dictionary::new());
        match self {
            Self::VersionExchange { major, minor } => {
                a.push(Value::Integer((*major).into()));
                a.push(Value::Integer((*minor).into()));
            }
            Self::DeviceReady | Self::GetFreeDiskSpace => {}
            Self::ProcessMessage(d) => a.push(Value::Dictionary(d.clone())),
            Self::DownloadFiles { paths, progress } => {
                a.push(strings_value(paths));
                a.push(callbacks());
                a.push(progress_value(*progress));
                a.push(Value::Integer(0u64.into()));
            }
            Self::UploadFiles {
                progress,
                total_bytes,
            } => {
                a.push(callbacks());
                a.push(progress_value(*progress));
                if let Some(total) = total_bytes {
                    a.push(Value::Integer((*total).into()));
                }
            }
            Self::PurgeDiskSpace { amount, urgency } => {
                if let Some(amount) = amount {
                    a.push(Value::Integer((*amount).into()));
                    if let Some(urgency) = urgency {
                        a.push(Value::Integer((*urgency).into()));
                    }
                }
            }
            Self::CreateDirectory { path } | Self::ContentsOfDirectory { path } => {
                a.push(Value::String(path.clone()));
            }
            Self::MoveFiles(m) | Self::MoveItems(m) => {
                let moves: Dictionary = m
                    .moves
                    .iter()
                    .map(|(s, d)| (s.clone(), Value::String(d.clone())))
                    .collect();
                a.push(Value::Dictionary(moves));
                a.push(callbacks());
                a.push(progress_value(m.progress));
            }
            Self::RemoveFiles(r) | Self::RemoveItems(r) => {
                a.push(strings_value(&r.paths));
                a.push(callbacks());
                a.push(progress_value(r.progress));
            }
            Self::CopyItem {
                source,
                destination,
            } => {
                a.push(Value::String(source.clone()));
                a.push(Value::String(destination.clone()));
            }
            Self::Disconnect { reason } => a.push(Value::String(
                reason.clone().unwrap_or_else(|| EMPTY_PARAMETER.to_owned()),
            )),
            Self::Other { arguments, .. } => a.extend(arguments.iter().cloned()),
        }
        Value::Array(a)
    }

    /// The message as a frame (binary plist).
    pub fn encode(&self) -> Vec<u8> {
        encode_frame(&self.to_value())
    }

    /// Reads a message the device sent.
    pub fn from_value(value: &Value) -> Result<Self, DlError> {
        let (name, args) = split_message(value)?;
        let progress_at = |i: usize| real_or_integer(args.get(i)).unwrap_or(0.0);
        Ok(match name {
            NAME_VERSION_EXCHANGE => {
                let int = |i: usize| {
                    args.get(i)
                        .and_then(Value::as_unsigned_integer)
                        .ok_or_else(|| malformed(NAME_VERSION_EXCHANGE, "a version number"))
                };
                Self::VersionExchange {
                    major: int(0)?,
                    minor: int(1)?,
                }
            }
            NAME_DEVICE_READY => Self::DeviceReady,
            NAME_PROCESS_MESSAGE => Self::ProcessMessage(
                args.first()
                    .and_then(Value::as_dictionary)
                    .cloned()
                    .ok_or_else(|| malformed(NAME_PROCESS_MESSAGE, "a dictionary"))?,
            ),
            NAME_DOWNLOAD_FILES => Self::DownloadFiles {
                paths: string_list(args.first(), NAME_DOWNLOAD_FILES, "an array of paths")?,
                progress: progress_at(2),
            },
            NAME_UPLOAD_FILES => Self::UploadFiles {
                progress: progress_at(1),
                total_bytes: args.get(2).and_then(Value::as_unsigned_integer),
            },
            NAME_GET_FREE_DISK_SPACE => Self::GetFreeDiskSpace,
            NAME_PURGE_DISK_SPACE => Self::PurgeDiskSpace {
                amount: args.first().and_then(Value::as_unsigned_integer),
                urgency: args.get(1).and_then(Value::as_unsigned_integer),
            },
            NAME_CREATE_DIRECTORY => Self::CreateDirectory {
                path: string_arg(args, 0, NAME_CREATE_DIRECTORY, "a path")?,
            },
            NAME_MOVE_FILES | NAME_MOVE_ITEMS => {
                let what = "a dictionary of source to destination paths";
                let message = if name == NAME_MOVE_FILES {
                    NAME_MOVE_FILES
                } else {
                    NAME_MOVE_ITEMS
                };
                let dict = args
                    .first()
                    .and_then(Value::as_dictionary)
                    .ok_or_else(|| malformed(message, what))?;
                let moves = dict
                    .iter()
                    .map(|(s, d)| {
                        d.as_string()
                            .map(|d| (s.clone(), d.to_owned()))
                            .ok_or_else(|| malformed(message, what))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let m = Moves {
                    moves,
                    progress: progress_at(2),
                };
                if name == NAME_MOVE_FILES {
                    Self::MoveFiles(m)
                } else {
                    Self::MoveItems(m)
                }
            }
            NAME_REMOVE_FILES | NAME_REMOVE_ITEMS => {
                let message = if name == NAME_REMOVE_FILES {
                    NAME_REMOVE_FILES
                } else {
                    NAME_REMOVE_ITEMS
                };
                let r = Removals {
                    paths: string_list(args.first(), message, "an array of paths")?,
                    progress: progress_at(2),
                };
                if name == NAME_REMOVE_FILES {
                    Self::RemoveFiles(r)
                } else {
                    Self::RemoveItems(r)
                }
            }
            NAME_COPY_ITEM => Self::CopyItem {
                source: string_arg(args, 0, NAME_COPY_ITEM, "a source path")?,
                destination: string_arg(args, 1, NAME_COPY_ITEM, "a destination path")?,
            },
            NAME_CONTENTS_OF_DIRECTORY => Self::ContentsOfDirectory {
                path: string_arg(args, 0, NAME_CONTENTS_OF_DIRECTORY, "a path")?,
            },
            NAME_DISCONNECT => Self::Disconnect {
                reason: optional_string(args.first()),
            },
            other => Self::Other {
                name: other.to_owned(),
                arguments: args.to_vec(),
            },
        })
    }

    /// Reads one message from the front of `buf`: `Ok(None)` until the frame is complete, then the message and
    /// the number of bytes used.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DlError> {
        let Some((value, used)) = decode_frame(buf)? else {
            return Ok(None);
        };
        Ok(Some((Self::from_value(&value)?, used)))
    }
}

/// A DeviceLink message the host sends.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum HostMessage {
    /// `["DLMessageVersionExchange", "DLVersionsOk", major]`: the host accepts the device's version.
    VersionsOk {
        /// The major version the host speaks (400).
        major: u64,
    },
    /// `["DLMessageProcessMessage", {…}]`: a mobilebackup2 request.
    ProcessMessage(Dictionary),
    /// `["DLMessageStatusResponse", code, message, value]`: the answer to a device request.
    StatusResponse(StatusResponse),
    /// `["DLMessagePing", text]`.
    Ping(String),
    /// `["DLMessageDisconnect", reason]`: the host is leaving.
    Disconnect {
        /// The reason, when one is given.
        reason: Option<String>,
    },
    /// A message this crate does not know.
    Other {
        /// The message name.
        name: String,
        /// Its arguments.
        arguments: Vec<Value>,
    },
}

impl HostMessage {
    /// The message name on the wire.
    pub fn name(&self) -> &str {
        match self {
            Self::VersionsOk { .. } => NAME_VERSION_EXCHANGE,
            Self::ProcessMessage(_) => NAME_PROCESS_MESSAGE,
            Self::StatusResponse(_) => NAME_STATUS_RESPONSE,
            Self::Ping(_) => NAME_PING,
            Self::Disconnect { .. } => NAME_DISCONNECT,
            Self::Other { name, .. } => name,
        }
    }

    /// The message as the plist array the host sends.
    pub fn to_value(&self) -> Value {
        let mut a = vec![Value::String(self.name().to_owned())];
        match self {
            Self::VersionsOk { major } => {
                a.push(Value::String(NAME_VERSIONS_OK.to_owned()));
                a.push(Value::Integer((*major).into()));
            }
            Self::ProcessMessage(d) => a.push(Value::Dictionary(d.clone())),
            Self::StatusResponse(s) => {
                a.push(code_to_value(s.code));
                a.push(Value::String(
                    s.message
                        .clone()
                        .unwrap_or_else(|| EMPTY_PARAMETER.to_owned()),
                ));
                a.push(
                    s.value
                        .clone()
                        .unwrap_or_else(|| Value::String(EMPTY_PARAMETER.to_owned())),
                );
            }
            Self::Ping(text) => a.push(Value::String(text.clone())),
            Self::Disconnect { reason } => a.push(Value::String(
                reason.clone().unwrap_or_else(|| EMPTY_PARAMETER.to_owned()),
            )),
            Self::Other { arguments, .. } => a.extend(arguments.iter().cloned()),
        }
        Value::Array(a)
    }

    /// The message as a frame (binary plist, as hosts send DeviceLink messages).
    pub fn encode(&self) -> Vec<u8> {
        encode_frame(&self.to_value())
    }

    /// Reads a message the host sent.
    pub fn from_value(value: &Value) -> Result<Self, DlError> {
        let (name, args) = split_message(value)?;
        Ok(match name {
            NAME_VERSION_EXCHANGE => {
                if args.first().and_then(Value::as_string) != Some(NAME_VERSIONS_OK) {
                    return Err(malformed(NAME_VERSION_EXCHANGE, "DLVersionsOk"));
                }
                Self::VersionsOk {
                    major: args
                        .get(1)
                        .and_then(Value::as_unsigned_integer)
                        .ok_or_else(|| malformed(NAME_VERSION_EXCHANGE, "a version number"))?,
                }
            }
            NAME_PROCESS_MESSAGE => Self::ProcessMessage(
                args.first()
                    .and_then(Value::as_dictionary)
                    .cloned()
                    .ok_or_else(|| malformed(NAME_PROCESS_MESSAGE, "a dictionary"))?,
            ),
            NAME_STATUS_RESPONSE => Self::StatusResponse(StatusResponse {
                code: args
                    .first()
                    .and_then(integer_as_i64)
                    .ok_or_else(|| malformed(NAME_STATUS_RESPONSE, "a status code"))?,
                message: optional_string(args.get(1)),
                value: match args.get(2) {
                    None => None,
                    Some(Value::String(s)) if s == EMPTY_PARAMETER => None,
                    Some(v) => Some(v.clone()),
                },
            }),
            NAME_PING => Self::Ping(string_arg(args, 0, NAME_PING, "a text")?),
            NAME_DISCONNECT => Self::Disconnect {
                reason: optional_string(args.first()),
            },
            other => Self::Other {
                name: other.to_owned(),
                arguments: args.to_vec(),
            },
        })
    }

    /// Reads one message from the front of `buf`: `Ok(None)` until the frame is complete, then the message and
    /// the number of bytes used.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DlError> {
        let Some((value, used)) = decode_frame(buf)? else {
            return Ok(None);
        };
        Ok(Some((Self::from_value(&value)?, used)))
    }
}

/// One failed file of a multi-status answer (`DLFileErrorCode`, `DLFileErrorString`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The path, as the device named it.
    pub path: String,
    /// The device error code (e.g. [`ERROR_NOT_FOUND`]).
    pub code: i64,
    /// The error text.
    pub message: String,
}

/// An entry of a `DLContentsOfDirectory` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryEntry {
    /// The entry's name within the directory.
    pub name: String,
    /// [`FILE_TYPE_DIRECTORY`], [`FILE_TYPE_REGULAR`] or [`FILE_TYPE_UNKNOWN`].
    pub file_type: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub modified: std::time::SystemTime,
}

/// The host's `DLMessageStatusResponse`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusResponse {
    /// 0 on success; negative codes go out as 64-bit two's complement.
    pub code: i64,
    /// The error text; `None` sends `___EmptyParameterString___`.
    pub message: Option<String>,
    /// The result; `None` sends `___EmptyParameterString___`.
    pub value: Option<Value>,
}

impl StatusResponse {
    /// Success with an empty dictionary, as libimobiledevice and pymobiledevice3 answer file operations.
    pub fn ok() -> Self {
        Self::ok_with(Value::Dictionary(Dictionary::new()))
    }

    /// Success with a value.
    pub fn ok_with(value: Value) -> Self {
        Self {
            code: STATUS_OK,
            message: None,
            value: Some(value),
        }
    }

    /// A failure with its text and an empty dictionary.
    pub fn error(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: Some(message.into()),
            value: Some(Value::Dictionary(Dictionary::new())),
        }
    }

    /// The answer to a message the host does not support (`-1 "Operation not supported"`).
    pub fn unsupported() -> Self {
        Self::error(STATUS_FAILED, "Operation not supported")
    }

    /// The answer to `DLMessageGetFreeDiskSpace`.
    pub fn free_space(bytes: u64) -> Self {
        Self::ok_with(Value::Integer(bytes.into()))
    }

    /// The answer to a bulk operation: success when nothing failed, else `-13 "Multi status"` naming each
    /// failed path.
    pub fn multi_status(errors: &[FileError]) -> Self {
        if errors.is_empty() {
            return Self::ok();
        }
        let mut d = Dictionary::new();
        for e in errors {
            let mut f = Dictionary::new();
            f.insert("DLFileErrorCode".into(), code_to_value(e.code));
            f.insert("DLFileErrorString".into(), Value::String(e.message.clone()));
            d.insert(e.path.clone(), Value::Dictionary(f));
        }
        Self {
            code: STATUS_MULTI_STATUS,
            message: Some("Multi status".into()),
            value: Some(Value::Dictionary(d)),
        }
    }

    /// The answer to `DLContentsOfDirectory`.
    pub fn directory_listing(entries: &[DirectoryEntry]) -> Self {
        let mut d = Dictionary::new();
        for e in entries {
            let mut f = Dictionary::new();
            f.insert("DLFileType".into(), Value::String(e.file_type.to_owned()));
            f.insert("DLFileSize".into(), Value::Integer(e.size.into()));
            f.insert(
                "DLFileModificationDate".into(),
                Value::Date(e.modified.into()),
            );
            d.insert(e.name.clone(), Value::Dictionary(f));
        }
        Self::ok_with(Value::Dictionary(d))
    }

    /// Whether the code is 0.
    pub fn is_ok(&self) -> bool {
        self.code == STATUS_OK
    }

    /// The failed files of a multi-status answer (empty for any other answer).
    pub fn file_errors(&self) -> Vec<FileError> {
        let Some(Value::Dictionary(d)) = &self.value else {
            return Vec::new();
        };
        if self.code != STATUS_MULTI_STATUS {
            return Vec::new();
        }
        d.iter()
            .filter_map(|(path, v)| {
                let f = v.as_dictionary()?;
                Some(FileError {
                    path: path.clone(),
                    code: f.get("DLFileErrorCode").and_then(integer_as_i64)?,
                    message: f
                        .get("DLFileErrorString")
                        .and_then(Value::as_string)
                        .unwrap_or_default()
                        .to_owned(),
                })
            })
            .collect()
    }

    /// The free bytes of a `DLMessageGetFreeDiskSpace` answer.
    pub fn free_bytes(&self) -> Option<u64> {
        self.value.as_ref()?.as_unsigned_integer()
    }

    /// This answer as a host message.
    pub fn into_message(self) -> HostMessage {
        HostMessage::StatusResponse(self)
    }

    /// This answer as a frame.
    pub fn encode(&self) -> Vec<u8> {
        HostMessage::StatusResponse(self.clone()).encode()
    }
}

// ---------------------------------------------------------------------------------------------
// Raw file framing.

/// Errors of the raw file framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// A file name length exceeded [`MAX_NAME_LEN`].
    #[error("file name of {len} bytes exceeds the limit of {max}")]
    NameTooLong {
        /// The announced length.
        len: u64,
        /// The cap.
        max: usize,
    },
    /// A file name was empty where a name is required.
    #[error("file name is empty")]
    EmptyName,
    /// A file name was not UTF-8.
    #[error("file name is not utf-8")]
    NameNotUtf8,
    /// A block length exceeded [`MAX_BLOCK_LEN`].
    #[error("block of {len} bytes exceeds the limit of {max}")]
    BlockTooLong {
        /// The announced length, code byte included.
        len: u64,
        /// The cap.
        max: usize,
    },
    /// A block length was zero, leaving no room for the code byte.
    #[error("block length is zero")]
    EmptyBlock,
    /// A block carried a code this framing does not know.
    #[error("unknown block code {0:#04x}")]
    UnknownCode(u8),
    /// A success block carried a payload.
    #[error("success block carries {0} bytes")]
    SuccessWithPayload(u64),
    /// An error block's text exceeded [`MAX_ERROR_TEXT_LEN`].
    #[error("error text of {len} bytes exceeds the limit of {max}")]
    ErrorTextTooLong {
        /// The announced length.
        len: u64,
        /// The cap.
        max: usize,
    },
    /// Bytes were fed after the batch ended.
    #[error("input after the end of the batch")]
    AfterEnd,
    /// An encoder call came in the wrong order (e.g. data without an open file).
    #[error("failed to encode: {0}")]
    OutOfOrder(&'static str),
}

/// How a decoder step went: how many input bytes it used, and the event it produced.
///
/// A step without an event has used all of its input; call again with more bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<E> {
    /// Input bytes used.
    pub consumed: usize,
    /// The event, if one completed.
    pub event: Option<E>,
}

/// What the shared framing engine reports.
#[derive(Debug, PartialEq, Eq)]
enum RawEvent<'a> {
    Names(Vec<String>),
    Data(&'a [u8]),
    Success,
    Error(String),
    End,
}

#[derive(Debug)]
enum Phase {
    /// Reading the length of name `names.len()`.
    NameLen,
    /// Reading a name of this length.
    Name(usize),
    /// Reading a block length.
    BlockLen,
    /// Reading the code of a block whose payload is this long.
    BlockCode(u64),
    /// Passing on this many more data bytes.
    Data(u64),
    /// Reading this much error text.
    ErrorText(usize),
    /// The batch has ended.
    Done,
}

/// The state machine both stream decoders share: names, then blocks, until a zero length ends the batch.
#[derive(Debug)]
struct FramingDecoder {
    names_per_file: usize,
    phase: Phase,
    /// Partial bytes of a length or of a name or error text.
    partial: Vec<u8>,
    names: Vec<String>,
}

impl FramingDecoder {
    fn new(names_per_file: usize) -> Self {
        Self {
            names_per_file,
            phase: Phase::NameLen,
            partial: Vec::new(),
            names: Vec::new(),
        }
    }

    fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Fills `partial` up to `want` bytes from `input`; gives the bytes used and whether it is complete.
    fn fill(&mut self, input: &[u8], want: usize) -> (usize, bool) {
        let need = want.saturating_sub(self.partial.len());
        let take = need.min(input.len());
        self.partial.extend_from_slice(&input[..take]);
        (take, self.partial.len() == want)
    }

    fn take_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.partial[..4]);
        self.partial.clear();
        u32::from_be_bytes(b)
    }

    fn decode<'a>(&mut self, input: &'a [u8]) -> Result<Step<RawEvent<'a>>, FramingError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.phase {
                Phase::Done => {
                    if rest.is_empty() {
                        return Ok(Step {
                            consumed: used,
                            event: None,
                        });
                    }
                    return Err(FramingError::AfterEnd);
                }
                Phase::NameLen => {
                    let (n, complete) = self.fill(rest, 4);
                    used += n;
                    if !complete {
                        return Ok(Step {
                            consumed: used,
                            event: None,
                        });
                    }
                    let len = self.take_u32();
                    if len == 0 {
                        if self.names.is_empty() {
                            self.phase = Phase::Done;
                            return Ok(Step {
                                consumed: used,
                                event: Some(RawEvent::End),
                            });
                        }
                        return Err(FramingError::EmptyName);
                    }
                    let len = usize::try_from(len).unwrap_or(usize::MAX);
                    if len > MAX_NAME_LEN {
                        return Err(FramingError::NameTooLong {
                            len: len as u64,
                            max: MAX_NAME_LEN,
                        });
                    }
                    self.partial.reserve(len);
                    self.phase = Phase::Name(len);
                }
                Phase::Name(len) => {
                    let (n, complete) = self.fill(rest, len);
                    used += n;
                    if !complete {
                        return Ok(Step {
                            consumed: used,
                            event: None,
                        });
                    }
                    let bytes = std::mem::take(&mut self.partial);
                    let name = String::from_utf8(bytes).map_err(|_| FramingError::NameNotUtf8)?;
                    self.names.push(name);
                    if self.names.len() < self.names_per_file {
                        self.phase = Phase::NameLen;
                    } else {
                        self.phase = Phase::BlockLen;
                        return Ok(Step {
                            consumed: used,
                            event: Some(RawEvent::Names(std::mem::take(&mut self.names))),
                        });
                    }
                }
                Phase::BlockLen => {
                    let (n, complete) = self.fill(rest, 4);
                    used += n;
                    if !complete {
                        return Ok(Step {
                            consumed: used,
                            event: None,
                        });
                    }
                    let len = u64::from(self.take_u32());
                    if len == 0 {
                        return Err(FramingError::EmptyBlock);
                    }
                    if len > MAX_BLOCK_LEN as u64 {
                        return Err(FramingError::BlockTooLong {
                            len,
                            max: MAX_BLOCK_LEN,
                        });
                    }
                    self.phase = Phase::BlockCode(len - 1);
                }
                Phase::BlockCode(payload) => {
                    let Some(&code) = rest.first() else {
                        return Ok(Step {
                            consumed: used,
                            event: None,
                        });
                    };
                    used += 1;
                    match code {
                        CODE_FILE_DATA => self.phase = Phase::Data(payload),
                        CODE_SUCCESS => {
                            if payload != 0 {
                                return Err(FramingError::SuccessWithPayload(payload));
                            }
                            self.phase = Phase::NameLen;
                            return Ok(Step {
                                consumed: used,
                                event: Some(RawEvent::Success),
                            });
                        }
                        CODE_ERROR_LOCAL | CODE_ERROR_REMOTE => {
                            let len = usize::try_from(payload).unwrap_or(usize::MAX);
                            if len > MAX_ERROR_TEXT_LEN {
                                return Err(FramingError::ErrorTextTooLong {
                                    len: payload,
                                    max: MAX_ERROR_TEXT_LEN,
                                });
                            }
                            self.partial.reserve(len);
                            self.phase = Phase::ErrorText(len);
                        }
                        other => return Err(FramingError::UnknownCode(other)),
                    }
                }
                Phase::Data(0) => self.phase = Phase::BlockLen,
                Phase::Data(remaining) => {
                    if rest.is_empty() {
                        return Ok(Step {
                            consumed: used,
                            event: None,
                        });
                    }
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    used += take;
                    self.phase = Phase::Data(remaining - take as u64);
                    return Ok(Step {
                        consumed: used,
                        event: Some(RawEvent::Data(&rest[..take])),
                    });
                }
                Phase::ErrorText(len) => {
                    let (n, complete) = self.fill(rest, len);
                    used += n;
                    if !complete {
                        return Ok(Step {
                            consumed: used,
                            event: None,
                        });
                    }
                    let text = String::from_utf8_lossy(&self.partial).into_owned();
                    self.partial.clear();
                    self.phase = Phase::NameLen;
                    return Ok(Step {
                        consumed: used,
                        event: Some(RawEvent::Error(text)),
                    });
                }
            }
        }
    }
}

/// What the device's upload stream says, as [`UploadDecoder`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UploadEvent<'a> {
    /// A file starts.
    FileStart {
        /// Where the file is on the device (e.g. under `/.ba/mobile/`).
        device_path: String,
        /// Where the host must store it, relative to the backup root (`<UDID>/xx/<fileID>`); check it with
        /// [`crate::mobilebackup2::safe_relative_path`] before use.
        host_path: String,
    },
    /// Bytes of the current file, borrowed from the input.
    Data(&'a [u8]),
    /// The current file is complete.
    FileEnd,
    /// The device could not send the current file (code 0x0B, or 0x06); what was received of it is not
    /// the file. libimobiledevice notes that some iOS versions end a good file this way after data.
    FileError {
        /// The device's text.
        message: String,
    },
    /// The batch is over; the host answers with a [`StatusResponse`].
    BatchEnd,
}

/// Reads the device → host file stream that follows `DLMessageUploadFiles` (host side).
///
/// Feed the bytes read from the connection to [`UploadDecoder::decode`] and act on each event; the step says
/// how many bytes it used. After [`UploadEvent::BatchEnd`] the remaining bytes belong to the next plist.
///
/// ```
/// use backupd_proto::devicelink::{UploadDecoder, UploadEncoder, UploadEvent};
/// let mut wire = Vec::new();
/// let mut enc = UploadEncoder::new();
/// enc.start_file("/.ba/mobile/x", "UDID/ab/abcd", &mut wire).unwrap();
/// enc.data(b"hello", &mut wire).unwrap();
/// enc.finish_file(&mut wire).unwrap();
/// enc.finish(&mut wire).unwrap();
/// let mut dec = UploadDecoder::new();
/// let mut rest = &wire[..];
/// let mut data = Vec::new();
/// while !rest.is_empty() {
///     let step = dec.decode(rest).unwrap();
///     rest = &rest[step.consumed..];
///     if let Some(UploadEvent::Data(d)) = step.event {
///         data.extend_from_slice(d);
///     }
/// }
/// assert_eq!(data, b"hello");
/// assert!(dec.is_finished());
/// ```
#[derive(Debug)]
pub struct UploadDecoder {
    inner: FramingDecoder,
}

impl Default for UploadDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl UploadDecoder {
    /// A decoder at the start of a batch.
    pub fn new() -> Self {
        Self {
            inner: FramingDecoder::new(2),
        }
    }

    /// Reads from `input` up to the next event.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<Step<UploadEvent<'a>>, FramingError> {
        let step = self.inner.decode(input)?;
        let event = match step.event {
            None => None,
            Some(RawEvent::Names(mut names)) => {
                let host_path = names.pop().unwrap_or_default();
                let device_path = names.pop().unwrap_or_default();
                Some(UploadEvent::FileStart {
                    device_path,
                    host_path,
                })
            }
            Some(RawEvent::Data(d)) => Some(UploadEvent::Data(d)),
            Some(RawEvent::Success) => Some(UploadEvent::FileEnd),
            Some(RawEvent::Error(message)) => Some(UploadEvent::FileError { message }),
            Some(RawEvent::End) => Some(UploadEvent::BatchEnd),
        };
        Ok(Step {
            consumed: step.consumed,
            event,
        })
    }

    /// Whether the batch has ended.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

/// What the host's download stream says, as [`DownloadDecoder`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownloadEvent<'a> {
    /// The host starts answering for this path.
    FileStart {
        /// The path, as the device asked for it.
        path: String,
    },
    /// Bytes of the current file, borrowed from the input.
    Data(&'a [u8]),
    /// The current file is complete.
    FileEnd,
    /// The host could not send the file (code 0x06), e.g. it does not exist.
    FileError {
        /// The host's text (libimobiledevice sends `strerror`).
        message: String,
    },
    /// Every path has been answered; a [`StatusResponse`] follows.
    BatchEnd,
}

/// Reads the host → device file stream that answers `DLMessageDownloadFiles` (device side).
#[derive(Debug)]
pub struct DownloadDecoder {
    inner: FramingDecoder,
}

impl Default for DownloadDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DownloadDecoder {
    /// A decoder at the start of the answer.
    pub fn new() -> Self {
        Self {
            inner: FramingDecoder::new(1),
        }
    }

    /// Reads from `input` up to the next event.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<Step<DownloadEvent<'a>>, FramingError> {
        let step = self.inner.decode(input)?;
        let event = match step.event {
            None => None,
            Some(RawEvent::Names(mut names)) => Some(DownloadEvent::FileStart {
                path: names.pop().unwrap_or_default(),
            }),
            Some(RawEvent::Data(d)) => Some(DownloadEvent::Data(d)),
            Some(RawEvent::Success) => Some(DownloadEvent::FileEnd),
            Some(RawEvent::Error(message)) => Some(DownloadEvent::FileError { message }),
            Some(RawEvent::End) => Some(DownloadEvent::BatchEnd),
        };
        Ok(Step {
            consumed: step.consumed,
            event,
        })
    }

    /// Whether the answer is complete.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EncoderState {
    Idle,
    InFile,
    Done,
}

/// The state and the byte-writing both stream encoders share.
#[derive(Debug)]
struct FramingEncoder {
    state: EncoderState,
    chunk_len: usize,
}

fn push_name(name: &str, out: &mut Vec<u8>) -> Result<(), FramingError> {
    if name.is_empty() {
        return Err(FramingError::EmptyName);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(FramingError::NameTooLong {
            len: name.len() as u64,
            max: MAX_NAME_LEN,
        });
    }
    // The length fits: it is at most MAX_NAME_LEN.
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

fn push_block(code: u8, payload: &[u8], out: &mut Vec<u8>) {
    // Callers keep payloads below MAX_BLOCK_LEN, far below u32::MAX.
    out.extend_from_slice(&((payload.len() + 1) as u32).to_be_bytes());
    out.push(code);
    out.extend_from_slice(payload);
}

impl FramingEncoder {
    fn new(chunk_len: usize) -> Self {
        Self {
            state: EncoderState::Idle,
            chunk_len: chunk_len.clamp(1, MAX_BLOCK_LEN - 1),
        }
    }

    fn expect(&self, state: EncoderState, what: &'static str) -> Result<(), FramingError> {
        if self.state == state {
            Ok(())
        } else {
            Err(FramingError::OutOfOrder(what))
        }
    }

    fn start(&mut self, names: &[&str], out: &mut Vec<u8>) -> Result<(), FramingError> {
        self.expect(
            EncoderState::Idle,
            "a file starts only between files, before the end",
        )?;
        let mark = out.len();
        for name in names {
            if let Err(e) = push_name(name, out) {
                out.truncate(mark);
                return Err(e);
            }
        }
        self.state = EncoderState::InFile;
        Ok(())
    }

    fn data(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), FramingError> {
        self.expect(EncoderState::InFile, "data needs an open file")?;
        for chunk in bytes.chunks(self.chunk_len) {
            push_block(CODE_FILE_DATA, chunk, out);
        }
        Ok(())
    }

    fn finish_file(&mut self, out: &mut Vec<u8>) -> Result<(), FramingError> {
        self.expect(EncoderState::InFile, "only an open file can finish")?;
        push_block(CODE_SUCCESS, &[], out);
        self.state = EncoderState::Idle;
        Ok(())
    }

    fn fail_file(
        &mut self,
        code: u8,
        message: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), FramingError> {
        self.expect(EncoderState::InFile, "only an open file can fail")?;
        let mut end = message.len().min(MAX_ERROR_TEXT_LEN);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        push_block(code, &message.as_bytes()[..end], out);
        self.state = EncoderState::Idle;
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), FramingError> {
        self.expect(EncoderState::Idle, "the batch ends only between files")?;
        out.extend_from_slice(&0u32.to_be_bytes());
        self.state = EncoderState::Done;
        Ok(())
    }
}

/// Writes the device → host file stream after `DLMessageUploadFiles` (device side).
///
/// Call order: (`start_file`, `data`*, `finish_file` | `fail_file`)*, then `finish`. Data is cut into
/// frames of [`DATA_CHUNK_LEN`] bytes.
#[derive(Debug)]
pub struct UploadEncoder {
    inner: FramingEncoder,
}

impl Default for UploadEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl UploadEncoder {
    /// An encoder with 32 KiB data frames.
    pub fn new() -> Self {
        Self::with_chunk_len(DATA_CHUNK_LEN)
    }

    /// An encoder with data frames of at most `chunk_len` bytes (kept between 1 and the block cap).
    pub fn with_chunk_len(chunk_len: usize) -> Self {
        Self {
            inner: FramingEncoder::new(chunk_len),
        }
    }

    /// Starts a file: its device path and the host path it must be stored at.
    pub fn start_file(
        &mut self,
        device_path: &str,
        host_path: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), FramingError> {
        self.inner.start(&[device_path, host_path], out)
    }

    /// Appends data of the open file.
    pub fn data(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), FramingError> {
        self.inner.data(bytes, out)
    }

    /// Ends the open file successfully.
    pub fn finish_file(&mut self, out: &mut Vec<u8>) -> Result<(), FramingError> {
        self.inner.finish_file(out)
    }

    /// Ends the open file with a remote error (code 0x0B); the text is cut at [`MAX_ERROR_TEXT_LEN`].
    pub fn fail_file(&mut self, message: &str, out: &mut Vec<u8>) -> Result<(), FramingError> {
        self.inner.fail_file(CODE_ERROR_REMOTE, message, out)
    }

    /// Ends the batch (a u32 zero).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), FramingError> {
        self.inner.finish(out)
    }
}

/// Writes the host → device file stream that answers `DLMessageDownloadFiles` (host side).
///
/// Call order: for each requested path, `start_file`, then `data`* and `finish_file`, or `fail_file`; then
/// `finish`, then send a [`StatusResponse`] ([`StatusResponse::multi_status`] with the failures). An empty
/// file sends no data, only the success block. Data is cut into frames of [`DATA_CHUNK_LEN`] bytes: larger
/// frames make the device's BackupAgent2 buffer more, and it gets killed on big files.
#[derive(Debug)]
pub struct DownloadEncoder {
    inner: FramingEncoder,
}

impl Default for DownloadEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DownloadEncoder {
    /// An encoder with 32 KiB data frames.
    pub fn new() -> Self {
        Self::with_chunk_len(DATA_CHUNK_LEN)
    }

    /// An encoder with data frames of at most `chunk_len` bytes (kept between 1 and the block cap).
    pub fn with_chunk_len(chunk_len: usize) -> Self {
        Self {
            inner: FramingEncoder::new(chunk_len),
        }
    }

    /// Starts the answer for a path, as the device named it.
    pub fn start_file(&mut self, path: &str, out: &mut Vec<u8>) -> Result<(), FramingError> {
        self.inner.start(&[path], out)
    }

    /// Appends data of the open file.
    pub fn data(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), FramingError> {
        self.inner.data(bytes, out)
    }

    /// Ends the open file successfully.
    pub fn finish_file(&mut self, out: &mut Vec<u8>) -> Result<(), FramingError> {
        self.inner.finish_file(out)
    }

    /// Ends the open file with a local error (code 0x06), e.g. `No such file or directory`.
    pub fn fail_file(&mut self, message: &str, out: &mut Vec<u8>) -> Result<(), FramingError> {
        self.inner.fail_file(CODE_ERROR_LOCAL, message, out)
    }

    /// Ends the answer (a u32 zero).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), FramingError> {
        self.inner.finish(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_over_the_cap_is_refused_before_reading_it() {
        let mut wire = ((MAX_NAME_LEN + 1) as u32).to_be_bytes().to_vec();
        wire.extend_from_slice(b"abc");
        let err = UploadDecoder::new().decode(&wire).expect_err("too long");
        assert!(matches!(err, FramingError::NameTooLong { .. }), "{err}");
    }

    #[test]
    fn a_block_over_the_cap_is_refused() {
        let mut wire = Vec::new();
        DownloadEncoder::new()
            .start_file("U/Status.plist", &mut wire)
            .expect("start");
        wire.extend_from_slice(&u32::MAX.to_be_bytes());
        let mut dec = DownloadDecoder::new();
        let step = dec.decode(&wire).expect("name");
        assert!(matches!(step.event, Some(DownloadEvent::FileStart { .. })));
        let err = dec.decode(&wire[step.consumed..]).expect_err("block");
        assert!(matches!(err, FramingError::BlockTooLong { .. }), "{err}");
    }

    #[test]
    fn encoders_refuse_calls_out_of_order() {
        let mut out = Vec::new();
        let mut enc = UploadEncoder::new();
        assert!(enc.data(b"x", &mut out).is_err());
        assert!(enc.finish_file(&mut out).is_err());
        enc.start_file("/d", "h", &mut out).expect("start");
        assert!(enc.start_file("/d", "h", &mut out).is_err());
        assert!(enc.finish(&mut out).is_err());
        enc.finish_file(&mut out).expect("finish file");
        enc.finish(&mut out).expect("finish");
        assert!(enc.start_file("/d", "h", &mut out).is_err());
    }

    #[test]
    fn status_codes_travel_as_twos_complement() {
        let frame = StatusResponse::error(STATUS_MULTI_STATUS, "Multi status").encode();
        let (msg, _) = HostMessage::decode(&frame)
            .expect("decode")
            .expect("complete");
        let HostMessage::StatusResponse(s) = msg else {
            panic!("not a status: {msg:?}")
        };
        assert_eq!(s.code, -13);
        let (value, _) = decode_frame(&frame).expect("frame").expect("complete");
        let code = value.as_array().and_then(|a| a.get(1)).cloned();
        assert_eq!(
            code.and_then(|c| c.as_unsigned_integer()),
            Some(0xFFFF_FFFF_FFFF_FFF3)
        );
    }
}

//! Every way `backupdctl` can fail, each with its exit code and what to do about it.

use std::io::{self, Write};
use std::path::PathBuf;

use backupd_api::exit;

/// A failure `backupdctl` expects and explains: the daemon is unreachable, a phone is unknown, the daemon
/// answered with an error. Each maps to an exit code of [`backupd_api::exit`] and renders with its remedy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExpectedError {
    /// The daemon answered a request with an error status.
    #[error("the daemon answered {what} with {status}: {message}")]
    DaemonAnswer {
        /// The request, e.g. `GET /v1/devices`.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The daemon's error code (`internal`, `bad_request`, ...), or empty when the body was not an
        /// `ErrorBody`.
        code: String,
        /// The daemon's words, or the start of the body.
        message: String,
    },
    /// The daemon's answer could not be read as the API says.
    #[error("failed to read the daemon's answer to {what}")]
    DaemonGarbled {
        /// The request.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The connection to the daemon failed after it was made.
    #[error("failed to talk to the daemon on {socket}")]
    DaemonHttp {
        /// The socket.
        socket: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The daemon accepted the connection and did not answer in time.
    #[error("the daemon on {socket} did not answer within {secs} s")]
    DaemonSilent {
        /// The socket.
        socket: PathBuf,
        /// How long we waited.
        secs: u64,
    },
    /// Nothing listens on the socket, or it does not exist.
    #[error("failed to reach the backupd daemon at {socket}")]
    DaemonUnreachable {
        /// The socket tried.
        socket: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The phone asked for is not known to the daemon.
    #[error("the daemon knows no phone {udid}")]
    DeviceNotFound {
        /// The UDID as given.
        udid: String,
    },
    /// The phone asked for is known but not plugged in, so the daemon cannot do what was asked.
    #[error("phone {udid} is not connected, so {consequence}")]
    DeviceNotConnected {
        /// The UDID as given.
        udid: String,
        /// What cannot be done, e.g. `it cannot be diagnosed again`.
        consequence: &'static str,
    },
    /// No phone was named and none is connected.
    #[error("no iPhone is connected")]
    NoPhoneConnected,
    /// No phone was named and several are connected.
    #[error("{} iPhones are connected: say which one", phones.len())]
    WhichPhone {
        /// `UDID (name)` of each.
        phones: Vec<String>,
        /// The command to repeat with a UDID, e.g. `backup --wait`.
        command: String,
    },
    /// The phone already has a job running.
    #[error("{} of this iPhone is already running{}", kind_words(*.kind), job_words(*.job))]
    Busy {
        /// The phone.
        udid: String,
        /// What the running job does.
        kind: backupd_api::JobKind,
        /// Its id, when it could be found.
        job: Option<u64>,
    },
    /// `backup --cancel` found no running job of the phone.
    #[error("no backup of phone {udid} is running")]
    NoJobRunning {
        /// The phone.
        udid: String,
    },
    /// A backup password was refused before anything was sent.
    #[error("{0}")]
    Password(crate::password::Refusal),
    /// The backup password does not open the phone's newest backup.
    #[error("wrong backup password: it does not open the newest backup of {udid}")]
    WrongPassword {
        /// The phone.
        udid: String,
    },
    /// The phone has no encrypted backup on this computer to check a password against.
    #[error("{udid} has no encrypted local backup on this computer")]
    NoEncryptedBackup {
        /// The phone.
        udid: String,
    },
    /// Writing the output failed.
    #[error("failed to write the output")]
    Output(#[source] io::Error),
    /// The async runtime could not start.
    #[error("failed to start the async runtime")]
    Runtime(#[source] io::Error),
    /// The socket exists and we may not use it.
    #[error("permission denied on the daemon's socket {socket}")]
    SocketPermissionDenied {
        /// The socket.
        socket: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// `a backup`, `an encryption change`: the subject of [`ExpectedError::Busy`].
fn kind_words(kind: backupd_api::JobKind) -> &'static str {
    match kind {
        backupd_api::JobKind::Backup => "a backup",
        backupd_api::JobKind::Encryption => "an encryption change",
        _ => "a job",
    }
}

/// ` (job N)` when the id is known.
fn job_words(job: Option<u64>) -> String {
    job.map(|id| format!(" (job {id})")).unwrap_or_default()
}

impl ExpectedError {
    /// Classifies a failure to connect to the socket: permission denied is the group's business, anything
    /// else (no such file, connection refused) means no daemon listens there.
    pub fn connect(socket: PathBuf, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::PermissionDenied => Self::SocketPermissionDenied { socket, source },
            _ => Self::DaemonUnreachable { socket, source },
        }
    }

    /// The exit code ([`backupd_api::exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::DaemonUnreachable { .. } | Self::SocketPermissionDenied { .. } => {
                exit::DAEMON_UNREACHABLE
            }
            Self::DeviceNotFound { .. }
            | Self::DeviceNotConnected { .. }
            | Self::NoJobRunning { .. }
            | Self::NoEncryptedBackup { .. } => exit::NOT_FOUND,
            Self::WrongPassword { .. } => exit::WRONG_PASSWORD,
            Self::NoPhoneConnected => exit::NOT_READY,
            Self::WhichPhone { .. } | Self::Password(_) => exit::USAGE,
            Self::Busy { .. } => exit::BUSY,
            // No code of its own: neither a result nor a usage error; 5 says "something failed, not a finding".
            Self::DaemonAnswer { .. }
            | Self::DaemonGarbled { .. }
            | Self::DaemonHttp { .. }
            | Self::DaemonSilent { .. }
            | Self::Output(_)
            | Self::Runtime(_) => exit::DAEMON_ERROR,
        }
    }

    /// Writes the error, its causes and what to do, as `error: …` lines for stderr.
    pub fn render(&self, w: &mut impl Write) -> io::Result<()> {
        writeln!(w, "error: {self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            writeln!(w, "  caused by: {cause}")?;
            source = cause.source();
        }
        match self {
            Self::DaemonUnreachable { .. } => {
                writeln!(
                    w,
                    "  The daemon is not running, or it listens on another socket. Start it:"
                )?;
                writeln!(w, "    Linux (systemd):  sudo systemctl start backupd")?;
                writeln!(
                    w,
                    "    macOS (launchd):  sudo launchctl load -w /Library/LaunchDaemons/org.backupd.backupd.plist"
                )?;
                writeln!(w, "    by hand:          backupd --socket PATH")?;
                writeln!(
                    w,
                    "  If it listens elsewhere, say where with --socket PATH or {}=PATH.",
                    backupd_api::SOCKET_ENV
                )?;
            }
            Self::SocketPermissionDenied { .. } => {
                writeln!(
                    w,
                    "  You are not in the group that may use the daemon's socket (default `backupd`):"
                )?;
                writeln!(w, "    Linux:  sudo usermod -aG backupd $USER")?;
                writeln!(
                    w,
                    "    macOS:  sudo dseditgroup -o edit -a $USER -t user backupd"
                )?;
                writeln!(w, "  then log in again.")?;
            }
            Self::DeviceNotFound { .. } => {
                writeln!(
                    w,
                    "  `backupdctl status` lists the connected phones; `backupdctl status --json` every phone the daemon knows."
                )?;
            }
            Self::DeviceNotConnected { .. } => {
                writeln!(
                    w,
                    "  Plug it in by USB and unlock it; `backupdctl status` lists the connected phones."
                )?;
            }
            Self::NoPhoneConnected => {
                writeln!(
                    w,
                    "  Plug one in by USB, unlock it and tap Trust; `backupdctl status` shows what the daemon sees."
                )?;
            }
            Self::WhichPhone { phones, command } => {
                for phone in phones {
                    writeln!(w, "    {phone}")?;
                }
                if let Some(first) = phones.first().and_then(|p| p.split_whitespace().next()) {
                    writeln!(w, "  e.g. backupdctl {command} {first}")?;
                }
            }
            Self::Busy { udid, kind, .. } => match kind {
                backupd_api::JobKind::Backup => {
                    writeln!(
                        w,
                        "  `backupdctl backup --wait {udid}` follows it; `backupdctl backup --cancel {udid}` stops it."
                    )?;
                }
                _ => {
                    writeln!(
                        w,
                        "  Wait until it ends (`backupdctl watch` shows it), then try again."
                    )?;
                }
            },
            Self::NoJobRunning { udid } => {
                writeln!(
                    w,
                    "  `backupdctl backups {udid}` lists its local backups; `backupdctl backup {udid}` starts one."
                )?;
            }
            Self::WrongPassword { .. } => {
                writeln!(
                    w,
                    "  Nothing was changed. Try again with the password you chose when you turned on \"Encrypt local backup\"."
                )?;
                writeln!(
                    w,
                    "  A forgotten password cannot be recovered: on the iPhone, Settings › General › Transfer or Reset iPhone › Reset › Reset All Settings removes it; then make a new backup."
                )?;
            }
            Self::NoEncryptedBackup { udid } => {
                writeln!(
                    w,
                    "  `backupdctl backups {udid}` lists its local backups; only an encrypted one has a password to check."
                )?;
            }
            Self::Password(refusal) => {
                if let Some(hint) = refusal.hint() {
                    writeln!(w, "  {hint}")?;
                }
            }
            Self::DaemonGarbled { .. } => {
                writeln!(
                    w,
                    "  Is this backupdctl older than the daemon? Both come from the same release."
                )?;
            }
            Self::DaemonAnswer { .. } | Self::DaemonHttp { .. } | Self::DaemonSilent { .. } => {
                writeln!(
                    w,
                    "  The daemon's log says why (on Linux with the shipped unit: journalctl -u backupd)."
                )?;
            }
            Self::Output(_) | Self::Runtime(_) => {}
        }
        Ok(())
    }

    /// Renders the error to `err` and returns its exit code.
    pub(crate) fn report(&self, err: &mut impl Write) -> i32 {
        // Nothing is left to tell the user if stderr itself fails.
        let _ = self.render(err);
        self.exit_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(e: &ExpectedError) -> String {
        let mut buf = Vec::new();
        e.render(&mut buf).expect("render to a Vec");
        String::from_utf8(buf).expect("utf-8")
    }

    #[test]
    fn permission_denied_names_the_group() {
        let e = ExpectedError::connect(
            "/run/backupd/backupd.sock".into(),
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(matches!(e, ExpectedError::SocketPermissionDenied { .. }));
        assert_eq!(e.exit_code(), exit::DAEMON_UNREACHABLE);
        let text = rendered(&e);
        assert!(text.starts_with(
            "error: permission denied on the daemon's socket /run/backupd/backupd.sock\n"
        ));
        assert!(text.contains(
            "You are not in the group that may use the daemon's socket (default `backupd`)"
        ));
        assert!(text.contains("sudo usermod -aG backupd $USER"));
        assert!(text.contains("then log in again"));
    }

    #[test]
    fn busy_names_the_job_and_how_to_follow_it() {
        let e = ExpectedError::Busy {
            udid: "00008110-001A2B3C4D5E6F01".into(),
            kind: backupd_api::JobKind::Backup,
            job: Some(12),
        };
        let text = rendered(&e);
        assert!(text.starts_with("error: a backup of this iPhone is already running (job 12)\n"));
        assert!(text.contains("backupdctl backup --wait 00008110-001A2B3C4D5E6F01"));
        let e = ExpectedError::Busy {
            udid: "A".into(),
            kind: backupd_api::JobKind::Encryption,
            job: None,
        };
        assert!(
            rendered(&e)
                .starts_with("error: an encryption change of this iPhone is already running\n")
        );
    }

    #[test]
    fn several_phones_are_listed_with_an_example() {
        let e = ExpectedError::WhichPhone {
            phones: vec!["AAAA (one)".into(), "BBBB (two)".into()],
            command: "backup --wait".into(),
        };
        assert_eq!(
            rendered(&e),
            "error: 2 iPhones are connected: say which one\n    AAAA (one)\n    BBBB (two)\n  e.g. backupdctl backup --wait AAAA\n"
        );
    }

    #[test]
    fn missing_or_refused_sockets_are_unreachable() {
        for kind in [io::ErrorKind::NotFound, io::ErrorKind::ConnectionRefused] {
            let e = ExpectedError::connect("/x.sock".into(), io::Error::from(kind));
            assert!(matches!(e, ExpectedError::DaemonUnreachable { .. }));
            assert_eq!(e.exit_code(), exit::DAEMON_UNREACHABLE);
            let text = rendered(&e);
            assert!(text.contains("systemctl start backupd"));
            assert!(text.contains("--socket PATH or BACKUPD_SOCKET=PATH"));
        }
    }

    #[test]
    fn every_error_has_its_code() {
        let io = || io::Error::other("x");
        let cases = [
            (
                ExpectedError::DeviceNotFound { udid: "A".into() },
                exit::NOT_FOUND,
            ),
            (
                ExpectedError::DeviceNotConnected {
                    udid: "A".into(),
                    consequence: "it cannot be backed up",
                },
                exit::NOT_FOUND,
            ),
            (ExpectedError::NoPhoneConnected, exit::NOT_READY),
            (
                ExpectedError::WhichPhone {
                    phones: vec!["A (one)".into(), "B (two)".into()],
                    command: "backup".into(),
                },
                exit::USAGE,
            ),
            (
                ExpectedError::Busy {
                    udid: "A".into(),
                    kind: backupd_api::JobKind::Backup,
                    job: Some(3),
                },
                exit::BUSY,
            ),
            (
                ExpectedError::NoJobRunning { udid: "A".into() },
                exit::NOT_FOUND,
            ),
            (
                ExpectedError::Password(crate::password::Refusal::Mismatch),
                exit::USAGE,
            ),
            (
                ExpectedError::DaemonAnswer {
                    what: "GET /v1/devices".into(),
                    status: 500,
                    code: "internal".into(),
                    message: "boom".into(),
                },
                exit::DAEMON_ERROR,
            ),
            (
                ExpectedError::DaemonSilent {
                    socket: "/x".into(),
                    secs: 30,
                },
                exit::DAEMON_ERROR,
            ),
            (ExpectedError::Output(io()), exit::DAEMON_ERROR),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e}");
            assert!(rendered(&e).starts_with("error: "));
        }
    }
}

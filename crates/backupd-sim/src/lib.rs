//! A simulated iPhone behind a simulated usbmuxd, speaking the real wire protocols.
//!
//! `backupd-sim` is a development tool and a dev-dependency, never a dependency of a shipped crate. It serves
//! the usbmuxd socket protocol for one or more phones described by TOML profiles (see `docs/simulator.md`);
//! each phone runs lockdownd with real pairing (its own RSA key, a Trust dialog a profile or a control command
//! answers), TLS sessions, and the diagnostics_relay, installation_proxy and notification_proxy services.
//! Real clients (libimobiledevice's tools, pymobiledevice3) accept it; that is what keeps our own client
//! honest.

pub mod backup;
pub mod muxd;
pub mod phone;
pub mod profile;
pub mod wire;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use muxd::Muxd;
pub use phone::{Phone, TrustAnswer};
pub use profile::Profile;

use wire::SimStream;

/// Where and what the simulator serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The usbmuxd Unix socket to create.
    pub socket: PathBuf,
    /// Also serve the muxer on this TCP address (loopback only).
    pub tcp: Option<SocketAddr>,
    /// The control socket; see [`control`].
    pub control: Option<PathBuf>,
    /// Where pair records, the BUID and the phones' keys are kept.
    pub state_dir: PathBuf,
    /// The phones.
    pub profiles: Vec<Profile>,
}

/// A running simulator.
#[derive(Debug)]
pub struct Simulator {
    muxd: Arc<Muxd>,
    tasks: JoinSet<()>,
    clients: TaskTracker,
    cancel: CancellationToken,
    tcp_addr: Option<SocketAddr>,
    socket: PathBuf,
    control: Option<PathBuf>,
}

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A socket or directory could not be set up.
    #[error("failed to set up {what}")]
    Io {
        /// What.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A phone could not be built.
    #[error(transparent)]
    Phone(#[from] phone::PhoneError),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SimError {
    let what = what.into();
    move |source| SimError::Io { what, source }
}

fn bind_unix(path: &Path) -> Result<UnixListener, SimError> {
    // A stale socket from an earlier run would make bind fail; a live one we must not steal.
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(SimError::Io {
                what: format!(
                    "socket {} (already served by another process)",
                    path.display()
                ),
                source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
            });
        }
        let _ = std::fs::remove_file(path);
    }
    let listener =
        UnixListener::bind(path).map_err(io_err(format!("socket {}", path.display())))?;
    // usbmuxd's socket is world-accessible; the simulator's lives in a private folder of the caller's.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666));
    Ok(listener)
}

impl Simulator {
    /// Starts serving; must be called inside a tokio runtime.
    pub async fn start(config: Config) -> Result<Self, SimError> {
        let mut phones = Vec::new();
        for profile in config.profiles {
            let dir =
                config
                    .state_dir
                    .join("devices")
                    .join(backupd_proto::usbmuxd::normalize_udid(
                        &profile.identity.udid,
                    ));
            phones.push(Phone::new(profile, Some(dir))?);
        }
        let muxd = Muxd::new(phones, config.state_dir.join("lockdown"))
            .map_err(io_err("pair-record folder"))?;
        let mut tasks = JoinSet::new();
        let clients = TaskTracker::new();
        let cancel = CancellationToken::new();
        // Every client connection is tracked, so that stopping the simulator closes them all, as a dying
        // usbmuxd does.
        let serve = {
            let clients = clients.clone();
            let cancel = cancel.clone();
            move |m: Arc<Muxd>, s: SimStream| {
                let cancel = cancel.clone();
                clients.spawn(async move {
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = m.serve_client(s) => {}
                    }
                });
            }
        };
        let unix = bind_unix(&config.socket)?;
        let m = muxd.clone();
        let serve_unix = serve.clone();
        tasks.spawn(async move {
            loop {
                match unix.accept().await {
                    Ok((s, _)) => serve_unix(m.clone(), SimStream::Unix(s)),
                    Err(e) => tracing::warn!(error = %e, "accept failed"),
                }
            }
        });
        let mut tcp_addr = None;
        if let Some(addr) = config.tcp {
            let tcp = TcpListener::bind(addr)
                .await
                .map_err(io_err(format!("tcp {addr}")))?;
            tcp_addr = tcp.local_addr().ok();
            let m = muxd.clone();
            tasks.spawn(async move {
                loop {
                    match tcp.accept().await {
                        Ok((s, _)) => {
                            let _ = s.set_nodelay(true);
                            serve(m.clone(), SimStream::Tcp(s));
                        }
                        Err(e) => tracing::warn!(error = %e, "accept failed"),
                    }
                }
            });
        }
        if let Some(path) = &config.control {
            let listener = bind_unix(path)?;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            let m = muxd.clone();
            tasks.spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    tokio::spawn(control::serve(m.clone(), s));
                }
            });
        }
        Ok(Self {
            muxd,
            tasks,
            clients,
            cancel,
            tcp_addr,
            socket: config.socket,
            control: config.control,
        })
    }

    /// The muxer, to attach, detach and script phones from tests.
    pub fn muxd(&self) -> &Arc<Muxd> {
        &self.muxd
    }

    /// The TCP address actually bound, when one was asked for.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// Stops serving and removes the sockets.
    pub async fn shutdown(mut self) {
        self.tasks.shutdown().await;
        self.cancel.cancel();
        self.clients.close();
        self.clients.wait().await;
        let _ = std::fs::remove_file(&self.socket);
        if let Some(c) = &self.control {
            let _ = std::fs::remove_file(c);
        }
    }
}

/// The control protocol: one command per line, one answer line (`ok …` or `error: …`).
///
/// Commands: `list`; `attach UDID`; `detach UDID`; `trust UDID` / `distrust UDID` (answer the Trust dialog);
/// `lock UDID` / `unlock UDID`; `reset-trust UDID` (the phone forgets every host); `notify UDID NAME` (the
/// phone posts a notification); `enter-passcode UDID` (answer the backup passcode prompt); `touch UDID DOMAIN
/// PATH` (a file of the backup set changes); `backup-report UDID` (what the last backup did).
pub mod control {
    use super::*;

    /// Runs one command against the muxer and gives the answer line.
    pub fn run(muxd: &Muxd, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let phone = |udid: &str| {
            muxd.phone(udid)
                .ok_or_else(|| format!("error: no phone {udid}"))
        };
        let result: Result<String, String> = match words.as_slice() {
            ["list"] => Ok(muxd
                .phones()
                .iter()
                .map(|(p, id)| match id {
                    Some(id) => format!("{} attached {id}", p.udid()),
                    None => format!("{} detached", p.udid()),
                })
                .collect::<Vec<_>>()
                .join("; ")),
            ["attach", udid] => {
                if muxd.attach(udid) {
                    Ok(String::new())
                } else {
                    Err(format!("error: {udid} unknown or already attached"))
                }
            }
            ["detach", udid] => {
                if muxd.detach(udid) {
                    Ok(String::new())
                } else {
                    Err(format!("error: {udid} unknown or not attached"))
                }
            }
            ["trust", udid] => phone(udid)
                .map(|p| p.answer_trust(TrustAnswer::Trust))
                .map(|_| String::new()),
            ["distrust", udid] => phone(udid)
                .map(|p| p.answer_trust(TrustAnswer::DontTrust))
                .map(|_| String::new()),
            ["lock", udid] => phone(udid)
                .map(|p| p.set_locked(true))
                .map(|_| String::new()),
            ["unlock", udid] => phone(udid)
                .map(|p| p.set_locked(false))
                .map(|_| String::new()),
            ["reset-trust", udid] => phone(udid).map(|p| p.reset_trust()).map(|_| String::new()),
            ["notify", udid, name] => phone(udid)
                .map(|p| p.post_notification(name))
                .map(|_| String::new()),
            ["enter-passcode", udid] => phone(udid)
                .map(|p| p.backup().enter_passcode())
                .map(|_| String::new()),
            ["touch", udid, domain, path] => phone(udid).and_then(|p| {
                p.backup()
                    .touch(domain, path)
                    .map(|g| format!("generation {g}"))
                    .map_err(|e| format!("error: {e}"))
            }),
            ["backup-report", udid] => phone(udid).map(|p| match p.backup().last_report() {
                None => "no backup yet".to_owned(),
                Some(r) => format!(
                    "{} error {} uploaded {} files {} bytes removed {}",
                    if r.full { "full" } else { "incremental" },
                    r.error_code,
                    r.uploaded.len(),
                    r.uploaded_bytes,
                    r.removed.len()
                ),
            }),
            _ => Err(format!("error: unknown command {line:?}")),
        };
        match result {
            Ok(s) if s.is_empty() => "ok".into(),
            Ok(s) => format!("ok {s}"),
            Err(e) => e,
        }
    }

    pub(crate) async fn serve(muxd: Arc<Muxd>, stream: UnixStream) {
        let (r, mut w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let answer = run(&muxd, &line);
            if w.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

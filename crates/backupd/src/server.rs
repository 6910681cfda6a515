//! The HTTP/1.1 API on the Unix socket (`docs/api.md`).

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request as HttpRequest, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};

use hyper_util::rt::TokioTimer;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, oneshot};
use tokio_stream::Stream;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use backupd_api::route::{self, Route, RouteError};
use backupd_api::{self as api, ErrorBody, ErrorDetail};

use crate::jobs;
use crate::supervisor::{Handles, Request, StartError};

type Body = BoxBody<Bytes, Infallible>;

/// Errors setting up the socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// Another daemon answers on the socket.
    #[error("another daemon is already listening on {0}")]
    InUse(String),
    /// The socket could not be created.
    #[error("failed to create the API socket {path}")]
    Bind {
        /// The socket.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Creates the API socket with mode 0660 and, when it exists, the configured group.
///
/// A stale socket file from a crashed daemon is replaced; a live one is not. When the group does not exist
/// the socket keeps the daemon's own group and a warning says so.
pub fn bind(path: &Path, group: Option<&str>) -> Result<UnixListener, SocketError> {
    let shown = path.display().to_string();
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(SocketError::InUse(shown));
        }
        let _ = std::fs::remove_file(path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| SocketError::Bind {
            path: shown.clone(),
            source,
        })?;
    }
    // Create the socket with no access for others from the first instant, then open it to the group.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(|source| SocketError::Bind {
        path: shown.clone(),
        source,
    })?;
    if let Some(name) = group {
        match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => {
                if let Err(e) = std::os::unix::fs::chown(path, None, Some(g.gid.as_raw())) {
                    tracing::warn!(group = name, error = %e, "cannot give the socket to the group; keeping the daemon's own");
                }
            }
            _ => tracing::warn!(
                group = name,
                socket = shown,
                "group does not exist; the socket keeps the daemon's own group"
            ),
        }
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|source| {
        SocketError::Bind {
            path: shown,
            source,
        }
    })?;
    Ok(listener)
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut body = bytes;
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response<Body> {
    json(
        status,
        &ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        },
    )
}

async fn ask<T>(handles: &Handles, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    handles.requests.send(make(tx)).await.ok()?;
    rx.await.ok()
}

/// The NDJSON event stream of one subscriber; it ends when the daemon stops.
struct EventStream {
    events: BroadcastStream<api::Event>,
    stop: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    /// This subscriber's place among the bounded number of them; freed when the stream is dropped.
    _permit: OwnedSemaphorePermit,
}

impl Stream for EventStream {
    type Item = Result<Frame<Bytes>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        loop {
            return match Pin::new(&mut self.events).poll_next(cx) {
                Poll::Ready(Some(Ok(event))) => {
                    let mut line = serde_json::to_vec(&event).unwrap_or_default();
                    line.push(b'\n');
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(line)))))
                }
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(n)))) => {
                    tracing::warn!(missed = n, "an event subscriber fell behind");
                    continue;
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

fn events_body(
    rx: broadcast::Receiver<api::Event>,
    cancel: CancellationToken,
    permit: OwnedSemaphorePermit,
) -> Body {
    let stream = EventStream {
        events: BroadcastStream::new(rx),
        stop: Box::pin(cancel.cancelled_owned()),
        _permit: permit,
    };
    StreamBody::new(stream).boxed()
}

/// Who is on the other end of a connection, from the socket's peer credentials.
#[derive(Debug, Clone, Copy, Default)]
struct Peer {
    uid: Option<u32>,
    gid: Option<u32>,
    pid: Option<i32>,
}

async fn route(
    handles: Handles,
    req: HttpRequest<Incoming>,
    peer: Peer,
    streams: Arc<Semaphore>,
    limits: Limits,
    cancel: CancellationToken,
) -> Response<Body> {
    let path = req.uri().path();
    let parsed = route::parse(req.method().as_str(), path);
    match &parsed {
        Ok(r) if r.mutates() => tracing::info!(
            uid = peer.uid,
            gid = peer.gid,
            pid = peer.pid,
            method = %req.method(),
            path = %path,
            "request"
        ),
        // A refused path is logged with who sent it, but cut short: it is the caller's text.
        Err(e) => tracing::info!(
            uid = peer.uid,
            gid = peer.gid,
            pid = peer.pid,
            method = %req.method(),
            error = %e,
            "request refused"
        ),
        Ok(_) => tracing::debug!(uid = peer.uid, path = %path, "request"),
    }
    let parsed = match parsed {
        Ok(r) => r,
        Err(e @ RouteError::BadId(_)) => {
            return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string());
        }
        Err(e @ RouteError::TooLong) => {
            return error(StatusCode::URI_TOO_LONG, "bad_request", e.to_string());
        }
        Err(e @ RouteError::MethodNotAllowed) => {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                e.to_string(),
            );
        }
        Err(e) => return error(StatusCode::NOT_FOUND, "not_found", e.to_string()),
    };
    let unavailable = || {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            "the daemon is stopping",
        )
    };
    match parsed {
        Route::Devices => match ask(&handles, Request::Status).await {
            Some(status) => json(StatusCode::OK, &status),
            None => unavailable(),
        },
        Route::Info => json(
            StatusCode::OK,
            &api::DaemonInfo {
                version: env!("CARGO_PKG_VERSION").into(),
                api: "v1".into(),
                lang: handles.lang.as_str().into(),
            },
        ),
        Route::Metrics => crate::metrics::respond(&handles).await,
        Route::Events => {
            // Each subscriber holds a connection for as long as it likes: their number is bounded apart.
            let Ok(permit) = streams.try_acquire_owned() else {
                tracing::warn!(
                    limit = limits.max_event_streams,
                    uid = peer.uid,
                    "too many event subscribers; refusing one more"
                );
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    format!(
                        "too many event subscribers (at most {})",
                        limits.max_event_streams
                    ),
                );
            };
            Response::builder()
                .header("content-type", "application/x-ndjson")
                .body(events_body(handles.events.subscribe(), cancel, permit))
                .unwrap_or_else(|_| unavailable())
        }
        Route::DiagnoseAll => match ask(&handles, |tx| Request::Diagnose(None, tx)).await {
            Some(Some(accepted)) => json(StatusCode::ACCEPTED, &accepted),
            Some(None) | None => unavailable(),
        },
        Route::Device(udid) => match ask(&handles, |tx| Request::Device(udid.clone(), tx)).await {
            Some(Some(device)) => json(StatusCode::OK, &device),
            Some(None) => error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no phone {udid}"),
            ),
            None => unavailable(),
        },
        Route::DeviceDiagnose(udid) => {
            match ask(&handles, |tx| Request::Diagnose(Some(udid.clone()), tx)).await {
                Some(Some(accepted)) => json(StatusCode::ACCEPTED, &accepted),
                Some(None) => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no attached phone {udid}"),
                ),
                None => unavailable(),
            }
        }
        Route::DeviceBackup(udid) => {
            let start: api::BackupStart =
                match read_json(req, Some(api::BackupStart::default()), limits.max_body).await {
                    Ok(b) => b,
                    Err(r) => return r,
                };
            if start.password.as_deref() == Some("") {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the backup password cannot be empty",
                );
            }
            let work = jobs::Work::Backup {
                full: start.full,
                password: start.password.map(backupd_backup::encrypted::Password::new),
            };
            start_job(&handles, &udid, work).await
        }
        Route::DeviceCheckPassword(udid) => {
            let body: api::PasswordCheck = match read_json(req, None, limits.max_body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let known = ask(&handles, |tx| Request::Device(udid.clone(), tx))
                .await
                .flatten();
            let udid = known.map(|d| d.udid).unwrap_or(udid);
            let dir = handles.backup_dir.clone();
            let password = backupd_backup::encrypted::Password::new(body.password);
            let now = crate::supervisor::unix_now();
            let who = udid.clone();
            // One key derivation takes seconds: a blocking thread, not the supervisor.
            let checked = tokio::task::spawn_blocking(move || {
                crate::password::check(dir, who, password, now)
            })
            .await;
            match checked {
                Ok(Ok(result)) => {
                    // The finding about encryption says when the password was checked.
                    let _ = ask(&handles, |tx| Request::Diagnose(Some(udid), tx)).await;
                    json(StatusCode::OK, &result)
                }
                Ok(Err(e @ crate::password::CheckError::NoEncryptedBackup(_))) => {
                    error(StatusCode::NOT_FOUND, "no_encrypted_backup", e.to_string())
                }
                Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
                Err(_) => unavailable(),
            }
        }
        Route::DeviceEncryption(udid) => {
            let change: api::EncryptionChange = match read_json(req, None, limits.max_body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let missing = match change.action {
                api::EncryptionAction::On => change.new_password.is_none(),
                api::EncryptionAction::Off => change.old_password.is_none(),
                api::EncryptionAction::Change => {
                    change.old_password.is_none() || change.new_password.is_none()
                }
            };
            let empty = [&change.old_password, &change.new_password]
                .iter()
                .any(|p| p.as_deref() == Some(""));
            if missing || empty {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "this action needs its password(s), and a password cannot be empty",
                );
            }
            start_job(&handles, &udid, jobs::Work::Encryption(change)).await
        }
        Route::DeviceBackups(udid) => {
            // The folder is named by the UDID as usbmuxd spells it; the daemon's records know it.
            let known = ask(&handles, |tx| Request::Device(udid.clone(), tx))
                .await
                .flatten();
            let udid = known.map(|d| d.udid).unwrap_or(udid);
            // Sizing every kept version walks every file: a blocking thread, not the supervisor.
            let dir = handles.backup_dir.clone();
            match tokio::task::spawn_blocking(move || backup_list(&dir, udid)).await {
                Ok(list) => json(StatusCode::OK, &list),
                Err(_) => unavailable(),
            }
        }
        Route::DeviceInspect(udid) => {
            let body: api::InspectRequest =
                match read_json(req, Some(api::InspectRequest::default()), limits.max_body).await {
                    Ok(b) => b,
                    Err(r) => return r,
                };
            let known = ask(&handles, |tx| Request::Device(udid.clone(), tx))
                .await
                .flatten();
            let udid = known.map(|d| d.udid).unwrap_or(udid);
            let dir = handles.backup_dir.clone();
            let who = udid.clone();
            // The password lives only in this closure: never logged, never stored.
            let found = tokio::task::spawn_blocking(move || {
                crate::host::inspect(&dir, &who, body.password.as_deref())
            })
            .await;
            match found {
                Ok(Ok((backup_date, whatsapp))) => {
                    // A connected phone is diagnosed again with what was found; an unplugged one keeps it for later.
                    let _ = ask(&handles, |tx| Request::Diagnose(Some(udid.clone()), tx)).await;
                    json(
                        StatusCode::OK,
                        &api::Inspection {
                            udid,
                            backup_date,
                            whatsapp,
                        },
                    )
                }
                Ok(Err(e)) => error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unreadable",
                    e.to_string(),
                ),
                Err(_) => unavailable(),
            }
        }
        Route::Jobs => match ask(&handles, Request::Jobs).await {
            Some(jobs) => json(StatusCode::OK, &jobs),
            None => unavailable(),
        },
        Route::Job(id) | Route::JobCancel(id) => {
            let cancel_it = matches!(parsed, Route::JobCancel(_));
            let answer = if cancel_it {
                ask(&handles, |tx| Request::CancelJob(id, tx)).await
            } else {
                ask(&handles, |tx| Request::Job(id, tx)).await
            };
            match answer {
                Some(Some(job)) if cancel_it && job.state == api::JobState::Running => {
                    json(StatusCode::ACCEPTED, &job)
                }
                Some(Some(job)) => json(StatusCode::OK, &job),
                Some(None) => error(StatusCode::NOT_FOUND, "not_found", format!("no job {id}")),
                None => unavailable(),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such path"),
    }
}

/// The local backups of a phone, newest first.
fn backup_list(backup_dir: &Path, udid: String) -> api::BackupList {
    let store = backupd_backup::store::Store::new(backup_dir);
    let newest_method = store
        .verification(&udid)
        .map(|r| crate::jobs::method_name(r.method));
    let password_checked_at = store.newest(&udid).and_then(|n| n.password_checked);
    let backups = store
        .list(&udid)
        .into_iter()
        .map(|b| {
            let current = b.name == "current";
            api::BackupEntry {
                name: b.name,
                path: b.path.display().to_string(),
                date: b.date,
                size: b.size,
                ios_version: b.ios_version,
                encrypted: b.encrypted,
                verified: b.verified,
                verify_method: (current && b.verified)
                    .then(|| newest_method.clone())
                    .flatten(),
                password_checked_at: current.then_some(password_checked_at).flatten(),
            }
        })
        .collect();
    api::BackupList { udid, backups }
}

/// Reads a JSON body (an empty one gives the default when `empty_ok`), or the error answer to send.
async fn read_json<T: serde::de::DeserializeOwned>(
    req: HttpRequest<Incoming>,
    when_empty: Option<T>,
    max_body: usize,
) -> Result<T, Response<Body>> {
    let limited = http_body_util::Limited::new(req.into_body(), max_body);
    let bytes = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "bad_request",
                "the request body is too large",
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace)
        && let Some(default) = when_empty
    {
        return Ok(default);
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("invalid JSON body: {e}"),
        )
    })
}

async fn start_job(handles: &Handles, udid: &str, work: jobs::Work) -> Response<Body> {
    match ask(handles, |tx| Request::StartJob(udid.to_owned(), work, tx)).await {
        Some(Ok(job)) => json(StatusCode::ACCEPTED, &job),
        Some(Err(StartError::NotAttached)) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no attached phone {udid}"),
        ),
        Some(Err(StartError::Busy(id))) => error(
            StatusCode::CONFLICT,
            "busy",
            format!("the phone already has job {id} running"),
        ),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            "the daemon is stopping",
        ),
    }
}

/// The bounds on what clients of the socket may take: a local user in the socket's group cannot grow the
/// daemon's memory or stall it by opening connections, sending large or slow requests, or not reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Connections served at once; the next one waits in the socket's backlog until one ends.
    pub max_connections: usize,
    /// Event streams open at once (each holds a connection for as long as its client likes); more get 503.
    pub max_event_streams: usize,
    /// How long a connection may take to send a request's headers, and how long it may sit idle between
    /// requests, before it is closed.
    pub idle: Duration,
    /// The largest request head (request line and headers), in bytes; more gets 431.
    pub max_header_bytes: usize,
    /// The most header fields in a request; more gets 431.
    pub max_headers: usize,
    /// The largest request body, in bytes (requests are small JSON objects); more gets 413.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_event_streams: 64,
            idle: Duration::from_secs(30),
            max_header_bytes: 16 << 10,
            max_headers: 32,
            max_body: 64 << 10,
        }
    }
}

/// Serves the API until `cancel` fires, within [`Limits::default`]; connections in flight are tracked by
/// `tracker`.
pub async fn serve(
    listener: UnixListener,
    handles: Handles,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    serve_with(listener, handles, Limits::default(), cancel, tracker).await;
}

/// Serves the API until `cancel` fires, within `limits`.
pub async fn serve_with(
    listener: UnixListener,
    handles: Handles,
    limits: Limits,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let streams = Arc::new(Semaphore::new(limits.max_event_streams));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.idle)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    let mut full_logged = false;
    loop {
        // Take a place before accepting: when every place is taken, clients wait in the backlog instead
        // of costing a task each.
        let permit = match connections.clone().try_acquire_owned() {
            Ok(p) => {
                full_logged = false;
                p
            }
            Err(_) => {
                if !full_logged {
                    tracing::warn!(
                        limit = limits.max_connections,
                        "every API connection is in use; new ones wait"
                    );
                    full_logged = true;
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    p = connections.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                }
            }
        };
        let stream: UnixStream = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    // Out of file descriptors is the likely cause: give the others time to end.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let peer = stream
            .peer_cred()
            .map(|c| Peer {
                uid: Some(c.uid()),
                gid: Some(c.gid()),
                pid: c.pid(),
            })
            .unwrap_or_default();
        let handles = handles.clone();
        let cancel = cancel.clone();
        let route_cancel = cancel.clone();
        let streams = streams.clone();
        let http = http.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let handles = handles.clone();
                let cancel = route_cancel.clone();
                let streams = streams.clone();
                async move {
                    Ok::<_, Infallible>(route(handles, req, peer, streams, limits, cancel).await)
                }
            });
            let conn = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r { tracing::debug!(error = %e, "API connection ended") },
                () = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}

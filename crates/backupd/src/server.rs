//! The HTTP/1.1 API on the Unix socket (`docs/api.md`).

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request as HttpRequest, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, oneshot};
use tokio_stream::Stream;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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

fn events_body(rx: broadcast::Receiver<api::Event>, cancel: CancellationToken) -> Body {
    let stream = EventStream {
        events: BroadcastStream::new(rx),
        stop: Box::pin(cancel.cancelled_owned()),
    };
    StreamBody::new(stream).boxed()
}

async fn route(
    handles: Handles,
    req: HttpRequest<Incoming>,
    uid: Option<u32>,
    cancel: CancellationToken,
) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().clone();
    if method == Method::POST {
        tracing::info!(uid, %path, "request");
    } else {
        tracing::debug!(uid, %path, "request");
    }
    let unavailable = || {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            "the daemon is stopping",
        )
    };
    match (method, path.as_str()) {
        (Method::GET, api::PATH_DEVICES) => match ask(&handles, Request::Status).await {
            Some(status) => json(StatusCode::OK, &status),
            None => unavailable(),
        },
        (Method::GET, api::PATH_INFO) => json(
            StatusCode::OK,
            &api::DaemonInfo {
                version: env!("CARGO_PKG_VERSION").into(),
                api: "v1".into(),
                lang: handles.lang.as_str().into(),
            },
        ),
        (Method::GET, api::PATH_EVENTS) => Response::builder()
            .header("content-type", "application/x-ndjson")
            .body(events_body(handles.events.subscribe(), cancel))
            .unwrap_or_else(|_| unavailable()),
        (Method::POST, api::PATH_DIAGNOSE_ALL) => {
            match ask(&handles, |tx| Request::Diagnose(None, tx)).await {
                Some(Some(accepted)) => json(StatusCode::ACCEPTED, &accepted),
                Some(None) | None => unavailable(),
            }
        }
        (m, p) if p.starts_with(api::PATH_DEVICE_PREFIX) => {
            let rest = &p[api::PATH_DEVICE_PREFIX.len()..];
            match (m, rest.split_once('/')) {
                (Method::GET, None) => {
                    match ask(&handles, |tx| Request::Device(rest.to_owned(), tx)).await {
                        Some(Some(device)) => json(StatusCode::OK, &device),
                        Some(None) => error(
                            StatusCode::NOT_FOUND,
                            "not_found",
                            format!("no phone {rest}"),
                        ),
                        None => unavailable(),
                    }
                }
                (Method::POST, Some((udid, "diagnose"))) => {
                    match ask(&handles, |tx| Request::Diagnose(Some(udid.to_owned()), tx)).await {
                        Some(Some(accepted)) => json(StatusCode::ACCEPTED, &accepted),
                        Some(None) => error(
                            StatusCode::NOT_FOUND,
                            "not_found",
                            format!("no attached phone {udid}"),
                        ),
                        None => unavailable(),
                    }
                }
                (Method::POST, Some((udid, api::DEVICE_BACKUP))) => {
                    let start: api::BackupStart =
                        match read_json(req, Some(api::BackupStart::default())).await {
                            Ok(b) => b,
                            Err(r) => return r,
                        };
                    start_job(&handles, udid, jobs::Work::Backup { full: start.full }).await
                }
                (Method::POST, Some((udid, api::DEVICE_ENCRYPTION))) => {
                    let change: api::EncryptionChange = match read_json(req, None).await {
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
                    start_job(&handles, udid, jobs::Work::Encryption(change)).await
                }
                (Method::GET, Some((udid, api::DEVICE_BACKUPS))) => {
                    // The folder is named by the UDID as usbmuxd spells it; the daemon's records know it.
                    let known = ask(&handles, |tx| Request::Device(udid.to_owned(), tx))
                        .await
                        .flatten();
                    let udid = known.map(|d| d.udid).unwrap_or_else(|| udid.to_owned());
                    // Sizing every kept version walks every file: a blocking thread, not the supervisor.
                    let dir = handles.backup_dir.clone();
                    match tokio::task::spawn_blocking(move || backup_list(&dir, udid)).await {
                        Ok(list) => json(StatusCode::OK, &list),
                        Err(_) => unavailable(),
                    }
                }
                (_, None)
                | (
                    _,
                    Some((
                        _,
                        "diagnose"
                        | api::DEVICE_BACKUP
                        | api::DEVICE_BACKUPS
                        | api::DEVICE_ENCRYPTION,
                    )),
                ) => error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "method not allowed here",
                ),
                _ => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no such path {p}"),
                ),
            }
        }
        (Method::GET, api::PATH_JOBS) => match ask(&handles, Request::Jobs).await {
            Some(jobs) => json(StatusCode::OK, &jobs),
            None => unavailable(),
        },
        (m, p) if p.starts_with(api::PATH_JOBS) && p[api::PATH_JOBS.len()..].starts_with('/') => {
            let rest = &p[api::PATH_JOBS.len() + 1..];
            let (id, action) = rest
                .split_once('/')
                .map_or((rest, None), |(i, a)| (i, Some(a)));
            let Ok(id) = id.parse::<u64>() else {
                return error(StatusCode::NOT_FOUND, "not_found", format!("no job {id}"));
            };
            let answer = match (m, action) {
                (Method::GET, None) => ask(&handles, |tx| Request::Job(id, tx)).await,
                (Method::POST, Some("cancel")) => {
                    ask(&handles, |tx| Request::CancelJob(id, tx)).await
                }
                (_, None | Some("cancel")) => {
                    return error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method_not_allowed",
                        "method not allowed here",
                    );
                }
                _ => {
                    return error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        format!("no such path {p}"),
                    );
                }
            };
            match answer {
                Some(Some(job)) if action.is_some() && job.state == api::JobState::Running => {
                    json(StatusCode::ACCEPTED, &job)
                }
                Some(Some(job)) => json(StatusCode::OK, &job),
                Some(None) => error(StatusCode::NOT_FOUND, "not_found", format!("no job {id}")),
                None => unavailable(),
            }
        }
        (
            _,
            api::PATH_DEVICES
            | api::PATH_INFO
            | api::PATH_EVENTS
            | api::PATH_DIAGNOSE_ALL
            | api::PATH_JOBS,
        ) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed here",
        ),
        (_, p) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such path {p}"),
        ),
    }
}

/// The local backups of a phone, newest first.
fn backup_list(backup_dir: &Path, udid: String) -> api::BackupList {
    let store = backupd_backup::store::Store::new(backup_dir);
    let backups = store
        .list(&udid)
        .into_iter()
        .map(|b| api::BackupEntry {
            name: b.name,
            path: b.path.display().to_string(),
            date: b.date,
            size: b.size,
            ios_version: b.ios_version,
            encrypted: b.encrypted,
            verified: b.verified,
        })
        .collect();
    api::BackupList { udid, backups }
}

/// The largest request body accepted: requests are small JSON objects.
const MAX_BODY: usize = 64 << 10;

/// Reads a JSON body (an empty one gives the default when `empty_ok`), or the error answer to send.
async fn read_json<T: serde::de::DeserializeOwned>(
    req: HttpRequest<Incoming>,
    when_empty: Option<T>,
) -> Result<T, Response<Body>> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
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

/// Serves the API until `cancel` fires; connections in flight are tracked by `tracker`.
pub async fn serve(
    listener: UnixListener,
    handles: Handles,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let stream: UnixStream = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let uid = stream.peer_cred().ok().map(|c| c.uid());
        let handles = handles.clone();
        let cancel = cancel.clone();
        let route_cancel = cancel.clone();
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let handles = handles.clone();
                let cancel = route_cancel.clone();
                async move { Ok::<_, Infallible>(route(handles, req, uid, cancel).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r { tracing::debug!(error = %e, "API connection ended") },
                () = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}

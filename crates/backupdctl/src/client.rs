//! HTTP/1.1 on the daemon's Unix socket: one connection per request, and a long-lived one for the event stream.
//!
//! Every connection is driven in the same task as the request that uses it (no spawned tasks), so nothing
//! outlives a command. Bodies are capped before they are collected: the daemon's answers are input like any other.

use std::error::Error as StdError;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use backupd_api::ErrorBody;

use crate::ExpectedError;

/// How long a request may take before the daemon counts as silent.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read; a `Status` with many phones is a few hundred kilobytes.
const MAX_BODY: usize = 16 << 20;
/// The longest event line accepted.
const MAX_EVENT_LINE: usize = 1 << 20;

type Conn = http1::Connection<TokioIo<UnixStream>, Full<Bytes>>;
type BoxError = Box<dyn StdError + Send + Sync>;

/// A client of the daemon on one socket.
#[derive(Debug)]
pub(crate) struct Client {
    socket: PathBuf,
    timeout: Duration,
}

/// An answer: its status and its whole body.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// The body.
    pub(crate) body: Bytes,
}

impl Client {
    /// A client of the daemon listening on `socket`.
    pub(crate) fn new(socket: PathBuf) -> Self {
        Self {
            socket,
            timeout: ANSWER_TIMEOUT,
        }
    }

    fn http(&self, source: impl Into<BoxError>) -> ExpectedError {
        ExpectedError::DaemonHttp {
            socket: self.socket.clone(),
            source: source.into(),
        }
    }

    /// A failure of the connection to the daemon, e.g. an event stream that ended too early.
    pub(crate) fn broken(&self, why: String) -> ExpectedError {
        self.http(why)
    }

    fn silent(&self) -> ExpectedError {
        ExpectedError::DaemonSilent {
            socket: self.socket.clone(),
            secs: self.timeout.as_secs(),
        }
    }

    async fn connect(&self) -> Result<(http1::SendRequest<Full<Bytes>>, Conn), ExpectedError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| ExpectedError::connect(self.socket.clone(), e))?;
        http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.http(e))
    }

    /// A request; `json` is its body, else a POST has an empty one.
    fn request(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
    ) -> Result<Request<Full<Bytes>>, ExpectedError> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, "localhost")
            .header(
                hyper::header::USER_AGENT,
                concat!("backupdctl/", env!("CARGO_PKG_VERSION")),
            );
        let body = match json {
            Some(json) => {
                builder = builder
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .header(hyper::header::CONTENT_LENGTH, json.len());
                json
            }
            None => {
                if method == Method::POST {
                    builder = builder.header(hyper::header::CONTENT_LENGTH, "0");
                }
                Bytes::new()
            }
        };
        builder.body(Full::new(body)).map_err(|e| self.http(e))
    }

    /// Sends one request on a new connection and reads the whole answer, whatever its status.
    pub(crate) async fn send(&self, method: Method, path: &str) -> Result<Answer, ExpectedError> {
        self.exchange(method, path, None).await
    }

    /// `POST path` with `body` as JSON; reads the whole answer, whatever its status.
    ///
    /// The body may hold secrets (backup passwords): it is sent and dropped, never logged or kept.
    pub(crate) async fn post_json<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<Answer, ExpectedError> {
        let json = serde_json::to_vec(body).map_err(|e| self.http(e))?;
        self.exchange(Method::POST, path, Some(Bytes::from(json)))
            .await
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
    ) -> Result<Answer, ExpectedError> {
        let exchange = async {
            let (mut sender, conn) = self.connect().await?;
            let request = self.request(method, path, json)?;
            let work = async move {
                let response = sender.send_request(request).await?;
                let status = response.status();
                let body = Limited::new(response.into_body(), MAX_BODY)
                    .collect()
                    .await?
                    .to_bytes();
                Ok::<_, BoxError>(Answer { status, body })
            };
            drive(conn, work).await.map_err(|e| self.http(e))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.silent())?
    }

    /// `GET path`, expecting success; any other status is the daemon's error.
    pub(crate) async fn get(&self, path: &str) -> Result<Bytes, ExpectedError> {
        let answer = self.send(Method::GET, path).await?;
        success(&format!("GET {path}"), answer)
    }

    /// Subscribes to the event stream; returns once the daemon has answered, so every event after this is seen.
    pub(crate) async fn events(&self) -> Result<Events, ExpectedError> {
        let path = backupd_api::PATH_EVENTS;
        let subscribe = async {
            let (mut sender, conn) = self.connect().await?;
            let request = self.request(Method::GET, path, None)?;
            let mut conn = Box::pin(conn);
            let answered = tokio::select! {
                biased;
                r = sender.send_request(request) => Some(r),
                _ = conn.as_mut() => None,
            };
            let response = match answered {
                Some(r) => r.map_err(|e| self.http(e))?,
                None => return Err(self.http("the daemon closed the connection before answering")),
            };
            let status = response.status();
            let mut events = Events {
                socket: self.socket.clone(),
                _sender: sender,
                conn: Some(conn),
                body: response.into_body(),
                buf: BytesMut::new(),
                ended: false,
            };
            if !status.is_success() {
                let body = events.rest().await?;
                return Err(failure(&format!("GET {path}"), status, &body));
            }
            Ok(events)
        };
        tokio::time::timeout(self.timeout, subscribe)
            .await
            .map_err(|_| self.silent())?
    }
}

/// The body of a successful answer, or the daemon's error.
pub(crate) fn success(what: &str, answer: Answer) -> Result<Bytes, ExpectedError> {
    if answer.status.is_success() {
        Ok(answer.body)
    } else {
        Err(failure(what, answer.status, &answer.body))
    }
}

/// The daemon's error answer as an [`ExpectedError`]: its `ErrorBody` when it sent one, else the body's start.
pub(crate) fn failure(what: &str, status: StatusCode, body: &[u8]) -> ExpectedError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(200).collect();
            (String::new(), text)
        }
    };
    ExpectedError::DaemonAnswer {
        what: what.to_owned(),
        status: status.as_u16(),
        code,
        message,
    }
}

/// Parses a JSON answer.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    what: &str,
    body: &[u8],
) -> Result<T, ExpectedError> {
    serde_json::from_slice(body).map_err(|e| ExpectedError::DaemonGarbled {
        what: what.to_owned(),
        source: Box::new(e),
    })
}

/// Runs `work` while driving the connection it uses; when the connection ends first, `work` sees why.
async fn drive<T>(conn: Conn, work: impl Future<Output = T>) -> T {
    tokio::pin!(conn);
    tokio::pin!(work);
    tokio::select! {
        biased;
        out = &mut work => out,
        _ = &mut conn => work.await,
    }
}

/// The daemon's event stream, read line by line.
pub(crate) struct Events {
    socket: PathBuf,
    /// Kept so the connection stays open for the stream's whole life.
    _sender: http1::SendRequest<Full<Bytes>>,
    conn: Option<Pin<Box<Conn>>>,
    body: Incoming,
    buf: BytesMut,
    ended: bool,
}

/// What came first while reading the stream.
enum Next {
    Frame(Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>),
    ConnDone(Result<(), hyper::Error>),
}

impl Events {
    fn http(&self, source: impl Into<BoxError>) -> ExpectedError {
        ExpectedError::DaemonHttp {
            socket: self.socket.clone(),
            source: source.into(),
        }
    }

    async fn next_frame(&mut self) -> Result<Option<Bytes>, ExpectedError> {
        loop {
            let next = match self.conn.as_mut() {
                Some(conn) => tokio::select! {
                    biased;
                    f = self.body.frame() => Next::Frame(f),
                    r = conn.as_mut() => Next::ConnDone(r),
                },
                None => Next::Frame(self.body.frame().await),
            };
            match next {
                Next::ConnDone(r) => {
                    self.conn = None;
                    r.map_err(|e| self.http(e))?;
                }
                Next::Frame(None) => return Ok(None),
                Next::Frame(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
                Next::Frame(Some(Err(e))) => return Err(self.http(e)),
            }
        }
    }

    /// The rest of the body, capped, for an error answer.
    async fn rest(&mut self) -> Result<Bytes, ExpectedError> {
        while !self.ended && self.buf.len() <= MAX_BODY {
            match self.next_frame().await? {
                Some(data) => self.buf.extend_from_slice(&data),
                None => self.ended = true,
            }
        }
        Ok(self.buf.split().freeze())
    }

    /// The next non-empty line without its line ending, or `None` when the daemon ends the stream.
    ///
    /// Cancel-safe: a line half-read when the future is dropped is kept for the next call.
    pub(crate) async fn next_line(&mut self) -> Result<Option<Bytes>, ExpectedError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(pos + 1).freeze();
                let line = trim(line);
                if line.is_empty() {
                    continue;
                }
                return Ok(Some(line));
            }
            if self.buf.len() > MAX_EVENT_LINE {
                return Err(ExpectedError::DaemonGarbled {
                    what: format!("GET {}", backupd_api::PATH_EVENTS),
                    source: format!("an event line longer than {MAX_EVENT_LINE} bytes").into(),
                });
            }
            if self.ended {
                let last = trim(self.buf.split().freeze());
                return Ok((!last.is_empty()).then_some(last));
            }
            match self.next_frame().await? {
                Some(data) => self.buf.extend_from_slice(&data),
                None => self.ended = true,
            }
        }
    }
}

/// `line` without surrounding ASCII whitespace (the `\n`, a `\r` before it, stray blanks).
fn trim(line: Bytes) -> Bytes {
    let start = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    line.slice(start..end.max(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_keep_the_daemons_words() {
        let body = br#"{"error":{"code":"internal","message":"the daemon is stopping"}}"#;
        match failure("GET /v1/devices", StatusCode::SERVICE_UNAVAILABLE, body) {
            ExpectedError::DaemonAnswer {
                status,
                code,
                message,
                ..
            } => {
                assert_eq!(status, 503);
                assert_eq!(code, "internal");
                assert_eq!(message, "the daemon is stopping");
            }
            other => panic!("unexpected {other:?}"),
        }
        match failure("GET /", StatusCode::BAD_GATEWAY, b"  <html>oops</html>\n") {
            ExpectedError::DaemonAnswer { code, message, .. } => {
                assert_eq!(code, "");
                assert_eq!(message, "<html>oops</html>");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn lines_are_trimmed() {
        assert_eq!(
            trim(Bytes::from_static(b"{}\r\n")),
            Bytes::from_static(b"{}")
        );
        assert_eq!(trim(Bytes::from_static(b" \n")), Bytes::new());
        assert_eq!(trim(Bytes::new()), Bytes::new());
    }
}

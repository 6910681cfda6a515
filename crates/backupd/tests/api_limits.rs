//! The API's bounds, against the real server on a real socket with a stand-in supervisor: bad ids get 400,
//! oversized requests get 413/431/414, idle connections are closed, connections and event streams are
//! bounded, and a thousand clients at once are all answered.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backupd::server::{Limits, serve_with};
use backupd::supervisor::{Handles, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Rig {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    cancel: CancellationToken,
    events: broadcast::Sender<backupd_api::Event>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The server with `limits`, and a supervisor that knows no phone and no job.
async fn start(limits: Limits) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("api.sock");
    let listener = backupd::server::bind(&socket, None).expect("bind");
    let (requests, mut rx) = mpsc::channel(64);
    let (events, _) = broadcast::channel(16);
    let handles = Handles {
        requests,
        events: events.clone(),
        lang: backupd_rules::Lang::En,
        backup_dir: dir.path().join("backups"),
        metrics: backupd::metrics::Metrics::default(),
    };
    let cancel = CancellationToken::new();
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            match req {
                Request::Device(_, tx) => drop(tx.send(None)),
                Request::Job(_, tx) | Request::CancelJob(_, tx) => drop(tx.send(None)),
                Request::Diagnose(_, tx) => drop(tx.send(None)),
                _ => {}
            }
        }
    });
    tokio::spawn(serve_with(
        listener,
        handles,
        limits,
        cancel.clone(),
        TaskTracker::new(),
    ));
    Rig {
        _dir: dir,
        socket,
        cancel,
        events,
    }
}

/// Sends `raw` on a fresh connection and reads the answer until the server closes it.
async fn exchange(socket: &Path, raw: &[u8]) -> String {
    let mut s = UnixStream::connect(socket).await.expect("connect");
    s.write_all(raw).await.expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn request(method: &str, path: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

fn status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn paths_naming_no_phone_or_job_are_refused_with_400_and_a_message() {
    let rig = start(Limits::default()).await;
    for path in [
        "/v1/devices/../backups",
        "/v1/devices/%2e%2e/backups",
        "/v1/devices/0000",
        "/v1/devices/..",
        "/v1/devices/00008110-001A2B3C4D5E6F0G/diagnose",
        "/v1/jobs/+1",
        "/v1/jobs/../cancel",
    ] {
        let method = if path.ends_with("diagnose") || path.ends_with("cancel") {
            "POST"
        } else {
            "GET"
        };
        let answer = exchange(&rig.socket, &request(method, path)).await;
        assert_eq!(status(&answer), 400, "{path}: {answer}");
        assert!(answer.contains("\"bad_request\""), "{answer}");
        assert!(
            answer.contains("is not a UDID") || answer.contains("is not a job id"),
            "{answer}"
        );
    }
    let answer = exchange(
        &rig.socket,
        &request("GET", "/v1/devices/00008110-001A2B3C4D5E6F01"),
    )
    .await;
    assert_eq!(status(&answer), 404, "{answer}");
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let rig = start(Limits::default()).await;
    let long = format!("/v1/devices/{}", "A".repeat(4000));
    assert_eq!(
        status(&exchange(&rig.socket, &request("GET", &long)).await),
        414
    );
    let mut many = String::from("GET /v1/info HTTP/1.1\r\nHost: x\r\n");
    for i in 0..100 {
        many.push_str(&format!("X-{i}: y\r\n"));
    }
    many.push_str("Connection: close\r\n\r\n");
    assert_eq!(status(&exchange(&rig.socket, many.as_bytes()).await), 431);
    let big = format!(
        "GET /v1/info HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "y".repeat(40_000)
    );
    assert_eq!(status(&exchange(&rig.socket, big.as_bytes()).await), 431);
    let body = format!("{{\"full\": false, \"pad\": \"{}\"}}", " ".repeat(100_000));
    let post = format!(
        "POST /v1/devices/00008110-001A2B3C4D5E6F01/backup HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(status(&exchange(&rig.socket, post.as_bytes()).await), 413);
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let mut limits = Limits::default();
    limits.idle = Duration::from_millis(500);
    let rig = start(limits).await;
    // Silent from the start.
    let mut s = UnixStream::connect(&rig.socket).await.expect("connect");
    let started = Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("closed within the idle time")
        .expect("read");
    assert!(started.elapsed() >= Duration::from_millis(400));
    // Idle after one answered request on a kept-alive connection.
    let mut s = UnixStream::connect(&rig.socket).await.expect("connect");
    s.write_all(b"GET /v1/info HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("closed within the idle time")
        .expect("read");
    assert_eq!(status(&String::from_utf8_lossy(&buf)), 200);
    // Half a request head, then nothing.
    let mut s = UnixStream::connect(&rig.socket).await.expect("connect");
    s.write_all(b"GET /v1/info HTTP/1.1\r\nHo")
        .await
        .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("closed within the idle time")
        .expect("read");
}

#[tokio::test]
async fn event_streams_are_bounded_and_free_their_place_when_closed() {
    let mut limits = Limits::default();
    limits.max_event_streams = 2;
    let rig = start(limits).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut s = UnixStream::connect(&rig.socket).await.expect("connect");
        s.write_all(&request("GET", "/v1/events"))
            .await
            .expect("write");
        let mut head = [0u8; 64];
        let n = s.read(&mut head).await.expect("read");
        assert_eq!(status(&String::from_utf8_lossy(&head[..n])), 200);
        open.push(s);
    }
    let answer = exchange(&rig.socket, &request("GET", "/v1/events")).await;
    assert_eq!(status(&answer), 503, "{answer}");
    assert!(answer.contains("too many event subscribers"), "{answer}");
    // Other requests still work.
    assert_eq!(
        status(&exchange(&rig.socket, &request("GET", "/v1/info")).await),
        200
    );
    drop(open.pop());
    let started = Instant::now();
    loop {
        // Only the head: a stream answered 200 goes on until the client hangs up.
        let mut s = UnixStream::connect(&rig.socket).await.expect("connect");
        s.write_all(&request("GET", "/v1/events"))
            .await
            .expect("write");
        let mut head = [0u8; 64];
        let n = s.read(&mut head).await.expect("read");
        let code = status(&String::from_utf8_lossy(&head[..n]));
        if code == 200 {
            break;
        }
        assert_eq!(code, 503);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the closed stream's place was not freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_and_are_then_served() {
    let mut limits = Limits::default();
    limits.max_connections = 2;
    limits.idle = Duration::from_secs(60);
    let rig = start(limits).await;
    let a = UnixStream::connect(&rig.socket).await.expect("connect");
    let b = UnixStream::connect(&rig.socket).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let socket = rig.socket.clone();
    let third = tokio::spawn(async move { exchange(&socket, &request("GET", "/v1/info")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "a third connection was served");
    drop(a);
    let answer = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a place is free")
        .expect("task");
    assert_eq!(status(&answer), 200, "{answer}");
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_at_once_are_all_answered() {
    let rig = start(Limits::default()).await;
    let mut clients = Vec::new();
    for i in 0..1000 {
        let socket = rig.socket.clone();
        clients.push(tokio::spawn(async move {
            let path = if i % 2 == 0 {
                "/v1/info"
            } else {
                "/v1/devices/../backups"
            };
            status(&exchange(&socket, &request("GET", path)).await)
        }));
    }
    let mut codes = std::collections::BTreeMap::new();
    for c in clients {
        *codes.entry(c.await.expect("client")).or_insert(0) += 1;
    }
    assert_eq!(codes.get(&200), Some(&500), "{codes:?}");
    assert_eq!(codes.get(&400), Some(&500), "{codes:?}");
}

/// The resident memory of this process, in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// 64 event subscribers that never read, a flood of 20,000 events, and 1,000 clients at once, three times
/// over: the server keeps answering, and its memory does not grow with the flood or the rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_event_readers_and_a_thousand_clients_do_not_grow_memory() {
    let rig = start(Limits::default()).await;
    let mut slow = Vec::new();
    for _ in 0..64 {
        let mut s = UnixStream::connect(&rig.socket).await.expect("connect");
        s.write_all(&request("GET", "/v1/events"))
            .await
            .expect("write");
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut after_round = Vec::new();
    for _ in 0..3 {
        for i in 0..20_000u32 {
            let _ = rig.events.send(backupd_api::Event::Attached {
                udid: format!("00008110-{i:016X}"),
            });
            if i % 1000 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let mut clients = Vec::new();
        for _ in 0..1000 {
            let socket = rig.socket.clone();
            clients.push(tokio::spawn(async move {
                status(&exchange(&socket, &request("GET", "/v1/info")).await)
            }));
        }
        for c in clients {
            assert_eq!(c.await.expect("client"), 200);
        }
        after_round.push(rss_kib());
    }
    eprintln!("RSS after each round (KiB): {after_round:?}");
    // The first round sets the high-water mark (buffers, 1,000 tasks); later rounds stay near it.
    let growth = after_round[2].saturating_sub(after_round[0]);
    assert!(
        growth < 16 << 10,
        "RSS grew by {growth} KiB: {after_round:?}"
    );
    drop(slow);
}

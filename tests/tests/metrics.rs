//! `GET /metrics`: what it says about phones, findings and jobs, over the API socket and the loopback TCP
//! listener, and that Prometheus' own `promtool check metrics` accepts it.

use backupd_api::{Event, JobState, Phase, Status};
use backupd_e2e::{DaemonRig, Events, SimRig, require_tool};

const UDID: &str = "00008110-001A2B3C4D5E6F01";

fn ready(s: &Status) -> bool {
    s.devices
        .iter()
        .any(|d| d.udid == UDID && d.phase == Phase::Ready)
}

/// The value of the sample `name{labels}` (labels exactly as printed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

async fn promtool_accepts(text: &str) {
    use tokio::io::AsyncWriteExt;
    let promtool = require_tool("promtool");
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool starts");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).await.expect("write");
    drop(stdin);
    let out = child.wait_with_output().await.expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics refused it:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn tcp_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_owned())
}

fn free_loopback_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_phones_findings_and_jobs_and_promtool_accepts_them() {
    let sim = SimRig::start(vec![
        backupd_sim::profile::builtin("healthy").expect("profile"),
        backupd_sim::profile::builtin("wifi-off-no-charger").expect("profile"),
    ])
    .await;
    let addr = free_loopback_port();
    let daemon = DaemonRig::start_with(sim.dir.path(), &sim.socket, |c| {
        c.metrics_listen = Some(addr.to_string());
    })
    .await;
    let status = daemon
        .wait_for(30, "two diagnoses", |s| {
            s.devices.iter().filter(|d| d.phase == Phase::Ready).count() == 2
        })
        .await;
    assert!(ready(&status));

    let (code, before) = daemon.get("/metrics").await;
    assert_eq!(code, 200, "{before}");
    promtool_accepts(&before).await;
    assert_eq!(sample(&before, "backupd_phones_attached"), Some(2.0));
    assert_eq!(sample(&before, "backupd_usbmuxd_up"), Some(1.0));
    // The phone off Wi-Fi has the critical finding; neither has a local backup yet.
    assert_eq!(
        sample(
            &before,
            "backupd_findings{id=\"wifi.not_connected\",severity=\"critical\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &before,
            "backupd_findings{id=\"backup.local_missing\",severity=\"warning\"}"
        ),
        Some(2.0)
    );
    assert!(!before.contains("backupd_last_verified_backup_timestamp_seconds{"));

    // One backup: the job counters, the bytes and the date of the verified backup move.
    let mut events = Events::subscribe(&daemon.api).await;
    let (code, body) = daemon.post(&format!("/v1/devices/{UDID}/backup")).await;
    assert_eq!(code, 202, "{body}");
    let Event::JobFinished { job: done } = events
        .wait_for(120, |e| matches!(e, Event::JobFinished { .. }))
        .await
    else {
        unreachable!("matched above")
    };
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    daemon
        .wait_for(20, "the diagnosis after the backup", |s| {
            s.devices.iter().any(|d| {
                d.udid == UDID
                    && d.diagnosis.as_ref().is_some_and(|x| {
                        !x.findings
                            .iter()
                            .any(|f| f.id.as_str() == "backup.local_missing")
                    })
            })
        })
        .await;

    // Over the loopback listener this time: the same exposition.
    let (code, after) = tcp_get(addr, "/metrics").await;
    assert_eq!(code, 200, "{after}");
    promtool_accepts(&after).await;
    assert_eq!(
        sample(
            &after,
            "backupd_jobs_total{kind=\"backup\",result=\"succeeded\"}"
        ),
        Some(1.0)
    );
    #[allow(clippy::cast_precision_loss)]
    let bytes = done.progress.bytes as f64;
    assert!(bytes > 0.0);
    assert_eq!(sample(&after, "backupd_backup_bytes_total"), Some(bytes));
    assert_eq!(
        sample(
            &after,
            "backupd_job_duration_seconds_count{kind=\"backup\"}"
        ),
        Some(1.0)
    );
    let date = sample(
        &after,
        &format!("backupd_last_verified_backup_timestamp_seconds{{udid=\"{UDID}\"}}"),
    )
    .expect("the verified backup's date");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!((now - date).abs() < 600.0, "date {date}, now {now}");
    assert_eq!(
        sample(
            &after,
            "backupd_findings{id=\"backup.local_missing\",severity=\"warning\"}"
        ),
        Some(1.0)
    );

    // The TCP listener serves the metrics and nothing else of the API.
    let (code, _) = tcp_get(addr, "/v1/devices").await;
    assert_eq!(code, 404);
    daemon.stop().await;
}

//! `GET /metrics`: the daemon's state in the Prometheus text format, encoded by the `prometheus` crate.
//!
//! Counters (jobs by kind and result, bytes backed up, job durations) live here for the daemon's lifetime and
//! are bumped by the supervisor when a job ends. Gauges (phones attached, findings, last verified backup,
//! automatic backups) are built afresh at each scrape from the status the supervisor hands out, so they can
//! never disagree with `backupdctl status`.

use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use backupd_api as api;

use crate::supervisor::{Handles, Request};

/// The `Content-Type` of the answer (Prometheus' text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The daemon's counters. Cheap to clone: every clone shares the same values.
#[derive(Debug, Clone)]
pub struct Metrics {
    jobs: IntCounterVec,
    bytes: IntCounter,
    durations: HistogramVec,
}

// From a few seconds (an incremental backup of an unchanged phone) to hours (a first full backup).
const DURATION_BUCKETS: [f64; 9] = [
    5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    // The names are constants checked by the tests: creation cannot fail on them.
    IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric name")
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric name")
}

fn gauge(name: &str, help: &str, value: i64) -> IntGauge {
    let g = IntGauge::new(name, help).expect("a valid metric name");
    g.set(value);
    g
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            jobs: counter_vec(
                "jobs_total",
                "Jobs that ended since the daemon started, by kind and result",
                &["kind", "result"],
            ),
            bytes: IntCounter::new(
                "backup_bytes_total",
                "Bytes received from phones by backups that succeeded since the daemon started",
            )
            .expect("a valid metric name"),
            durations: HistogramVec::new(
                HistogramOpts::new("job_duration_seconds", "How long ended jobs took, by kind")
                    .buckets(DURATION_BUCKETS.to_vec()),
                &["kind"],
            )
            .expect("a valid metric name"),
        }
    }
}

fn kind_name(kind: api::JobKind) -> &'static str {
    match kind {
        api::JobKind::Backup => "backup",
        api::JobKind::Encryption => "encryption",
        _ => "unknown",
    }
}

fn state_name(state: api::JobState) -> &'static str {
    match state {
        api::JobState::Running => "running",
        api::JobState::Succeeded => "succeeded",
        api::JobState::Failed => "failed",
        api::JobState::Cancelled => "cancelled",
        _ => "unknown",
    }
}

/// What a scrape needs that only a blocking look at the backup store can tell: each phone's newest verified
/// backup date, by UDID.
pub type VerifiedBackups = Vec<(String, i64)>;

impl Metrics {
    /// Counts an ended job.
    pub fn job_ended(&self, job: &api::Job) {
        let kind = kind_name(job.kind);
        self.jobs
            .with_label_values(&[kind, state_name(job.state)])
            .inc();
        if job.kind == api::JobKind::Backup && job.state == api::JobState::Succeeded {
            self.bytes.inc_by(job.progress.bytes);
        }
        if let Some(end) = job.finished_at {
            #[allow(clippy::cast_precision_loss)]
            let secs = (end - job.started_at).max(0) as f64;
            self.durations.with_label_values(&[kind]).observe(secs);
        }
    }

    /// The whole exposition for `status`, `jobs` and the newest verified backups.
    pub fn render(
        &self,
        status: &api::Status,
        jobs: &api::Jobs,
        verified: &VerifiedBackups,
    ) -> String {
        let mut collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(self.jobs.clone()),
            Box::new(self.bytes.clone()),
            Box::new(self.durations.clone()),
        ];
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        collectors.push(Box::new(gauge(
            "phones_attached",
            "Phones attached now",
            count(status.devices.iter().filter(|d| d.connected).count()),
        )));
        collectors.push(Box::new(gauge(
            "phones_known",
            "Phones the daemon has seen",
            count(status.devices.len()),
        )));
        collectors.push(Box::new(gauge(
            "usbmuxd_up",
            "1 when usbmuxd is reachable",
            i64::from(status.host.usbmuxd == api::MuxerState::Connected),
        )));

        let findings = gauge_vec(
            "findings",
            "Phones whose latest diagnosis has this finding, by finding id and severity",
            &["id", "severity"],
        );
        for d in &status.devices {
            for f in d.diagnosis.iter().flat_map(|x| x.findings.iter()) {
                findings
                    .with_label_values(&[f.id.as_str(), f.severity.as_str()])
                    .inc();
            }
        }
        collectors.push(Box::new(findings));

        let last = gauge_vec(
            "last_verified_backup_timestamp_seconds",
            "Date of each phone's newest verified local backup, in seconds since the Unix epoch",
            &["udid"],
        );
        for (udid, date) in verified {
            last.with_label_values(&[udid.as_str()]).set(*date);
        }
        collectors.push(Box::new(last));

        let running = gauge_vec("jobs_running", "Jobs running now, by kind", &["kind"]);
        for kind in [api::JobKind::Backup, api::JobKind::Encryption] {
            let n = jobs
                .jobs
                .iter()
                .filter(|j| j.kind == kind && j.state == api::JobState::Running)
                .count();
            running.with_label_values(&[kind_name(kind)]).set(count(n));
        }
        collectors.push(Box::new(running));

        let Ok(registry) = Registry::new_custom(Some("backupd".into()), None) else {
            return String::new();
        };
        for c in collectors {
            if let Err(e) = registry.register(c) {
                tracing::warn!(error = %e, "a metric could not be registered");
            }
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Each phone's newest verified local backup, read from the store (blocking: run it off the async workers).
pub fn verified_backups(backup_dir: &std::path::Path, status: &api::Status) -> VerifiedBackups {
    let store = backupd_backup::store::Store::new(backup_dir);
    status
        .devices
        .iter()
        .filter_map(|d| {
            let newest = store.newest(&d.udid)?;
            newest.verified.then(|| (d.udid.clone(), newest.date))
        })
        .collect()
}

type Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;

async fn ask<T>(
    handles: &Handles,
    make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> Request,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    handles.requests.send(make(tx)).await.ok()?;
    rx.await.ok()
}

/// The exposition text, or `None` when the daemon is stopping.
pub async fn scrape(handles: &Handles) -> Option<String> {
    let status = ask(handles, Request::Status).await?;
    let jobs = ask(handles, Request::Jobs).await?;
    let dir = handles.backup_dir.clone();
    let metrics = handles.metrics.clone();
    // Reading each phone's newest backup touches the disk: a blocking thread, not the async workers.
    tokio::task::spawn_blocking(move || {
        let verified = verified_backups(&dir, &status);
        metrics.render(&status, &jobs, &verified)
    })
    .await
    .ok()
}

/// The HTTP answer to `GET /metrics`.
pub async fn respond(handles: &Handles) -> hyper::Response<Body> {
    use http_body_util::BodyExt;
    let (code, ctype, text) = match scrape(handles).await {
        Some(text) => (hyper::StatusCode::OK, CONTENT_TYPE, text),
        None => (
            hyper::StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "the daemon is stopping\n".to_owned(),
        ),
    };
    hyper::Response::builder()
        .status(code)
        .header("content-type", ctype)
        .body(http_body_util::Full::new(bytes::Bytes::from(text)).boxed())
        .unwrap_or_else(|_| {
            hyper::Response::new(http_body_util::Full::new(bytes::Bytes::new()).boxed())
        })
}

/// Serves `GET /metrics`, and nothing else, on a TCP listener (config `metrics_listen`, loopback only) until
/// `cancel` fires.
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    handles: Handles,
    cancel: tokio_util::sync::CancellationToken,
    tracker: tokio_util::task::TaskTracker,
) {
    use http_body_util::BodyExt;
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    continue;
                }
            },
        };
        let handles = handles.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let handles = handles.clone();
                async move {
                    let path = req.uri().path().trim_end_matches('/').to_owned();
                    let answer = if req.method() == hyper::Method::GET && path == api::PATH_METRICS {
                        respond(&handles).await
                    } else {
                        hyper::Response::builder()
                            .status(hyper::StatusCode::NOT_FOUND)
                            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"only GET /metrics here\n")).boxed())
                            .unwrap_or_else(|_| hyper::Response::new(http_body_util::Full::new(bytes::Bytes::new()).boxed()))
                    };
                    Ok::<_, std::convert::Infallible>(answer)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r { tracing::debug!(error = %e, "metrics connection ended") },
                () = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}

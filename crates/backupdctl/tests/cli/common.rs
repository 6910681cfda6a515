//! What every test needs: a fake daemon answering canned JSON on a Unix socket, fixed `Status` values with real
//! diagnoses, a way to run the CLI in-process, and hand-rolled snapshots.

use std::convert::Infallible;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};

use backupd_api::{Device, Host, MuxerState, Phase, Status};
use backupd_rules::{
    App, Diagnosis, HostFacts, HostOs, LocalBackup, PairingState, RulesConfig, Snapshot, Timestamp,
    UnknownReason, UsbmuxdStatus, WifiState,
};

/// The fixed "now" of every fixture: 2026-11-21T08:00:00Z.
pub(crate) const NOW: i64 = 1_795_248_000;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
const GB: u64 = 1_000_000_000;

pub(crate) const HEALTHY_UDID: &str = "00008110-001A2B3C4D5E6F01";
pub(crate) const PROBLEM_UDID: &str = "00008030-000A1B2C3D4E5F02";
pub(crate) const TRUST_UDID: &str = "00008120-00112233445566AA";

// Fixtures.

fn ago(secs: i64) -> Timestamp {
    Timestamp::from_unix_secs(NOW - secs)
}

/// A phone on which every check passes.
fn healthy_phone() -> Snapshot {
    let mut s = Snapshot::unread(UnknownReason::NotQueried);
    s.pairing.set_known(PairingState::Paired);
    s.product_type.set_known("iPhone15,2".to_owned());
    s.product_version.set_known("18.5".to_owned());
    s.wifi
        .set_known(WifiState::new(true, Some("Casa".to_owned())));
    s.icloud_backup_enabled.set_known(true);
    s.last_icloud_backup.set_known(Some(ago(DAY)));
    s.will_encrypt.set_known(false);
    s.battery_level.set_known(80);
    s.battery_charging.set_known(true);
    s.external_power.set_known(true);
    s.disk_capacity.set_known(64 * GB);
    s.data_capacity.set_known(58 * GB);
    s.data_available.set_known(53_800_000_000);
    s.apps
        .set_known(vec![App::new("com.spotify.client", Some("9.0.40"))]);
    s
}

/// A Linux host with usbmuxd up, room to spare and a verified local backup from this morning.
fn healthy_host() -> HostFacts {
    let mut h = HostFacts::unread(UnknownReason::NotQueried);
    h.os.set_known(HostOs::Linux);
    h.usbmuxd.set_known(UsbmuxdStatus::Reachable);
    h.backup_dir_free.set_known(200 * GB);
    h.local_backup
        .set_known(Some(LocalBackup::new(ago(6 * HOUR), true, false)));
    h.unfinished_backup.set_known(false);
    h
}

fn diagnose(phone: &Snapshot, host: &HostFacts) -> Diagnosis {
    backupd_rules::diagnose(
        phone,
        host,
        Timestamp::from_unix_secs(NOW),
        &RulesConfig::default(),
    )
}

fn host(usbmuxd_up: bool) -> Host {
    let mut facts = healthy_host();
    if !usbmuxd_up {
        facts.usbmuxd.set_known(UsbmuxdStatus::NotRunning);
    }
    Host {
        usbmuxd_address: "/var/run/usbmuxd".to_owned(),
        usbmuxd: if usbmuxd_up {
            MuxerState::Connected
        } else {
            MuxerState::Unavailable
        },
        usbmuxd_error: (!usbmuxd_up)
            .then(|| "failed to connect to /var/run/usbmuxd: connection refused".to_owned()),
        backup_dir: "/var/lib/backupd/backups".to_owned(),
        diagnosis: Some(backupd_rules::diagnose_host(
            &facts,
            Timestamp::from_unix_secs(NOW),
            &RulesConfig::default(),
        )),
    }
}

/// A connected phone on which every check passes.
pub(crate) fn healthy_device() -> Device {
    Device {
        udid: HEALTHY_UDID.to_owned(),
        name: Some("iPhone di Anna".to_owned()),
        product_type: Some("iPhone15,2".to_owned()),
        product_version: Some("18.5".to_owned()),
        connected: true,
        phase: Phase::Ready,
        diagnosed_at: Some(NOW),
        diagnosis: Some(diagnose(&healthy_phone(), &healthy_host())),
        error: None,
    }
}

/// A connected phone off Wi-Fi and off its charger, whose last iCloud backup is 9 days old (without that, the
/// Wi-Fi and the charger of the moment would be no evidence of a problem).
pub(crate) fn problem_device() -> Device {
    let mut phone = healthy_phone();
    phone.last_icloud_backup.set_known(Some(ago(9 * DAY)));
    phone.product_type.set_known("iPhone12,1".to_owned());
    phone.product_version.set_known("17.6.1".to_owned());
    phone.wifi.set_known(WifiState::new(false, None));
    phone.external_power.set_known(false);
    phone.battery_charging.set_known(false);
    phone.battery_level.set_known(34);
    Device {
        udid: PROBLEM_UDID.to_owned(),
        name: Some("Marco’s iPhone".to_owned()),
        product_type: Some("iPhone12,1".to_owned()),
        product_version: Some("17.6.1".to_owned()),
        connected: true,
        phase: Phase::Ready,
        diagnosed_at: Some(NOW - 120),
        diagnosis: Some(diagnose(&phone, &healthy_host())),
        error: None,
    }
}

/// A connected phone showing "Trust This Computer?", as the daemon reports one: nothing read but why.
pub(crate) fn trust_device() -> Device {
    let mut phone = Snapshot::unread(UnknownReason::NotPaired);
    phone.pairing.set_known(PairingState::TrustPending);
    Device {
        udid: TRUST_UDID.to_owned(),
        name: None,
        product_type: None,
        product_version: None,
        connected: true,
        phase: Phase::WaitingForUser,
        diagnosed_at: Some(NOW - 5),
        diagnosis: Some(diagnose(&phone, &healthy_host())),
        error: None,
    }
}

/// A phone seen yesterday and unplugged since.
pub(crate) fn detached_device() -> Device {
    Device {
        connected: false,
        phase: Phase::Detached,
        diagnosed_at: Some(NOW - DAY),
        ..healthy_device()
    }
}

/// A status with usbmuxd up and these phones.
pub(crate) fn status(devices: Vec<Device>) -> Status {
    Status {
        host: host(true),
        devices,
        usb_devices: Vec::new(),
    }
}

/// A status with usbmuxd down and no phone attached.
pub(crate) fn status_usbmuxd_down() -> Status {
    Status {
        host: host(false),
        devices: vec![detached_device()],
        usb_devices: Vec::new(),
    }
}

pub(crate) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("fixtures serialize")
}

// The fake daemon.

/// One canned answer.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    method: Method,
    path: String,
    status: u16,
    body: String,
    /// Only after the first POST (a re-diagnosis) has been received.
    after_post: bool,
}

impl Route {
    pub(crate) fn get(path: &str, status: u16, body: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.to_owned(),
            status,
            body: body.into(),
            after_post: false,
        }
    }

    pub(crate) fn post(path: &str, status: u16, body: impl Into<String>) -> Self {
        Self {
            method: Method::POST,
            ..Self::get(path, status, body)
        }
    }

    /// This answer replaces the others for the same request once a POST has been received.
    pub(crate) fn after_post(self) -> Self {
        Self {
            after_post: true,
            ..self
        }
    }
}

/// What the fake daemon answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub(crate) routes: Vec<Route>,
    /// NDJSON lines streamed to each `GET /v1/events` subscriber as soon as it subscribes.
    pub(crate) events: Vec<String>,
    /// NDJSON lines streamed to the current subscribers when a POST arrives.
    pub(crate) events_after_post: Vec<String>,
    /// Keep event streams open after `events` (otherwise each ends once they are sent).
    pub(crate) hold_events: bool,
}

#[derive(Default)]
struct Shared {
    log: Vec<String>,
    /// `METHOD /path` and the body of each request that had one.
    bodies: Vec<(String, String)>,
    posted: bool,
    subscribers: Vec<mpsc::UnboundedSender<Bytes>>,
}

/// A daemon answering `Plan` on a socket in a temporary directory, on its own thread and runtime, until dropped.
pub(crate) struct FakeDaemon {
    socket: PathBuf,
    shared: Arc<Mutex<Shared>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

type Body = BoxBody<Bytes, Infallible>;

/// A body fed by a channel: the event stream.
struct ChannelBody(mpsc::UnboundedReceiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

fn line(text: &str) -> Bytes {
    Bytes::from(format!("{text}\n"))
}

fn answer(
    plan: &Plan,
    shared: &Mutex<Shared>,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Response<Body> {
    let mut state = shared.lock().expect("fake daemon state");
    state.log.push(format!("{method} {path}"));
    if !body.is_empty() {
        let text = String::from_utf8_lossy(body).into_owned();
        state.bodies.push((format!("{method} {path}"), text));
    }
    if *method == Method::POST {
        state.posted = true;
        state.subscribers.retain(|tx| {
            plan.events_after_post
                .iter()
                .all(|l| tx.send(line(l)).is_ok())
        });
    }
    if *method == Method::GET && path == backupd_api::PATH_EVENTS {
        let (tx, rx) = mpsc::unbounded_channel();
        for l in &plan.events {
            let _ = tx.send(line(l));
        }
        if plan.hold_events {
            state.subscribers.push(tx);
        }
        return Response::new(ChannelBody(rx).boxed());
    }
    let posted = state.posted;
    let route = plan
        .routes
        .iter()
        .filter(|r| r.method == *method && r.path == path && (!r.after_post || posted))
        .max_by_key(|r| r.after_post);
    let (status, body) = match route {
        Some(r) => (r.status, r.body.clone()),
        None => (
            404,
            r#"{"error":{"code":"not_found","message":"no such path"}}"#.to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = StatusCode::from_u16(status).expect("a valid status");
    response
}

impl FakeDaemon {
    pub(crate) fn start(plan: Plan) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("backupd.sock");
        let listener =
            std::os::unix::net::UnixListener::bind(&socket).expect("bind the fake socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let plan = Arc::new(plan);
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::UnixListener::from_std(listener).expect("tokio listener");
                loop {
                    let stream = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok((s, _)) => s,
                            Err(_) => continue,
                        },
                    };
                    let plan = plan.clone();
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                            let (plan, state) = (plan.clone(), state.clone());
                            async move {
                                let method = req.method().clone();
                                let path = req.uri().path().to_owned();
                                let body = match req.into_body().collect().await {
                                    Ok(b) => b.to_bytes(),
                                    Err(_) => Bytes::new(),
                                };
                                Ok::<_, Infallible>(answer(&plan, &state, &method, &path, &body))
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        Self {
            socket,
            shared,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// A daemon answering `GET /v1/devices` with `status`.
    pub(crate) fn with_status(status: &Status) -> Self {
        Self::start(Plan {
            routes: vec![Route::get(backupd_api::PATH_DEVICES, 200, json(status))],
            ..Plan::default()
        })
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// The requests received so far, as `METHOD /path`.
    pub(crate) fn log(&self) -> Vec<String> {
        self.shared.lock().expect("fake daemon state").log.clone()
    }

    /// The bodies received so far, with their `METHOD /path`.
    pub(crate) fn bodies(&self) -> Vec<(String, String)> {
        self.shared
            .lock()
            .expect("fake daemon state")
            .bodies
            .clone()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// Running the CLI.

/// What one run printed and returned.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    /// The run as one text for a snapshot: the exit code, then stdout, then stderr.
    pub(crate) fn transcript(&self) -> String {
        format!(
            "exit code: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `backupdctl` in-process with `args` (without the program name).
pub(crate) fn run(args: &[&str]) -> Output {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("backupdctl")
        .chain(args.iter().copied())
        .map(OsString::from);
    let code = backupdctl::run(argv, &mut out, &mut err);
    Output {
        code,
        stdout: String::from_utf8(out).expect("stdout is UTF-8"),
        stderr: String::from_utf8(err).expect("stderr is UTF-8"),
    }
}

/// Runs `backupdctl --socket <the fake's socket> args…`.
pub(crate) fn run_on(daemon: &FakeDaemon, args: &[&str]) -> Output {
    let socket = daemon
        .socket()
        .to_str()
        .expect("UTF-8 temp path")
        .to_owned();
    let mut all = vec!["--socket", socket.as_str()];
    all.extend_from_slice(args);
    run(&all)
}

// Snapshots.

/// Compares `actual` with `tests/snapshots/<name>`, or rewrites that file when `UPDATE_SNAPSHOTS=1`.
pub(crate) fn assert_snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write the snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read snapshot {}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "snapshot {name} differs from line {}:\n  expected: {:?}\n  actual:   {:?}\n--- actual output ---\n{actual}\n\
             Run with UPDATE_SNAPSHOTS=1 to accept it.",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first),
        );
    }
}

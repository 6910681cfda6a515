//! Shared rig for the end-to-end and interop tests in `tests/tests/`.
//!
//! Interop tests run real third-party clients against the simulator. A missing peer tool fails the test with
//! a message saying how to install it; it never skips, so a green run means the peers really ran.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use backupd_sim::profile::{Profile, builtin};
use backupd_sim::{Config, Simulator};

/// A simulator on a private socket in a temporary folder, with a scratch `HOME` for peers.
#[derive(Debug)]
pub struct SimRig {
    /// The temporary folder; dropped last.
    pub dir: tempfile::TempDir,
    /// The running simulator.
    pub sim: Simulator,
    /// The muxer socket.
    pub socket: PathBuf,
}

impl SimRig {
    /// Starts a simulator serving `profiles`.
    pub async fn start(profiles: Vec<Profile>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("mux.sock");
        std::fs::create_dir_all(dir.path().join("home")).expect("scratch home");
        let sim = Simulator::start(Config {
            socket: socket.clone(),
            tcp: None,
            control: None,
            state_dir: dir.path().join("state"),
            profiles,
        })
        .await
        .expect("simulator starts");
        Self { dir, sim, socket }
    }

    /// Starts a simulator serving one built-in profile.
    pub async fn builtin(name: &str) -> Self {
        Self::start(vec![builtin(name).expect("built-in profile")]).await
    }

    /// The scratch home folder peers get, so their caches do not leak between tests.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Where the simulated usbmuxd keeps pair records (like `/var/lib/lockdown`).
    pub fn pair_dir(&self) -> PathBuf {
        self.dir.path().join("state").join("lockdown")
    }

    /// Runs a libimobiledevice tool against the simulator (`USBMUXD_SOCKET_ADDRESS=UNIX:path`).
    pub async fn idevice(&self, tool: &str, args: &[&str]) -> Output {
        let addr = format!("UNIX:{}", self.socket.display());
        run(
            &require_tool(tool),
            args,
            &[
                ("USBMUXD_SOCKET_ADDRESS", &addr),
                ("HOME", &path_str(&self.home())),
            ],
        )
        .await
    }

    /// Runs pymobiledevice3 against the simulator (`USBMUXD_SOCKET_ADDRESS=/path`, its own spelling).
    pub async fn pymobiledevice3(&self, args: &[&str]) -> Output {
        let addr = path_str(&self.socket);
        run(
            &pymobiledevice3(),
            args,
            &[
                ("USBMUXD_SOCKET_ADDRESS", &addr),
                ("HOME", &path_str(&self.home())),
            ],
        )
        .await
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// The path of a peer tool on `PATH`; panics with install instructions when it is missing.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "peer tool `{name}` is missing: install Debian's libimobiledevice-utils \
                 (`cargo xtask peers` does it) — interop tests never skip"
            )
        })
}

/// The pymobiledevice3 executable: `$PYMOBILEDEVICE3`, else the venv `cargo xtask peers` makes.
pub fn pymobiledevice3() -> PathBuf {
    if let Some(p) = std::env::var_os("PYMOBILEDEVICE3") {
        return PathBuf::from(p);
    }
    let venv =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/peers/venv/bin/pymobiledevice3");
    if venv.is_file() {
        return venv;
    }
    panic!(
        "pymobiledevice3 is missing: run `cargo xtask peers` (a venv in target/peers) or set PYMOBILEDEVICE3 \
         — interop tests never skip"
    )
}

/// The Python of the peers' venv, which has iphone_backup_decrypt: `$PEERS_PYTHON`, else the venv `cargo xtask
/// peers` makes.
pub fn peers_python() -> PathBuf {
    if let Some(p) = std::env::var_os("PEERS_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/peers/venv/bin/python");
    if venv.is_file() {
        return venv;
    }
    panic!(
        "the peers' Python is missing: run `cargo xtask peers` (a venv in target/peers with \
         iphone_backup_decrypt) or set PEERS_PYTHON — interop tests never skip"
    )
}

/// What iphone_backup_decrypt found in an encrypted backup.
#[derive(Debug)]
pub struct Decrypted {
    /// Rows of the decrypted Manifest.db's `Files` table.
    pub rows: u64,
    /// The bytes of each file asked for, in order.
    pub files: Vec<Vec<u8>>,
}

/// Opens the encrypted backup in `folder` with iphone_backup_decrypt and extracts `files` (domain, path).
/// `Err` carries the peer's words when it refuses (exit 3: wrong password).
pub async fn decrypt_with_peer(
    folder: &Path,
    password: &str,
    files: &[(&str, &str)],
) -> Result<Decrypted, (Option<i32>, String)> {
    let out = tempfile::tempdir().expect("temp dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/decrypt.py");
    let (script, folder_s, out_s) = (path_str(&script), path_str(folder), path_str(out.path()));
    let mut args = vec![script.as_str(), folder_s.as_str(), out_s.as_str()];
    for (domain, path) in files {
        args.push(domain);
        args.push(path);
    }
    let result = run(&peers_python(), &args, &[("BACKUP_PASSWORD", password)]).await;
    if !result.status.success() {
        return Err((
            result.status.code(),
            String::from_utf8_lossy(&result.stderr).into_owned(),
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&result.stdout).expect("the script's JSON");
    let rows = v["rows"].as_u64().expect("rows");
    let files = v["extracted"]
        .as_array()
        .expect("extracted")
        .iter()
        .map(|p| std::fs::read(p.as_str().expect("path")).expect("extracted file"))
        .collect();
    Ok(Decrypted { rows, files })
}

/// A built-in profile with "Encrypt local backup" on, this password, and key derivation counts small enough
/// for tests (the protocol is the same as with the realistic defaults).
pub fn encrypted_profile(name: &str, password: &str) -> Profile {
    let mut p = builtin(name).expect("built-in profile");
    p.backup.password = Some(password.to_owned());
    p.backup.kdf_iterations = 10;
    p.backup.kdf_dp_iterations = 100;
    p.lockdown
        .entry("com.apple.mobile.backup".into())
        .or_default()
        .insert("WillEncrypt".into(), toml::Value::Boolean(true));
    p
}

/// The bytes the simulated phone holds for a file.
pub fn phone_file(sim: &Simulator, udid: &str, domain: &str, path: &str) -> Vec<u8> {
    let set = sim.muxd().phone(udid).expect("phone").backup().file_set();
    let file = set.find(domain, path).expect("the phone has the file");
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut file.content(set.seed()), &mut out).expect("content");
    out
}

/// backupd's engine backs up the first phone of the muxer at `socket` into a store at `root`, as the daemon's
/// job does (pinned TLS, the pair record the simulator's muxer keeps), within two minutes; panics if it fails.
pub async fn engine_backup(
    socket: &Path,
    root: &Path,
    full: bool,
    password: Option<&str>,
) -> backupd_backup::engine::Outcome {
    use backupd_backup::engine::{self, BackupRequest, Progress, Stage};
    let muxd = backupd_mux::Muxd::new(backupd_proto::usbmuxd::Address::Unix(socket.to_owned()));
    let device = muxd.list_devices().await.expect("list").remove(0);
    let mut trusted = backupd_mux::Pairing::new()
        .open(
            &muxd,
            &device,
            backupd_proto::tls::DevicePinning::Pinned,
            std::time::SystemTime::now(),
        )
        .await
        .expect("trusted");
    let (tx, _rx) = tokio::sync::watch::channel(Progress {
        stage: Stage::Preparing,
        bytes: 0,
        files: 0,
        device_percent: 0.0,
        announced_bytes: 0,
        elapsed_secs: 0.0,
    });
    let request = BackupRequest {
        full,
        keep_versions: 2,
        min_free_bytes: 0,
        password: password.map(|p| backupd_backup::encrypted::Password::new(p.to_owned())),
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        engine::backup(
            &mut trusted.lockdown,
            &trusted.record,
            &backupd_backup::store::Store::new(root),
            &request,
            &tx,
        ),
    )
    .await
    .expect("in time")
    .unwrap_or_else(|e| panic!("backupd's backup failed: {e:#?}"))
}

/// Runs a command with a time limit, capturing its output.
pub async fn run(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    match tokio::time::timeout(Duration::from_secs(120), cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("failed to run {}: {e}", program.display()),
        Err(_) => panic!("{} {args:?} did not finish in 120 s", program.display()),
    }
}

/// Standard output as text, with the command's stderr in the panic message if it failed.
pub fn stdout_ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed with {}:\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Reads `Key: value` lines as ideviceinfo prints them.
pub fn key_values(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// A daemon running in this process against a simulator, with its API socket in the rig's folder.
#[derive(Debug)]
pub struct DaemonRig {
    /// The API socket.
    pub api: PathBuf,
    /// The daemon's state folder.
    pub state_dir: PathBuf,
    /// The backup folder.
    pub backup_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DaemonRig {
    /// Starts `backupd` on `folder`, following the muxer at `usbmuxd`.
    pub async fn start(folder: &Path, usbmuxd: &Path) -> Self {
        Self::start_with(folder, usbmuxd, |_| {}).await
    }

    /// Like [`DaemonRig::start`], with config keys set by `configure` on top of the rig's.
    pub async fn start_with(
        folder: &Path,
        usbmuxd: &Path,
        configure: impl FnOnce(&mut backupd::config::FileConfig),
    ) -> Self {
        let api = folder.join("api.sock");
        let state_dir = folder.join("daemon-state");
        let backup_dir = folder.join("backups");
        let file = backupd::config::FileConfig {
            socket: Some(api.clone()),
            usbmuxd: Some(usbmuxd.display().to_string()),
            state_dir: Some(state_dir.clone()),
            backup_dir: Some(backup_dir.clone()),
            group: Some(String::new()),
            refresh_secs: Some(3600),
            ..backupd::config::FileConfig::default()
        };
        let mut file = file;
        configure(&mut file);
        let settings = backupd::Settings::resolve(file, &backupd::config::Environment::default())
            .expect("settings resolve");
        let listener = backupd::server::bind(&api, None).expect("API socket");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(backupd::run(settings, listener, async {
            let _ = stopped.await;
        }));
        Self {
            api,
            state_dir,
            backup_dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the daemon and waits until every task of it has finished.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("daemon stops within 10 s")
                .expect("daemon task did not panic");
        }
    }

    /// `GET path`, returning the status code and the body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        http(&self.api, "GET", path).await
    }

    /// `POST path`, returning the status code and the body.
    pub async fn post(&self, path: &str) -> (u16, String) {
        http(&self.api, "POST", path).await
    }

    /// The daemon's status.
    pub async fn status(&self) -> backupd_api::Status {
        let (code, body) = self.get(backupd_api::PATH_DEVICES).await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("status JSON: {e}\n{body}"))
    }

    /// Polls the status until `pred` holds, for at most `secs` seconds.
    pub async fn wait_for(
        &self,
        secs: u64,
        what: &str,
        pred: impl Fn(&backupd_api::Status) -> bool,
    ) -> backupd_api::Status {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let status = self.status().await;
            if pred(&status) {
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; last status:\n{status:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One HTTP/1.1 request on a Unix socket, written by hand so that the tests do not share the client code
/// under test.
pub async fn http(socket: &Path, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect to the API socket");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: backupd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (code, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Reads the daemon's NDJSON event stream line by line.
#[derive(Debug)]
pub struct Events {
    reader: tokio::io::BufReader<tokio::net::UnixStream>,
}

impl Events {
    /// Subscribes to `/v1/events`.
    pub async fn subscribe(socket: &Path) -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut s = tokio::net::UnixStream::connect(socket)
            .await
            .expect("connect");
        s.write_all(b"GET /v1/events HTTP/1.1\r\nHost: backupd\r\n\r\n")
            .await
            .expect("write");
        let mut reader = tokio::io::BufReader::new(s);
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).await.expect("read head");
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        Self { reader }
    }

    /// The next event, skipping chunk-size lines; `None` when the stream ends.
    pub async fn next(&mut self) -> Option<backupd_api::Event> {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let t = line.trim();
            if t.starts_with('{') {
                return serde_json::from_str(t).ok();
            }
            if t == "0" {
                return None;
            }
        }
    }

    /// Waits up to `secs` for an event matching `pred`, returning it.
    pub async fn wait_for(
        &mut self,
        secs: u64,
        pred: impl Fn(&backupd_api::Event) -> bool,
    ) -> backupd_api::Event {
        let found = tokio::time::timeout(Duration::from_secs(secs), async {
            while let Some(ev) = self.next().await {
                if pred(&ev) {
                    return Some(ev);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(ev)) => ev,
            Ok(None) => panic!("event stream ended"),
            Err(_) => panic!("no matching event in {secs} s"),
        }
    }
}

/// The `backupdctl` binary, built once per test run (so `cargo test -p backupd-e2e` works on its own).
pub fn backupdctl() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .current_dir(&root)
                .args(["build", "--quiet", "-p", "backupdctl"])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building backupdctl failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            target.join("debug").join("backupdctl")
        })
        .clone()
}

/// Runs `backupdctl --socket API --lang LANG args…`.
pub async fn ctl(api: &Path, lang: &str, args: &[&str]) -> Output {
    ctl_env(api, lang, args, &[]).await
}

/// Runs `backupdctl --socket API --lang LANG args…` with extra environment variables.
pub async fn ctl_env(api: &Path, lang: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let bin = backupdctl();
    let api = path_str(api);
    let mut all = vec!["--socket", api.as_str(), "--lang", lang];
    all.extend_from_slice(args);
    run(&bin, &all, env).await
}

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

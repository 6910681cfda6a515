//! Child processes the demo and the benchmarks start: the simulator and the daemon.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A child that is stopped when dropped: SIGTERM first (the daemon shuts down gracefully and logs it), then
/// SIGKILL after 5 s.
pub(crate) struct Running {
    child: Child,
    name: &'static str,
}

impl Running {
    /// Starts `cmd` as `name`.
    pub(crate) fn spawn(name: &'static str, cmd: &mut Command) -> anyhow::Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("failed to start {name}"))?;
        Ok(Self { child, name })
    }

    /// The process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the child accepts connections on `path`, failing early if it exits.
    pub(crate) fn wait_for_socket(&mut self, path: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status} before it was ready", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("{} did not open {} in 30 s", self.name, path.display())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("xtask: {} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `backupd` for a private run in `dir`: its API socket, state and backups there, no socket group.
pub(crate) fn daemon(
    bin: &Path,
    dir: &Path,
    usbmuxd: &Path,
    api: &Path,
    backups: &Path,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--socket")
        .arg(api)
        .arg("--usbmuxd")
        .arg(usbmuxd)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--backup-dir")
        .arg(backups)
        .arg("--group")
        .arg("");
    cmd
}

/// The workspace's target folder (`CARGO_TARGET_DIR` when set).
pub(crate) fn target_dir(root: &Path) -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Builds `packages` (in release when asked, with `flags` such as `--quiet` or `--locked`) and gives the
/// folder their binaries are in.
pub(crate) fn build(
    root: &Path,
    packages: &[&str],
    release: bool,
    flags: &[&str],
) -> anyhow::Result<std::path::PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).arg("build").args(flags);
    if release {
        cmd.arg("--release");
    }
    for p in packages {
        cmd.arg("-p").arg(p);
    }
    if !cmd.status().context("failed to start cargo")?.success() {
        bail!("building {} failed", packages.join(", "));
    }
    Ok(target_dir(root).join(if release { "release" } else { "debug" }))
}

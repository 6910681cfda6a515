//! `cargo xtask demo --usb`: the USB bus as a second source of facts, on emulated devices.
//!
//! The simulated `healthy` phone is plugged in (usbmuxd lists it, and umockdev puts the same phone on an
//! emulated USB bus); backupd learns it and makes a verified local backup. Then the phone "goes into recovery
//! mode": usbmuxd loses it and the bus shows it in recovery mode (05ac:1281) with its ECID and serial number.
//! `backupdctl status` explains the mode, joined to the phone's history and its backup. Needs `umockdev-run`
//! (Debian: umockdev); nothing outside `target/demo` is written.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::procs::{self, Running};

const UDID: &str = "00008110-001A2B3C4D5E6F01";

/// Starts backupd under umockdev with the hub and `devices` of `tests/umockdev/`.
fn daemon(
    root: &Path,
    bin: &Path,
    dir: &Path,
    mux: &Path,
    api: &Path,
    devices: &[&str],
    log: &str,
) -> anyhow::Result<Running> {
    let plain = procs::daemon(bin, dir, mux, api, &dir.join("backups"));
    let descriptions = root.join("tests").join("umockdev");
    let mut cmd = Command::new("umockdev-run");
    cmd.arg("-d").arg(descriptions.join("hub.umockdev"));
    for d in devices {
        cmd.arg("-d")
            .arg(descriptions.join(format!("{d}.umockdev")));
    }
    cmd.arg("--")
        .arg(plain.get_program())
        .args(plain.get_args());
    let _ = std::fs::remove_file(api);
    let mut running = Running::spawn(
        "backupd",
        cmd.stderr(std::fs::File::create(dir.join(log))?)
            .stdout(Stdio::null()),
    )?;
    running.wait_for_socket(api)?;
    Ok(running)
}

/// Stops backupd and umockdev-run: SIGTERM to their process group, then the helper's own cleanup.
fn stop(running: Running) {
    let group = format!("-{}", running.id());
    let _ = Command::new("kill")
        .args(["-TERM", "--", &group])
        .stderr(Stdio::null())
        .status();
    std::thread::sleep(Duration::from_millis(500));
    drop(running);
}

/// Polls `backupdctl status --json` until `ready` holds, for at most a minute.
fn wait(
    ctl: &dyn Fn(&[&str]) -> Command,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = ctl(&["status", "--json"])
            .output()
            .context("failed to run backupdctl")?;
        if serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .is_some_and(|v| ready(&v))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no {what} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the USB demo.
pub(crate) fn run(root: &Path, lang: Option<&str>) -> anyhow::Result<()> {
    if Command::new("umockdev-run")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("the USB demo needs umockdev-run (Debian: apt install umockdev)");
    }
    eprintln!("demo: building backupd-sim, backupd and backupdctl");
    let bins = procs::build(
        root,
        &["backupd-sim", "backupd", "backupdctl"],
        false,
        &["--quiet"],
    )?;
    let bin = |name: &str| bins.join(name);
    let dir = procs::target_dir(root)
        .join("demo")
        .join(format!("usb-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mux = dir.join("usbmuxd.sock");
    let api = dir.join("backupd.sock");
    let ctl = |extra: &[&str]| {
        let mut c = Command::new(bin("backupdctl"));
        c.arg("--socket").arg(&api);
        if let Some(l) = lang {
            c.arg("--lang").arg(l);
        }
        c.args(extra);
        c
    };

    let mut sim = Command::new(bin("backupd-sim"));
    sim.arg("--socket")
        .arg(&mux)
        .arg("--state-dir")
        .arg(dir.join("sim-state"))
        .arg("--profile")
        .arg("healthy");
    let mut sim = Running::spawn(
        "backupd-sim",
        sim.stderr(std::fs::File::create(dir.join("backupd-sim.log"))?)
            .stdout(Stdio::null()),
    )?;
    sim.wait_for_socket(&mux)?;

    eprintln!("demo: the phone in normal mode: usbmuxd lists it and the emulated USB bus shows it");
    let first = daemon(
        root,
        &bin("backupd"),
        &dir,
        &mux,
        &api,
        &["normal"],
        "backupd-1.log",
    )?;
    wait(&ctl, "diagnosis", |v| {
        v["devices"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["phase"] == "ready"))
    })?;
    println!("$ backupdctl backup --wait {UDID}");
    let done = ctl(&["backup", "--wait", UDID])
        .status()
        .context("failed to run backupdctl")?;
    if !done.success() {
        bail!("the backup failed ({done})");
    }
    stop(first);

    eprintln!(
        "\ndemo: the phone goes into recovery mode: usbmuxd loses it, the USB bus shows 05ac:1281"
    );
    let detached = Command::new(bin("backupd-sim"))
        .arg("ctl")
        .arg("--control")
        .arg(dir.join("usbmuxd.sock.control"))
        .args(["detach", UDID])
        .output()
        .context("failed to run backupd-sim ctl")?;
    if !detached.status.success() {
        bail!(
            "backupd-sim ctl detach failed: {}",
            String::from_utf8_lossy(&detached.stderr)
        );
    }
    let second = daemon(
        root,
        &bin("backupd"),
        &dir,
        &mux,
        &api,
        &["recovery"],
        "backupd-2.log",
    )?;
    wait(&ctl, "recovery-mode phone", |v| {
        v["usb_devices"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["mode"] == "recovery"))
    })?;
    println!("\n$ backupdctl status");
    let status = ctl(&["status"])
        .status()
        .context("failed to run backupdctl")?;
    stop(second);
    drop(sim);
    eprintln!("demo: `backupdctl status` exited with {status} (1: problems found)");
    eprintln!("demo: logs and state are in {}", dir.display());
    match status.code() {
        Some(1) => Ok(()),
        _ => bail!("backupdctl status should report the recovery-mode phone (exit 1)"),
    }
}

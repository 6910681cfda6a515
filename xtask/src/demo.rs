//! `cargo xtask demo`: the main job on the built-in simulated iPhones, for anyone without a phone.
//!
//! It starts `backupd-sim` with example profiles, `backupd` against it, waits for the diagnoses and prints
//! `backupdctl status`; then it stops both. Nothing is installed and nothing outside `target/demo` is written.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::procs::{self, Running};

/// The simulated phones the demo plugs in, by built-in profile name.
pub(crate) const DEFAULT_PROFILES: &[&str] =
    &["healthy", "wifi-off-no-charger", "icloud-full-whatsapp"];

/// Exit code of `backupdctl status` while no diagnosis is ready (`backupd_api::exit::NOT_READY`).
const NOT_READY: i32 = 6;

/// Runs the demo; `lang` is passed to `backupdctl`; with `backup`, the first phone is also backed up.
pub(crate) fn run(
    root: &Path,
    profiles: &[String],
    lang: Option<&str>,
    backup: bool,
) -> anyhow::Result<()> {
    eprintln!("demo: building backupd-sim, backupd and backupdctl");
    let bins = procs::build(
        root,
        &["backupd-sim", "backupd", "backupdctl"],
        false,
        &["--quiet"],
    )?;
    let target = procs::target_dir(root);
    let bin = |name: &str| bins.join(name);
    let dir = target.join("demo").join(std::process::id().to_string());
    std::fs::create_dir_all(&dir)?;
    let mux = dir.join("usbmuxd.sock");
    let api = dir.join("backupd.sock");

    let mut sim = Command::new(bin("backupd-sim"));
    sim.arg("--socket")
        .arg(&mux)
        .arg("--state-dir")
        .arg(dir.join("sim-state"));
    for p in profiles {
        sim.arg("--profile").arg(p);
    }
    let sim_log = std::fs::File::create(dir.join("backupd-sim.log"))?;
    let mut sim = Running::spawn("backupd-sim", sim.stderr(sim_log).stdout(Stdio::null()))?;
    sim.wait_for_socket(&mux)?;
    eprintln!(
        "demo: simulated usbmuxd with {} iPhone(s) at {}",
        profiles.len(),
        mux.display()
    );

    let daemon_log = std::fs::File::create(dir.join("backupd.log"))?;
    let mut daemon = Running::spawn(
        "backupd",
        procs::daemon(&bin("backupd"), &dir, &mux, &api, &dir.join("backups"))
            .stderr(daemon_log)
            .stdout(Stdio::null()),
    )?;
    daemon.wait_for_socket(&api)?;
    eprintln!(
        "demo: backupd is pairing with the phones and reading them (log: {})",
        dir.join("backupd.log").display()
    );

    let ctl = |extra: &[&str]| {
        let mut c = Command::new(bin("backupdctl"));
        c.arg("--socket").arg(&api);
        if let Some(l) = lang {
            c.arg("--lang").arg(l);
        }
        c.args(extra);
        c
    };
    // Wait until every phone has a diagnosis: `status --json` lists them, `status` exits NOT_READY before.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = ctl(&["status", "--json"])
            .output()
            .context("failed to run backupdctl")?;
        let ready = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["devices"].as_array().cloned())
            .map(|devices| {
                devices
                    .iter()
                    .filter(|d| d["connected"] == true && d["phase"] == "ready")
                    .count()
            })
            .unwrap_or(0);
        if out.status.code() != Some(NOT_READY) && ready >= profiles.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "no diagnosis within 60 s; see {}",
                dir.join("backupd.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("$ backupdctl status");
    let mut status = ctl(&["status"])
        .status()
        .context("failed to run backupdctl")?;
    if profiles.len() > 1 {
        // Several phones give a summary, one line each; then the phone with the most findings in full.
        let out = ctl(&["status", "--json"])
            .output()
            .context("failed to run backupdctl")?;
        let udid = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["devices"].as_array().cloned())
            .and_then(|devices| {
                devices
                    .into_iter()
                    .max_by_key(|d| d["diagnosis"]["findings"].as_array().map_or(0, Vec::len))
                    .and_then(|d| d["udid"].as_str().map(str::to_owned))
            })
            .context("no phone to show")?;
        println!("\n$ backupdctl status {udid}");
        ctl(&["status", &udid])
            .status()
            .context("failed to run backupdctl")?;
    }
    if backup {
        let out = ctl(&["status", "--json"])
            .output()
            .context("failed to run backupdctl")?;
        let udid = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["devices"][0]["udid"].as_str().map(str::to_owned))
            .context("no phone to back up")?;
        println!("\n$ backupdctl backup --wait {udid}");
        let done = ctl(&["backup", "--wait", &udid])
            .status()
            .context("failed to run backupdctl")?;
        if !done.success() {
            bail!("the backup failed ({done})");
        }
        println!("\n$ backupdctl backups {udid}");
        ctl(&["backups", &udid])
            .status()
            .context("failed to run backupdctl")?;
        println!("\n$ backupdctl diagnose {udid}");
        status = ctl(&["diagnose", &udid])
            .status()
            .context("failed to run backupdctl")?;
    }
    drop(daemon);
    drop(sim);
    eprintln!(
        "demo: `backupdctl status` exited with {status} (0: all checks pass, 1: problems found)"
    );
    eprintln!("demo: logs and state are in {}", dir.display());
    match status.code() {
        Some(0 | 1) => Ok(()),
        _ => bail!("backupdctl status failed"),
    }
}

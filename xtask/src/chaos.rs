//! `cargo xtask chaos unplug [--points N]`: the unplug campaign at full size.
//!
//! The campaign is an ordinary test (`crates/backupd-backup/tests/chaos_unplug.rs`) that `cargo test` runs
//! at CI size (10 byte points plus every DeviceLink message boundary); this task runs it with N byte
//! points (default 100) and prints its figures.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

/// Runs the unplug campaign with `points` byte points.
pub(crate) fn unplug(root: &Path, points: u64) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    let status = Command::new(cargo)
        .current_dir(root)
        .env("BACKUPD_CHAOS_POINTS", points.to_string())
        .args([
            "test",
            "--locked",
            "--package",
            "backupd-backup",
            "--test",
            "chaos_unplug",
            "--",
            "--nocapture",
        ])
        .status()
        .context("start cargo test")?;
    if !status.success() {
        bail!("the unplug campaign failed ({status})");
    }
    eprintln!(
        "xtask chaos unplug: {points} byte points and every message boundary held, {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

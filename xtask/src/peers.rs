//! `cargo xtask peers`: install the real third-party clients the interop tests run against the simulator.
//!
//! libimobiledevice's tools come from Debian's `libimobiledevice-utils`; pymobiledevice3 from PyPI into a venv
//! under `target/peers`. A peer that cannot be installed is an error: interop tests never skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The pymobiledevice3 release the interop tests were written against (see `../shared/protocol.md` §9).
pub(crate) const PYMOBILEDEVICE3_VERSION: &str = "11.45.0";
/// The independent decryptor of encrypted backups the interop tests open backups with (PyPI).
pub(crate) const IPHONE_BACKUP_DECRYPT_VERSION: &str = "0.11.2";

const IDEVICE_TOOLS: &[&str] = &[
    "idevice_id",
    "ideviceinfo",
    "idevicepair",
    "idevicediagnostics",
    "idevicebackup2",
];

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(tool).is_file())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

/// Where the pymobiledevice3 venv lives.
pub(crate) fn venv_dir(root: &Path) -> PathBuf {
    root.join("target").join("peers").join("venv")
}

/// The pymobiledevice3 executable the tests use.
pub(crate) fn pymobiledevice3(root: &Path) -> PathBuf {
    venv_dir(root).join("bin").join("pymobiledevice3")
}

/// The venv's Python, which has iphone_backup_decrypt.
pub(crate) fn python(root: &Path) -> PathBuf {
    venv_dir(root).join("bin").join("python")
}

/// Whether the venv has iphone_backup_decrypt at the pinned version.
fn has_decryptor(root: &Path) -> bool {
    Command::new(python(root))
        .args([
            "-c",
            "import importlib.metadata as m, sys; sys.exit(m.version('iphone_backup_decrypt') != sys.argv[1])",
            IPHONE_BACKUP_DECRYPT_VERSION,
        ])
        // A missing package is the expected answer, not an error to show.
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs whatever peer is missing and checks each one answers.
pub(crate) fn ensure(root: &Path) -> anyhow::Result<()> {
    let missing: Vec<&str> = IDEVICE_TOOLS
        .iter()
        .copied()
        .filter(|t| !on_path(t))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "xtask: installing libimobiledevice-utils (missing: {})",
            missing.join(", ")
        );
        if !on_path("apt-get") {
            bail!(
                "libimobiledevice's tools are missing and apt-get is not available: install them by hand"
            );
        }
        let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
        let apt = |args: &[&str]| {
            let mut all: Vec<&str> = sudo.to_vec();
            all.push("apt-get");
            all.extend_from_slice(args);
            let mut cmd = Command::new(all[0]);
            cmd.args(&all[1..]).env("DEBIAN_FRONTEND", "noninteractive");
            run(&mut cmd)
        };
        apt(&["update", "-qq"])?;
        apt(&["install", "-y", "-qq", "libimobiledevice-utils", "sqlite3"])?;
        let still: Vec<&str> = IDEVICE_TOOLS
            .iter()
            .copied()
            .filter(|t| !on_path(t))
            .collect();
        if !still.is_empty() {
            bail!("still missing after install: {}", still.join(", "));
        }
    }
    if !on_path("promtool") {
        // `promtool check metrics` checks the daemon's GET /metrics (tests/tests/metrics.rs).
        eprintln!("xtask: installing Debian's prometheus (for promtool)");
        if !on_path("apt-get") {
            bail!("promtool is missing and apt-get is not available: install Debian's prometheus");
        }
        let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
        let mut all: Vec<&str> = sudo.to_vec();
        all.extend_from_slice(&[
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "prometheus",
        ]);
        let mut cmd = Command::new(all[0]);
        cmd.args(&all[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        if run(&mut cmd).is_err() {
            let mut update: Vec<&str> = sudo.to_vec();
            update.extend_from_slice(&["apt-get", "update", "-qq"]);
            run(Command::new(update[0]).args(&update[1..]))?;
            run(&mut cmd)?;
        }
        if !on_path("promtool") {
            bail!("promtool is still missing after installing prometheus");
        }
    }
    let pmd3 = pymobiledevice3(root);
    if !pmd3.is_file() {
        eprintln!(
            "xtask: installing pymobiledevice3 {PYMOBILEDEVICE3_VERSION} into {}",
            venv_dir(root).display()
        );
        run(Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(venv_dir(root)))?;
        let pip = venv_dir(root).join("bin").join("pip");
        run(Command::new(&pip)
            .args(["install", "-q", "--disable-pip-version-check"])
            .arg(format!("pymobiledevice3=={PYMOBILEDEVICE3_VERSION}")))?;
        if !pmd3.is_file() {
            bail!(
                "pymobiledevice3 did not install into {}",
                venv_dir(root).display()
            );
        }
    }
    if !has_decryptor(root) {
        eprintln!(
            "xtask: installing iphone_backup_decrypt {IPHONE_BACKUP_DECRYPT_VERSION} into {}",
            venv_dir(root).display()
        );
        let pip = venv_dir(root).join("bin").join("pip");
        run(Command::new(&pip)
            .args(["install", "-q", "--disable-pip-version-check"])
            .arg(format!(
                "iphone_backup_decrypt=={IPHONE_BACKUP_DECRYPT_VERSION}"
            )))?;
        if !has_decryptor(root) {
            bail!(
                "iphone_backup_decrypt did not install into {}",
                venv_dir(root).display()
            );
        }
    }
    run(Command::new("ideviceinfo").arg("--version"))?;
    run(Command::new(&pmd3).arg("version"))?;
    ensure_usb()
}

/// The USB tests need umockdev (emulated devices under the real libusb) and the system libusb that rusb links
/// through pkg-config; without libusb-1.0-0-dev, libusb1-sys would quietly build its own copy instead.
fn ensure_usb() -> anyhow::Result<()> {
    let libusb = || {
        Command::new("pkg-config")
            .args(["--exists", "libusb-1.0"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !on_path("umockdev-run") || !libusb() {
        eprintln!("xtask: installing umockdev, libusb-1.0-0-dev and pkg-config for the USB tests");
        if !on_path("apt-get") {
            bail!(
                "umockdev or libusb-1.0 is missing and apt-get is not available: install them by hand"
            );
        }
        let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
        let mut all: Vec<&str> = sudo.to_vec();
        all.extend([
            "apt-get",
            "install",
            "-y",
            "-qq",
            "umockdev",
            "libusb-1.0-0-dev",
            "pkg-config",
        ]);
        let mut cmd = Command::new(all[0]);
        cmd.args(&all[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        if run(&mut cmd).is_err() {
            // A fresh machine may have no package lists yet.
            let mut update: Vec<&str> = sudo.to_vec();
            update.extend(["apt-get", "update", "-qq"]);
            run(Command::new(update[0]).args(&update[1..]))?;
            run(&mut cmd)?;
        }
    }
    if !on_path("umockdev-run") || !libusb() {
        bail!("umockdev-run or libusb-1.0 still missing after install");
    }
    Ok(())
}

fn is_root() -> bool {
    // The effective uid is the owner of a file we create.
    let probe = std::env::temp_dir().join(format!("xtask-uid-{}", std::process::id()));
    let uid = std::fs::write(&probe, b"").ok().and_then(|()| {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata(&probe).ok().map(|m| m.uid());
        let _ = std::fs::remove_file(&probe);
        uid
    });
    uid == Some(0)
}

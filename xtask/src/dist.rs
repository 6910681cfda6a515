//! `cargo xtask dist`: the Debian package, built with cargo-deb from `[package.metadata.deb]` in
//! `crates/backupd/Cargo.toml`; and `cargo xtask dist --check`, which installs it on this machine with dpkg,
//! checks what landed where, runs the binaries from their installed paths and purges it again.
//!
//! The package ships `backupd` in /usr/sbin, `backupdctl` in /usr/bin, the systemd unit and udev rule under
//! /usr/lib, the example config as the conffile /etc/backupd/backupd.toml, the man page and the completions.
//! Its maintainer scripts (`crates/backupd/debian/`) create the `backupd` group and reload udev and systemd.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::install::{Layout, substitute};

/// The package's name.
const PACKAGE: &str = "backupd";

/// What the package installs, with the mode each file must have (owner and group root).
pub(crate) const FILES: &[(&str, u32)] = &[
    ("/usr/sbin/backupd", 0o755),
    ("/usr/bin/backupdctl", 0o755),
    ("/usr/lib/systemd/system/backupd.service", 0o644),
    ("/usr/lib/udev/rules.d/90-backupd.rules", 0o644),
    ("/etc/backupd/backupd.toml", 0o644),
    ("/usr/share/man/man1/backupdctl.1.gz", 0o644),
    ("/usr/share/bash-completion/completions/backupdctl", 0o644),
    ("/usr/share/zsh/vendor-completions/_backupdctl", 0o644),
    (
        "/usr/share/fish/vendor_completions.d/backupdctl.fish",
        0o644,
    ),
    ("/usr/share/doc/backupd/copyright", 0o644),
    ("/usr/share/doc/backupd/README.md", 0o644),
];

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Makes sure `cargo deb` runs: installs cargo-deb from crates.io when it is missing, and fails when it cannot.
pub(crate) fn ensure_cargo_deb() -> anyhow::Result<()> {
    let works = || {
        cargo()
            .args(["deb", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works() {
        return Ok(());
    }
    eprintln!("xtask: cargo-deb is missing; installing it (cargo install cargo-deb --locked)");
    let status = cargo()
        .args(["install", "cargo-deb", "--locked"])
        .status()
        .context("failed to start cargo install")?;
    if !status.success() || !works() {
        bail!("cargo-deb could not be installed ({status}); the Debian package needs it");
    }
    Ok(())
}

/// The Debian architecture of this machine (`amd64`, `arm64`…).
fn deb_arch() -> anyhow::Result<String> {
    let out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .context("dpkg is needed to name the package's architecture")?;
    if !out.status.success() {
        bail!("dpkg --print-architecture failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The files cargo-deb takes from `target/release/dist-assets/`: generated, so they never drift.
fn generate_assets(root: &Path, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("failed to create {}", out.display()))?;
    // Debian's places: the daemon in /usr/sbin, its configuration in /etc.
    let layout = Layout {
        bindir: PathBuf::from("/usr/sbin"),
        sysconfdir: PathBuf::from("/etc"),
        ..Layout::for_prefix(Path::new("/usr"))
    };
    let unit = std::fs::read_to_string(root.join("udev/backupd.service"))?;
    std::fs::write(out.join("backupd.service"), substitute(&unit, &layout))?;
    crate::docs::man(out)?;
    crate::docs::completions(out)?;
    // Debian policy: man pages compressed, with no name or time stamp in the gzip header (reproducible).
    let status = Command::new("gzip")
        .args(["-9nf"])
        .arg(out.join("backupdctl.1"))
        .status()
        .context("failed to start gzip")?;
    if !status.success() {
        bail!("gzip of the man page failed");
    }
    Ok(())
}

/// Builds `target/dist/backupd_<version>_<arch>.deb` and returns its path.
pub(crate) fn dist(root: &Path) -> anyhow::Result<PathBuf> {
    ensure_cargo_deb()?;
    let bins = crate::procs::build(root, &["backupd", "backupdctl"], true, &["--locked"])?;
    generate_assets(root, &bins.join("dist-assets"))?;
    let version = env!("CARGO_PKG_VERSION");
    let deb = crate::procs::target_dir(root)
        .join("dist")
        .join(format!("{PACKAGE}_{version}_{}.deb", deb_arch()?));
    if let Some(dir) = deb.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let status = cargo()
        .current_dir(root)
        .args([
            "deb",
            "--package",
            "backupd",
            "--no-build",
            "--locked",
            // The release profile keeps line tables for backtraces; the package ships lean binaries.
            "--strip",
            "--output",
        ])
        .arg(&deb)
        .status()
        .context("failed to start cargo deb")?;
    if !status.success() {
        bail!("cargo deb failed with {status}");
    }
    println!("built {}", deb.display());
    Ok(deb)
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("failed to start {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn group_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["group", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs `deb` with dpkg, checks files, owners, modes, the group and the binaries, then purges it and
/// checks that nothing is left. Needs root, as dpkg does.
pub(crate) fn check(deb: &Path) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the package check installs with dpkg: run it as root");
    }
    let group_before = group_exists("backupd");
    let state_before = Path::new("/var/lib/backupd").exists();
    let etc_before = Path::new("/etc/backupd").exists();
    eprintln!("xtask dist: dpkg -i {}", deb.display());
    run(Command::new("dpkg").arg("-i").arg(deb))?;
    let result = check_installed();
    // Purge whatever the checks said, so a failed check does not leave the package on the machine.
    eprintln!("xtask dist: dpkg --purge {PACKAGE}");
    let purged = run(Command::new("dpkg").args(["--purge", PACKAGE]));
    result?;
    purged?;
    let mut left = Vec::new();
    for (path, _) in FILES {
        if Path::new(path).exists() {
            left.push((*path).to_owned());
        }
    }
    if !etc_before && Path::new("/etc/backupd").exists() {
        left.push("/etc/backupd".into());
    }
    if !state_before && Path::new("/var/lib/backupd").exists() {
        left.push("/var/lib/backupd".into());
    }
    if !group_before && group_exists("backupd") {
        left.push("the group backupd".into());
    }
    if group_before && !group_exists("backupd") {
        bail!("purge deleted the group backupd, which existed before the package");
    }
    if Command::new("dpkg")
        .args(["-s", PACKAGE])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        left.push("dpkg still lists the package".into());
    }
    if !left.is_empty() {
        bail!("dpkg --purge left behind: {}", left.join(", "));
    }
    eprintln!("xtask dist: the package installs, works and purges cleanly");
    Ok(())
}

fn check_installed() -> anyhow::Result<()> {
    let listed = run(Command::new("dpkg").args(["-L", PACKAGE]))?;
    let mut wrong = Vec::new();
    for (path, mode) in FILES {
        if !listed.lines().any(|l| l == *path) {
            wrong.push(format!("{path}: not in dpkg -L"));
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if !m.is_file() => wrong.push(format!("{path}: not a regular file")),
            Ok(m) => {
                if m.mode() & 0o7777 != *mode {
                    wrong.push(format!(
                        "{path}: mode {:o}, expected {mode:o}",
                        m.mode() & 0o7777
                    ));
                }
                if (m.uid(), m.gid()) != (0, 0) {
                    wrong.push(format!(
                        "{path}: owned by {}:{}, not root",
                        m.uid(),
                        m.gid()
                    ));
                }
            }
            Err(e) => wrong.push(format!("{path}: {e}")),
        }
    }
    let conffiles =
        std::fs::read_to_string("/var/lib/dpkg/info/backupd.conffiles").unwrap_or_default();
    if !conffiles
        .lines()
        .any(|l| l.trim() == "/etc/backupd/backupd.toml")
    {
        wrong.push("/etc/backupd/backupd.toml is not a conffile".into());
    }
    if !group_exists("backupd") {
        wrong.push("postinst did not create the group backupd".into());
    }
    let unit =
        std::fs::read_to_string("/usr/lib/systemd/system/backupd.service").unwrap_or_default();
    if !unit
        .lines()
        .any(|l| l == "ExecStart=/usr/sbin/backupd --config /etc/backupd/backupd.toml")
    {
        wrong.push(
            "the unit does not start /usr/sbin/backupd with /etc/backupd/backupd.toml".into(),
        );
    }
    let version = run(Command::new("/usr/sbin/backupd").arg("--version"))?;
    if version.trim() != format!("backupd {}", env!("CARGO_PKG_VERSION")) {
        wrong.push(format!("backupd --version says {version:?}"));
    }
    let help = run(Command::new("/usr/bin/backupdctl").arg("--help"))?;
    if !help.contains("Usage: backupdctl") {
        wrong.push("backupdctl --help shows no usage".into());
    }
    // The installed daemon starts with the installed config and gives its socket to the package's group.
    wrong.extend(run_installed_daemon()?);
    if wrong.is_empty() {
        Ok(())
    } else {
        bail!("the installed package is wrong:\n  {}", wrong.join("\n  "))
    }
}

/// Starts the installed daemon on the installed config (private socket and folders), asks the installed
/// CLI for the status, and checks the socket's group and mode.
fn run_installed_daemon() -> anyhow::Result<Vec<String>> {
    let dir = std::env::temp_dir().join(format!("backupd-dist-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("api.sock");
    let mut cmd = Command::new("/usr/sbin/backupd");
    cmd.args(["--config", "/etc/backupd/backupd.toml", "--usbmuxd"])
        .arg(dir.join("no-usbmuxd.sock"))
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--backup-dir")
        .arg(dir.join("backups"));
    let mut daemon = crate::procs::Running::spawn("installed backupd", &mut cmd)?;
    daemon.wait_for_socket(&socket)?;
    let mut wrong = Vec::new();
    let meta = std::fs::metadata(&socket)?;
    if meta.mode() & 0o777 != 0o660 {
        wrong.push(format!(
            "the API socket has mode {:o}, not 660",
            meta.mode() & 0o777
        ));
    }
    let gid = nix::unistd::Group::from_name("backupd")
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw());
    if Some(meta.gid()) != gid {
        wrong.push("the API socket does not belong to the group backupd".into());
    }
    let status = Command::new("/usr/bin/backupdctl")
        .arg("--socket")
        .arg(&socket)
        .args(["status", "--json"])
        .output()?;
    // 0, 1 or 6 (usbmuxd is absent here, which the host diagnosis reports); 3 would mean no daemon answered.
    match status.status.code() {
        Some(0 | 1 | 6)
            if String::from_utf8_lossy(&status.stdout).contains("\"usbmuxd_address\"") => {}
        other => wrong.push(format!(
            "backupdctl status against the installed daemon exited {other:?}: {}",
            String::from_utf8_lossy(&status.stderr)
        )),
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(wrong)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> String {
        std::fs::read_to_string(crate::root().join("crates/backupd/Cargo.toml")).expect("manifest")
    }

    #[test]
    fn every_checked_file_is_an_asset_of_the_package() {
        let text = manifest();
        for (path, _) in FILES {
            // cargo-deb writes the copyright file itself.
            if path.ends_with("/copyright") {
                continue;
            }
            let dest = path.trim_start_matches('/');
            assert!(
                text.contains(&format!("\"{dest}\""))
                    || text.contains(&format!(
                        "\"{}/\"",
                        Path::new(dest).parent().expect("dir").display()
                    )),
                "{path} is checked but not packaged"
            );
        }
    }

    #[test]
    fn the_maintainer_scripts_are_executable_and_strict() {
        for script in ["postinst", "prerm", "postrm"] {
            let path = crate::root().join("crates/backupd/debian").join(script);
            let meta = std::fs::metadata(&path).expect("script");
            assert!(meta.mode() & 0o111 != 0, "{script} is not executable");
            let text = std::fs::read_to_string(&path).expect("read");
            assert!(text.starts_with("#!/bin/sh\n"), "{script}: POSIX shell");
            assert!(
                text.contains("\nset -e\n"),
                "{script}: stops at the first error"
            );
        }
        let postrm = std::fs::read_to_string(crate::root().join("crates/backupd/debian/postrm"))
            .expect("postrm");
        assert!(
            postrm.contains("! -name backups"),
            "purge never deletes the local backups"
        );
    }
}

//! `cargo xtask install [--prefix DIR] [--debug]` and `cargo xtask uninstall [--prefix DIR]`.
//!
//! Install builds the binaries, copies them and the service files, and records every file it wrote in
//! `PREFIX/share/backupd/install-manifest.txt`, which uninstall reads to remove exactly those files.

use std::path::{Path, PathBuf};

use anyhow::Context;

const MANIFEST: &str = "share/backupd/install-manifest.txt";

/// Where each file goes for a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) bindir: PathBuf,
    pub(crate) sysconfdir: PathBuf,
    pub(crate) systemd_dir: PathBuf,
    pub(crate) udev_dir: PathBuf,
    pub(crate) launchd_dir: PathBuf,
    pub(crate) man_dir: PathBuf,
    pub(crate) completions: [(PathBuf, &'static str); 3],
    pub(crate) manifest: PathBuf,
}

impl Layout {
    /// The system-wide locations for `/usr/local` (what services look at), else everything under the prefix.
    pub(crate) fn for_prefix(prefix: &Path) -> Self {
        let system = prefix == Path::new("/usr/local") || prefix == Path::new("/usr");
        let (systemd_dir, udev_dir, launchd_dir) = if system {
            (
                PathBuf::from("/etc/systemd/system"),
                PathBuf::from("/etc/udev/rules.d"),
                PathBuf::from("/Library/LaunchDaemons"),
            )
        } else {
            (
                prefix.join("lib/systemd/system"),
                prefix.join("lib/udev/rules.d"),
                prefix.join("Library/LaunchDaemons"),
            )
        };
        let sysconfdir = if prefix == Path::new("/usr") {
            PathBuf::from("/etc")
        } else {
            prefix.join("etc")
        };
        Self {
            bindir: prefix.join("bin"),
            sysconfdir,
            systemd_dir,
            udev_dir,
            launchd_dir,
            man_dir: prefix.join("share/man/man1"),
            completions: [
                (
                    prefix.join("share/bash-completion/completions/backupdctl"),
                    "bash",
                ),
                (prefix.join("share/zsh/site-functions/_backupdctl"), "zsh"),
                (
                    prefix.join("share/fish/vendor_completions.d/backupdctl.fish"),
                    "fish",
                ),
            ],
            manifest: prefix.join(MANIFEST),
        }
    }
}

/// Replaces the placeholders of a service file.
pub(crate) fn substitute(text: &str, layout: &Layout) -> String {
    text.replace("@BINDIR@", &layout.bindir.display().to_string())
        .replace("@SYSCONFDIR@", &layout.sysconfdir.display().to_string())
}

struct Installer {
    written: Vec<PathBuf>,
}

impl Installer {
    fn write(&mut self, dest: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
        }
        let tmp = dest.with_extension("xtask-new");
        std::fs::write(&tmp, bytes)
            .with_context(|| format!("failed to write {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, dest)
            .with_context(|| format!("failed to install {}", dest.display()))?;
        println!("installed {}", dest.display());
        self.written.push(dest.to_owned());
        Ok(())
    }
}

/// Installs into `prefix`.
pub(crate) fn install(root: &Path, prefix: &Path, debug: bool) -> anyhow::Result<()> {
    let layout = Layout::for_prefix(prefix);
    let bins = crate::procs::build(root, &["backupd", "backupdctl"], !debug, &["--locked"])?;
    let target = crate::procs::target_dir(root);
    let mut inst = Installer {
        written: Vec::new(),
    };
    for bin in ["backupd", "backupdctl"] {
        let bytes = std::fs::read(bins.join(bin)).with_context(|| format!("no built {bin}"))?;
        inst.write(&layout.bindir.join(bin), &bytes, 0o755)?;
    }
    if cfg!(target_os = "macos") {
        let plist = std::fs::read_to_string(root.join("launchd/org.backupd.backupd.plist"))?;
        inst.write(
            &layout.launchd_dir.join("org.backupd.backupd.plist"),
            substitute(&plist, &layout).as_bytes(),
            0o644,
        )?;
    } else {
        let unit = std::fs::read_to_string(root.join("udev/backupd.service"))?;
        inst.write(
            &layout.systemd_dir.join("backupd.service"),
            substitute(&unit, &layout).as_bytes(),
            0o644,
        )?;
        let rule = std::fs::read(root.join("udev/90-backupd.rules"))?;
        inst.write(&layout.udev_dir.join("90-backupd.rules"), &rule, 0o644)?;
    }
    let config = layout.sysconfdir.join("backupd/backupd.toml");
    if config.exists() {
        println!("kept existing {}", config.display());
    } else {
        inst.write(
            &config,
            &std::fs::read(root.join("docs/backupd.example.toml"))?,
            0o644,
        )?;
    }
    // Generated from backupdctl's clap command into the target folder, then installed like every other file.
    let generated = target.join("xtask-docs");
    crate::docs::man(&generated)?;
    crate::docs::completions(&generated)?;
    inst.write(
        &layout.man_dir.join("backupdctl.1"),
        &std::fs::read(generated.join("backupdctl.1"))?,
        0o644,
    )?;
    for (path, shell) in &layout.completions {
        let name = match *shell {
            "bash" => "backupdctl.bash",
            "zsh" => "_backupdctl",
            _ => "backupdctl.fish",
        };
        inst.write(path, &std::fs::read(generated.join(name))?, 0o644)?;
    }
    let list: String = inst
        .written
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();
    if let Some(dir) = layout.manifest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&layout.manifest, list)?;
    println!(
        "recorded {} files in {}",
        inst.written.len(),
        layout.manifest.display()
    );
    println!("next: create the group (`groupadd --system backupd`), add users to it, then");
    if cfg!(target_os = "macos") {
        println!(
            "  sudo launchctl load -w {}",
            layout
                .launchd_dir
                .join("org.backupd.backupd.plist")
                .display()
        );
    } else {
        println!(
            "  sudo systemctl daemon-reload && sudo udevadm control --reload && sudo systemctl enable --now backupd"
        );
    }
    Ok(())
}

/// Removes what `install` recorded for `prefix`.
pub(crate) fn uninstall(prefix: &Path) -> anyhow::Result<()> {
    let layout = Layout::for_prefix(prefix);
    let list = std::fs::read_to_string(&layout.manifest).with_context(|| {
        format!(
            "nothing recorded at {}: was backupd installed with this prefix?",
            layout.manifest.display()
        )
    })?;
    let config = layout.sysconfdir.join("backupd/backupd.toml");
    for line in list.lines().filter(|l| !l.is_empty()) {
        let path = Path::new(line);
        if path == config {
            println!("kept {} (your configuration)", path.display());
            continue;
        }
        match std::fs::remove_file(path) {
            Ok(()) => println!("removed {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("already gone: {}", path.display())
            }
            Err(e) => {
                return Err(e).with_context(|| format!("failed to remove {}", path.display()));
            }
        }
    }
    std::fs::remove_file(&layout.manifest)?;
    println!("removed {}", layout.manifest.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_prefix_keeps_everything_inside_it() {
        let layout = Layout::for_prefix(Path::new("/opt/b"));
        assert_eq!(
            layout.systemd_dir,
            PathBuf::from("/opt/b/lib/systemd/system")
        );
        assert_eq!(layout.udev_dir, PathBuf::from("/opt/b/lib/udev/rules.d"));
        let unit = substitute(
            "ExecStart=@BINDIR@/backupd --config @SYSCONFDIR@/backupd/backupd.toml",
            &layout,
        );
        assert_eq!(
            unit,
            "ExecStart=/opt/b/bin/backupd --config /opt/b/etc/backupd/backupd.toml"
        );
    }

    fn read(rel: &str) -> String {
        std::fs::read_to_string(crate::root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    #[test]
    fn the_launchd_plist_is_valid_and_keeps_the_daemon_alive() {
        let layout = Layout::for_prefix(Path::new("/usr/local"));
        let text = substitute(&read("launchd/org.backupd.backupd.plist"), &layout);
        let value = plist::Value::from_reader_xml(text.as_bytes()).expect("the plist parses");
        let d = value.as_dictionary().expect("a dictionary");
        assert_eq!(
            d.get("Label").and_then(plist::Value::as_string),
            Some("org.backupd.backupd")
        );
        assert_eq!(
            d.get("KeepAlive").and_then(plist::Value::as_boolean),
            Some(true)
        );
        assert_eq!(
            d.get("RunAtLoad").and_then(plist::Value::as_boolean),
            Some(true)
        );
        let args = d
            .get("ProgramArguments")
            .and_then(plist::Value::as_array)
            .expect("arguments");
        assert_eq!(args[0].as_string(), Some("/usr/local/bin/backupd"));
        assert!(!text.contains('@'), "every placeholder is replaced");
    }

    #[test]
    fn the_systemd_unit_is_hardened_and_has_its_directories() {
        let unit = read("udev/backupd.service");
        for line in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "RuntimeDirectory=backupd",
            "StateDirectory=backupd",
            "PrivateTmp=yes",
            "Restart=on-failure",
            "WantedBy=multi-user.target",
        ] {
            assert!(unit.lines().any(|l| l.trim() == line), "missing {line}");
        }
        let exec = unit
            .lines()
            .find(|l| l.starts_with("ExecStart="))
            .expect("ExecStart");
        assert!(exec.contains("@BINDIR@/backupd --config @SYSCONFDIR@/backupd/backupd.toml"));
    }

    #[test]
    fn the_udev_rule_matches_apple_ios_devices_and_starts_the_service() {
        let rule = read("udev/90-backupd.rules");
        let line = rule
            .lines()
            .find(|l| !l.starts_with('#') && !l.trim().is_empty())
            .expect("a rule");
        for part in [
            "ACTION==\"add\"",
            "SUBSYSTEM==\"usb\"",
            "ATTR{idVendor}==\"05ac\"",
            "ATTR{idProduct}==\"12[9a][0-9a-f]\"",
            "TAG+=\"systemd\"",
            "ENV{SYSTEMD_WANTS}+=\"backupd.service\"",
        ] {
            assert!(line.contains(part), "the rule lacks {part}");
        }
        // Phones in recovery (0x1280-0x1283) and DFU (0x1227) mode never reach usbmuxd; the service starts for
        // them too, so that it can say what the mode means.
        assert!(
            rule.lines().any(|l| !l.starts_with('#')
                && l.contains("ATTR{idProduct}==\"128[0-3]|1227\"")
                && l.contains("ENV{SYSTEMD_WANTS}+=\"backupd.service\"")),
            "the rule does not cover recovery and DFU mode"
        );
    }

    #[test]
    fn the_example_config_parses_with_every_key_commented() {
        let text = read("docs/backupd.example.toml");
        assert!(
            text.lines()
                .filter(|l| l.starts_with("# ") && l.contains(" = "))
                .count()
                >= 10
        );
    }

    #[test]
    fn install_then_uninstall_into_a_private_prefix() {
        let dir = std::env::temp_dir().join(format!("backupd-install-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        install(&crate::root(), &dir, true).expect("install");
        let layout = Layout::for_prefix(&dir);
        for path in [
            layout.bindir.join("backupd"),
            layout.bindir.join("backupdctl"),
            layout.man_dir.join("backupdctl.1"),
            layout.sysconfdir.join("backupd/backupd.toml"),
            layout.completions[0].0.clone(),
        ] {
            assert!(path.is_file(), "{} not installed", path.display());
        }
        if cfg!(target_os = "linux") {
            let unit = std::fs::read_to_string(layout.systemd_dir.join("backupd.service"))
                .expect("unit installed");
            assert!(unit.contains(&format!("ExecStart={}/bin/backupd", dir.display())));
            assert!(layout.udev_dir.join("90-backupd.rules").is_file());
        } else {
            assert!(
                layout
                    .launchd_dir
                    .join("org.backupd.backupd.plist")
                    .is_file()
            );
        }
        uninstall(&dir).expect("uninstall");
        assert!(!layout.bindir.join("backupd").exists());
        assert!(!layout.manifest.exists());
        assert!(
            layout.sysconfdir.join("backupd/backupd.toml").exists(),
            "the configuration is kept"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn usr_local_installs_services_where_the_system_looks() {
        let layout = Layout::for_prefix(Path::new("/usr/local"));
        assert_eq!(layout.systemd_dir, PathBuf::from("/etc/systemd/system"));
        assert_eq!(layout.udev_dir, PathBuf::from("/etc/udev/rules.d"));
        assert_eq!(layout.sysconfdir, PathBuf::from("/usr/local/etc"));
    }
}

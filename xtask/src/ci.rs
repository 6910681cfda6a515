//! `cargo xtask ci`: exactly what CI runs, in order, stopping at the first failure.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::peers;

/// Runs a cargo command in the workspace root.
fn cargo(root: &Path, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    eprintln!("xtask ci: cargo {}", args.join(" "));
    let status = cmd.status().context("failed to start cargo")?;
    if !status.success() {
        bail!("cargo {} failed with {status}", args.join(" "));
    }
    Ok(())
}

/// Output of `cargo tree` with the given arguments; an error when the package is not in the graph at all.
fn tree(root: &Path, args: &[&str]) -> Option<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args([
            "tree", "--locked", "--edges", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The architecture invariants a machine can check (ARCHITECTURE.md), with `cargo tree -i`.
pub(crate) fn invariants(root: &Path) -> anyhow::Result<()> {
    let mut broken = Vec::new();
    // (crate, forbidden dependency, why)
    let forbidden: &[(&str, &str, &str)] = &[
        ("backupd-proto", "tokio", "the protocol core is sans-IO"),
        ("backupd-proto", "rusb", "the protocol core is sans-IO"),
        (
            "backupd-proto",
            "backupd-rules",
            "rules never see protocol types and vice versa",
        ),
        (
            "backupd-rules",
            "backupd-proto",
            "the rules crate never sees protocol types",
        ),
        ("backupd-rules", "tokio", "the rules crate is pure"),
        ("backupd-rules", "backupd-mux", "the rules crate is pure"),
        ("backupd-rules", "rusb", "the rules crate is pure"),
        (
            "backupd-mux",
            "rusb",
            "usbmuxd owns the phone; only backupd-usb touches the bus",
        ),
    ];
    for (krate, dep, why) in forbidden {
        if tree(root, &["--package", krate]).is_none() {
            continue;
        }
        if tree(root, &["--package", krate, "--invert", dep]).is_some_and(|t| !t.trim().is_empty())
        {
            broken.push(format!("{krate} depends on {dep}: {why}"));
        }
    }
    let cli_forbidden = ["rusb", "backupd-usb", "backupd-mux", "backupd-proto"];
    if tree(root, &["--package", "backupdctl"]).is_some() {
        for dep in cli_forbidden {
            if tree(root, &["--package", "backupdctl", "--invert", dep])
                .is_some_and(|t| !t.trim().is_empty())
            {
                broken.push(format!(
                    "backupdctl depends on {dep}: the CLI talks only to the daemon"
                ));
            }
        }
    }
    // The simulator is a dev tool: only the test crate may depend on it normally.
    if let Some(dependents) = tree(root, &["--workspace", "--invert", "backupd-sim"]) {
        for line in dependents.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if !name.is_empty() && name != "backupd-sim" && name != "backupd-e2e" {
                broken.push(format!(
                    "{name} depends on backupd-sim: the simulator is never a shipped dependency"
                ));
            }
        }
    }
    broken.extend(source_invariants(root));
    if broken.is_empty() {
        eprintln!("xtask ci: architecture invariants hold");
        Ok(())
    } else {
        bail!("architecture invariants broken:\n  {}", broken.join("\n  "))
    }
}

/// What `cargo tree` cannot see: the protocol core reads no clock and does no I/O through std, and the rules
/// read no file, environment or clock.
pub(crate) fn source_invariants(root: &Path) -> Vec<String> {
    let rules: &[(&str, &[&str], &str)] = &[
        (
            "crates/backupd-proto/src",
            &[
                "std::fs",
                "std::net",
                "Instant::now",
                "SystemTime::now",
                "std::env",
                "std::process",
            ],
            "the protocol core is sans-IO and clock-free",
        ),
        (
            "crates/backupd-rules/src",
            &[
                "std::fs",
                "std::net",
                "Instant::now",
                "SystemTime::now",
                "std::env",
                "std::process",
            ],
            "the rules are pure",
        ),
    ];
    let mut broken = Vec::new();
    for (dir, forbidden, why) in rules {
        let mut files = Vec::new();
        collect_rs(&root.join(dir), &mut files);
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for f in forbidden.iter().filter(|f| code.contains(**f)) {
                    broken.push(format!("{}:{}: uses {f}: {why}", file.display(), n + 1));
                }
            }
        }
    }
    broken
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Everything CI runs.
pub(crate) fn run(root: &Path) -> anyhow::Result<()> {
    peers::ensure(root)?;
    crate::dist::ensure_cargo_deb()?;
    let pmd3 = peers::pymobiledevice3(root);
    let pmd3 = pmd3.to_str().context("non-UTF-8 path")?;
    let python = peers::python(root);
    let python = python.to_str().context("non-UTF-8 path")?;
    cargo(root, &["fmt", "--all", "--", "--check"], &[])?;
    invariants(root)?;
    cargo(
        root,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    cargo(
        root,
        &[
            "run",
            "--quiet",
            "--locked",
            "--package",
            "xtask",
            "--",
            "codegen",
            "--check",
        ],
        &[],
    )?;
    // The guides the remedies quote live beside the checkout (`../shared/seeds`), not in it.
    let guides = std::env::var("BACKUPD_GUIDES_DIR").ok().or_else(|| {
        let beside = root.join("../shared/seeds");
        beside.is_dir().then(|| beside.display().to_string())
    });
    let guides = match guides {
        Some(g) => g,
        None if std::env::var_os("CI").is_some() => {
            bail!("CI needs the guides: ../shared/seeds or BACKUPD_GUIDES_DIR")
        }
        None => {
            eprintln!(
                "xtask ci: no ../shared/seeds here; the quotes of the guides are not checked"
            );
            String::new()
        }
    };
    let mut test_env = vec![("PYMOBILEDEVICE3", pmd3), ("PEERS_PYTHON", python)];
    if !guides.is_empty() {
        test_env.push(("BACKUPD_GUIDES_DIR", guides.as_str()));
    }
    cargo(root, &["test", "--workspace", "--locked"], &test_env)?;
    cargo(
        root,
        &["doc", "--workspace", "--no-deps", "--locked"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    cargo(root, &["check", "--manifest-path", "fuzz/Cargo.toml"], &[])?;
    // The Debian package: built, installed with dpkg, checked, purged.
    let deb = crate::dist::dist(root)?;
    crate::dist::check(&deb)?;
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sources_keep_the_invariants() {
        let broken = source_invariants(&crate::root());
        assert!(broken.is_empty(), "{broken:#?}");
    }

    #[test]
    fn the_source_check_would_catch_a_clock_read() {
        let dir = std::env::temp_dir().join(format!("xtask-inv-{}", std::process::id()));
        let src = dir.join("crates/backupd-proto/src");
        std::fs::create_dir_all(&src).expect("mkdir");
        std::fs::write(
            src.join("bad.rs"),
            "fn f() { let _ = std::time::Instant::now(); }\n// std::fs in a comment is fine\n",
        )
        .expect("write");
        let broken = source_invariants(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert!(broken[0].contains("Instant::now"));
    }
}

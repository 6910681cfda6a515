//! `cargo xtask <task>`: project tasks beyond cargo.
//!
//! Each task lives in its own module; `main` only picks the task from the first argument.

mod bench;
mod chaos;
mod ci;
mod codegen;
mod demo;
mod demo_usb;
mod dist;
mod docs;
mod fuzz;
mod install;
mod peers;
mod procs;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  demo [--profile NAME]... [--lang it|en] [--backup] [--usb]
                     run backupd on built-in simulated iPhones and print `backupdctl status`;
                     with --backup, also back up the first phone and diagnose it again;
                     with --usb, a phone on an emulated USB bus (umockdev) seen in recovery mode
  ci                 everything CI runs: peers, fmt, invariants, clippy, codegen --check, tests, docs, fuzz build
  peers              install the real clients the interop tests use (libimobiledevice-utils, pymobiledevice3)
  invariants         check the architecture invariants with `cargo tree`
  codegen [--check]  write docs/troubleshooting.md from the backupd-rules catalog;
                     with --check, fail instead if it is out of date
  completions DIR    write backupdctl's shell completions (bash, zsh, fish) into DIR
  man DIR            write backupdctl's man page into DIR
  install [--prefix DIR] [--debug]
                     build and install binaries, service files, config, man page and completions
                     (default prefix /usr/local)
  uninstall [--prefix DIR]
                     remove what install recorded for that prefix
  dist [--check]     build target/dist/backupd_<version>_<arch>.deb with cargo-deb; with --check, also
                     install it with dpkg (as root), check files, modes, group and binaries, then purge it
  fuzz [--minutes N | --seconds N] [--target NAME]...
                     build the cargo-fuzz targets of fuzz/ (stable with RUSTC_BOOTSTRAP=1) and run each
                     for N minutes (default 10), then print inputs run, coverage and crashes
  chaos unplug [--points N]
                     cut the simulated phone at N points of a backup's bytes (default 100) and at every
                     DeviceLink message boundary; the previous backup must survive each cut
  bench [status]     measure backupd against ideviceinfo on the simulator and print ratios
  bench backup [BYTES]
                     back up the same simulated phone (default 1 GiB of files from 1 KB to 100 MB) with
                     backupd, idevicebackup2 and pymobiledevice3, beside a socket-to-disk ceiling";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line, without a backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask's manifest folder's parent.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs the task named by the first argument.
fn run(args: &[String]) -> anyhow::Result<()> {
    let Some((task, rest)) = args.split_first() else {
        bail!("no task given\n\n{USAGE}");
    };
    let root = root();
    match task.as_str() {
        "codegen" => codegen::run(flags(rest, &["--check"])?.contains(&"--check")),
        "ci" => {
            flags(rest, &[])?;
            ci::run(&root)
        }
        "peers" => {
            flags(rest, &[])?;
            peers::ensure(&root)
        }
        "invariants" => {
            flags(rest, &[])?;
            ci::invariants(&root)
        }
        "demo" => {
            let mut profiles = Vec::new();
            let mut lang = None;
            let mut backup = false;
            let mut usb = false;
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--profile" => {
                        profiles.push(it.next().context("--profile needs a NAME")?.clone())
                    }
                    "--lang" => lang = Some(it.next().context("--lang needs it or en")?.clone()),
                    "--backup" => backup = true,
                    "--usb" => usb = true,
                    other => bail!("unexpected argument `{other}`\n\n{USAGE}"),
                }
            }
            if usb {
                return demo_usb::run(&root, lang.as_deref());
            }
            if profiles.is_empty() {
                profiles = demo::DEFAULT_PROFILES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect();
            }
            demo::run(&root, &profiles, lang.as_deref(), backup)
        }
        "completions" => docs::completions(&one_path(rest)?),
        "man" => docs::man(&one_path(rest)?),
        "install" | "uninstall" => {
            let mut prefix = PathBuf::from("/usr/local");
            let mut debug = false;
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--prefix" => {
                        prefix = PathBuf::from(it.next().context("--prefix needs a DIR")?)
                    }
                    "--debug" if task == "install" => debug = true,
                    other => bail!("unexpected argument `{other}`\n\n{USAGE}"),
                }
            }
            if task == "install" {
                install::install(&root, &prefix, debug)
            } else {
                install::uninstall(&prefix)
            }
        }
        "dist" => {
            let check = flags(rest, &["--check"])?.contains(&"--check");
            let deb = dist::dist(&root)?;
            if check { dist::check(&deb) } else { Ok(()) }
        }
        "fuzz" => {
            let mut seconds = 600;
            let mut only = Vec::new();
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                let mut number = |what: &str| -> anyhow::Result<u64> {
                    it.next()
                        .and_then(|n| n.parse().ok())
                        .with_context(|| format!("{what} needs a number"))
                };
                match a.as_str() {
                    "--minutes" => seconds = number("--minutes")?.saturating_mul(60),
                    "--seconds" => seconds = number("--seconds")?,
                    "--target" => only.push(it.next().context("--target needs a NAME")?.clone()),
                    other => bail!("unexpected argument `{other}`\n\n{USAGE}"),
                }
            }
            fuzz::run(&root, &only, seconds)
        }
        "chaos" => match rest {
            [kind] if kind == "unplug" => chaos::unplug(&root, 100),
            [kind, flag, n] if kind == "unplug" && flag == "--points" => {
                chaos::unplug(&root, n.parse().context("--points needs a number")?)
            }
            _ => bail!("expected `chaos unplug [--points N]`\n\n{USAGE}"),
        },
        "bench" => bench::run(&root, rest),
        // Internal: the measuring helper of `bench`.
        "bench-measure" => bench::measure(rest),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

fn one_path(args: &[String]) -> anyhow::Result<PathBuf> {
    match args {
        [dir] => Ok(PathBuf::from(dir)),
        _ => bail!("expected one folder\n\n{USAGE}"),
    }
}

/// The arguments, each of which must be one of `allowed`.
fn flags<'a>(args: &'a [String], allowed: &[&str]) -> anyhow::Result<Vec<&'a str>> {
    args.iter()
        .map(|a| match allowed.contains(&a.as_str()) {
            true => Ok(a.as_str()),
            false => bail!("unexpected argument `{a}`\n\n{USAGE}"),
        })
        .collect()
}

//! `cargo xtask <task>`: project tasks beyond cargo.
//!
//! Each task lives in its own module with a `run` function; `main` only picks the task from the first argument.

mod codegen;

use std::process::ExitCode;

use anyhow::bail;

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  codegen [--check]  write docs/troubleshooting.md from the backupd-rules catalog;
                     with --check, fail instead if it is out of date";

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

/// Runs the task named by the first argument.
fn run(args: &[String]) -> anyhow::Result<()> {
    let Some((task, rest)) = args.split_first() else {
        bail!("no task given\n\n{USAGE}");
    };
    match task.as_str() {
        "codegen" => codegen::run(flags(rest, &["--check"])?.contains(&"--check")),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task `{other}`\n\n{USAGE}"),
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

//! `cargo xtask fuzz`: build the cargo-fuzz targets of `fuzz/` and run each for a while, then print what
//! ran (inputs, coverage, corpus, crashes) as a table for `docs/reliability.md`.
//!
//! libFuzzer needs `-Z` flags (the sanitizer). On a stable toolchain they are unlocked with
//! `RUSTC_BOOTSTRAP=1`, which is what this task sets: the project builds on stable and this machine has
//! no nightly guaranteed. New inputs go to `target/fuzz-corpus/<target>/` (the checked-in corpus in
//! `fuzz/corpus/` is read, never written), crashes to `fuzz/artifacts/<target>/`.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

/// What one target's run showed.
struct Figures {
    target: String,
    seconds: u64,
    runs: u64,
    coverage: u64,
    features: u64,
    corpus: u64,
    peak_rss_mb: u64,
    crashed: bool,
}

/// The targets, as `fuzz/Cargo.toml` lists them.
pub(crate) fn targets(root: &Path) -> anyhow::Result<Vec<String>> {
    let manifest =
        std::fs::read_to_string(root.join("fuzz/Cargo.toml")).context("read fuzz/Cargo.toml")?;
    Ok(manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|name| *name != "backupd-fuzz")
        .map(str::to_owned)
        .collect())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Installs cargo-fuzz when it is missing (a fresh CI machine).
fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let present = Command::new(cargo())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    eprintln!("xtask fuzz: installing cargo-fuzz");
    let status = Command::new(cargo())
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("start cargo install")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed with {status}");
    }
    Ok(())
}

/// Builds every target (optimised, with AddressSanitizer and libFuzzer's coverage instrumentation).
pub(crate) fn build(root: &Path) -> anyhow::Result<()> {
    ensure_cargo_fuzz()?;
    let started = Instant::now();
    let status = Command::new(cargo())
        .current_dir(root.join("fuzz"))
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "build", "-O"])
        .status()
        .context("start cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build failed with {status}");
    }
    eprintln!(
        "xtask fuzz: built every target in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs `targets` (all when empty) for `seconds` each, one after another; fails when one crashed.
pub(crate) fn run(root: &Path, only: &[String], seconds: u64) -> anyhow::Result<()> {
    let all = targets(root)?;
    for t in only {
        if !all.contains(t) {
            bail!("no fuzz target `{t}`; the targets are {}", all.join(", "));
        }
    }
    let chosen: Vec<String> = if only.is_empty() { all } else { only.to_vec() };
    build(root)?;
    let logs = root.join("target/fuzz-logs");
    std::fs::create_dir_all(&logs).context("create target/fuzz-logs")?;
    let mut figures = Vec::new();
    for target in &chosen {
        let work = root.join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
        let seeds = root.join("fuzz/corpus").join(target);
        let log_path = logs.join(format!("{target}.log"));
        let log =
            File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
        eprintln!(
            "xtask fuzz: {target} for {seconds} s (log: {})",
            log_path.display()
        );
        let started = Instant::now();
        let status = Command::new(cargo())
            .current_dir(root.join("fuzz"))
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "-O", target])
            .arg(&work)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args([
                "-print_final_stats=1",
                "-max_len=65536",
                "-rss_limit_mb=2048",
            ])
            .stdout(log.try_clone().context("log file")?)
            .stderr(log)
            .status()
            .context("start cargo fuzz run")?;
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let mut f = parse(target, &text);
        f.seconds = started.elapsed().as_secs();
        f.crashed = !status.success();
        if f.crashed {
            eprintln!(
                "xtask fuzz: {target} FAILED ({status}); see {}",
                log_path.display()
            );
        }
        figures.push(f);
    }
    println!("{}", table(&figures));
    let crashed: Vec<&str> = figures
        .iter()
        .filter(|f| f.crashed)
        .map(|f| f.target.as_str())
        .collect();
    if crashed.is_empty() {
        Ok(())
    } else {
        bail!(
            "fuzz targets failed: {} (inputs in fuzz/artifacts/)",
            crashed.join(", ")
        )
    }
}

/// The figures in a libFuzzer log: the last status line and the final stats.
fn parse(target: &str, log: &str) -> Figures {
    let stat = |key: &str| {
        log.lines()
            .filter_map(|l| l.strip_prefix(key))
            .filter_map(|v| v.trim().parse().ok())
            .next_back()
            .unwrap_or(0)
    };
    let status_field = |key: &str| {
        log.lines()
            .filter(|l| l.starts_with('#'))
            .filter_map(|l| {
                let (_, after) = l.split_once(key)?;
                after
                    .split_whitespace()
                    .next()?
                    .split('/')
                    .next()?
                    .parse()
                    .ok()
            })
            .next_back()
            .unwrap_or(0)
    };
    Figures {
        target: target.to_owned(),
        seconds: 0,
        runs: stat("stat::number_of_executed_units:"),
        coverage: status_field("cov: "),
        features: status_field("ft: "),
        corpus: status_field("corp: "),
        peak_rss_mb: stat("stat::peak_rss_mb:"),
        crashed: false,
    }
}

fn table(figures: &[Figures]) -> String {
    let mut out = String::from(
        "| target | seconds | inputs run | coverage (edges) | features | corpus | peak RSS (MB) | result |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for f in figures {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
            f.target,
            f.seconds,
            f.runs,
            f.coverage,
            f.features,
            f.corpus,
            f.peak_rss_mb,
            if f.crashed { "FAILED" } else { "no crash" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_come_from_the_last_status_line_and_the_final_stats() {
        let log = "\
#2\tINITED cov: 10 ft: 11 corp: 3/100b exec/s: 0 rss: 40Mb
#4096\tpulse  cov: 120 ft: 300 corp: 40/2Kb lim: 40 exec/s: 2048 rss: 60Mb
#9000\tDONE   cov: 130 ft: 320 corp: 44/3Kb lim: 60 exec/s: 3000 rss: 61Mb
Done 9000 runs in 3 second(s)
stat::number_of_executed_units: 9000
stat::average_exec_per_sec:     3000
stat::new_units_added:          41
stat::peak_rss_mb:              61
";
        let f = parse("t", log);
        assert_eq!(
            (f.runs, f.coverage, f.features, f.corpus, f.peak_rss_mb),
            (9000, 130, 320, 44, 61)
        );
    }

    #[test]
    fn every_target_in_the_manifest_is_found() {
        let t = targets(&crate::root()).expect("targets");
        assert!(t.contains(&"file_transfer".to_owned()), "{t:?}");
        assert!(t.contains(&"api_request".to_owned()), "{t:?}");
        assert!(!t.contains(&"backupd-fuzz".to_owned()));
    }
}

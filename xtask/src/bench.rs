//! `cargo xtask bench status`: backupd's speed and footprint beside libimobiledevice's `ideviceinfo`, both
//! reading the same simulated phone. Figures, not pass/fail: the targets are judged by reading the ratios.
//!
//! Measured:
//! - attach → diagnosis ready: the phone is plugged in (simulator control) until the daemon's
//!   `diagnosis_ready` event; beside it, the time `ideviceinfo`/`idevicediagnostics` take to read the same
//!   facts (root values, battery, disk usage, backup domain, the Wi-Fi interface), one process per query as a
//!   script would run them.
//! - status round trip: `GET /v1/devices` on the socket, and `backupdctl status --json` as a process; beside
//!   them `ideviceinfo -k DeviceName` (one lockdown session for one value).
//! - footprint: the idle daemon's resident memory and wake-ups per second (context switches of all its
//!   threads over 10 s); beside them the peak resident memory of one `ideviceinfo` run (it does not stay
//!   resident, so it has no idle wake-ups).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const UDID: &str = "00008110-001A2B3C4D5E6F01";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

fn wait_socket(path: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while UnixStream::connect(path).is_err() {
        if Instant::now() > deadline {
            bail!("{} never opened", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn control(path: &Path, line: &str) -> anyhow::Result<()> {
    let mut s = UnixStream::connect(path)?;
    writeln!(s, "{line}")?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    if !answer.starts_with("ok") {
        bail!("simulator refused {line}: {answer}");
    }
    Ok(())
}

fn http_get(api: &Path, path: &str) -> anyhow::Result<String> {
    let mut s = UnixStream::connect(api)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let i = (v.len() * 99 / 100).min(v.len().saturating_sub(1));
    v.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Resident memory (KiB) of a process and the context switches of all its threads.
fn proc_figures(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("/proc is needed")?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
        let text = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for l in text.lines() {
            if let Some(v) = l
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Ok((rss, switches))
}

/// Runs a command and returns its wall time and peak resident memory (KiB), through `xtask bench-measure`, a
/// process whose only child is the command, so that `getrusage(RUSAGE_CHILDREN)` speaks of it alone.
fn measured(cmd: &[&str], env: &[(&str, &str)]) -> anyhow::Result<(Duration, u64)> {
    let exe = std::env::current_exe()?;
    let start = Instant::now();
    let out = Command::new(exe)
        .arg("bench-measure")
        .args(cmd)
        .envs(env.iter().copied())
        .output()?;
    let wall = start.elapsed();
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let rss = text
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("maxrss_kib="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((wall, rss))
}

/// The `bench-measure` helper: runs its arguments as a command and prints the child's peak RSS.
pub(crate) fn measure(args: &[String]) -> anyhow::Result<()> {
    let (prog, rest) = args
        .split_first()
        .context("bench-measure needs a command")?;
    let out = Command::new(prog)
        .args(rest)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if !out.status.success() {
        bail!("{prog} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    // Linux reports ru_maxrss in KiB.
    println!("maxrss_kib={}", usage.max_rss());
    Ok(())
}

/// Runs the benchmark named by `args`.
pub(crate) fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        None | Some("status") => status(root),
        Some(other) => bail!("unknown benchmark `{other}` (known: status)"),
    }
}

fn status(root: &Path) -> anyhow::Result<()> {
    crate::peers::ensure(root)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("bench: building release binaries");
    let ok = Command::new(&cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "backupd-sim",
            "-p",
            "backupd",
            "-p",
            "backupdctl",
        ])
        .status()?;
    if !ok.success() {
        bail!("release build failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = |n: &str| target.join("release").join(n);
    let dir = target.join("bench").join(std::process::id().to_string());
    std::fs::create_dir_all(&dir)?;
    let mux = dir.join("mux.sock");
    let ctl_sock = dir.join("mux.sock.control");
    let api = dir.join("api.sock");
    let muxaddr = format!("UNIX:{}", mux.display());
    let env = [
        ("USBMUXD_SOCKET_ADDRESS", muxaddr.as_str()),
        ("HOME", dir.to_str().unwrap_or("/tmp")),
    ];

    let _sim = Proc(
        Command::new(bin("backupd-sim"))
            .arg("--socket")
            .arg(&mux)
            .arg("--profile")
            .arg("healthy")
            .env("BACKUPD_SIM_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_socket(&mux)?;
    let paired = Command::new("idevicepair").arg("pair").envs(env).output()?;
    if !paired.status.success() {
        bail!(
            "idevicepair pair failed: {}",
            String::from_utf8_lossy(&paired.stdout)
        );
    }

    // ideviceinfo's side first, while no other child has exited (keeps getrusage honest in the helper anyway).
    let queries: [&[&str]; 5] = [
        &["ideviceinfo"],
        &["ideviceinfo", "-q", "com.apple.mobile.battery"],
        &["ideviceinfo", "-q", "com.apple.disk_usage"],
        &["ideviceinfo", "-q", "com.apple.mobile.backup"],
        &[
            "idevicediagnostics",
            "ioregentry",
            "AppleBCMWLANSkywalkInterface",
        ],
    ];
    let rounds = 10;
    let mut peer_read = Vec::new();
    let mut peer_rss = 0;
    for _ in 0..rounds {
        let mut total = Duration::ZERO;
        for q in queries {
            let (t, rss) = measured(q, &env)?;
            total += t;
            peer_rss = peer_rss.max(rss);
        }
        peer_read.push(total);
    }
    let mut peer_one = Vec::new();
    for _ in 0..20 {
        peer_one.push(measured(&["ideviceinfo", "-k", "DeviceName"], &env)?.0);
    }

    let daemon = Proc(
        Command::new(bin("backupd"))
            .arg("--socket")
            .arg(&api)
            .arg("--usbmuxd")
            .arg(&mux)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--backup-dir")
            .arg(dir.join("backups"))
            .arg("--group")
            .arg("")
            .env("BACKUPD_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_socket(&api)?;
    let ready = || {
        http_get(&api, "/v1/devices")
            .map(|b| b.contains("\"phase\": \"ready\""))
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        if Instant::now() > deadline {
            bail!("the daemon never diagnosed the phone");
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut attach = Vec::new();
    for _ in 0..rounds {
        control(&ctl_sock, &format!("detach {UDID}"))?;
        std::thread::sleep(Duration::from_millis(100));
        let mut events = UnixStream::connect(&api)?;
        events.write_all(b"GET /v1/events HTTP/1.1\r\nHost: b\r\n\r\n")?;
        events.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut reader = BufReader::new(events);
        let mut line = String::new();
        // Skip the response head before plugging in, so the clock covers only attach → diagnosis.
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            if line == "\r\n" {
                break;
            }
        }
        let start = Instant::now();
        control(&ctl_sock, &format!("attach {UDID}"))?;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                bail!("event stream ended");
            }
            if line.contains("\"diagnosis_ready\"") {
                break;
            }
        }
        attach.push(start.elapsed());
    }

    let mut rtt = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        let body = http_get(&api, "/v1/devices")?;
        rtt.push(start.elapsed());
        if !body.starts_with("HTTP/1.1 200") {
            bail!("status failed: {body}");
        }
    }
    let ctl = bin("backupdctl");
    let ctl = ctl.to_str().context("path")?;
    let api_s = api.to_str().context("path")?;
    let mut ctl_times = Vec::new();
    let mut ctl_rss = 0;
    for _ in 0..20 {
        let (t, rss) = measured(&[ctl, "--socket", api_s, "status", "--json"], &[])?;
        ctl_times.push(t);
        ctl_rss = ctl_rss.max(rss);
    }

    std::thread::sleep(Duration::from_secs(2));
    let pid = daemon.0.id();
    let (rss0, sw0) = proc_figures(pid)?;
    std::thread::sleep(Duration::from_secs(10));
    let (rss1, sw1) = proc_figures(pid)?;
    let wakeups = (sw1.saturating_sub(sw0)) as f64 / 10.0;

    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64().max(1e-9);
    println!("backupd vs libimobiledevice on the simulated phone ({rounds} rounds; medians)");
    println!("| measure | backupd | peer | peer / backupd |");
    println!("| --- | --- | --- | --- |");
    let (a, p) = (median(attach.clone()), median(peer_read.clone()));
    println!(
        "| attach → diagnosis ready (p99 {}) | {} | {} (5 tool runs) | {:.1}× |",
        ms(p99(attach)),
        ms(a),
        ms(p),
        ratio(a, p)
    );
    let (r, o) = (median(rtt.clone()), median(peer_one.clone()));
    println!(
        "| status round trip, socket (p99 {}) | {} | {} (`ideviceinfo -k`) | {:.1}× |",
        ms(p99(rtt)),
        ms(r),
        ms(o),
        ratio(r, o)
    );
    let c = median(ctl_times);
    println!(
        "| status round trip, `backupdctl` process | {} | {} | {:.1}× |",
        ms(c),
        ms(o),
        ratio(c, o)
    );
    println!(
        "| resident memory | {} KiB idle daemon ({rss0} → {rss1}), {ctl_rss} KiB peak `backupdctl` | {peer_rss} KiB peak `ideviceinfo` | {:.2}× (peak CLI) |",
        rss1,
        peer_rss as f64 / (ctl_rss.max(1)) as f64
    );
    println!("| idle wake-ups | {wakeups:.1}/s (all threads) | n/a (not resident) | |");
    Ok(())
}

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
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::procs::{self, Running};

const UDID: &str = "00008110-001A2B3C4D5E6F01";

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
    measured_cpu(cmd, env).map(|(wall, rss, _)| (wall, rss))
}

/// Like [`measured`], with the command's CPU seconds too.
///
/// The command starts with no dirty data pending, and its wall time includes writing its own data to disk.
fn measured_cpu(cmd: &[&str], env: &[(&str, &str)]) -> anyhow::Result<(Duration, u64, f64)> {
    let exe = std::env::current_exe()?;
    nix::unistd::sync();
    let start = Instant::now();
    let out = Command::new(exe)
        .arg("bench-measure")
        .args(cmd)
        .envs(env.iter().copied())
        .output()?;
    let wall = start.elapsed() + synced();
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::to_owned)
    };
    let rss = field("maxrss_kib=")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpu = field("cpu_secs=")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Ok((wall, rss, cpu))
}

/// CPU seconds a running process has used so far (user + system, all threads).
fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, in USER_HZ (100 on Linux).
    Ok((tick(11) + tick(12)) / 100.0)
}

/// Peak resident memory (KiB) of a running process.
fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
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
    // `backupdctl status` exits 1 when it finds a problem: only a signal or an exit above 1 is a failure.
    if out.status.code().is_none_or(|c| c > 1) {
        bail!(
            "{prog} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    println!(
        "cpu_secs={:.3}",
        secs(usage.user_time()) + secs(usage.system_time())
    );
    // Linux reports ru_maxrss in KiB.
    println!("maxrss_kib={}", usage.max_rss());
    Ok(())
}

/// Runs the benchmark named by `args`.
pub(crate) fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        None | Some("status") => status(root),
        Some("backup") => backup(
            root,
            args.get(1).and_then(|v| v.parse().ok()).unwrap_or(1 << 30),
        ),
        Some(other) => bail!("unknown benchmark `{other}` (known: status, backup [BYTES])"),
    }
}

fn status(root: &Path) -> anyhow::Result<()> {
    crate::peers::ensure(root)?;
    eprintln!("bench: building release binaries");
    let bins = procs::build(
        root,
        &["backupd-sim", "backupd", "backupdctl"],
        true,
        &["--quiet"],
    )?;
    let target = procs::target_dir(root);
    let bin = |n: &str| bins.join(n);
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

    let mut sim = Running::spawn(
        "backupd-sim",
        Command::new(bin("backupd-sim"))
            .arg("--socket")
            .arg(&mux)
            .arg("--profile")
            .arg("healthy")
            .env("BACKUPD_SIM_LOG", "warn")
            .stderr(Stdio::null()),
    )?;
    sim.wait_for_socket(&mux)?;
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

    let mut daemon = Running::spawn(
        "backupd",
        procs::daemon(&bin("backupd"), &dir, &mux, &api, &dir.join("backups"))
            .env("BACKUPD_LOG", "warn")
            .stderr(Stdio::null()),
    )?;
    daemon.wait_for_socket(&api)?;
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
    let pid = daemon.id();
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

const BENCH_PROFILE_HEAD: &str = r#"
[identity]
udid = "00008110-001A2B3C4D5E6F01"
device_name = "Bench iPhone"
product_type = "iPhone14,5"
product_version = "17.5.1"
build_version = "21F90"

[lockdown."com.apple.disk_usage"]
TotalDataCapacity = 114000000000
TotalDataAvailable = 100000000000
"#;

/// One run of backupd: daemon started, one job through the API, wall time from the request to `job_finished`.
struct Figures {
    wall: Duration,
    cpu: f64,
    rss_kib: u64,
    bytes: u64,
}

fn mb_s(bytes: u64, wall: Duration) -> f64 {
    bytes as f64 / 1e6 / wall.as_secs_f64().max(1e-9)
}

/// The ceiling: the same file sizes moved through a Unix socket and written to disk as new files, with no
/// protocol work at all.
fn ceiling(sizes: &[u64], dir: &Path) -> anyhow::Result<Figures> {
    use std::os::unix::net::UnixStream as Pair;
    std::fs::create_dir_all(dir)?;
    let (mut tx, mut rx) = Pair::pair()?;
    let owned: Vec<u64> = sizes.to_vec();
    let total: u64 = sizes.iter().sum();
    let start = Instant::now();
    let cpu0 = cpu_secs(std::process::id())?;
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let block = vec![0x5Au8; 256 << 10];
        for size in owned {
            let mut left = size;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                tx.write_all(&block[..n])?;
                left -= n as u64;
            }
        }
        Ok(())
    });
    let mut buf = vec![0u8; 256 << 10];
    for (i, size) in sizes.iter().enumerate() {
        let sub = dir.join(format!("{:02x}", i % 256));
        std::fs::create_dir_all(&sub)?;
        let part = sub.join(format!("{i}.part"));
        let mut f = std::fs::File::create(&part)?;
        let mut left = *size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = rx.read(&mut buf[..want])?;
            if n == 0 {
                bail!("ceiling sender stopped early");
            }
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
        drop(f);
        std::fs::rename(&part, sub.join(format!("{i}")))?;
    }
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    nix::unistd::sync();
    Ok(Figures {
        wall: start.elapsed(),
        cpu: cpu_secs(std::process::id())? - cpu0,
        rss_kib: 0,
        bytes: total,
    })
}

fn backup(root: &Path, total: u64) -> anyhow::Result<()> {
    crate::peers::ensure(root)?;
    eprintln!("bench: building release binaries");
    let bins = procs::build(root, &["backupd-sim", "backupd"], true, &["--quiet"])?;
    let target = procs::target_dir(root);
    let bin = |n: &str| bins.join(n);
    let dir = target
        .join("bench")
        .join(format!("backup-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let profile = dir.join("bench.toml");
    std::fs::write(
        &profile,
        format!(
            "{BENCH_PROFILE_HEAD}\n[backup]\nseed = 7\ngenerated_total_bytes = {total}\ngenerated_min_file = 1024\ngenerated_max_file = 104857600\n"
        ),
    )?;
    let mux = dir.join("mux.sock");
    let muxaddr = format!("UNIX:{}", mux.display());
    let home = dir.join("home");
    std::fs::create_dir_all(&home)?;
    let home_s = home.to_str().context("path")?.to_owned();
    let mut sim = Running::spawn(
        "backupd-sim",
        Command::new(bin("backupd-sim"))
            .arg("--socket")
            .arg(&mux)
            .arg("--profile")
            .arg(&profile)
            .env("BACKUPD_SIM_LOG", "warn")
            .stderr(Stdio::null()),
    )?;
    sim.wait_for_socket(&mux)?;
    let env = [
        ("USBMUXD_SOCKET_ADDRESS", muxaddr.as_str()),
        ("HOME", home_s.as_str()),
    ];
    let paired = Command::new("idevicepair").arg("pair").envs(env).output()?;
    if !paired.status.success() {
        bail!("idevicepair pair failed");
    }
    let sim_pid = sim.id();

    // backupd, through its daemon and API, as a user runs it.
    let api = dir.join("api.sock");
    let mut daemon = Running::spawn(
        "backupd",
        procs::daemon(&bin("backupd"), &dir, &mux, &api, &dir.join("backupd"))
            .env("BACKUPD_LOG", "warn")
            .stderr(Stdio::null()),
    )?;
    daemon.wait_for_socket(&api)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http_get(&api, "/v1/devices")
        .map(|b| b.contains("\"phase\": \"ready\""))
        .unwrap_or(false)
    {
        if Instant::now() > deadline {
            bail!("the daemon never read the phone");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut events = UnixStream::connect(&api)?;
    events.write_all(b"GET /v1/events HTTP/1.1\r\nHost: b\r\n\r\n")?;
    let mut reader = BufReader::new(events);
    let cpu0 = cpu_secs(daemon.id())?;
    let sim_cpu0 = cpu_secs(sim_pid)?;
    // Every tool starts with no dirty data pending and pays for writing its own to disk.
    nix::unistd::sync();
    let start = Instant::now();
    let mut post = UnixStream::connect(&api)?;
    write!(
        post,
        "POST /v1/devices/{UDID}/backup HTTP/1.1\r\nHost: b\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{{\"full\":true}}"
    )?;
    let mut answer = String::new();
    post.read_to_string(&mut answer)?;
    if !answer.starts_with("HTTP/1.1 202") {
        bail!("backup did not start: {answer}");
    }
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("event stream ended");
        }
        if line.contains("\"job_finished\"") {
            if !line.contains("\"succeeded\"") {
                bail!("backupd's backup failed: {line}");
            }
            break;
        }
    }
    nix::unistd::sync();
    let ours = Figures {
        wall: start.elapsed(),
        cpu: cpu_secs(daemon.id())? - cpu0,
        rss_kib: peak_rss(daemon.id()),
        bytes: dir_bytes(&dir.join("backupd").join(UDID)),
    };
    let sim_cpu = cpu_secs(sim_pid)? - sim_cpu0;
    drop(daemon);

    let ib_dir = dir.join("idevicebackup2");
    std::fs::create_dir_all(&ib_dir)?;
    let (wall, rss, cpu) = measured_cpu(
        &[
            "idevicebackup2",
            "backup",
            "--full",
            ib_dir.to_str().context("path")?,
        ],
        &env,
    )?;
    let ib = Figures {
        wall,
        cpu,
        rss_kib: rss,
        bytes: dir_bytes(&ib_dir.join(UDID)),
    };

    let py_dir = dir.join("pymobiledevice3");
    std::fs::create_dir_all(&py_dir)?;
    let pmd3 = crate::peers::pymobiledevice3(root);
    let mux_bare = mux.to_str().context("path")?.to_owned();
    let py_env = [
        ("USBMUXD_SOCKET_ADDRESS", mux_bare.as_str()),
        ("HOME", home_s.as_str()),
    ];
    let (wall, rss, cpu) = measured_cpu(
        &[
            pmd3.to_str().context("path")?,
            "backup2",
            "backup",
            "--full",
            py_dir.to_str().context("path")?,
        ],
        &py_env,
    )?;
    let py = Figures {
        wall,
        cpu,
        rss_kib: rss,
        bytes: dir_bytes(&py_dir.join(UDID)),
    };
    drop(sim);

    // The ceiling moves the same file sizes: read them back from backupd's Manifest.db-listed files.
    let mut sizes = Vec::new();
    collect_sizes(&dir.join("backupd").join(UDID), &mut sizes);
    nix::unistd::sync();
    let ceil = ceiling(&sizes, &dir.join("ceiling"))?;

    println!(
        "backup of {:.0} MB of simulated files (1 KB to 100 MB each), full, on this machine",
        ours.bytes as f64 / 1e6
    );
    println!("| tool | MB/s | CPU s per GB | peak RSS | backupd's rate ÷ tool's |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, f) in [
        ("backupd (daemon)", &ours),
        ("idevicebackup2", &ib),
        ("pymobiledevice3", &py),
        ("ceiling (socket → disk)", &ceil),
    ] {
        let gb = f.bytes as f64 / 1e9;
        let rss = if f.rss_kib > 0 {
            format!("{:.1} MiB", f.rss_kib as f64 / 1024.0)
        } else {
            "-".into()
        };
        println!(
            "| {name} | {:.1} | {:.2} | {rss} | {:.2} |",
            mb_s(f.bytes, f.wall),
            f.cpu / gb.max(1e-9),
            mb_s(ours.bytes, ours.wall) / mb_s(f.bytes, f.wall).max(1e-9)
        );
    }
    println!(
        "targets: ≥ 1.5× idevicebackup2 ({:.2}×), ≥ 80% of the ceiling ({:.0}%), peak RSS < 64 MiB ({:.1} MiB)",
        mb_s(ours.bytes, ours.wall) / mb_s(ib.bytes, ib.wall).max(1e-9),
        100.0 * mb_s(ours.bytes, ours.wall) / mb_s(ceil.bytes, ceil.wall).max(1e-9),
        ours.rss_kib as f64 / 1024.0
    );
    println!(
        "simulator during backupd's run: {:.1} CPU s over {:.1} s wall ({:.0}% of one core): {}",
        sim_cpu,
        ours.wall.as_secs_f64(),
        100.0 * sim_cpu / ours.wall.as_secs_f64().max(1e-9),
        if sim_cpu < 0.9 * ours.wall.as_secs_f64() {
            "not the bottleneck"
        } else {
            "near saturation: the figures are a floor"
        }
    );
    Ok(())
}

/// How long writing out the dirty data takes: the part of a tool's work the page cache hides.
fn synced() -> Duration {
    let t = Instant::now();
    nix::unistd::sync();
    t.elapsed()
}

fn collect_sizes(dir: &Path, out: &mut Vec<u64>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.len() == 2 && e.path().is_dir() {
            for f in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                out.push(f.metadata().map(|m| m.len()).unwrap_or(0));
            }
        }
    }
}

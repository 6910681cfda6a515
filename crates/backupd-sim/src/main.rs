//! `backupd-sim`: serve simulated iPhones behind a usbmuxd socket.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use backupd_sim::profile::BUILTIN;
use backupd_sim::{Config, Profile, Simulator};

/// Serve simulated iPhones behind a usbmuxd socket that real clients accept.
///
/// Point libimobiledevice at it with USBMUXD_SOCKET_ADDRESS=UNIX:PATH, pymobiledevice3 with
/// USBMUXD_SOCKET_ADDRESS=PATH, backupd with --usbmuxd PATH.
/// Signals: SIGUSR1 unplugs every phone, SIGUSR2 plugs them back; SIGINT/SIGTERM stop.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    /// The usbmuxd Unix socket to create.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// A profile file, or the name of a built-in one (healthy, wifi-off-no-charger, icloud-full-whatsapp);
    /// repeat for several phones. Default: healthy.
    #[arg(long = "profile", value_name = "FILE|NAME")]
    profiles: Vec<String>,
    /// Also serve the muxer on this loopback TCP address (e.g. 127.0.0.1:27015).
    #[arg(long, value_name = "ADDR")]
    tcp: Option<SocketAddr>,
    /// The control socket (default: SOCKET.control).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Where pair records and the phones' keys are kept (default: SOCKET.state).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send a control command to a running simulator, e.g. `ctl --control S detach UDID`.
    Ctl {
        /// The control socket.
        #[arg(long, value_name = "PATH")]
        control: PathBuf,
        /// The command: list, attach UDID, detach UDID, trust UDID, distrust UDID, lock UDID, unlock UDID,
        /// reset-trust UDID, notify UDID NAME.
        #[arg(required = true, trailing_var_arg = true)]
        words: Vec<String>,
    },
    /// Print a built-in profile, to start a new one from it.
    ShowProfile {
        /// healthy, wifi-off-no-charger or icloud-full-whatsapp.
        name: String,
    },
}

fn load_profile(spec: &str) -> anyhow::Result<Profile> {
    if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == spec) {
        return Ok(Profile::parse(text, name)?);
    }
    Ok(Profile::load(std::path::Path::new(spec))?)
}

fn ctl(control: &PathBuf, words: &[String]) -> anyhow::Result<()> {
    let mut s = UnixStream::connect(control)
        .with_context(|| format!("failed to reach {}", control.display()))?;
    writeln!(s, "{}", words.join(" "))?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    let line = line.trim_end();
    println!("{line}");
    if line.starts_with("error") {
        bail!("the simulator refused the command");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Ctl { control, words }) => return ctl(control, words),
        Some(Command::ShowProfile { name }) => {
            let (_, text) = BUILTIN
                .iter()
                .find(|(n, _)| n == name)
                .context("no such built-in profile")?;
            print!("{text}");
            return Ok(());
        }
        None => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BACKUPD_SIM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let socket = cli.socket.context("--socket PATH is required")?;
    let specs = if cli.profiles.is_empty() {
        vec!["healthy".to_owned()]
    } else {
        cli.profiles.clone()
    };
    let profiles = specs
        .iter()
        .map(|s| load_profile(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let with_suffix = |suffix: &str| {
        let mut p = socket.clone().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
    };
    let config = Config {
        control: Some(cli.control.unwrap_or_else(|| with_suffix(".control"))),
        state_dir: cli.state_dir.unwrap_or_else(|| with_suffix(".state")),
        socket: socket.clone(),
        tcp: cli.tcp,
        profiles,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let sim = Simulator::start(config).await?;
        for (phone, id) in sim.muxd().phones() {
            tracing::info!(udid = phone.udid(), device_id = ?id, name = phone.profile().identity.device_name, "serving");
        }
        if let Some(addr) = sim.tcp_addr() {
            tracing::info!(%addr, "also serving on TCP");
        }
        tracing::info!(socket = %socket.display(), "ready");
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut usr1 = signal(SignalKind::user_defined1())?;
        let mut usr2 = signal(SignalKind::user_defined2())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = usr1.recv() => for (p, _) in sim.muxd().phones() { sim.muxd().detach(p.udid()); },
                _ = usr2.recv() => for (p, _) in sim.muxd().phones() { sim.muxd().attach(p.udid()); },
            }
        }
        sim.shutdown().await;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

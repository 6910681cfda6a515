//! `backupd`: the daemon binary.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use backupd::config::{Environment, FileConfig, LogFormat, Settings};

/// Notices iPhones plugged in by USB, diagnoses why their backups fail, and serves the diagnosis on a Unix
/// socket for `backupdctl`.
///
/// Every setting can come from the config file; flags override it.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The configuration file (TOML; every key optional; see docs/configuration.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The API socket [default: /run/backupd/backupd.sock as root, $XDG_RUNTIME_DIR/backupd.sock otherwise].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The usbmuxd address: UNIX:/path, /path or host:port [default: $USBMUXD_SOCKET_ADDRESS or /var/run/usbmuxd].
    #[arg(long, value_name = "ADDR")]
    usbmuxd: Option<String>,
    /// Where the daemon keeps its state [default: /var/lib/backupd as root, ~/.local/state/backupd otherwise].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Where local backups go [default: /var/lib/backupd/backups as root, ~/.local/share/backupd/backups].
    #[arg(long, value_name = "DIR")]
    backup_dir: Option<PathBuf>,
    /// The group allowed to use the API socket [default: backupd].
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Log format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BACKUPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Plain => builder.with_ansi(ansi).init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let mut file = file;
    file.socket = cli.socket.or(file.socket);
    file.usbmuxd = cli.usbmuxd.or(file.usbmuxd);
    file.state_dir = cli.state_dir.or(file.state_dir);
    file.backup_dir = cli.backup_dir.or(file.backup_dir);
    file.group = cli.group.or(file.group);
    file.log_format = cli.log_format.or(file.log_format);
    let settings = Settings::resolve(file, &Environment::from_process())?;
    init_logging(settings.log_format);
    if !settings.pin_device_keys {
        tracing::warn!(
            "device key pinning is off (pin_device_keys = false): any phone key is accepted"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime
        .block_on(async move {
            let listener = backupd::server::bind(&settings.socket, settings.group.as_deref())?;
            tracing::info!(
                socket = %settings.socket.display(),
                usbmuxd = %settings.usbmuxd,
                state_dir = %settings.state_dir.display(),
                backup_dir = %settings.backup_dir.display(),
                "backupd started"
            );
            let socket = settings.socket.clone();
            let shutdown = async {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return std::future::pending().await;
                };
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM"),
                    _ = int.recv() => tracing::info!("SIGINT"),
                }
            };
            backupd::run(settings, listener, shutdown).await;
            let _ = std::fs::remove_file(&socket);
            anyhow::Ok(())
        })
        .context("backupd failed")
}

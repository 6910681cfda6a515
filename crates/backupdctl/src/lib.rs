//! `backupdctl`: the command line of backupd. It talks only to the daemon, over HTTP/1.1 on the daemon's Unix
//! socket (the contract is [`backupd_api`]), and never touches USB itself.
//!
//! - `backupdctl status [UDID]`: the host and each connected phone (or the one named), with its diagnosis.
//! - `backupdctl diagnose [UDID]`: asks for a new diagnosis, waits for it, then shows it like `status`.
//! - `backupdctl watch`: prints the daemon's events as they happen, optionally as desktop notifications.
//!
//! The exit code says what was found ([`backupd_api::exit`]): 0 all checks pass, 1 a problem was found, 6 no
//! diagnosis yet, 4 unknown phone, 3 daemon unreachable, 5 daemon error, 2 usage. Every failure is an
//! [`ExpectedError`], rendered with its remedy; nothing the daemon sends can make the CLI panic.
//!
//! The crate is a library so that tests run the CLI in-process ([`run`]) and `cargo xtask` can build shell
//! completions and the man page from [`command`]; `src/main.rs` only calls [`run`].

mod client;
mod diagnose;
mod error;
mod notify;
mod status;
mod text;
mod watch;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use backupd_api::exit;

pub use error::ExpectedError;

use client::Client;
use text::Lang;

const EXIT_CODES: &str = "\
Exit codes:
  0  every check passed (or the command did what was asked)
  1  a check found a problem on a phone or on the host
  2  the command line was wrong
  3  the daemon could not be reached on its socket
  4  the daemon knows no such phone
  5  the daemon answered with an error, or its answer could not be read
  6  no diagnosis yet: no iPhone connected, still reading it, or waiting for you to tap Trust";

/// Asks backupd, the daemon that watches iPhones plugged in by USB, why their backups fail and what to do.
#[derive(Debug, Parser)]
#[command(name = "backupdctl", bin_name = "backupdctl", version, after_help = EXIT_CODES)]
struct Cli {
    /// Language of the diagnoses and messages [default: from LC_ALL, LC_MESSAGES or LANG, else English]
    #[arg(long, global = true, value_enum, value_name = "LANG")]
    lang: Option<Lang>,
    /// The daemon's socket [default: $XDG_RUNTIME_DIR/backupd.sock if it exists, else
    /// /run/backupd/backupd.sock]
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = backupd_api::SOCKET_ENV,
        hide_env_values = true
    )]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Show the host and each connected iPhone (or the one named) with its latest diagnosis
    #[command(after_help = EXIT_CODES)]
    Status(StatusArgs),
    /// Ask the daemon to read the iPhones again (or the one named), wait for the new diagnosis and show it
    #[command(after_help = EXIT_CODES)]
    Diagnose(DiagnoseArgs),
    /// Print the daemon's events as they happen, one line each, until the daemon stops or Ctrl-C
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Show only this phone, connected or not (dashes and case do not matter)
    #[arg(value_name = "UDID", value_parser = parse_udid)]
    udid: Option<String>,
    /// Print the daemon's JSON (a `Status`) instead of text; with a UDID, only that phone is in `devices`
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DiagnoseArgs {
    /// Diagnose only this phone (dashes and case do not matter) [default: every connected phone]
    #[arg(value_name = "UDID", value_parser = parse_udid)]
    udid: Option<String>,
    /// How long to wait for the new diagnosis, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// Print the daemon's JSON (a `Status`) instead of text
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct WatchArgs {
    /// Print the daemon's events as they come, one JSON object per line
    #[arg(long)]
    json: bool,
    /// Also show each event as a desktop notification (notify-send on Linux, osascript on macOS)
    #[arg(long)]
    notify: bool,
}

/// The clap command of `backupdctl`, for shell completions and the man page.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs `backupdctl` with `args` (the first is the program name), writing results to `out` and errors and
/// warnings to `err`, and returns the exit code ([`backupd_api::exit`]).
pub fn run(
    args: impl IntoIterator<Item = OsString>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> i32 {
    let cli = match command()
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with success; usage errors to stderr with clap's code 2.
            let text = e.render().to_string();
            if e.use_stderr() {
                let _ = err.write_all(text.as_bytes());
                return exit::USAGE;
            }
            return match out.write_all(text.as_bytes()) {
                Ok(()) => exit::OK,
                Err(e) => ExpectedError::Output(e).report(err),
            };
        }
    };
    let env = Environment::from_process();
    match execute(cli, &env, out, err) {
        Ok(code) => code,
        Err(ExpectedError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => e.report(err),
    }
}

/// What the CLI reads from its environment besides its arguments.
#[derive(Debug, Clone, Default)]
struct Environment {
    /// `LC_ALL`, `LC_MESSAGES` or `LANG`, the first one set and not empty.
    locale: Option<String>,
    /// `XDG_RUNTIME_DIR`.
    runtime_dir: Option<PathBuf>,
}

impl Environment {
    fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            locale: var("LC_ALL")
                .or_else(|| var("LC_MESSAGES"))
                .or_else(|| var("LANG")),
            runtime_dir: std::env::var_os("XDG_RUNTIME_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

/// The daemon's socket: the flag or `BACKUPD_SOCKET`, else the user daemon's socket when it exists, else the
/// system daemon's.
fn socket_path(flag: Option<PathBuf>, env: &Environment) -> PathBuf {
    if let Some(path) = flag.filter(|p| !p.as_os_str().is_empty()) {
        return path;
    }
    if let Some(user) = env.runtime_dir.as_ref().map(|d| d.join("backupd.sock"))
        && user.exists()
    {
        return user;
    }
    PathBuf::from("/run/backupd/backupd.sock")
}

fn execute(
    cli: Cli,
    env: &Environment,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<i32, ExpectedError> {
    let lang = cli
        .lang
        .unwrap_or_else(|| Lang::from_locale(env.locale.as_deref()));
    let socket = socket_path(cli.socket, env);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ExpectedError::Runtime)?;
    runtime.block_on(async {
        let client = Client::new(socket);
        match cli.command {
            Cmd::Status(a) => status::run(&client, a.udid.as_deref(), a.json, lang, out).await,
            Cmd::Diagnose(a) => {
                let options = diagnose::Options {
                    udid: a.udid.as_deref(),
                    timeout: Duration::from_secs(a.timeout),
                    json: a.json,
                };
                diagnose::run(&client, &options, lang, out, err).await
            }
            Cmd::Watch(a) => watch::run(&client, a.json, a.notify, lang, out, err).await,
        }
    })
}

/// Accepts a UDID in any spelling: letters, digits and dashes.
fn parse_udid(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars().any(|c| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("a UDID has only letters, digits and dashes, e.g. 00008110-001A2B3C4D5E6F01".to_owned())
    }
}

/// A UDID without dashes, upper-case, as the daemon compares them.
fn normalize_udid(udid: &str) -> String {
    udid.chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Writes `text` to `out`, mapping a failure to [`ExpectedError::Output`].
fn write_out(out: &mut impl Write, text: &str) -> Result<(), ExpectedError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(ExpectedError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udids_match_in_any_spelling() {
        assert_eq!(
            normalize_udid("00008110-001a2b3c4d5e6f01"),
            normalize_udid("00008110001A2B3C4D5E6F01")
        );
        assert!(parse_udid("00008110-001A2B3C4D5E6F01").is_ok());
        assert!(parse_udid("../etc").is_err());
        assert!(parse_udid("a b").is_err());
        assert!(parse_udid("---").is_err());
        assert!(parse_udid("").is_err());
    }

    #[test]
    fn socket_prefers_the_flag_then_an_existing_user_socket_then_the_system_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = Environment {
            locale: None,
            runtime_dir: Some(dir.path().to_owned()),
        };
        assert_eq!(
            socket_path(None, &env),
            PathBuf::from("/run/backupd/backupd.sock")
        );
        let user = dir.path().join("backupd.sock");
        std::fs::write(&user, b"").expect("touch");
        assert_eq!(socket_path(None, &env), user);
        assert_eq!(
            socket_path(Some("/tmp/x.sock".into()), &env),
            PathBuf::from("/tmp/x.sock")
        );
        assert_eq!(
            socket_path(None, &Environment::default()),
            PathBuf::from("/run/backupd/backupd.sock")
        );
    }

    #[test]
    fn the_command_is_consistent() {
        command().debug_assert();
    }
}

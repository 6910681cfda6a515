//! `backupdctl`: the command line of backupd. It talks only to the daemon, over HTTP/1.1 on the daemon's Unix
//! socket (the contract is [`backupd_api`]), and never touches USB itself.
//!
//! - `backupdctl status [UDID]`: the host and each connected phone (or the one named), with its diagnosis.
//! - `backupdctl diagnose [UDID]`: asks for a new diagnosis, waits for it, then shows it like `status`.
//! - `backupdctl watch`: prints the daemon's events as they happen, optionally as desktop notifications.
//! - `backupdctl backup [UDID] [--full] [--wait]`: starts a local backup (and follows it with a progress bar);
//!   `backupdctl backup --cancel [UDID]` stops it.
//! - `backupdctl backups [UDID]`: the local backups of a phone, or of every phone the daemon knows.
//! - `backupdctl encryption on|off|change-password [UDID]`: backup encryption, with passwords from the
//!   environment or asked without echo.
//!
//! The exit code says what was found ([`backupd_api::exit`]): 0 all checks pass, 1 a problem was found, 6 no
//! diagnosis yet (or no phone to back up), 4 unknown phone, 3 daemon unreachable, 5 daemon error, 2 usage,
//! 7 a backup or encryption change did not succeed, 8 the phone already has a job, 130 Ctrl-C stopped a wait.
//! Every failure is an [`ExpectedError`], rendered with its remedy; nothing the daemon sends can make the CLI
//! panic.
//!
//! The crate is a library so that tests run the CLI in-process ([`run`]) and `cargo xtask` can build shell
//! completions and the man page from [`command`]; `src/main.rs` only calls [`run`].

mod backup;
mod backups;
mod client;
mod diagnose;
mod encryption;
mod error;
mod inspect;
mod job;
mod notify;
mod password;
mod status;
mod summary;
mod text;
mod usb;
mod watch;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use backupd_api::exit;

pub use error::ExpectedError;
pub use password::{Refusal, Which};

use client::Client;
use text::Lang;

const EXIT_CODES: &str = "\
Exit codes:
  0  every check passed (or the command did what was asked)
  1  a check found a problem on a phone or on the host
  2  the command line was wrong
  3  the daemon could not be reached on its socket
  4  the daemon knows no such phone (backup --cancel: no backup of the iPhone is running; backups --check-password: \
no encrypted backup)
  5  the daemon answered with an error, or its answer could not be read
  6  no diagnosis yet: no iPhone connected, still reading it, or waiting for you to tap Trust
  7  the backup or encryption change failed, was cancelled or did not verify; the previous backup is intact
  8  the iPhone already has a backup or encryption change running
  9  wrong backup password: it does not open the newest backup (backups --check-password, backup --password)";

const BACKUP_HELP: &str = "\
Without --wait it starts the backup and returns; the daemon carries on. With --wait it shows the progress (a bar \
on a terminal, else a line every few seconds) and exits 0 only when the backup succeeded and was verified. \
Ctrl-C stops waiting (exit 130) and leaves the backup running.

On iOS 16.1 and later the iPhone asks for its passcode before it starts: unlock it and enter the passcode.";

const ENCRYPTION_HELP: &str = "\
Passwords: BACKUPD_BACKUP_PASSWORD holds the current one (off, change-password) and BACKUPD_NEW_BACKUP_PASSWORD \
the new one (on, change-password); when unset, they are asked on the terminal without echo, the new one twice. \
They are sent only to the daemon, on its socket, and never printed.

The iPhone asks for its passcode to confirm (iOS 13 and later): unlock it and enter the passcode when asked. \
Ctrl-C stops waiting (exit 130) and leaves the change running.";

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
    /// Back up an iPhone to this computer the way Finder does, or stop its running backup
    #[command(after_help = format!("{BACKUP_HELP}\n\n{EXIT_CODES}"))]
    Backup(BackupArgs),
    /// List the local backups of an iPhone (or of every iPhone the daemon knows)
    #[command(after_help = EXIT_CODES)]
    Backups(BackupsArgs),
    /// Turn backup encryption on or off, or change its password, and wait for the iPhone to confirm
    #[command(after_help = format!("{ENCRYPTION_HELP}\n\n{EXIT_CODES}"))]
    Encryption(EncryptionArgs),
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Show only this phone, connected or not (dashes and case do not matter)
    #[arg(value_name = "UDID", value_parser = parse_udid)]
    udid: Option<String>,
    /// Print the daemon's JSON (a `Status`) instead of text; with a UDID, only that phone is in `devices`
    #[arg(long)]
    json: bool,
    /// With several phones, the full report of each instead of one line per phone
    #[arg(long)]
    details: bool,
    /// Fit the summary to this many columns [default: the terminal's width; no limit when not on a terminal]
    #[arg(long, value_name = "COLUMNS")]
    width: Option<usize>,
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

#[derive(Debug, Args)]
struct BackupArgs {
    /// The iPhone to back up (dashes and case do not matter) [default: the only connected one]
    #[arg(value_name = "UDID", value_parser = parse_udid)]
    udid: Option<String>,
    /// Ask the iPhone for a full backup instead of an incremental one
    #[arg(long, conflicts_with = "cancel")]
    full: bool,
    /// Show the progress and wait for the end; also follows a backup of the iPhone already running
    #[arg(long, conflicts_with = "cancel")]
    wait: bool,
    /// Stop the iPhone's running backup instead; the previous backup stays intact
    #[arg(long)]
    cancel: bool,
    /// Check an encrypted backup in full with its password (BACKUPD_BACKUP_PASSWORD, else asked on the
    /// terminal); without it an encrypted backup is checked by its structure only
    #[arg(long, conflicts_with = "cancel")]
    password: bool,
}

#[derive(Debug, Args)]
struct BackupsArgs {
    /// Only this iPhone (dashes and case do not matter) [default: every iPhone the daemon knows]
    #[arg(value_name = "UDID", value_parser = parse_udid)]
    udid: Option<String>,
    /// Print the daemon's JSON (a `BackupList`; without a UDID, an array of them) instead of a table
    #[arg(long)]
    json: bool,
    /// Look inside the newest backup of UDID now: WhatsApp's chats (for an encrypted backup, its password from
    /// BACKUPD_BACKUP_PASSWORD or a prompt; used once, never stored)
    #[arg(long, requires = "udid", conflicts_with = "json")]
    inspect: bool,
    /// Check the backup password (BACKUPD_BACKUP_PASSWORD, else asked on the terminal) against the newest
    /// encrypted backup, without decrypting or changing anything: exit 0 when it opens it, 9 when it does not
    #[arg(long)]
    check_password: bool,
}

#[derive(Debug, Args)]
struct EncryptionArgs {
    /// What to do
    #[arg(value_name = "ACTION", value_enum)]
    action: EncryptionCmd,
    /// The iPhone (dashes and case do not matter) [default: the only connected one]
    #[arg(value_name = "UDID", value_parser = parse_udid)]
    udid: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EncryptionCmd {
    /// Encrypt the iPhone's next backups with a new password
    On,
    /// Stop encrypting them (needs the current password)
    Off,
    /// Change the password (needs the current one and a new one)
    ChangePassword,
}

impl EncryptionCmd {
    fn action(self) -> backupd_api::EncryptionAction {
        match self {
            Self::On => backupd_api::EncryptionAction::On,
            Self::Off => backupd_api::EncryptionAction::Off,
            Self::ChangePassword => backupd_api::EncryptionAction::Change,
        }
    }
}

/// The clap command of `backupdctl`, for shell completions and the man page.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs `backupdctl` with `args` (the first is the program name), writing results to `out` and errors,
/// warnings and progress to `err`, and returns the exit code ([`backupd_api::exit`]). Progress is plain lines:
/// no bar is drawn and no password is asked (see [`run_with_terminal`]).
pub fn run(
    args: impl IntoIterator<Item = OsString>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> i32 {
    run_with_terminal(args, out, err, false)
}

/// [`run`], for the process itself: when `stderr_is_terminal`, progress bars are drawn on the process's
/// stderr (`err` must then be that stderr, unlocked) and missing backup passwords are asked on the terminal.
pub fn run_with_terminal(
    args: impl IntoIterator<Item = OsString>,
    out: &mut impl Write,
    err: &mut impl Write,
    stderr_is_terminal: bool,
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
    let mut env = Environment::from_process();
    env.terminal = stderr_is_terminal;
    // Only the process itself (a terminal on stderr) looks at its stdout; in-process callers get plain text.
    if stderr_is_terminal {
        let term = console::Term::stdout();
        if term.is_term() {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            let width = term.size_checked().map(|(_, cols)| usize::from(cols));
            env.stdout = Some((!no_color, width));
        }
    }
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
    /// Backup passwords (`BACKUPD_BACKUP_PASSWORD`, `BACKUPD_NEW_BACKUP_PASSWORD`).
    passwords: password::FromEnv,
    /// Whether stderr is a terminal: progress bars, password prompts.
    terminal: bool,
    /// Whether stdout is a terminal that may be coloured (and `NO_COLOR` is not set), and its width.
    stdout: Option<(bool, Option<usize>)>,
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
            passwords: password::FromEnv::from_process(),
            terminal: false,
            stdout: None,
        }
    }

    /// How text may look on stdout: `width` if given, else the terminal's; colour on a terminal without
    /// `NO_COLOR`.
    fn look(&self, width: Option<usize>) -> summary::Look {
        let (color, terminal_width) = self.stdout.unwrap_or((false, None));
        summary::Look {
            width: width.or(terminal_width),
            color,
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
    // Without a terminal there is nobody to ask: the prompt fails and names the variable.
    let terminal = env.terminal;
    let prompt = |text: &str| {
        if terminal {
            password::prompt_terminal(text)
        } else {
            Err(std::io::Error::other("stderr is not a terminal"))
        }
    };
    runtime.block_on(async {
        let client = Client::new(socket);
        match cli.command {
            Cmd::Status(a) => {
                let view = status::View {
                    json: a.json,
                    details: a.details,
                    look: env.look(a.width),
                };
                status::run(&client, a.udid.as_deref(), view, lang, out).await
            }
            Cmd::Diagnose(a) => {
                let options = diagnose::Options {
                    udid: a.udid.as_deref(),
                    timeout: Duration::from_secs(a.timeout),
                    json: a.json,
                    details: false,
                    look: env.look(None),
                };
                diagnose::run(&client, &options, lang, out, err).await
            }
            Cmd::Watch(a) => watch::run(&client, a.json, a.notify, lang, out, err).await,
            Cmd::Backup(a) => {
                let password = if a.password {
                    Some(
                        password::current(&env.passwords, lang, prompt)
                            .map_err(ExpectedError::Password)?,
                    )
                } else {
                    None
                };
                let options = backup::Options {
                    udid: a.udid.as_deref(),
                    full: a.full,
                    wait: a.wait,
                    cancel: a.cancel,
                    password,
                };
                backup::run(&client, &options, lang, env.terminal, out, err).await
            }
            Cmd::Backups(a) if a.inspect => {
                let terminal = env.terminal;
                let mut prompt = |text: &str| {
                    if terminal {
                        password::prompt_terminal(text)
                    } else {
                        Err(std::io::Error::other("stderr is not a terminal"))
                    }
                };
                let password = inspect::Password {
                    from_env: env
                        .passwords
                        .current
                        .as_ref()
                        .map(|p| p.to_string_lossy().into_owned()),
                    prompt: &mut prompt,
                };
                let udid = a.udid.as_deref().unwrap_or_default();
                inspect::run(&client, udid, password, lang, out).await
            }
            Cmd::Backups(a) if a.check_password => {
                let udid =
                    job::pick_phone(&client, a.udid.as_deref(), "backups --check-password").await?;
                let secret = password::current(&env.passwords, lang, prompt)
                    .map_err(ExpectedError::Password)?;
                backups::check_password(&client, &udid, secret, a.json, lang, out).await
            }
            Cmd::Backups(a) => backups::run(&client, a.udid.as_deref(), a.json, lang, out).await,
            Cmd::Encryption(a) => {
                encryption::run(
                    &client,
                    a.action.action(),
                    a.udid.as_deref(),
                    &env.passwords,
                    prompt,
                    lang,
                    env.terminal,
                    out,
                    err,
                )
                .await
            }
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
            runtime_dir: Some(dir.path().to_owned()),
            ..Environment::default()
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

//! The daemon's configuration: one TOML file, every key optional, flags on top.

use std::path::{Path, PathBuf};

use backupd_rules::{Lang, RulesConfig};
use serde::Deserialize;

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("failed to parse config file {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// `metrics_listen` is not a loopback socket address.
    #[error("metrics_listen = {0:?}: give a loopback address with a port, such as 127.0.0.1:9559")]
    MetricsListen(String),
    /// No default location could be worked out.
    #[error("cannot choose a default for {0}: set it in the config file or with its flag")]
    NoDefault(&'static str),
}

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Plain lines, without colours when not on a terminal (journald-friendly).
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// The configuration file, as written. Every key is optional; `docs/configuration.md` documents each.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// The API socket.
    pub socket: Option<PathBuf>,
    /// The group that may use the API socket (mode 0660).
    pub group: Option<String>,
    /// The usbmuxd address, in any spelling libusbmuxd or pymobiledevice3 accept.
    pub usbmuxd: Option<String>,
    /// Where local backups are kept.
    pub backup_dir: Option<PathBuf>,
    /// Where the daemon keeps its state (latest diagnoses, history).
    pub state_dir: Option<PathBuf>,
    /// The default language of texts: `en` or `it`.
    pub lang: Option<Lang>,
    /// Log format.
    pub log_format: Option<LogFormat>,
    /// Pin each phone's TLS key to its pair record (default true). Turning it off accepts any key, as other
    /// tools do, and is logged at every session.
    pub pin_device_keys: Option<bool>,
    /// How long, in seconds, between re-reads of an attached phone when nothing prompts one (default 900).
    pub refresh_secs: Option<u64>,
    /// How many earlier backups of each phone to keep as hard-linked versions (default 5).
    pub backup_versions: Option<usize>,
    /// Refuse to start a backup with less free space than this where backups go (default 256 MiB).
    pub backup_min_free_bytes: Option<u64>,
    /// A loopback address (`127.0.0.1:9559`, `[::1]:9559`) on which to serve `GET /metrics` over TCP for a
    /// Prometheus scraper; off when absent. The Unix socket always serves it.
    pub metrics_listen: Option<String>,
    /// Thresholds of the rules.
    pub rules: RulesConfig,
    /// Watch the USB bus with libusb, beside usbmuxd, for phones in DFU or recovery mode, phones usbmuxd does
    /// not take and slow links (default true).
    pub usb_watch: Option<bool>,
    /// Seconds between scans of the USB bus when neither hotplug nor usbmuxd prompts one (default 10).
    pub usb_rescan_secs: Option<u64>,
}

impl FileConfig {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }
}

/// The settled configuration the daemon runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The API socket.
    pub socket: PathBuf,
    /// The socket's group, if any.
    pub group: Option<String>,
    /// The usbmuxd address.
    pub usbmuxd: backupd_proto::usbmuxd::Address,
    /// Local backups.
    pub backup_dir: PathBuf,
    /// State.
    pub state_dir: PathBuf,
    /// Default language.
    pub lang: Lang,
    /// Log format.
    pub log_format: LogFormat,
    /// Whether device keys are pinned.
    pub pin_device_keys: bool,
    /// Idle refresh period.
    pub refresh: std::time::Duration,
    /// Earlier backups kept per phone.
    pub backup_versions: usize,
    /// The free-space floor for starting a backup.
    pub backup_min_free_bytes: u64,
    /// The loopback TCP address of the metrics listener, if any.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Rules thresholds.
    pub rules: RulesConfig,
    /// Whether the USB bus is watched.
    pub usb_watch: bool,
    /// The slow rescan period of the bus.
    pub usb_rescan: std::time::Duration,
}

/// Where the daemon runs: decides the defaults.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Whether the daemon runs as root (a system service).
    pub root: bool,
    /// `XDG_RUNTIME_DIR`.
    pub runtime_dir: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
    /// `USBMUXD_SOCKET_ADDRESS`.
    pub usbmuxd_env: Option<String>,
    /// `LANG`/`LC_ALL`/`LC_MESSAGES`, whichever is set first.
    pub locale: Option<String>,
}

impl Environment {
    /// Reads the process environment.
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            root: nix::unistd::geteuid().is_root(),
            runtime_dir: var("XDG_RUNTIME_DIR").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
            usbmuxd_env: var("USBMUXD_SOCKET_ADDRESS"),
            locale: var("LC_ALL")
                .or_else(|| var("LC_MESSAGES"))
                .or_else(|| var("LANG")),
        }
    }
}

/// The language a locale string asks for: Italian for `it*`, else English.
pub fn lang_from_locale(locale: Option<&str>) -> Lang {
    match locale {
        Some(l) if l.to_ascii_lowercase().starts_with("it") => Lang::It,
        _ => Lang::En,
    }
}

impl Settings {
    /// Settles the file config and the environment into settings; flags are applied by the caller after.
    pub fn resolve(file: FileConfig, env: &Environment) -> Result<Self, ConfigError> {
        let user_dir = |sub: &str| env.home.as_ref().map(|h| h.join(sub).join("backupd"));
        let socket = match file.socket {
            Some(s) => s,
            None if env.root => PathBuf::from("/run/backupd/backupd.sock"),
            None => env
                .runtime_dir
                .as_ref()
                .map(|d| d.join("backupd.sock"))
                .ok_or(ConfigError::NoDefault("socket"))?,
        };
        let state_dir = match file.state_dir {
            Some(s) => s,
            None if env.root => PathBuf::from("/var/lib/backupd"),
            None => user_dir(".local/state").ok_or(ConfigError::NoDefault("state_dir"))?,
        };
        let backup_dir = match file.backup_dir {
            Some(s) => s,
            None if env.root => PathBuf::from("/var/lib/backupd/backups"),
            None => user_dir(".local/share")
                .map(|d| d.join("backups"))
                .ok_or(ConfigError::NoDefault("backup_dir"))?,
        };
        let usbmuxd = match file.usbmuxd {
            Some(a) => backupd_proto::usbmuxd::Address::parse(&a),
            None => backupd_proto::usbmuxd::Address::from_env_value(env.usbmuxd_env.as_deref()),
        };
        // The TCP listener has no access control of its own: only this host may reach it.
        let metrics_listen = match file.metrics_listen {
            None => None,
            Some(text) => match text.parse::<std::net::SocketAddr>() {
                Ok(addr) if addr.ip().is_loopback() => Some(addr),
                _ => return Err(ConfigError::MetricsListen(text)),
            },
        };
        Ok(Self {
            metrics_listen,
            socket,
            group: Some(file.group.unwrap_or_else(|| "backupd".into())).filter(|g| !g.is_empty()),
            usbmuxd,
            backup_dir,
            state_dir,
            lang: file
                .lang
                .unwrap_or_else(|| lang_from_locale(env.locale.as_deref())),
            log_format: file.log_format.unwrap_or_default(),
            pin_device_keys: file.pin_device_keys.unwrap_or(true),
            refresh: std::time::Duration::from_secs(file.refresh_secs.unwrap_or(900).max(10)),
            backup_versions: file.backup_versions.unwrap_or(5),
            backup_min_free_bytes: file.backup_min_free_bytes.unwrap_or(256 << 20),
            rules: file.rules,
            usb_watch: file.usb_watch.unwrap_or(true),
            usb_rescan: std::time::Duration::from_secs(file.usb_rescan_secs.unwrap_or(10).max(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_defaults_follow_xdg() {
        let env = Environment {
            root: false,
            runtime_dir: Some("/run/user/1000".into()),
            home: Some("/home/anna".into()),
            usbmuxd_env: Some("UNIX:/tmp/mux".into()),
            locale: Some("it_IT.UTF-8".into()),
        };
        let s = Settings::resolve(FileConfig::default(), &env).expect("resolves");
        assert_eq!(s.socket, PathBuf::from("/run/user/1000/backupd.sock"));
        assert_eq!(
            s.state_dir,
            PathBuf::from("/home/anna/.local/state/backupd")
        );
        assert_eq!(
            s.usbmuxd,
            backupd_proto::usbmuxd::Address::Unix("/tmp/mux".into())
        );
        assert_eq!(s.lang, Lang::It);
        assert!(s.pin_device_keys);
    }

    #[test]
    fn root_defaults_are_system_paths() {
        let env = Environment {
            root: true,
            ..Environment::default()
        };
        let s = Settings::resolve(FileConfig::default(), &env).expect("resolves");
        assert_eq!(s.socket, PathBuf::from("/run/backupd/backupd.sock"));
        assert_eq!(s.group.as_deref(), Some("backupd"));
        assert_eq!(
            s.usbmuxd,
            backupd_proto::usbmuxd::Address::Unix("/var/run/usbmuxd".into())
        );
        assert_eq!(s.lang, Lang::En);
    }

    #[test]
    fn every_key_parses() {
        let text = r#"
            socket = "/tmp/b.sock"
            group = "staff"
            usbmuxd = "127.0.0.1:27015"
            backup_dir = "/srv/backups"
            state_dir = "/srv/state"
            lang = "it"
            log_format = "json"
            pin_device_keys = false
            refresh_secs = 60
            backup_versions = 2
            [rules]
            icloud_quota_bytes = 50000000000
        "#;
        let file: FileConfig = toml::from_str(text).expect("parses");
        let s = Settings::resolve(file, &Environment::default()).expect("resolves");
        assert_eq!(s.rules.icloud_quota_bytes, 50_000_000_000);
        assert!(!s.pin_device_keys);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.refresh, std::time::Duration::from_secs(60));
        assert_eq!(s.backup_versions, 2);
    }

    #[test]
    fn the_metrics_listener_is_loopback_only() {
        let root = &Environment {
            root: true,
            ..Environment::default()
        };
        let resolve = |v: &str| {
            let file: FileConfig =
                toml::from_str(&format!("metrics_listen = {v:?}")).expect("parses");
            Settings::resolve(file, root)
        };
        let ok = resolve("127.0.0.1:9559").expect("loopback v4");
        assert_eq!(
            ok.metrics_listen,
            Some("127.0.0.1:9559".parse().expect("addr"))
        );
        assert!(resolve("[::1]:9559").is_ok());
        assert!(matches!(
            resolve("0.0.0.0:9559"),
            Err(ConfigError::MetricsListen(_))
        ));
        assert!(matches!(
            resolve("192.168.1.2:9559"),
            Err(ConfigError::MetricsListen(_))
        ));
        assert!(matches!(
            resolve("localhost"),
            Err(ConfigError::MetricsListen(_))
        ));
        let off = Settings::resolve(FileConfig::default(), root).expect("ok");
        assert_eq!(off.metrics_listen, None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("sockett = \"/x\"").is_err());
    }
}

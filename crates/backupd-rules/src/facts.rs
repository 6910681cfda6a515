//! What goes in: the facts the daemon observed on the phone and on the host, each with its source.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// One observed fact: either known (a value and where it was read) or unknown (why, and where it would be read).
///
/// Serialized as `{"state": "known", "value": …, "source": …}` or
/// `{"state": "unknown", "reason": "device_locked", "source": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Fact<T> {
    /// The daemon read the value.
    Known {
        /// The value as read (after conversion to this crate's types).
        value: T,
        /// Where it was read.
        source: Source,
    },
    /// The daemon could not read the value.
    Unknown {
        /// Why not.
        reason: UnknownReason,
        /// Where it would have been read.
        source: Source,
    },
}

impl<T> Fact<T> {
    /// A known fact.
    pub fn known(value: T, source: Source) -> Self {
        Self::Known { value, source }
    }

    /// An unknown fact.
    pub fn unknown(reason: UnknownReason, source: Source) -> Self {
        Self::Unknown { reason, source }
    }

    /// The value, if known.
    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Known { value, .. } => Some(value),
            Self::Unknown { .. } => None,
        }
    }

    /// Where the value was (or would have been) read.
    pub fn source(&self) -> &Source {
        match self {
            Self::Known { source, .. } | Self::Unknown { source, .. } => source,
        }
    }

    /// Makes the fact known with `value`, keeping its source: the usual way to fill in [`Snapshot::unread`].
    pub fn set_known(&mut self, value: T) {
        *self = Self::Known {
            value,
            source: self.source().clone(),
        };
    }

    /// Makes the fact unknown for `reason`, keeping its source.
    pub fn set_unknown(&mut self, reason: UnknownReason) {
        *self = Self::Unknown {
            reason,
            source: self.source().clone(),
        };
    }

    /// Why the value is unknown, if it is.
    pub fn unknown_reason(&self) -> Option<UnknownReason> {
        match self {
            Self::Known { .. } => None,
            Self::Unknown { reason, .. } => Some(*reason),
        }
    }
}

/// Why a fact is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UnknownReason {
    /// This host is not paired with (trusted by) the phone, so lockdown refuses the value.
    NotPaired,
    /// The phone is locked with its passcode and refuses the value until it is unlocked.
    DeviceLocked,
    /// This iOS version does not report the value (the key or service is missing).
    NotReported,
    /// The query was made and failed (timeout, disconnect, unexpected reply).
    QueryFailed,
    /// The daemon has not asked yet; the starting state of [`Snapshot::unread`].
    NotQueried,
    /// No service reachable over USB reports this at all (the iCloud quota, for one: protocol.md §4.8).
    NotAvailableOverUsb,
}

/// Where a fact comes from, so that evidence can name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Source {
    /// A lockdown `GetValue`: `domain` is `None` for the root domain.
    Lockdown {
        /// The lockdown domain, e.g. `com.apple.mobile.backup`.
        domain: Option<String>,
        /// The key, e.g. `WillEncrypt`.
        key: String,
    },
    /// The outcome of a lockdown request, e.g. `Pair` or `StartSession` and the error it returned.
    LockdownRequest {
        /// The request name.
        request: String,
    },
    /// A diagnostics_relay `IORegistry` query.
    IoRegistry {
        /// The entry name or class asked for, e.g. `AppleBCMWLANSkywalkInterface`.
        entry: String,
    },
    /// An installation_proxy command (`Browse` or `Lookup`).
    InstallationProxy {
        /// The command.
        command: String,
    },
    /// Something the daemon found on the host (a socket, a folder, free space).
    Host {
        /// What was looked at, in technical terms (a path, a system call).
        detail: String,
    },
    /// A value from [`RulesConfig`](crate::RulesConfig).
    Config {
        /// The configuration key.
        key: String,
    },
    /// A value computed from other facts.
    Derived {
        /// How it was computed, e.g. `TotalDataCapacity - TotalDataAvailable`.
        formula: String,
    },
    /// Nothing over USB reports it.
    Unobservable,
}

impl Source {
    /// A lockdown value in `domain`.
    pub fn lockdown(domain: &str, key: &str) -> Self {
        Self::Lockdown {
            domain: Some(domain.to_owned()),
            key: key.to_owned(),
        }
    }

    /// A lockdown value in the root domain.
    pub fn lockdown_root(key: &str) -> Self {
        Self::Lockdown {
            domain: None,
            key: key.to_owned(),
        }
    }

    /// The outcome of a lockdown request.
    pub fn lockdown_request(request: &str) -> Self {
        Self::LockdownRequest {
            request: request.to_owned(),
        }
    }

    /// A diagnostics_relay IORegistry entry.
    pub fn io_registry(entry: &str) -> Self {
        Self::IoRegistry {
            entry: entry.to_owned(),
        }
    }

    /// An installation_proxy command.
    pub fn installation_proxy(command: &str) -> Self {
        Self::InstallationProxy {
            command: command.to_owned(),
        }
    }

    /// A host-side observation.
    pub fn host(detail: &str) -> Self {
        Self::Host {
            detail: detail.to_owned(),
        }
    }

    pub(crate) fn config(key: &str) -> Self {
        Self::Config {
            key: key.to_owned(),
        }
    }

    pub(crate) fn derived(formula: &str) -> Self {
        Self::Derived {
            formula: formula.to_owned(),
        }
    }
}

/// Everything the daemon can observe on one phone.
///
/// Start from [`Snapshot::unread`], which sets every fact to unknown with its usual source, then fill in what was
/// read with [`Fact::set_known`] (or replace a fact whose source differs, e.g. Wi-Fi seen through usbmuxd). New
/// fields start unknown, so the daemon keeps compiling when this struct grows.
///
/// ```
/// use backupd_rules::{PairingState, Snapshot, UnknownReason, WifiState};
///
/// let mut phone = Snapshot::unread(UnknownReason::NotQueried);
/// phone.pairing.set_known(PairingState::Paired);
/// phone.wifi.set_known(WifiState::new(true, Some("Casa".to_owned())));
/// phone.icloud_backup_enabled.set_unknown(UnknownReason::DeviceLocked);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// Whether this host may talk to the phone (lockdown `Pair`/`StartSession` outcome).
    pub pairing: Fact<PairingState>,
    /// Root `ProductType`, e.g. `iPhone15,2`.
    pub product_type: Fact<String>,
    /// Root `ProductVersion`, e.g. `18.5`.
    pub product_version: Fact<String>,
    /// Wi-Fi association, from the IORegistry (protocol.md §4.7).
    pub wifi: Fact<WifiState>,
    /// `com.apple.mobile.backup` `CloudBackupEnabled`.
    pub icloud_backup_enabled: Fact<bool>,
    /// `com.apple.mobile.backup` `LastCloudBackupDate`; `None` when the phone reports no iCloud backup.
    pub last_icloud_backup: Fact<Option<Timestamp>>,
    /// `com.apple.mobile.backup` `WillEncrypt`: a local-backup password is set.
    pub will_encrypt: Fact<bool>,
    /// `com.apple.mobile.battery` `BatteryCurrentCapacity`, in percent.
    pub battery_level: Fact<u8>,
    /// `com.apple.mobile.battery` `BatteryIsCharging`.
    pub battery_charging: Fact<bool>,
    /// `com.apple.mobile.battery` `ExternalConnected`: a charger (or a powered port) is attached.
    pub external_power: Fact<bool>,
    /// `com.apple.disk_usage` `TotalDiskCapacity`, in bytes.
    pub disk_capacity: Fact<u64>,
    /// `com.apple.disk_usage` `TotalDataCapacity`, in bytes: the user-data partition.
    pub data_capacity: Fact<u64>,
    /// `com.apple.disk_usage` `TotalDataAvailable`, in bytes (includes purgeable space).
    pub data_available: Fact<u64>,
    /// Installed user apps (installation_proxy `Browse`).
    pub apps: Fact<Vec<App>>,
    /// What the USB bus says about the phone, when the daemon's USB watcher saw it.
    #[serde(default)]
    pub usb: Option<crate::usb::UsbFacts>,
}

impl Snapshot {
    /// A snapshot where every fact is unknown for `reason`, each with the source it is normally read from.
    pub fn unread(reason: UnknownReason) -> Self {
        fn lockdown<T>(reason: UnknownReason, domain: &str, key: &str) -> Fact<T> {
            Fact::unknown(reason, Source::lockdown(domain, key))
        }
        const BACKUP: &str = "com.apple.mobile.backup";
        const BATTERY: &str = "com.apple.mobile.battery";
        const DISK: &str = "com.apple.disk_usage";
        Self {
            pairing: Fact::unknown(reason, Source::lockdown_request("StartSession")),
            product_type: Fact::unknown(reason, Source::lockdown_root("ProductType")),
            product_version: Fact::unknown(reason, Source::lockdown_root("ProductVersion")),
            wifi: Fact::unknown(reason, Source::io_registry("AppleBCMWLANSkywalkInterface")),
            icloud_backup_enabled: lockdown(reason, BACKUP, "CloudBackupEnabled"),
            last_icloud_backup: lockdown(reason, BACKUP, "LastCloudBackupDate"),
            will_encrypt: lockdown(reason, BACKUP, "WillEncrypt"),
            battery_level: lockdown(reason, BATTERY, "BatteryCurrentCapacity"),
            battery_charging: lockdown(reason, BATTERY, "BatteryIsCharging"),
            external_power: lockdown(reason, BATTERY, "ExternalConnected"),
            disk_capacity: lockdown(reason, DISK, "TotalDiskCapacity"),
            data_capacity: lockdown(reason, DISK, "TotalDataCapacity"),
            data_available: lockdown(reason, DISK, "TotalDataAvailable"),
            apps: Fact::unknown(reason, Source::installation_proxy("Browse")),
            usb: None,
        }
    }

    /// Data used on the phone: `TotalDataCapacity − TotalDataAvailable`, when both are known.
    pub fn used_data(&self) -> Option<u64> {
        let capacity = self.data_capacity.value()?;
        let available = self.data_available.value()?;
        Some(capacity.saturating_sub(*available))
    }
}

/// Whether this host may talk to the phone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PairingState {
    /// Paired and a session started: the phone answers.
    Paired,
    /// The "Trust This Computer?" alert is showing (`PairingDialogResponsePending`).
    TrustPending,
    /// The phone is locked and must be unlocked before it pairs (`PasswordProtected`).
    PasscodeRequired,
    /// Someone tapped "Don't Trust" (`UserDeniedPairing`).
    Denied,
    /// The phone no longer knows this host's pairing (`InvalidHostID`): trust was reset.
    InvalidHost,
}

/// The phone's Wi-Fi association.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WifiState {
    /// Joined to a Wi-Fi network.
    pub associated: bool,
    /// The network name, when the IORegistry reports it.
    pub ssid: Option<String>,
}

impl WifiState {
    /// A Wi-Fi state.
    pub fn new(associated: bool, ssid: Option<String>) -> Self {
        Self { associated, ssid }
    }
}

/// One installed app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct App {
    /// `CFBundleIdentifier`, e.g. `net.whatsapp.WhatsApp`.
    pub bundle_id: String,
    /// `CFBundleShortVersionString`, when reported.
    pub version: Option<String>,
    /// Whether the app's entitlements declare iCloud containers
    /// (`com.apple.developer.icloud-container-identifiers` and friends); unknown when installation_proxy returns
    /// no entitlements, which protocol.md §6.2 marks unverified for App Store apps.
    pub icloud_containers: Fact<bool>,
}

impl App {
    /// An app with no entitlement information.
    pub fn new(bundle_id: &str, version: Option<&str>) -> Self {
        Self {
            bundle_id: bundle_id.to_owned(),
            version: version.map(str::to_owned),
            icloud_containers: Fact::unknown(
                UnknownReason::NotReported,
                Source::installation_proxy("Browse"),
            ),
        }
    }
}

/// The bundle identifier of WhatsApp Messenger.
pub const WHATSAPP_BUNDLE_ID: &str = "net.whatsapp.WhatsApp";

/// Everything the daemon knows about the host it runs on.
///
/// Start from [`HostFacts::unread`] and replace what was found, as for [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HostFacts {
    /// The host operating system, which decides how usbmuxd is started.
    pub os: Fact<HostOs>,
    /// Whether usbmuxd answers on its socket.
    pub usbmuxd: Fact<UsbmuxdStatus>,
    /// Free bytes on the volume where local backups go.
    pub backup_dir_free: Fact<u64>,
    /// The newest complete local backup of this phone (`Status.plist` `SnapshotState` is `finished`); `None` when
    /// there is none.
    pub local_backup: Fact<Option<LocalBackup>>,
    /// An interrupted backup of this phone was left in the backup folder.
    pub unfinished_backup: Fact<bool>,
    /// What the newest local backup holds of WhatsApp's chats (read inside the backup, never on the phone).
    #[serde(default = "unread_local_whatsapp")]
    pub local_whatsapp: Fact<LocalWhatsapp>,
    /// Whether the daemon may read USB devices; unknown (and the check not run) without a USB watcher.
    #[serde(default = "usb_access_not_queried")]
    pub usb_access: Fact<crate::usb::UsbAccess>,
}

fn usb_access_not_queried() -> Fact<crate::usb::UsbAccess> {
    Fact::unknown(UnknownReason::NotQueried, Source::host("libusb"))
}

fn unread_local_whatsapp() -> Fact<LocalWhatsapp> {
    Fact::unknown(
        UnknownReason::NotQueried,
        Source::host(LOCAL_WHATSAPP_SOURCE),
    )
}

/// Where WhatsApp's chats are read: its chat database, found through the backup's `Manifest.db`.
pub const LOCAL_WHATSAPP_SOURCE: &str = "backup_dir/<udid>/Manifest.db AppDomainGroup-group.net.whatsapp.WhatsApp.shared ChatStorage.sqlite";

/// What a local backup holds of WhatsApp's chats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LocalWhatsapp {
    /// The backup lists no WhatsApp chat database: WhatsApp's chats are not in it.
    Absent,
    /// The chat database was found and read.
    Chats {
        /// Rows of `ZWAMESSAGE`: the messages kept on the phone when the backup was made.
        messages: u64,
        /// The newest `ZMESSAGEDATE`; `None` when there are no messages.
        newest_message: Option<Timestamp>,
    },
    /// The backup is encrypted and no password was given, so its files cannot be read.
    Encrypted,
}

impl HostFacts {
    /// Host facts where everything is unknown for `reason`, each with its usual source.
    pub fn unread(reason: UnknownReason) -> Self {
        Self {
            os: Fact::unknown(reason, Source::host("target_os")),
            usbmuxd: Fact::unknown(reason, Source::host("connect(/var/run/usbmuxd)")),
            backup_dir_free: Fact::unknown(reason, Source::host("statvfs(backup_dir)")),
            local_backup: Fact::unknown(reason, Source::host("backup_dir/<udid>/Status.plist")),
            unfinished_backup: Fact::unknown(reason, Source::host("backup_dir/<udid>/Snapshot")),
            local_whatsapp: Fact::unknown(reason, Source::host(LOCAL_WHATSAPP_SOURCE)),
            usb_access: Fact::unknown(reason, Source::host("libusb")),
        }
    }
}

/// The host operating system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HostOs {
    /// Linux: usbmuxd is a package started by udev or systemd.
    Linux,
    /// macOS: usbmuxd is part of the system.
    Macos,
    /// Anything else.
    Other,
}

/// Whether usbmuxd, the system service that talks to iPhones, can be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UsbmuxdStatus {
    /// It answered.
    Reachable,
    /// Its socket does not exist, or nobody listens on it.
    NotRunning,
    /// Its socket exists but could not be used (permission denied, or it did not answer).
    Unreachable,
}

/// A complete local backup of this phone found on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LocalBackup {
    /// When it was taken.
    pub date: Timestamp,
    /// The daemon verified it after writing it (how it verifies is the daemon's business).
    pub verified: bool,
    /// `Manifest.plist` `IsEncrypted`.
    pub encrypted: bool,
    /// Its size in bytes (the files its `Manifest.db` lists), when the daemon knows it; the closest thing to the
    /// size of an iCloud backup that can be seen from the host.
    #[serde(default)]
    pub size: Option<u64>,
    /// When the backup password was last checked and opened this encrypted backup.
    #[serde(default)]
    pub password_checked: Option<Timestamp>,
}

impl LocalBackup {
    /// A local backup.
    pub fn new(date: Timestamp, verified: bool, encrypted: bool) -> Self {
        Self {
            date,
            verified,
            encrypted,
            size: None,
            password_checked: None,
        }
    }

    /// The same, with the date its password was last checked.
    pub fn with_password_checked(self, password_checked: Option<Timestamp>) -> Self {
        Self {
            password_checked,
            ..self
        }
    }

    /// The same backup, with its size in bytes.
    #[must_use]
    pub fn with_size(mut self, bytes: u64) -> Self {
        self.size = Some(bytes);
        self
    }
}

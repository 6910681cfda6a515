//! What comes out: the checks that ran, the findings with remedies, and the escalation plan.
//!
//! All text is a [`Message`] (a catalog key and its arguments), resolved in a language only when rendered.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalog::{self, Lang};
use crate::facts::{Source, UnknownReason};
use crate::time::Timestamp;

/// The result of [`diagnose`](crate::diagnose).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Diagnosis {
    /// Every check that ran, in order, with its outcome.
    pub checks: Vec<CheckResult>,
    /// One finding per check whose outcome is [`Outcome::Problem`], in the same order.
    pub findings: Vec<Finding>,
    /// What to do when the simple checks pass and backups still fail.
    pub escalation: Escalation,
}

impl Diagnosis {
    /// The result of the check `id`, if it ran.
    pub fn check(&self, id: CheckId) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// The finding of the check `id`, if it found a problem.
    pub fn finding(&self, id: CheckId) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }
}

/// One check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CheckResult {
    /// Which check.
    pub id: CheckId,
    /// What it concluded.
    pub outcome: Outcome,
    /// What is checked, in a few words.
    pub label: Message,
    /// The facts it looked at.
    pub evidence: Vec<Evidence>,
    /// When the outcome is [`Outcome::Unknown`], how to check by hand on the phone or host; empty otherwise.
    pub manual: Vec<Step>,
}

/// What a check concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The facts show no problem.
    Pass,
    /// The facts show a problem; there is a [`Finding`] for it.
    Problem,
    /// A fact the check needs is unknown.
    Unknown,
}

/// A problem, what led to it and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Finding {
    /// The check that found it; stable, e.g. `wifi.not_connected`.
    pub id: CheckId,
    /// How much it matters.
    pub severity: Severity,
    /// One line.
    pub title: Message,
    /// Why it matters, including the limits of what backupd can see.
    pub explanation: Message,
    /// The facts and values that led to it.
    pub evidence: Vec<Evidence>,
    /// Ordered steps.
    pub remedies: Vec<Step>,
}

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// Backups cannot work until it is fixed.
    Critical,
    /// Backups may fail or be at risk.
    Warning,
    /// Worth knowing; nothing is broken.
    Info,
}

impl Severity {
    /// The serialized name: `critical`, `warning` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }
}

/// A fact as evidence: its name, its value as text, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Evidence {
    /// The fact, e.g. `wifi_associated`.
    pub fact: String,
    /// The value, language-neutral (`true`, `60.0 GB (60000000000 B)`, `2025-06-15T15:06:40Z`), or `unknown`.
    pub value: String,
    /// Why the value is unknown, when it is.
    pub unknown: Option<UnknownReason>,
    /// Where it came from.
    pub source: Source,
}

/// One remedy step: its text and the guide section it comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Step {
    /// What to do.
    pub text: Message,
    /// Where the step comes from.
    pub origin: Origin,
}

/// Where a remedy step comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Origin {
    /// A step of one of the source guides.
    Guide {
        /// The guide's file name, e.g. `000_65ab203472675010.txt`.
        seed: String,
        /// The guide's section heading, in Italian as in the guide.
        section: String,
        /// The step's position among the steps of that section, from 1.
        step: u8,
    },
    /// backupd's own addition.
    Own,
}

/// The escalation plan of the first guide, in its order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Escalation {
    /// The simple checks (Wi-Fi, iCloud storage, power, iCloud Backup on, phone storage) all passed, so the plan is
    /// the next thing to try; otherwise fix the findings first.
    pub simple_checks_passed: bool,
    /// A complete, verified, recent local backup exists, so the DFU restore stage gives its steps; otherwise that
    /// stage says to make one first.
    pub dfu_offered: bool,
    /// The stages, in order.
    pub stages: Vec<EscalationStage>,
}

/// One stage of the escalation plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EscalationStage {
    /// Which stage.
    pub id: StageId,
    /// One line.
    pub title: Message,
    /// What it does and what it costs.
    pub explanation: Message,
    /// Ordered steps.
    pub steps: Vec<Step>,
}

/// Localizable text: a catalog key and the values for its `{placeholders}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Message {
    /// The catalog key, e.g. `wifi.not_connected.title` or `g1.wifi.open_settings`.
    pub key: String,
    /// Placeholder values by name.
    pub args: BTreeMap<String, Arg>,
}

impl Message {
    pub(crate) fn new(key: String) -> Self {
        Self {
            key,
            args: BTreeMap::new(),
        }
    }

    pub(crate) fn with_args(key: String, args: BTreeMap<String, Arg>) -> Self {
        Self { key, args }
    }

    /// The text in `lang` with its placeholders filled in.
    ///
    /// A key missing from the catalog renders as `⟨key⟩` and a missing argument as `{name}`, so a mistake shows
    /// in the output (and in the tests) instead of panicking.
    pub fn render(&self, lang: Lang) -> String {
        catalog::render(&self.key, &self.args, lang)
    }
}

/// A placeholder value, formatted for the language at render time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Arg {
    /// A size in bytes, shown in decimal GB or MB.
    Bytes(u64),
    /// A plain count, e.g. days.
    Count(u64),
    /// An instant, shown in UTC.
    Date(Timestamp),
    /// Text shown as is (a network name, a version).
    Text(String),
}

macro_rules! ids {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $s:literal, )* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $s)] $variant, )*
        }

        impl $name {
            /// Every id, in the order of the diagnosis.
            pub const ALL: &'static [Self] = &[ $( Self::$variant, )* ];

            /// The stable string form, as serialized.
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $s, )* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

ids! {
    /// A check, by its stable id. The order of [`CheckId::ALL`] is the order of the diagnosis: what blocks reading
    /// the phone first, then the first guide's order, then WhatsApp, then local backups and the host.
    pub enum CheckId {
        /// usbmuxd, the system service that talks to iPhones, is not running or not reachable.
        UsbmuxdUnavailable = "host.usbmuxd_unavailable",
        /// The phone shows "Trust This Computer?" and waits for an answer.
        PairingTrustPending = "pairing.trust_pending",
        /// The phone is locked and must be unlocked to pair.
        PairingPasscodeRequired = "pairing.passcode_required",
        /// Someone tapped "Don't Trust".
        PairingDenied = "pairing.denied",
        /// The phone forgot this host's pairing.
        PairingInvalidHost = "pairing.invalid_host",
        /// The phone is not on Wi-Fi; iCloud backup runs only on Wi-Fi.
        WifiNotConnected = "wifi.not_connected",
        /// The estimated iCloud backup exceeds the iCloud storage.
        IcloudStorageLikelyInsufficient = "icloud.storage_likely_insufficient",
        /// The phone is not on a charger, which the overnight backup needs.
        PowerNotCharging = "power.not_charging",
        /// iCloud Backup is off.
        IcloudBackupDisabled = "icloud.backup_disabled",
        /// The last iCloud backup is old, or there is none.
        IcloudBackupStale = "icloud.backup_stale",
        /// Little free space on the phone.
        DeviceStorageLow = "device.storage_low",
        /// WhatsApp is installed; its own iCloud backup can get stuck.
        WhatsappIcloudBackup = "whatsapp.icloud_backup",
        /// No complete local backup of this phone on this host.
        BackupLocalMissing = "backup.local_missing",
        /// The newest local backup is old.
        BackupLocalStale = "backup.local_stale",
        /// Local backups are encrypted: the password will be needed.
        BackupEncryptionOn = "backup.encryption_on",
        /// An interrupted backup was left on the host.
        BackupUnfinishedLeftover = "backup.unfinished_leftover",
        /// The host has less free space than the phone's used data.
        HostDiskInsufficient = "host.disk_insufficient",
        /// A phone on the USB bus is in DFU mode: usbmuxd cannot see it.
        DeviceDfuMode = "device.dfu_mode",
        /// A phone on the USB bus is in recovery mode: usbmuxd cannot see it.
        DeviceRecoveryMode = "device.recovery_mode",
        /// A phone in normal mode is on the USB bus but usbmuxd does not list it.
        UsbmuxdNotClaiming = "host.usbmuxd_not_claiming",
        /// A phone that supports USB 3 is on a USB 2 link.
        UsbSlowLink = "usb.slow_link",
        /// The daemon may not read USB devices.
        UsbPermission = "host.usb_permission",
    }
}

ids! {
    /// A stage of the escalation plan, in the first guide's order.
    pub enum StageId {
        /// Sign out of iCloud and back in.
        IcloudSignOut = "escalation.icloud_sign_out",
        /// Reset all settings (data is kept).
        ResetSettings = "escalation.reset_settings",
        /// Make a local backup, as Finder does.
        LocalBackup = "escalation.local_backup",
        /// Restore in DFU mode.
        DfuRestore = "escalation.dfu_restore",
    }
}

//! Pure rules for backupd: no I/O, no clock, no environment. A phone [`Snapshot`], the [`HostFacts`], the current
//! time and a [`RulesConfig`] go in; a [`Diagnosis`] comes out.
//!
//! This crate depends on nothing else in the workspace. The daemon reads the phone through usbmuxd and lockdown,
//! converts what it read into a [`Snapshot`] (and what it found on the host into [`HostFacts`]), and calls
//! [`diagnose`]. Every fact is a [`Fact`]: known, with its [`Source`] (lockdown domain and key, IORegistry entry,
//! installation_proxy, host), or unknown, with an [`UnknownReason`] (not paired, locked, not reported by this iOS
//! version, query failed).
//!
//! # API
//!
//! ```
//! use backupd_rules::{HostFacts, Lang, RulesConfig, Snapshot, Timestamp, UnknownReason};
//!
//! let phone = Snapshot::unread(UnknownReason::NotQueried);
//! let host = HostFacts::unread(UnknownReason::NotQueried);
//! let now = Timestamp::from_unix_secs(1_750_000_000);
//! let diagnosis = backupd_rules::diagnose(&phone, &host, now, &RulesConfig::default());
//! assert!(diagnosis.findings.is_empty()); // nothing known, so nothing found: every check is `unknown`
//! let text = backupd_rules::render_text(&diagnosis, Lang::It);
//! assert!(text.contains("Controlla a mano"));
//! ```
//!
//! - [`diagnose`] runs every check in [`CheckId::ALL`] order and returns each [`CheckResult`] (`pass`, `problem`
//!   or `unknown`), one [`Finding`] per problem (stable id, [`Severity`], title, explanation, [`Evidence`],
//!   ordered remedy [`Step`]s each with its [`Origin`]), and the [`Escalation`] plan.
//! - [`render_text`] prints a diagnosis for a CLI.
//! - [`catalog::markdown`] renders the catalog as `docs/troubleshooting.md` (`cargo xtask codegen`).
//!
//! Everything is `serde` with snake_case names, so the daemon can send a [`Diagnosis`] as JSON: check ids are
//! strings like `wifi.not_connected`, outcomes `pass|problem|unknown`, severities `critical|warning|info`.
//!
//! # Languages: message ids, resolved when rendered
//!
//! A diagnosis holds no prose. Every title, explanation and step is a [`Message`]: a catalog key plus typed
//! arguments ([`Arg`]: bytes, counts, dates, text). [`render_text`] and [`Message::render`] resolve it in a
//! [`Lang`] (Italian or English). We chose this over passing a language to [`diagnose`] because the daemon is one
//! system service serving clients that may each want a different language: it computes one diagnosis and each
//! client renders it in its own. It also keeps the JSON contract free of prose, so fixing a translation changes
//! no wire data, and lets numbers be formatted per language (`5.0 GB`, `5,0 GB`). Evidence values are technical
//! and language-neutral.
//!
//! # The catalog
//!
//! Titles, explanations and remedy steps live in `catalog/catalog.toml`, not in code. Each step records its
//! origin: a source guide (its seed file name, its Italian section heading and the step's position in that
//! section) or `own` for backupd's additions. The two guides are `000_65ab203472675010.txt` (why an iPhone's
//! iCloud backup does not work) and `001_aca6c7205cd1f5de.txt` (WhatsApp's iCloud backup stuck); the Italian text
//! follows them closely and the English translates it. A test asserts that every step of both guides is reachable
//! from some finding or from the escalation plan.
//!
//! # The checks
//!
//! In order: `host.usbmuxd_unavailable` and the `pairing.*` checks first, since nothing else can be read until
//! they pass; then the first guide's order (`wifi.not_connected`, `icloud.storage_likely_insufficient`,
//! `power.not_charging`) and our iCloud checks (`icloud.backup_disabled`, `icloud.backup_stale`,
//! `device.storage_low`); then `whatsapp.icloud_backup`; then the local backups and the host
//! (`backup.local_missing`, `backup.local_stale`, `backup.encryption_on`, `backup.unfinished_leftover`,
//! `host.disk_insufficient`). A check whose question does not arise does not run: `backup.local_stale` is
//! skipped when there is no local backup at all, which `backup.local_missing` reports.
//!
//! Last, the checks that rest on the USB bus ([`UsbFacts`], [`UsbAccess`]): `device.dfu_mode`,
//! `device.recovery_mode`, `host.usbmuxd_not_claiming`, `usb.slow_link` and `host.usb_permission`. They run only
//! when the daemon has a USB watcher: for a phone it saw on the bus, or, when the bus could not be read, as
//! `unknown`. [`diagnose_usb`] diagnoses a device seen only on the bus; `usb.slow_link` estimates the time of a
//! full backup at the link's speed and over USB 3 from the phone's used data.
//!
//! ## The iCloud size estimate
//!
//! No lockdown domain or service reports the iCloud quota or its use (protocol.md §4.8). What can be read is the
//! phone's used data, `TotalDataCapacity − TotalDataAvailable` from `com.apple.disk_usage`. An iCloud backup
//! leaves out what iCloud already keeps in sync (photos with iCloud Photos, apps' iCloud data), so used data is an
//! upper bound on the backup's size. `icloud.storage_likely_insufficient` is a problem when that bound exceeds
//! [`RulesConfig::icloud_quota_bytes`] (5 GB, the free plan, unless configured). It can be wrong both ways: the
//! backup may be much smaller than the bound, and other iCloud data (photos, iCloud Drive, other devices' backups)
//! shares the quota. The finding says so, and its evidence lists the quota's use as not readable over USB.
//!
//! ## The escalation plan
//!
//! After the findings comes the first guide's plan, in its order, for when the simple checks pass and backups
//! still fail: sign out of iCloud and back in, reset settings (data kept), make a local backup (which backupd can
//! do), and only then a DFU restore. The DFU stage gives its steps only when a complete, verified local backup of
//! this phone exists and is at most [`RulesConfig::dfu_backup_max_age_days`] old, since DFU erases the phone;
//! otherwise it says to make one first.

pub mod catalog;
mod checks;
mod config;
mod diagnosis;
mod facts;
mod render;
mod time;
mod usb;

pub use catalog::Lang;
pub use config::RulesConfig;
pub use diagnosis::{
    Arg, CheckId, CheckResult, Diagnosis, Escalation, EscalationStage, Evidence, Finding, Message,
    Origin, Outcome, Severity, StageId, Step,
};
pub use facts::{
    App, Fact, HostFacts, HostOs, LOCAL_WHATSAPP_SOURCE, LocalBackup, LocalWhatsapp, PairingState,
    Snapshot, Source, UnknownReason, UsbmuxdStatus, WHATSAPP_BUNDLE_ID, WifiState,
};
pub use render::{render_checks, render_plans, render_text};
pub use time::Timestamp;
pub use usb::{USB3_PRODUCT_TYPES, UsbAccess, UsbFacts, UsbMode};

/// Diagnoses a phone: runs every check against the facts and returns the results, findings and escalation plan.
///
/// Pure and total: any snapshot, including one where every fact is unknown, gives a diagnosis.
pub fn diagnose(
    snapshot: &Snapshot,
    host: &HostFacts,
    now: Timestamp,
    config: &RulesConfig,
) -> Diagnosis {
    checks::diagnose(snapshot, host, now, config)
}

/// Diagnoses the host alone, without a phone: the checks that need no phone (`host.usbmuxd_unavailable`), and no
/// escalation plan.
pub fn diagnose_host(host: &HostFacts, now: Timestamp, config: &RulesConfig) -> Diagnosis {
    checks::diagnose_host(host, now, config)
}

/// Diagnoses a device seen only on the USB bus (`snapshot.usb` set, usbmuxd not listing it): a phone in DFU
/// or recovery mode, or one usbmuxd does not take. No escalation plan: the findings say what to do.
pub fn diagnose_usb(
    snapshot: &Snapshot,
    host: &HostFacts,
    now: Timestamp,
    config: &RulesConfig,
) -> Diagnosis {
    checks::diagnose_usb(snapshot, host, now, config)
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// A language tag other than Italian or English.
    #[error("unknown language `{tag}`: expected `it` or `en`")]
    UnknownLanguage {
        /// The tag as given.
        tag: String,
    },
}

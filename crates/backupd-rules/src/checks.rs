//! The checks: each looks at a few facts and says pass, problem or unknown, with the evidence.
//!
//! Text and remedy lists live in the catalog; this module only decides outcomes, evidence, placeholder values and
//! (for a few checks) which variant of the remedies applies.

use std::collections::BTreeMap;

use crate::catalog::{self, Catalog};
use crate::config::RulesConfig;
use crate::diagnosis::{
    Arg, CheckId, CheckResult, Diagnosis, Escalation, EscalationStage, Evidence, Finding, Message,
    Outcome, StageId,
};
use crate::facts::{
    App, Fact, HostFacts, HostOs, LocalBackup, LocalWhatsapp, PairingState, Snapshot, Source,
    UnknownReason, UsbmuxdStatus, WHATSAPP_BUNDLE_ID,
};
use crate::render;
use crate::time::{SECS_PER_DAY, Timestamp};

mod usb;

/// The checks whose passing means the first guide's simple causes are ruled out.
const SIMPLE_CHECKS: &[CheckId] = &[
    CheckId::WifiNotConnected,
    CheckId::IcloudStorageLikelyInsufficient,
    CheckId::PowerNotCharging,
    CheckId::IcloudBackupDisabled,
    CheckId::DeviceStorageLow,
];

const LINUX: &str = "linux";
const LINUX_UNREACHABLE: &str = "linux_unreachable";
const MACOS: &str = "macos";
const VERIFIED: &str = "verified";
const UNVERIFIED: &str = "unverified";
const OFFERED: &str = "offered";
const LOCAL_CHATS: &str = "local_chats";
const LOCAL_NONE: &str = "local_none";
const LOCAL_ENCRYPTED: &str = "local_encrypted";
const PASSWORD_CHECKED: &str = "password_checked";
const CHECK_PASSWORD: &str = "check_password";

struct Ctx<'a> {
    phone: &'a Snapshot,
    host: &'a HostFacts,
    now: Timestamp,
    config: &'a RulesConfig,
}

/// What one check concluded, before the catalog turns it into a result and maybe a finding.
struct Eval {
    outcome: Outcome,
    evidence: Vec<Evidence>,
    args: BTreeMap<String, Arg>,
    variant: Option<&'static str>,
}

impl Eval {
    fn new(outcome: Outcome, evidence: Vec<Evidence>) -> Self {
        Self {
            outcome,
            evidence,
            args: BTreeMap::new(),
            variant: None,
        }
    }

    fn arg(mut self, name: &str, value: Arg) -> Self {
        self.args.insert(name.to_owned(), value);
        self
    }

    fn variant(mut self, variant: &'static str) -> Self {
        self.variant = Some(variant);
        self
    }
}

pub(crate) fn diagnose(
    phone: &Snapshot,
    host: &HostFacts,
    now: Timestamp,
    config: &RulesConfig,
) -> Diagnosis {
    let ctx = Ctx {
        phone,
        host,
        now,
        config,
    };
    let catalog = catalog::catalog();
    let (checks, findings) = run_checks(CheckId::ALL, &ctx, catalog);
    let escalation = escalation(&ctx, &checks, catalog);
    Diagnosis {
        checks,
        findings,
        escalation,
    }
}

/// The checks that need no phone: what the daemon shows about the host itself.
pub(crate) const HOST_ONLY: &[CheckId] = &[CheckId::UsbmuxdUnavailable, CheckId::UsbPermission];

/// The checks of a device seen only on the USB bus.
pub(crate) const USB_ONLY: &[CheckId] = &[
    CheckId::DeviceDfuMode,
    CheckId::DeviceRecoveryMode,
    CheckId::UsbmuxdNotClaiming,
];

/// Diagnoses a device seen only on the USB bus; no escalation plan.
pub(crate) fn diagnose_usb(
    phone: &Snapshot,
    host: &HostFacts,
    now: Timestamp,
    config: &RulesConfig,
) -> Diagnosis {
    let ctx = Ctx {
        phone,
        host,
        now,
        config,
    };
    let (checks, findings) = run_checks(USB_ONLY, &ctx, catalog::catalog());
    Diagnosis {
        checks,
        findings,
        escalation: Escalation {
            simple_checks_passed: false,
            dfu_offered: false,
            stages: Vec::new(),
        },
    }
}

/// Diagnoses the host alone; no escalation plan, which is about a phone.
pub(crate) fn diagnose_host(host: &HostFacts, now: Timestamp, config: &RulesConfig) -> Diagnosis {
    let phone = Snapshot::unread(crate::UnknownReason::NotQueried);
    let ctx = Ctx {
        phone: &phone,
        host,
        now,
        config,
    };
    let (checks, findings) = run_checks(HOST_ONLY, &ctx, catalog::catalog());
    Diagnosis {
        checks,
        findings,
        escalation: Escalation {
            simple_checks_passed: false,
            dfu_offered: false,
            stages: Vec::new(),
        },
    }
}

fn run_checks(
    ids: &[CheckId],
    ctx: &Ctx<'_>,
    catalog: &Catalog,
) -> (Vec<CheckResult>, Vec<Finding>) {
    let mut checks = Vec::new();
    let mut findings = Vec::new();
    for &id in ids {
        let Some(eval) = evaluate(id, ctx) else {
            continue;
        };
        let def = catalog.check(id);
        let manual = match (eval.outcome, def) {
            (Outcome::Unknown, Some(def)) => catalog.steps(def.manual(), &eval.args),
            _ => Vec::new(),
        };
        if let (Outcome::Problem, Some(def)) = (eval.outcome, def) {
            findings.push(Finding {
                id,
                severity: def.severity,
                title: Message::with_args(format!("{id}.title"), eval.args.clone()),
                explanation: Message::with_args(format!("{id}.why"), eval.args.clone()),
                evidence: eval.evidence.clone(),
                remedies: catalog.steps(def.remedies(eval.variant), &eval.args),
            });
        }
        checks.push(CheckResult {
            id,
            outcome: eval.outcome,
            label: Message::new(format!("{id}.label")),
            evidence: eval.evidence,
            manual,
        });
    }
    (checks, findings)
}

fn evaluate(id: CheckId, ctx: &Ctx<'_>) -> Option<Eval> {
    let phone = ctx.phone;
    let host = ctx.host;
    match id {
        CheckId::UsbmuxdUnavailable => Some(usbmuxd(host)),
        CheckId::PairingTrustPending => Some(pairing(phone, PairingState::TrustPending)),
        CheckId::PairingPasscodeRequired => Some(pairing(phone, PairingState::PasscodeRequired)),
        CheckId::PairingDenied => Some(pairing(phone, PairingState::Denied)),
        CheckId::PairingInvalidHost => Some(pairing(phone, PairingState::InvalidHost)),
        CheckId::WifiNotConnected => Some(wifi(ctx)),
        CheckId::IcloudStorageLikelyInsufficient => Some(icloud_storage(ctx)),
        CheckId::PowerNotCharging => Some(power(ctx)),
        CheckId::IcloudBackupDisabled => Some(flag(
            "icloud_backup_enabled",
            &phone.icloud_backup_enabled,
            false,
        )),
        CheckId::IcloudBackupStale => icloud_stale(ctx),
        CheckId::DeviceStorageLow => Some(phone_storage(phone, ctx.config)),
        CheckId::WhatsappIcloudBackup => Some(whatsapp(phone, host)),
        CheckId::BackupLocalMissing => Some(local_missing(host)),
        CheckId::BackupLocalStale => local_stale(ctx),
        CheckId::BackupEncryptionOn => Some(encryption(phone, host)),
        CheckId::BackupUnfinishedLeftover => {
            Some(flag("unfinished_backup", &host.unfinished_backup, true))
        }
        CheckId::HostDiskInsufficient => Some(host_disk(phone, host)),
        CheckId::DeviceDfuMode => usb::mode(ctx, crate::UsbMode::Dfu),
        CheckId::DeviceRecoveryMode => usb::mode(ctx, crate::UsbMode::Recovery),
        CheckId::UsbmuxdNotClaiming => usb::not_claiming(ctx),
        CheckId::UsbSlowLink => usb::slow_link(ctx),
        CheckId::UsbPermission => usb::permission(host),
    }
}

// Evidence for: connecting to the socket the daemon was given failed (no socket, nobody listening, refused).
// Evidence against: it answered. The evidence names that socket. Missing: unknown.
fn usbmuxd(host: &HostFacts) -> Eval {
    let evidence = vec![
        fact_evidence("usbmuxd", &host.usbmuxd, |s| {
            match s {
                UsbmuxdStatus::Reachable => "reachable",
                UsbmuxdStatus::NotRunning => "not_running",
                UsbmuxdStatus::Unreachable => "unreachable",
            }
            .to_owned()
        }),
        fact_evidence("host_os", &host.os, |os| {
            match os {
                HostOs::Linux => "linux",
                HostOs::Macos => "macos",
                HostOs::Other => "other",
            }
            .to_owned()
        }),
    ];
    let status = match host.usbmuxd.value() {
        None => return Eval::new(Outcome::Unknown, evidence),
        Some(UsbmuxdStatus::Reachable) => return Eval::new(Outcome::Pass, evidence),
        Some(status) => *status,
    };
    let eval = Eval::new(Outcome::Problem, evidence);
    // Which way to start usbmuxd depends on the OS; an unknown OS gets the default list, which covers both.
    match (host.os.value(), status) {
        (Some(HostOs::Macos), _) => eval.variant(MACOS),
        (Some(HostOs::Linux), UsbmuxdStatus::Unreachable) => eval.variant(LINUX_UNREACHABLE),
        (Some(HostOs::Linux), _) => eval.variant(LINUX),
        _ => eval,
    }
}

fn pairing(phone: &Snapshot, problem: PairingState) -> Eval {
    let evidence = vec![fact_evidence("pairing", &phone.pairing, |p| {
        match p {
            PairingState::Paired => "paired",
            PairingState::TrustPending => "trust_pending",
            PairingState::PasscodeRequired => "passcode_required",
            PairingState::Denied => "denied",
            PairingState::InvalidHost => "invalid_host",
        }
        .to_owned()
    })];
    match phone.pairing.value() {
        None => Eval::new(Outcome::Unknown, evidence),
        Some(state) if *state == problem => Eval::new(Outcome::Problem, evidence),
        Some(_) => Eval::new(Outcome::Pass, evidence),
    }
}

// Evidence for: the IORegistry shows no association (no SSID, no BSSID). Evidence against: an association, or an
// iCloud backup within `icloud_backup_max_age_days`, which proves the phone does reach Wi-Fi when it backs up (a
// phone in a shop or an office is often off its home Wi-Fi). The IORegistry does not tell Wi-Fi off from on but
// not joined, so the finding names both. Missing: unknown.
fn wifi(ctx: &Ctx<'_>) -> Eval {
    let phone = ctx.phone;
    let mut evidence = vec![fact_evidence("wifi_associated", &phone.wifi, |w| {
        w.associated.to_string()
    })];
    if let Some(ssid) = phone.wifi.value().and_then(|w| w.ssid.as_ref()) {
        evidence.push(evidence_of("wifi_ssid", ssid.clone(), phone.wifi.source()));
    }
    match phone.wifi.value() {
        None => Eval::new(Outcome::Unknown, evidence),
        Some(w) if w.associated => Eval::new(Outcome::Pass, evidence),
        Some(_) => match recent_icloud_backup(ctx) {
            Some(e) => {
                evidence.push(e);
                Eval::new(Outcome::Pass, evidence)
            }
            None => Eval::new(Outcome::Problem, evidence),
        },
    }
}

/// Evidence that the phone made an iCloud backup within `icloud_backup_max_age_days`, if it did: what the
/// overnight conditions (Wi-Fi, room in iCloud, a charger) are for, so it outweighs a guess about any of them.
fn recent_icloud_backup(ctx: &Ctx<'_>) -> Option<Evidence> {
    let fact = &ctx.phone.last_icloud_backup;
    let date = (*fact.value()?)?;
    if older_than(ctx.now, date, ctx.config.icloud_backup_max_age_days) {
        return None;
    }
    Some(evidence_of(
        "recent_icloud_backup",
        format!(
            "{} (<= {} days)",
            date.rfc3339(),
            ctx.config.icloud_backup_max_age_days
        ),
        fact.source(),
    ))
}

/// The best estimate of an iCloud backup's size: the newest local backup's size (a local backup holds what an
/// iCloud backup holds, plus what iCloud keeps in sync anyway), else the phone's used data, an upper bound.
/// Returns the estimate, whether it is only the upper bound, and the evidence naming which one it is.
fn backup_size_estimate(phone: &Snapshot, host: &HostFacts) -> Option<(u64, bool, Evidence)> {
    if let Some(backup) = host.local_backup.value().and_then(Option::as_ref)
        && let Some(size) = backup.size
    {
        let source = Source::derived(&format!(
            "size of the local backup of {}",
            backup.date.rfc3339()
        ));
        let e = evidence_of(
            "icloud_backup_estimate",
            format!("~ {}", bytes(size)),
            &source,
        );
        return Some((size, false, e));
    }
    let used = phone.used_data()?;
    let source = Source::derived("TotalDataCapacity - TotalDataAvailable (upper bound)");
    let e = evidence_of(
        "icloud_backup_estimate",
        format!("<= {}", bytes(used)),
        &source,
    );
    Some((used, true, e))
}

// Evidence for: the estimate exceeds the quota, and either it is the local backup's size or the phone reports no
// iCloud backup lately. Evidence against: an iCloud backup within `icloud_backup_max_age_days` (it fit), or an
// estimate within the quota. Conflict: a recent iCloud backup wins. Missing: with only the upper bound above the
// quota and no date of the last iCloud backup, nothing supports a conclusion: unknown.
fn icloud_storage(ctx: &Ctx<'_>) -> Eval {
    let (phone, config) = (ctx.phone, ctx.config);
    let mut evidence = vec![
        fact_evidence("data_capacity", &phone.data_capacity, |b| bytes(*b)),
        fact_evidence("data_available", &phone.data_available, |b| bytes(*b)),
    ];
    let quota = config.icloud_quota_bytes;
    if let Some(e) = recent_icloud_backup(ctx) {
        evidence.push(e);
        return Eval::new(Outcome::Pass, evidence).arg("quota", Arg::Bytes(quota));
    }
    let Some((estimate, upper_bound, e)) = backup_size_estimate(phone, ctx.host) else {
        return Eval::new(Outcome::Unknown, evidence).arg("quota", Arg::Bytes(quota));
    };
    evidence.push(e);
    evidence.push(config_evidence("icloud_quota_bytes", bytes(quota)));
    // Say in the evidence itself that the real quota and its use were not read: nothing over USB reports them.
    evidence.push(Evidence {
        fact: "icloud_quota_used".to_owned(),
        value: "unknown".to_owned(),
        unknown: Some(UnknownReason::NotAvailableOverUsb),
        source: Source::Unobservable,
    });
    evidence.push(fact_evidence(
        "last_icloud_backup",
        &phone.last_icloud_backup,
        |d| d.map_or_else(|| "never".to_owned(), Timestamp::rfc3339),
    ));
    let outcome = if estimate <= quota {
        Outcome::Pass
    } else if !upper_bound || phone.last_icloud_backup.value().is_some() {
        Outcome::Problem
    } else {
        Outcome::Unknown
    };
    Eval::new(outcome, evidence)
        .arg("estimate", Arg::Bytes(estimate))
        .arg("quota", Arg::Bytes(quota))
}

// Evidence for: `ExternalConnected` false while the phone is plugged into this computer (not even its USB port
// powers it). Evidence against: external power or a charging battery (the computer's port counts: it shows the
// phone takes a charge), or an iCloud backup within `icloud_backup_max_age_days` (the phone does get charged at
// night). Conflict: any evidence against wins. Missing: `BatteryIsCharging` false alone is no evidence (a full
// battery stops charging on a charger), so unknown.
fn power(ctx: &Ctx<'_>) -> Eval {
    let phone = ctx.phone;
    let mut evidence = vec![
        fact_evidence("external_power", &phone.external_power, bool::to_string),
        fact_evidence("battery_charging", &phone.battery_charging, bool::to_string),
        fact_evidence("battery_level", &phone.battery_level, |p| format!("{p}%")),
    ];
    // A charging battery proves external power even when ExternalConnected was not read.
    let outcome = match (phone.external_power.value(), phone.battery_charging.value()) {
        (Some(true), _) | (_, Some(true)) => Outcome::Pass,
        (Some(false), _) => match recent_icloud_backup(ctx) {
            Some(e) => {
                evidence.push(e);
                Outcome::Pass
            }
            None => Outcome::Problem,
        },
        (None, _) => Outcome::Unknown,
    };
    Eval::new(outcome, evidence)
}

/// A yes/no fact where `bad` is the problem value.
fn flag(name: &str, fact: &Fact<bool>, bad: bool) -> Eval {
    let evidence = vec![fact_evidence(name, fact, bool::to_string)];
    match fact.value() {
        None => Eval::new(Outcome::Unknown, evidence),
        Some(v) if *v == bad => Eval::new(Outcome::Problem, evidence),
        Some(_) => Eval::new(Outcome::Pass, evidence),
    }
}

// Evidence for: `LastCloudBackupDate` older than `icloud_backup_max_age_days`, or absent (the phone reports no
// iCloud backup) while iCloud Backup is on. Evidence against: a recent date. Conflict: with iCloud Backup off the
// check does not run: `icloud.backup_disabled` says what to do, and "no recent backup" would only repeat it.
// Missing: unknown.
fn icloud_stale(ctx: &Ctx<'_>) -> Option<Eval> {
    if ctx.phone.icloud_backup_enabled.value() == Some(&false) {
        return None;
    }
    let max_days = ctx.config.icloud_backup_max_age_days;
    let fact = &ctx.phone.last_icloud_backup;
    let mut evidence = vec![fact_evidence("last_icloud_backup", fact, |d| match d {
        Some(t) => t.rfc3339(),
        None => "never".to_owned(),
    })];
    evidence.push(config_evidence(
        "icloud_backup_max_age_days",
        max_days.to_string(),
    ));
    let eval = |outcome, evidence| {
        Eval::new(outcome, evidence).arg("max_days", Arg::Count(u64::from(max_days)))
    };
    Some(match fact.value() {
        None => eval(Outcome::Unknown, evidence),
        Some(None) => eval(Outcome::Problem, evidence),
        Some(Some(date)) => {
            let age = ctx.now.days_since(*date);
            evidence.push(Evidence {
                fact: "icloud_backup_age_days".to_owned(),
                value: age.to_string(),
                unknown: None,
                source: Source::derived("now - LastCloudBackupDate"),
            });
            let outcome = if older_than(ctx.now, *date, max_days) {
                Outcome::Problem
            } else {
                Outcome::Pass
            };
            eval(outcome, evidence)
        }
    })
}

// Evidence for: `TotalDataAvailable` below `phone_min_free_bytes`; it already counts purgeable space, so a low
// figure is really low. Evidence against: more free than that. Nothing else read contradicts it (a recent
// iCloud backup does not: iOS needs the room for local backups and updates too). Missing: unknown.
fn phone_storage(phone: &Snapshot, config: &RulesConfig) -> Eval {
    let min = config.phone_min_free_bytes;
    let evidence = vec![
        fact_evidence("data_available", &phone.data_available, |b| bytes(*b)),
        config_evidence("phone_min_free_bytes", bytes(min)),
    ];
    let Some(available) = phone.data_available.value() else {
        return Eval::new(Outcome::Unknown, evidence).arg("min", Arg::Bytes(min));
    };
    let outcome = if *available < min {
        Outcome::Problem
    } else {
        Outcome::Pass
    };
    Eval::new(outcome, evidence)
        .arg("available", Arg::Bytes(*available))
        .arg("min", Arg::Bytes(min))
}

// An info, never a warning: nothing over USB shows the state of WhatsApp's own iCloud backup. Evidence for the
// info: WhatsApp in installation_proxy's list. Evidence against: not installed. What the newest local backup holds
// of its chats (read inside the backup) picks the first step: the chats up to a date are safe on this computer,
// the backup holds none, or it is encrypted and needs its password. Missing app list: unknown.
fn whatsapp(phone: &Snapshot, host: &HostFacts) -> Eval {
    fn find(apps: &[App]) -> Option<&App> {
        apps.iter().find(|a| a.bundle_id == WHATSAPP_BUNDLE_ID)
    }
    let mut evidence = vec![fact_evidence("whatsapp_installed", &phone.apps, |apps| {
        find(apps).is_some().to_string()
    })];
    let Some(apps) = phone.apps.value() else {
        return Eval::new(Outcome::Unknown, evidence);
    };
    let Some(app) = find(apps) else {
        return Eval::new(Outcome::Pass, evidence);
    };
    let source = phone.apps.source();
    if let Some(version) = &app.version {
        evidence.push(evidence_of("whatsapp_version", version.clone(), source));
    }
    evidence.push(fact_evidence(
        "whatsapp_icloud_containers",
        &app.icloud_containers,
        bool::to_string,
    ));
    let backup = host.local_backup.value().and_then(Option::as_ref);
    let Some(backup) = backup else {
        return Eval::new(Outcome::Problem, evidence);
    };
    evidence.push(local_backup_evidence(host));
    evidence.push(fact_evidence(
        "whatsapp_in_local_backup",
        &host.local_whatsapp,
        |w| match w {
            LocalWhatsapp::Absent => "none".to_owned(),
            LocalWhatsapp::Chats {
                messages,
                newest_message,
            } => format!(
                "{messages} messages, newest {}",
                newest_message.map_or_else(|| "none".to_owned(), Timestamp::rfc3339)
            ),
            LocalWhatsapp::Encrypted => "encrypted, no password given".to_owned(),
        },
    ));
    let eval = Eval::new(Outcome::Problem, evidence).arg("backup_date", Arg::Date(backup.date));
    match host.local_whatsapp.value() {
        Some(LocalWhatsapp::Chats {
            messages,
            newest_message: Some(newest),
        }) => eval
            .arg("messages", Arg::Count(*messages))
            .arg("newest", Arg::Date(*newest))
            .variant(LOCAL_CHATS),
        Some(LocalWhatsapp::Chats { .. } | LocalWhatsapp::Absent) => eval.variant(LOCAL_NONE),
        Some(LocalWhatsapp::Encrypted) => eval.variant(LOCAL_ENCRYPTED),
        None => eval,
    }
}

fn local_backup_evidence(host: &HostFacts) -> Evidence {
    fact_evidence("newest_local_backup", &host.local_backup, |b| match b {
        Some(b) => format!(
            "{} verified={} encrypted={}",
            b.date.rfc3339(),
            b.verified,
            b.encrypted
        ),
        None => "none".to_owned(),
    })
}

// Evidence for: no complete backup of this phone in the backup folder (`Status.plist` not `finished`).
// Evidence against: one is there. Missing (the folder could not be read): unknown.
fn local_missing(host: &HostFacts) -> Eval {
    let evidence = vec![local_backup_evidence(host)];
    match host.local_backup.value() {
        None => Eval::new(Outcome::Unknown, evidence),
        Some(None) => Eval::new(Outcome::Problem, evidence),
        Some(Some(_)) => Eval::new(Outcome::Pass, evidence),
    }
}

/// Runs only when a local backup exists (or might): with none, `backup.local_missing` already says so.
/// Evidence for: the newest complete backup's `Status.plist` date is older than `local_backup_max_age_days`.
/// Evidence against: a newer one. Missing: unknown.
fn local_stale(ctx: &Ctx<'_>) -> Option<Eval> {
    let max_days = ctx.config.local_backup_max_age_days;
    let mut evidence = vec![
        local_backup_evidence(ctx.host),
        config_evidence("local_backup_max_age_days", max_days.to_string()),
    ];
    let eval = |outcome, evidence| {
        Eval::new(outcome, evidence).arg("max_days", Arg::Count(u64::from(max_days)))
    };
    match ctx.host.local_backup.value() {
        None => Some(eval(Outcome::Unknown, evidence)),
        Some(None) => None,
        Some(Some(backup)) => {
            evidence.push(Evidence {
                fact: "local_backup_age_days".to_owned(),
                value: ctx.now.days_since(backup.date).to_string(),
                unknown: None,
                source: Source::derived("now - Status.plist Date"),
            });
            let outcome = if older_than(ctx.now, backup.date, max_days) {
                Outcome::Problem
            } else {
                Outcome::Pass
            };
            Some(eval(outcome, evidence).arg("date", Arg::Date(backup.date)))
        }
    }
}

// An info, not a warning: encryption is not a fault, only a password to keep. Evidence for: `WillEncrypt` true,
// or the newest local backup's `IsEncrypted`. Evidence against: `WillEncrypt` false and no encrypted backup.
// Conflict (`WillEncrypt` false, encrypted backup on disk): the backup on disk still needs its password, so it
// is reported. Missing: unknown.
fn encryption(phone: &Snapshot, host: &HostFacts) -> Eval {
    let evidence = vec![
        fact_evidence("will_encrypt", &phone.will_encrypt, bool::to_string),
        local_backup_evidence(host),
    ];
    let local = host.local_backup.value().and_then(|b| b.as_ref());
    let local_encrypted = local.map(|b| b.encrypted);
    // WillEncrypt decides the next backup; an encrypted backup already on disk needs its password all the same.
    let outcome = match (phone.will_encrypt.value(), local_encrypted) {
        (Some(true), _) | (_, Some(true)) => Outcome::Problem,
        (Some(false), _) => Outcome::Pass,
        (None, _) => Outcome::Unknown,
    };
    let mut evidence = evidence;
    if let Some(b) = local.filter(|b| b.encrypted) {
        evidence.push(Evidence {
            fact: "password_checked".to_owned(),
            value: b
                .password_checked
                .map_or_else(|| "never".to_owned(), |t| t.rfc3339()),
            unknown: None,
            source: Source::host("backupd's record of password checks"),
        });
    }
    let eval = Eval::new(outcome, evidence);
    // The password opened the newest backup's keybag on that date: the person knows it.
    match local
        .filter(|b| b.encrypted)
        .and_then(|b| b.password_checked)
    {
        Some(checked) => eval
            .variant(PASSWORD_CHECKED)
            .arg("checked", Arg::Date(checked)),
        None => eval,
    }
}

// Evidence for: less free space where backups go than the phone's used data, with no backup of it here yet
// (a first backup copies everything); with a backup here, only when even the data beyond that backup's size does
// not fit. Evidence against: free space at least the phone's used data. Conflict (a backup here, free space
// between the two): what changed since cannot be known in advance, so unknown, not a warning. Missing: unknown.
fn host_disk(phone: &Snapshot, host: &HostFacts) -> Eval {
    let mut evidence = vec![
        fact_evidence("backup_dir_free", &host.backup_dir_free, |b| bytes(*b)),
        fact_evidence("data_capacity", &phone.data_capacity, |b| bytes(*b)),
        fact_evidence("data_available", &phone.data_available, |b| bytes(*b)),
    ];
    let (Some(free), Some(used)) = (host.backup_dir_free.value(), phone.used_data()) else {
        return Eval::new(Outcome::Unknown, evidence);
    };
    let free = *free;
    if free >= used {
        return Eval::new(Outcome::Pass, evidence);
    }
    let needed = match host.local_backup.value() {
        None => return Eval::new(Outcome::Unknown, evidence),
        Some(None) => used,
        Some(Some(backup)) => {
            evidence.push(local_backup_evidence(host));
            let Some(size) = backup.size else {
                return Eval::new(Outcome::Unknown, evidence);
            };
            let growth = used.saturating_sub(size);
            evidence.push(evidence_of(
                "backup_growth_estimate",
                bytes(growth),
                &Source::derived("used data - size of the local backup"),
            ));
            if free >= growth {
                return Eval::new(Outcome::Unknown, evidence);
            }
            growth
        }
    };
    Eval::new(Outcome::Problem, evidence)
        .arg("free", Arg::Bytes(free))
        .arg("needed", Arg::Bytes(needed))
}

fn escalation(ctx: &Ctx<'_>, checks: &[CheckResult], catalog: &Catalog) -> Escalation {
    let simple_checks_passed = SIMPLE_CHECKS.iter().all(|id| {
        checks
            .iter()
            .any(|c| c.id == *id && c.outcome == Outcome::Pass)
    });
    let backup: Option<&LocalBackup> = ctx.host.local_backup.value().and_then(Option::as_ref);
    let recent_verified = backup.is_some_and(|b| {
        b.verified && !older_than(ctx.now, b.date, ctx.config.dfu_backup_max_age_days)
    });
    // An encrypted backup restores only with its password: erasing the phone waits until it was checked.
    let password_unchecked = backup.is_some_and(|b| b.encrypted && b.password_checked.is_none());
    let dfu_offered = recent_verified && !password_unchecked;
    let mut args = BTreeMap::new();
    if let Some(b) = backup {
        args.insert("date".to_owned(), Arg::Date(b.date));
    }
    args.insert(
        "dfu_max_hours".to_owned(),
        Arg::Count(u64::from(ctx.config.dfu_backup_max_age_days).saturating_mul(24)),
    );
    let stages = StageId::ALL
        .iter()
        .map(|&id| {
            let variant = match id {
                StageId::LocalBackup => {
                    backup.map(|b| if b.verified { VERIFIED } else { UNVERIFIED })
                }
                StageId::DfuRestore if recent_verified && password_unchecked => {
                    Some(CHECK_PASSWORD)
                }
                StageId::DfuRestore => dfu_offered.then_some(OFFERED),
                StageId::IcloudSignOut | StageId::ResetSettings => None,
            };
            let steps = catalog
                .stage(id)
                .map(|def| catalog.steps(def.steps(variant), &args))
                .unwrap_or_default();
            EscalationStage {
                id,
                title: Message::with_args(format!("{id}.title"), args.clone()),
                explanation: Message::with_args(format!("{id}.why"), args.clone()),
                steps,
            }
        })
        .collect();
    Escalation {
        simple_checks_passed,
        dfu_offered,
        stages,
    }
}

/// Whether `date` is more than `max_days` whole days before `now`.
fn older_than(now: Timestamp, date: Timestamp, max_days: u32) -> bool {
    let limit = u64::from(max_days).saturating_mul(SECS_PER_DAY.unsigned_abs());
    now.secs_since(date) > limit
}

fn bytes(b: u64) -> String {
    format!("{} ({b} B)", render::bytes(b, '.'))
}

fn fact_evidence<T>(name: &str, fact: &Fact<T>, show: impl FnOnce(&T) -> String) -> Evidence {
    match fact {
        Fact::Known { value, source } => evidence_of(name, show(value), source),
        Fact::Unknown { reason, source } => Evidence {
            fact: name.to_owned(),
            value: "unknown".to_owned(),
            unknown: Some(*reason),
            source: source.clone(),
        },
    }
}

fn evidence_of(name: &str, value: String, source: &Source) -> Evidence {
    Evidence {
        fact: name.to_owned(),
        value,
        unknown: None,
        source: source.clone(),
    }
}

fn config_evidence(key: &str, value: String) -> Evidence {
    Evidence {
        fact: key.to_owned(),
        value,
        unknown: None,
        source: Source::config(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every remedy or stage variant the code may ask the catalog for, by owner; a test checks each exists.
    const VARIANTS: &[(&str, &str)] = &[
        ("host.usbmuxd_unavailable", LINUX),
        ("host.usbmuxd_unavailable", LINUX_UNREACHABLE),
        ("host.usbmuxd_unavailable", MACOS),
        ("escalation.local_backup", VERIFIED),
        ("escalation.local_backup", UNVERIFIED),
        ("escalation.dfu_restore", OFFERED),
        ("whatsapp.icloud_backup", LOCAL_CHATS),
        ("whatsapp.icloud_backup", LOCAL_NONE),
        ("whatsapp.icloud_backup", LOCAL_ENCRYPTED),
        ("device.dfu_mode", usb::BACKUP),
        ("device.recovery_mode", usb::BACKUP),
        ("host.usbmuxd_not_claiming", MACOS),
        ("usb.slow_link", usb::TIMES),
        ("host.usb_permission", MACOS),
        ("escalation.dfu_restore", CHECK_PASSWORD),
        ("backup.encryption_on", PASSWORD_CHECKED),
    ];

    #[test]
    fn every_variant_the_code_asks_for_exists() {
        let catalog = catalog::catalog();
        for (owner, variant) in VARIANTS {
            let found = CheckId::ALL
                .iter()
                .find(|id| id.as_str() == *owner)
                .and_then(|id| catalog.check(*id))
                .map(|def| def.remedies(Some(variant)) != def.remedies(None))
                .or_else(|| {
                    StageId::ALL
                        .iter()
                        .find(|id| id.as_str() == *owner)
                        .and_then(|id| catalog.stage(*id))
                        .map(|def| def.steps(Some(variant)) != def.steps(None))
                });
            assert_eq!(found, Some(true), "{owner} variant {variant}");
        }
    }

    #[test]
    fn older_than_counts_whole_days() {
        let now = Timestamp::from_unix_secs(10 * 86_400);
        assert!(!older_than(now, Timestamp::from_unix_secs(3 * 86_400), 7));
        assert!(older_than(
            now,
            Timestamp::from_unix_secs(3 * 86_400 - 1),
            7
        ));
        assert!(!older_than(now, Timestamp::from_unix_secs(i64::MAX), 0));
        assert!(older_than(
            now,
            Timestamp::from_unix_secs(i64::MIN),
            u32::MAX
        ));
    }
}

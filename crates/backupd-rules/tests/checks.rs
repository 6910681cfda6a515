//! One table per check: a healthy phone and host pass it, one change makes it a problem, another makes it unknown.

mod common;

use backupd_rules::{
    App, CheckId, Diagnosis, HostFacts, HostOs, Lang, LocalBackup, Outcome, PairingState,
    RulesConfig, Severity, Snapshot, UnknownReason, UsbAccess, UsbFacts, UsbMode, UsbmuxdStatus,
    WHATSAPP_BUNDLE_ID, WifiState,
};
use common::{DAY, GB, HOUR, ago, diagnose, healthy_host, healthy_phone, now};

type Mutation = fn(&mut Snapshot, &mut HostFacts);

struct Case {
    check: CheckId,
    severity: Severity,
    problem: Mutation,
    unknown: Mutation,
}

const LOCKED: UnknownReason = UnknownReason::DeviceLocked;

fn cases() -> Vec<Case> {
    vec![
        Case {
            check: CheckId::UsbmuxdUnavailable,
            severity: Severity::Critical,
            problem: |_, h| h.usbmuxd.set_known(UsbmuxdStatus::NotRunning),
            unknown: |_, h| h.usbmuxd.set_unknown(UnknownReason::QueryFailed),
        },
        Case {
            check: CheckId::PairingTrustPending,
            severity: Severity::Critical,
            problem: |p, _| p.pairing.set_known(PairingState::TrustPending),
            unknown: |p, _| p.pairing.set_unknown(UnknownReason::QueryFailed),
        },
        Case {
            check: CheckId::PairingPasscodeRequired,
            severity: Severity::Critical,
            problem: |p, _| p.pairing.set_known(PairingState::PasscodeRequired),
            unknown: |p, _| p.pairing.set_unknown(UnknownReason::QueryFailed),
        },
        Case {
            check: CheckId::PairingDenied,
            severity: Severity::Critical,
            problem: |p, _| p.pairing.set_known(PairingState::Denied),
            unknown: |p, _| p.pairing.set_unknown(UnknownReason::QueryFailed),
        },
        Case {
            check: CheckId::PairingInvalidHost,
            severity: Severity::Critical,
            problem: |p, _| p.pairing.set_known(PairingState::InvalidHost),
            unknown: |p, _| p.pairing.set_unknown(UnknownReason::QueryFailed),
        },
        Case {
            check: CheckId::WifiNotConnected,
            severity: Severity::Critical,
            problem: |p, _| {
                p.wifi.set_known(WifiState::new(false, None));
                p.last_icloud_backup.set_known(Some(ago(8 * DAY)));
            },
            unknown: |p, _| p.wifi.set_unknown(UnknownReason::NotReported),
        },
        Case {
            check: CheckId::IcloudStorageLikelyInsufficient,
            severity: Severity::Warning,
            problem: |p, h| {
                p.last_icloud_backup.set_known(Some(ago(8 * DAY)));
                h.local_backup.set_known(Some(
                    LocalBackup::new(ago(6 * HOUR), true, false).with_size(6 * GB),
                ));
            },
            unknown: |p, h| {
                p.last_icloud_backup.set_unknown(LOCKED);
                p.data_available.set_known(2 * GB);
                h.local_backup
                    .set_known(Some(LocalBackup::new(ago(6 * HOUR), true, false)));
            },
        },
        Case {
            check: CheckId::PowerNotCharging,
            severity: Severity::Warning,
            problem: |p, _| {
                p.external_power.set_known(false);
                p.battery_charging.set_known(false);
                p.last_icloud_backup.set_known(Some(ago(8 * DAY)));
            },
            unknown: |p, _| {
                p.external_power.set_unknown(LOCKED);
                p.battery_charging.set_unknown(LOCKED);
            },
        },
        Case {
            check: CheckId::IcloudBackupDisabled,
            severity: Severity::Critical,
            problem: |p, _| p.icloud_backup_enabled.set_known(false),
            unknown: |p, _| {
                p.icloud_backup_enabled
                    .set_unknown(UnknownReason::NotReported)
            },
        },
        Case {
            check: CheckId::IcloudBackupStale,
            severity: Severity::Warning,
            problem: |p, _| p.last_icloud_backup.set_known(Some(ago(8 * DAY))),
            unknown: |p, _| p.last_icloud_backup.set_unknown(UnknownReason::NotReported),
        },
        Case {
            check: CheckId::DeviceStorageLow,
            severity: Severity::Warning,
            problem: |p, _| p.data_available.set_known(500_000_000),
            unknown: |p, _| p.data_available.set_unknown(UnknownReason::QueryFailed),
        },
        Case {
            check: CheckId::WhatsappIcloudBackup,
            severity: Severity::Info,
            problem: |p, _| {
                p.apps
                    .set_known(vec![App::new(WHATSAPP_BUNDLE_ID, Some("25.10.72"))]);
            },
            unknown: |p, _| p.apps.set_unknown(UnknownReason::QueryFailed),
        },
        Case {
            check: CheckId::BackupLocalMissing,
            severity: Severity::Warning,
            problem: |_, h| h.local_backup.set_known(None),
            unknown: |_, h| h.local_backup.set_unknown(UnknownReason::QueryFailed),
        },
        Case {
            check: CheckId::BackupLocalStale,
            severity: Severity::Warning,
            problem: |_, h| {
                h.local_backup.set_known(Some(
                    LocalBackup::new(ago(31 * DAY), true, false).with_size(3 * GB),
                ));
            },
            unknown: |_, h| h.local_backup.set_unknown(UnknownReason::QueryFailed),
        },
        Case {
            check: CheckId::BackupEncryptionOn,
            severity: Severity::Info,
            problem: |p, _| p.will_encrypt.set_known(true),
            unknown: |p, _| p.will_encrypt.set_unknown(LOCKED),
        },
        Case {
            check: CheckId::BackupUnfinishedLeftover,
            severity: Severity::Warning,
            problem: |_, h| h.unfinished_backup.set_known(true),
            unknown: |_, h| h.unfinished_backup.set_unknown(UnknownReason::QueryFailed),
        },
        Case {
            check: CheckId::HostDiskInsufficient,
            severity: Severity::Warning,
            problem: |_, h| h.backup_dir_free.set_known(GB),
            unknown: |_, h| h.backup_dir_free.set_unknown(UnknownReason::QueryFailed),
        },
        Case {
            check: CheckId::DeviceDfuMode,
            severity: Severity::Critical,
            problem: |p, _| p.usb = Some(boot_mode(UsbMode::Dfu, 0x1227)),
            unknown: usb_unreadable,
        },
        Case {
            check: CheckId::DeviceRecoveryMode,
            severity: Severity::Critical,
            problem: |p, _| p.usb = Some(boot_mode(UsbMode::Recovery, 0x1281)),
            unknown: usb_unreadable,
        },
        Case {
            check: CheckId::UsbmuxdNotClaiming,
            severity: Severity::Critical,
            problem: |p, _| {
                if let Some(u) = p.usb.as_mut() {
                    u.listed_by_usbmuxd = false;
                }
            },
            unknown: usb_unreadable,
        },
        Case {
            check: CheckId::UsbSlowLink,
            severity: Severity::Warning,
            problem: |p, _| p.product_type.set_known("iPhone16,1".to_owned()),
            unknown: |p, _| p.product_type.set_unknown(UnknownReason::QueryFailed),
        },
        Case {
            check: CheckId::UsbPermission,
            severity: Severity::Warning,
            problem: |_, h| {
                h.usb_access.set_known(UsbAccess::Denied {
                    detail: "libusb: access denied".to_owned(),
                });
            },
            unknown: |_, h| h.usb_access.set_unknown(UnknownReason::QueryFailed),
        },
    ]
}

fn boot_mode(mode: UsbMode, product_id: u16) -> UsbFacts {
    let mut u = UsbFacts::new(mode, product_id, "bus 1 port 1-2");
    u.ecid = Some("001A2B3C4D5E6F01".to_owned());
    u
}

/// The daemon could not read the bus, so whether the phone is in DFU mode (and so on) cannot be said.
fn usb_unreadable(p: &mut Snapshot, h: &mut HostFacts) {
    p.usb = None;
    h.usb_access.set_known(UsbAccess::Denied {
        detail: "libusb: access denied".to_owned(),
    });
}

fn outcome(d: &Diagnosis, id: CheckId) -> Option<Outcome> {
    d.check(id).map(|c| c.outcome)
}

#[test]
fn the_table_covers_every_check() {
    let covered: Vec<CheckId> = cases().iter().map(|c| c.check).collect();
    assert_eq!(covered, CheckId::ALL);
}

#[test]
fn healthy_phone_passes_every_check() {
    let d = diagnose(&healthy_phone(), &healthy_host());
    for &id in CheckId::ALL {
        assert_eq!(outcome(&d, id), Some(Outcome::Pass), "{id}");
    }
    assert!(d.findings.is_empty());
    assert!(d.checks.iter().all(|c| c.manual.is_empty()));
    assert!(d.escalation.simple_checks_passed);
    assert!(d.escalation.dfu_offered);
}

#[test]
fn each_check_reports_its_problem() {
    for case in cases() {
        let (mut phone, mut host) = (healthy_phone(), healthy_host());
        (case.problem)(&mut phone, &mut host);
        let d = diagnose(&phone, &host);
        let id = case.check;
        assert_eq!(outcome(&d, id), Some(Outcome::Problem), "{id}");
        let finding = d
            .finding(id)
            .unwrap_or_else(|| panic!("{id} has no finding"));
        assert_eq!(finding.severity, case.severity, "{id}");
        assert!(!finding.evidence.is_empty(), "{id} has no evidence");
        assert!(!finding.remedies.is_empty(), "{id} has no remedies");
        assert!(d.check(id).is_some_and(|c| c.manual.is_empty()), "{id}");
        for lang in Lang::ALL {
            let title = finding.title.render(*lang);
            assert!(
                !title.contains('{') && !title.contains('⟨'),
                "{id}: {title}"
            );
        }
    }
}

#[test]
fn each_check_says_how_to_check_by_hand_when_unknown() {
    for case in cases() {
        let (mut phone, mut host) = (healthy_phone(), healthy_host());
        (case.unknown)(&mut phone, &mut host);
        let d = diagnose(&phone, &host);
        let id = case.check;
        assert_eq!(outcome(&d, id), Some(Outcome::Unknown), "{id}");
        assert!(d.finding(id).is_none(), "{id} has a finding while unknown");
        let check = d.check(id).unwrap_or_else(|| panic!("{id} did not run"));
        assert!(!check.manual.is_empty(), "{id} gives no manual check");
        assert!(
            check.evidence.iter().any(|e| e.unknown.is_some()),
            "{id} does not say which fact is unknown"
        );
    }
}

#[test]
fn one_problem_leaves_the_other_checks_passing() {
    // A mutation meant for one check must not leak into unrelated ones (the pairing checks share one fact, and
    // the storage facts feed three checks, so those are allowed to move together).
    let shared = |a: CheckId, b: CheckId| {
        let storage = [
            CheckId::IcloudStorageLikelyInsufficient,
            CheckId::DeviceStorageLow,
            CheckId::HostDiskInsufficient,
        ];
        let local = [
            CheckId::BackupLocalMissing,
            CheckId::BackupLocalStale,
            CheckId::BackupEncryptionOn,
        ];
        // A stale iCloud backup is what lets the overnight conditions raise a problem at all.
        let overnight = [
            CheckId::WifiNotConnected,
            CheckId::IcloudStorageLikelyInsufficient,
            CheckId::PowerNotCharging,
            CheckId::IcloudBackupStale,
        ];
        (storage.contains(&a) && storage.contains(&b))
            || (local.contains(&a) && local.contains(&b))
            || (overnight.contains(&a) && overnight.contains(&b))
    };
    for case in cases() {
        let (mut phone, mut host) = (healthy_phone(), healthy_host());
        (case.problem)(&mut phone, &mut host);
        let d = diagnose(&phone, &host);
        for result in &d.checks {
            if result.id != case.check && !shared(result.id, case.check) {
                assert_eq!(
                    result.outcome,
                    Outcome::Pass,
                    "{} after {}",
                    result.id,
                    case.check
                );
            }
        }
    }
}

#[test]
fn pairing_state_fails_exactly_its_own_check() {
    let states = [
        (PairingState::TrustPending, CheckId::PairingTrustPending),
        (
            PairingState::PasscodeRequired,
            CheckId::PairingPasscodeRequired,
        ),
        (PairingState::Denied, CheckId::PairingDenied),
        (PairingState::InvalidHost, CheckId::PairingInvalidHost),
    ];
    for (state, failing) in states {
        let mut phone = Snapshot::unread(UnknownReason::NotPaired);
        phone.pairing.set_known(state);
        let d = diagnose(&phone, &healthy_host());
        for (_, id) in states {
            let expected = if id == failing {
                Outcome::Problem
            } else {
                Outcome::Pass
            };
            assert_eq!(outcome(&d, id), Some(expected), "{state:?} {id}");
        }
        // Pairing problems come first among the findings: nothing else about the phone can be read.
        assert_eq!(d.findings.first().map(|f| f.id), Some(failing));
        assert_eq!(
            outcome(&d, CheckId::WifiNotConnected),
            Some(Outcome::Unknown)
        );
    }
}

#[test]
fn usbmuxd_remedies_follow_the_host_os() {
    let remedies = |os: Option<HostOs>, status: UsbmuxdStatus| {
        let mut host = healthy_host();
        match os {
            Some(os) => host.os.set_known(os),
            None => host.os.set_unknown(UnknownReason::QueryFailed),
        }
        host.usbmuxd.set_known(status);
        let d = diagnose(&healthy_phone(), &host);
        let finding = d
            .finding(CheckId::UsbmuxdUnavailable)
            .expect("usbmuxd finding");
        finding
            .remedies
            .iter()
            .map(|s| s.text.render(Lang::En))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mac = remedies(Some(HostOs::Macos), UsbmuxdStatus::NotRunning);
    assert!(
        mac.contains("launchctl") && !mac.contains("apt install"),
        "{mac}"
    );
    let linux = remedies(Some(HostOs::Linux), UsbmuxdStatus::NotRunning);
    assert!(
        linux.contains("apt install") && !linux.contains("launchctl"),
        "{linux}"
    );
    let denied = remedies(Some(HostOs::Linux), UsbmuxdStatus::Unreachable);
    assert!(denied.contains("permissions"), "{denied}");
    let unknown_os = remedies(None, UsbmuxdStatus::NotRunning);
    assert!(unknown_os.contains("launchctl") && unknown_os.contains("apt install"));
}

#[test]
fn icloud_estimate_is_compared_with_the_configured_quota() {
    let mut phone = healthy_phone();
    phone.data_capacity.set_known(62 * GB);
    phone.data_available.set_known(2 * GB);
    phone.last_icloud_backup.set_known(Some(ago(8 * DAY)));
    let mut host = healthy_host();
    host.local_backup.set_known(None);
    let id = CheckId::IcloudStorageLikelyInsufficient;

    let d = diagnose(&phone, &host);
    let finding = d.finding(id).expect("60 GB does not fit in 5 GB");
    let title = finding.title.render(Lang::En);
    assert!(
        title.contains("60.0 GB") && title.contains("5.0 GB"),
        "{title}"
    );
    assert!(finding.title.render(Lang::It).contains("60,0 GB"));
    // The finding is honest that the quota itself was not read.
    assert!(
        finding
            .evidence
            .iter()
            .any(|e| e.fact == "icloud_quota_used"
                && e.unknown == Some(UnknownReason::NotAvailableOverUsb))
    );
    assert!(
        finding
            .explanation
            .render(Lang::En)
            .contains("cannot read your iCloud storage over USB")
    );

    let mut config = RulesConfig::default();
    config.icloud_quota_bytes = 200 * GB;
    let d = backupd_rules::diagnose(&phone, &host, now(), &config);
    assert_eq!(outcome(&d, id), Some(Outcome::Pass));

    // Exactly at the quota still fits.
    config.icloud_quota_bytes = 60 * GB;
    let d = backupd_rules::diagnose(&phone, &host, now(), &config);
    assert_eq!(outcome(&d, id), Some(Outcome::Pass));
    config.icloud_quota_bytes = 60 * GB - 1;
    let d = backupd_rules::diagnose(&phone, &host, now(), &config);
    assert_eq!(outcome(&d, id), Some(Outcome::Problem));
}

#[test]
fn stale_ages_use_the_configured_limits() {
    let host = healthy_host();
    let at = |last| {
        let mut phone = healthy_phone();
        phone.last_icloud_backup.set_known(last);
        outcome(&diagnose(&phone, &host), CheckId::IcloudBackupStale)
    };
    assert_eq!(at(Some(ago(7 * DAY))), Some(Outcome::Pass));
    assert_eq!(at(Some(ago(7 * DAY + 1))), Some(Outcome::Problem));
    // Never backed up is stale; a date in the future (clock skew) is not.
    assert_eq!(at(None), Some(Outcome::Problem));
    assert_eq!(at(Some(ago(-DAY))), Some(Outcome::Pass));

    let mut config = RulesConfig::default();
    config.icloud_backup_max_age_days = 30;
    let mut phone = healthy_phone();
    phone.last_icloud_backup.set_known(Some(ago(20 * DAY)));
    let d = backupd_rules::diagnose(&phone, &host, now(), &config);
    assert_eq!(outcome(&d, CheckId::IcloudBackupStale), Some(Outcome::Pass));
}

#[test]
fn local_stale_does_not_run_without_a_local_backup() {
    let mut host = healthy_host();
    host.local_backup.set_known(None);
    let d = diagnose(&healthy_phone(), &host);
    assert_eq!(outcome(&d, CheckId::BackupLocalStale), None);
    assert_eq!(
        outcome(&d, CheckId::BackupLocalMissing),
        Some(Outcome::Problem)
    );
}

#[test]
fn power_is_proven_by_a_charging_battery() {
    let mut phone = healthy_phone();
    phone.external_power.set_unknown(UnknownReason::NotReported);
    phone.battery_charging.set_known(true);
    let d = diagnose(&phone, &healthy_host());
    assert_eq!(outcome(&d, CheckId::PowerNotCharging), Some(Outcome::Pass));
}

#[test]
fn an_encrypted_backup_on_disk_counts_even_when_will_encrypt_is_off() {
    let mut host = healthy_host();
    host.local_backup
        .set_known(Some(LocalBackup::new(ago(HOUR), true, true)));
    let d = diagnose(&healthy_phone(), &host);
    assert_eq!(
        outcome(&d, CheckId::BackupEncryptionOn),
        Some(Outcome::Problem)
    );
}

#[test]
fn the_encryption_finding_says_when_the_password_was_checked() {
    let finding_text = |backup: LocalBackup| {
        let mut host = healthy_host();
        host.local_backup.set_known(Some(backup));
        let d = diagnose(&healthy_phone(), &host);
        let f = d
            .findings
            .iter()
            .find(|f| f.id == CheckId::BackupEncryptionOn)
            .expect("the finding");
        f.remedies
            .iter()
            .map(|s| s.text.render(Lang::En))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let unchecked = finding_text(LocalBackup::new(ago(HOUR), true, true));
    assert!(unchecked.contains("--check-password"), "{unchecked}");
    assert!(!unchecked.contains("was checked on"), "{unchecked}");
    let checked = finding_text(
        LocalBackup::new(ago(HOUR), true, true).with_password_checked(Some(ago(2 * HOUR))),
    );
    assert!(checked.contains("The password was checked on"), "{checked}");
    assert!(!checked.contains("--check-password"), "{checked}");
    // A check of an unencrypted backup means nothing: the finding is about WillEncrypt alone.
    let mut host = healthy_host();
    host.local_backup.set_known(Some(
        LocalBackup::new(ago(HOUR), true, false).with_password_checked(Some(ago(HOUR))),
    ));
    let d = diagnose(&healthy_phone(), &host);
    assert_eq!(
        outcome(&d, CheckId::BackupEncryptionOn),
        Some(Outcome::Pass)
    );
}

#[test]
fn dfu_waits_for_the_password_of_an_encrypted_backup() {
    let plan = |backup: LocalBackup| {
        let mut host = healthy_host();
        host.local_backup.set_known(Some(backup));
        diagnose(&healthy_phone(), &host).escalation
    };
    let unchecked = plan(LocalBackup::new(ago(HOUR), true, true));
    assert!(!unchecked.dfu_offered);
    let steps: String = unchecked
        .stages
        .last()
        .map(|s| s.steps.iter().map(|st| st.text.render(Lang::En)).collect())
        .unwrap_or_default();
    assert!(
        steps.contains("backupdctl backups --check-password"),
        "{steps}"
    );
    let checked =
        plan(LocalBackup::new(ago(HOUR), true, true).with_password_checked(Some(ago(HOUR))));
    assert!(checked.dfu_offered);
}

#[test]
fn dfu_is_offered_only_after_a_recent_verified_local_backup() {
    let phone = healthy_phone();
    let plan = |backup: Option<LocalBackup>| {
        let mut host = healthy_host();
        host.local_backup.set_known(backup);
        diagnose(&phone, &host).escalation
    };
    let dfu_text = |e: &backupd_rules::Escalation| {
        e.stages
            .last()
            .map(|s| {
                s.steps
                    .iter()
                    .map(|st| st.text.render(Lang::En))
                    .collect::<String>()
            })
            .unwrap_or_default()
    };

    let offered = plan(Some(LocalBackup::new(ago(HOUR), true, false)));
    assert!(offered.dfu_offered);
    assert!(dfu_text(&offered).contains("restore the iPhone in DFU mode"));

    for backup in [
        None,
        Some(LocalBackup::new(ago(HOUR), false, false)),
        Some(LocalBackup::new(ago(3 * DAY), true, false)),
    ] {
        let e = plan(backup);
        assert!(!e.dfu_offered, "{backup:?}");
        let text = dfu_text(&e);
        assert!(
            text.starts_with("Not yet") && text.contains("Make one first"),
            "{text}"
        );
    }

    let mut host = healthy_host();
    host.local_backup.set_unknown(UnknownReason::QueryFailed);
    assert!(!diagnose(&phone, &host).escalation.dfu_offered);
}

#[test]
fn escalation_follows_the_first_guide_and_waits_for_the_simple_checks() {
    let d = diagnose(&healthy_phone(), &healthy_host());
    let ids: Vec<&str> = d.escalation.stages.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "escalation.icloud_sign_out",
            "escalation.reset_settings",
            "escalation.local_backup",
            "escalation.dfu_restore"
        ]
    );
    let mut phone = healthy_phone();
    phone.wifi.set_known(WifiState::new(false, None));
    phone.last_icloud_backup.set_known(Some(ago(8 * DAY)));
    assert!(
        !diagnose(&phone, &healthy_host())
            .escalation
            .simple_checks_passed
    );
    let mut phone = healthy_phone();
    phone.icloud_backup_enabled.set_unknown(LOCKED);
    assert!(
        !diagnose(&phone, &healthy_host())
            .escalation
            .simple_checks_passed
    );
}

#[test]
fn findings_follow_the_documented_order() {
    // Everything wrong at once: the findings come in CheckId::ALL order.
    let mut phone = healthy_phone();
    let mut host = healthy_host();
    for case in cases() {
        if case.check != CheckId::BackupLocalMissing
            && !matches!(
                case.check,
                CheckId::PairingTrustPending
                    | CheckId::PairingPasscodeRequired
                    | CheckId::PairingDenied
            )
        {
            (case.problem)(&mut phone, &mut host);
        }
    }
    let d = diagnose(&phone, &host);
    let ids: Vec<CheckId> = d.findings.iter().map(|f| f.id).collect();
    let expected: Vec<CheckId> = CheckId::ALL
        .iter()
        .copied()
        .filter(|id| ids.contains(id))
        .collect();
    assert_eq!(ids, expected);
    assert_eq!(ids.first(), Some(&CheckId::UsbmuxdUnavailable));
    assert_eq!(ids.get(1), Some(&CheckId::PairingInvalidHost));
    // The USB cases replace one another's bus facts: the recovery-mode phone is what remains.
    assert!(ids.contains(&CheckId::HostDiskInsufficient));
    assert!(ids.contains(&CheckId::DeviceRecoveryMode));
    assert_eq!(ids.last(), Some(&CheckId::UsbPermission));
    // Two checks are answered by other facts: the local backup's 3 GB fits in iCloud, and with iCloud Backup off
    // `icloud.backup_stale` does not run.
    assert!(!ids.contains(&CheckId::IcloudStorageLikelyInsufficient));
    assert!(!ids.contains(&CheckId::IcloudBackupStale));
    assert_eq!(ids.len(), 13, "{ids:?}");
}

//! Property tests: any snapshot, including an all-unknown one, gives a well-formed diagnosis without panicking.

use backupd_rules::{
    App, CheckId, Diagnosis, Fact, HostFacts, HostOs, Lang, LocalBackup, LocalWhatsapp, Outcome,
    PairingState, RulesConfig, Snapshot, Timestamp, UnknownReason, UsbmuxdStatus,
    WHATSAPP_BUNDLE_ID, WifiState, diagnose, render_text,
};
use proptest::prelude::*;

fn reason() -> impl Strategy<Value = UnknownReason> {
    prop_oneof![
        Just(UnknownReason::NotPaired),
        Just(UnknownReason::DeviceLocked),
        Just(UnknownReason::NotReported),
        Just(UnknownReason::QueryFailed),
        Just(UnknownReason::NotQueried),
        Just(UnknownReason::NotAvailableOverUsb),
    ]
}

/// Sets `fact` to a value from `value`, or to unknown, keeping its source.
fn fill<T: std::fmt::Debug + Clone + 'static>(
    value: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Result<T, UnknownReason>> {
    // Boxed: the unboxed strategy types of a whole snapshot nest deep enough to overflow a test thread's stack.
    prop_oneof![value.prop_map(Ok), reason().prop_map(Err)].boxed()
}

fn apply<T>(fact: &mut Fact<T>, value: Result<T, UnknownReason>) {
    match value {
        Ok(v) => fact.set_known(v),
        Err(r) => fact.set_unknown(r),
    }
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        any::<i64>(),
        // Mostly near "now", where the thresholds are.
        1_700_000_000_i64..1_800_000_000,
    ]
    .prop_map(Timestamp::from_unix_secs)
}

fn bytes() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), 0_u64..200_000_000_000]
}

fn pairing() -> impl Strategy<Value = PairingState> {
    prop_oneof![
        Just(PairingState::Paired),
        Just(PairingState::TrustPending),
        Just(PairingState::PasscodeRequired),
        Just(PairingState::Denied),
        Just(PairingState::InvalidHost),
    ]
}

fn app() -> impl Strategy<Value = App> {
    (
        prop_oneof![
            Just(WHATSAPP_BUNDLE_ID.to_owned()),
            "[a-z]{1,8}\\.[a-z]{1,8}".prop_map(|s| s),
        ],
        proptest::option::of("[0-9]{1,3}\\.[0-9]{1,3}"),
        fill(any::<bool>()),
    )
        .prop_map(|(id, version, icloud)| {
            let mut app = App::new(&id, version.as_deref());
            apply(&mut app.icloud_containers, icloud);
            app
        })
}

prop_compose! {
    fn snapshot()(
        pairing in fill(pairing()),
        product in fill("iPhone[0-9]{1,2},[0-9]"),
        version in fill("[0-9]{1,2}\\.[0-9]"),
        wifi in fill((any::<bool>(), proptest::option::of("[A-Za-z0-9 _-]{0,12}"))),
        enabled in fill(any::<bool>()),
        last in fill(proptest::option::of(timestamp())),
        encrypt in fill(any::<bool>()),
        level in fill(any::<u8>()),
        charging in fill(any::<bool>()),
        external in fill(any::<bool>()),
        disk in fill(bytes()),
        data in fill(bytes()),
        available in fill(bytes()),
        apps in fill(proptest::collection::vec(app(), 0..4)),
    ) -> Snapshot {
        let mut s = Snapshot::unread(UnknownReason::NotQueried);
        apply(&mut s.pairing, pairing);
        apply(&mut s.product_type, product);
        apply(&mut s.product_version, version);
        apply(&mut s.wifi, wifi.map(|(a, ssid)| WifiState::new(a, ssid)));
        apply(&mut s.icloud_backup_enabled, enabled);
        apply(&mut s.last_icloud_backup, last);
        apply(&mut s.will_encrypt, encrypt);
        apply(&mut s.battery_level, level);
        apply(&mut s.battery_charging, charging);
        apply(&mut s.external_power, external);
        apply(&mut s.disk_capacity, disk);
        apply(&mut s.data_capacity, data);
        apply(&mut s.data_available, available);
        apply(&mut s.apps, apps);
        s
    }
}

prop_compose! {
    fn host()(
        os in fill(prop_oneof![Just(HostOs::Linux), Just(HostOs::Macos), Just(HostOs::Other)]),
        usbmuxd in fill(prop_oneof![
            Just(UsbmuxdStatus::Reachable),
            Just(UsbmuxdStatus::NotRunning),
            Just(UsbmuxdStatus::Unreachable),
        ]),
        free in fill(bytes()),
        backup in fill(proptest::option::of(
            (timestamp(), any::<bool>(), any::<bool>(), proptest::option::of(bytes()))
                .prop_map(|(date, verified, encrypted, size)| {
                    let b = LocalBackup::new(date, verified, encrypted);
                    match size {
                        Some(s) => b.with_size(s),
                        None => b,
                    }
                }),
        )),
        unfinished in fill(any::<bool>()),
        whatsapp in fill(prop_oneof![
            Just(LocalWhatsapp::Absent),
            Just(LocalWhatsapp::Encrypted),
            (any::<u64>(), proptest::option::of(timestamp())).prop_map(|(messages, newest_message)| {
                LocalWhatsapp::Chats { messages, newest_message }
            }),
        ]),
    ) -> HostFacts {
        let mut h = HostFacts::unread(UnknownReason::NotQueried);
        apply(&mut h.os, os);
        apply(&mut h.usbmuxd, usbmuxd);
        apply(&mut h.backup_dir_free, free);
        apply(&mut h.local_backup, backup);
        apply(&mut h.unfinished_backup, unfinished);
        apply(&mut h.local_whatsapp, whatsapp);
        h
    }
}

prop_compose! {
    fn config()(
        quota in bytes(),
        icloud_days in any::<u32>(),
        local_days in any::<u32>(),
        dfu_days in any::<u32>(),
        min_free in bytes(),
    ) -> RulesConfig {
        let mut c = RulesConfig::default();
        c.icloud_quota_bytes = quota;
        c.icloud_backup_max_age_days = icloud_days;
        c.local_backup_max_age_days = local_days;
        c.dfu_backup_max_age_days = dfu_days;
        c.phone_min_free_bytes = min_free;
        c
    }
}

/// What every diagnosis must satisfy, whatever went in.
fn assert_well_formed(d: &Diagnosis) {
    // Checks run in the documented order, each at most once; only backup.local_stale and (with iCloud Backup
    // off) icloud.backup_stale may be skipped, and the USB checks, which run only when the daemon has a USB
    // watcher (or the phone was seen on the bus).
    let ran: Vec<CheckId> = d.checks.iter().map(|c| c.id).collect();
    let expected: Vec<CheckId> = CheckId::ALL
        .iter()
        .copied()
        .filter(|id| ran.contains(id))
        .collect();
    assert_eq!(ran, expected);
    for id in CheckId::ALL {
        assert!(
            ran.contains(id)
                || *id == CheckId::BackupLocalStale
                || (*id == CheckId::IcloudBackupStale
                    && d.check(CheckId::IcloudBackupDisabled)
                        .is_some_and(|c| c.outcome == Outcome::Problem))
                || matches!(
                    id,
                    CheckId::DeviceDfuMode
                        | CheckId::DeviceRecoveryMode
                        | CheckId::UsbmuxdNotClaiming
                        | CheckId::UsbSlowLink
                        | CheckId::UsbPermission
                ),
            "{id} did not run"
        );
    }
    // Exactly one finding per problem, in the same order; manual steps exactly for unknowns.
    let problems: Vec<CheckId> = d
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Problem)
        .map(|c| c.id)
        .collect();
    let found: Vec<CheckId> = d.findings.iter().map(|f| f.id).collect();
    assert_eq!(found, problems);
    for c in &d.checks {
        assert_eq!(
            c.outcome == Outcome::Unknown,
            !c.manual.is_empty(),
            "{}",
            c.id
        );
        assert!(!c.evidence.is_empty(), "{} has no evidence", c.id);
    }
    for f in &d.findings {
        assert!(!f.remedies.is_empty(), "{} has no remedies", f.id);
        // No alarm without evidence: every finding rests on at least one fact that was really read.
        assert!(
            f.evidence.iter().any(|e| e.unknown.is_none()
                && !matches!(e.source, backupd_rules::Source::Config { .. })),
            "{} has no known evidence",
            f.id
        );
    }
    assert_eq!(d.escalation.stages.len(), 4);
    assert!(d.escalation.stages.iter().all(|s| !s.steps.is_empty()));
    // The DFU stage is offered only with a verified local backup.
    if d.escalation.dfu_offered {
        assert!(
            d.checks
                .iter()
                .any(|c| c.id == CheckId::BackupLocalMissing && c.outcome == Outcome::Pass)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_snapshot_gives_a_well_formed_diagnosis(
        phone in snapshot(),
        host in host(),
        now in timestamp(),
        config in config(),
    ) {
        let d = diagnose(&phone, &host, now, &config);
        assert_well_formed(&d);
        for &lang in Lang::ALL {
            let text = render_text(&d, lang);
            prop_assert!(!text.contains('⟨'), "missing catalog key:\n{}", text);
            prop_assert!(!text.contains('{'), "unfilled placeholder:\n{}", text);
        }
        let json = serde_json::to_string(&d).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Diagnosis = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, d);
    }

    #[test]
    fn snapshots_round_trip_through_json(phone in snapshot(), host in host()) {
        let json = serde_json::to_string(&phone).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(serde_json::from_str::<Snapshot>(&json).ok(), Some(phone));
        let json = serde_json::to_string(&host).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(serde_json::from_str::<HostFacts>(&json).ok(), Some(host));
    }

    #[test]
    fn diagnosis_is_deterministic(phone in snapshot(), host in host(), now in timestamp()) {
        let config = RulesConfig::default();
        prop_assert_eq!(diagnose(&phone, &host, now, &config), diagnose(&phone, &host, now, &config));
    }
}

#[test]
fn all_unknown_gives_only_unknowns() {
    for reason in [
        UnknownReason::NotPaired,
        UnknownReason::DeviceLocked,
        UnknownReason::NotReported,
        UnknownReason::QueryFailed,
        UnknownReason::NotQueried,
        UnknownReason::NotAvailableOverUsb,
    ] {
        let d = diagnose(
            &Snapshot::unread(reason),
            &HostFacts::unread(reason),
            Timestamp::from_unix_secs(0),
            &RulesConfig::default(),
        );
        assert_well_formed(&d);
        assert!(d.findings.is_empty());
        assert!(d.checks.iter().all(|c| c.outcome == Outcome::Unknown));
        assert!(!d.escalation.simple_checks_passed && !d.escalation.dfu_offered);
    }
}

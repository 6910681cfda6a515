//! Every step of both source guides is reachable from some finding or from the escalation plan, in both languages.
//!
//! The guides' steps are listed in `tests/data/guide_steps.toml`. The test builds diagnoses that raise every
//! finding and every variant of the escalation plan, collects the origins of the steps they carry, and checks that
//! each guide step is among them (and that no step cites a guide step that does not exist).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use backupd_rules::{
    App, Diagnosis, HostOs, Lang, LocalBackup, Origin, PairingState, Step, UnknownReason,
    UsbAccess, UsbFacts, UsbMode, UsbmuxdStatus, WHATSAPP_BUNDLE_ID, WifiState,
};
use common::{DAY, GB, HOUR, ago, diagnose, healthy_host, healthy_phone};
use serde::Deserialize;

#[derive(Deserialize)]
struct Guides {
    guide: Vec<Guide>,
}

#[derive(Deserialize)]
struct Guide {
    seed: String,
    section: Vec<Section>,
}

#[derive(Deserialize)]
struct Section {
    heading: String,
    steps: Vec<String>,
}

/// (seed, section, step number) → the quote that gives the step.
fn guide_steps() -> BTreeMap<(String, String, u8), String> {
    let guides: Guides = toml::from_str(include_str!("data/guide_steps.toml")).expect("guide list");
    let mut steps = BTreeMap::new();
    for guide in guides.guide {
        for section in guide.section {
            for (n, quote) in section.steps.into_iter().enumerate() {
                let n = u8::try_from(n + 1).expect("fewer than 256 steps");
                steps.insert((guide.seed.clone(), section.heading.clone(), n), quote);
            }
        }
    }
    steps
}

/// Diagnoses that, between them, raise every finding and every escalation variant.
fn diagnoses() -> Vec<Diagnosis> {
    let mut out = Vec::new();

    // Every device-side problem at once, with no local backup (DFU blocked).
    let mut phone = healthy_phone();
    phone.wifi.set_known(WifiState::new(false, None));
    phone.data_available.set_known(500_000_000);
    phone.external_power.set_known(false);
    phone.battery_charging.set_known(false);
    phone.icloud_backup_enabled.set_known(false);
    phone.last_icloud_backup.set_known(None);
    phone.will_encrypt.set_known(true);
    phone
        .apps
        .set_known(vec![App::new(WHATSAPP_BUNDLE_ID, Some("24.22.79"))]);
    let mut host = healthy_host();
    host.local_backup.set_known(None);
    host.unfinished_backup.set_known(true);
    host.backup_dir_free.set_known(GB);
    out.push(diagnose(&phone, &host));

    // iCloud Backup on but no iCloud backup ever: `icloud.backup_stale` (which does not run while it is off).
    let mut phone = healthy_phone();
    phone.last_icloud_backup.set_known(None);
    out.push(diagnose(&phone, &healthy_host()));

    // Each pairing state and each usbmuxd variant.
    for state in [
        PairingState::TrustPending,
        PairingState::PasscodeRequired,
        PairingState::Denied,
        PairingState::InvalidHost,
    ] {
        let mut phone = healthy_phone();
        phone.pairing.set_known(state);
        out.push(diagnose(&phone, &healthy_host()));
    }
    for (os, status) in [
        (Some(HostOs::Linux), UsbmuxdStatus::NotRunning),
        (Some(HostOs::Linux), UsbmuxdStatus::Unreachable),
        (Some(HostOs::Macos), UsbmuxdStatus::NotRunning),
        (None, UsbmuxdStatus::Unreachable),
    ] {
        let mut host = healthy_host();
        match os {
            Some(os) => host.os.set_known(os),
            None => host
                .os
                .set_unknown(backupd_rules::UnknownReason::QueryFailed),
        }
        host.usbmuxd.set_known(status);
        out.push(diagnose(&healthy_phone(), &host));
    }

    // The local-backup stage's variants, and DFU offered.
    for backup in [
        LocalBackup::new(ago(HOUR), true, false),
        LocalBackup::new(ago(HOUR), false, false),
        LocalBackup::new(ago(40 * DAY), true, false),
    ] {
        let mut host = healthy_host();
        host.local_backup.set_known(Some(backup));
        out.push(diagnose(&healthy_phone(), &host));
    }
    // The USB bus: each mode with and without a verified backup, a phone usbmuxd does not take on each OS, a
    // slow link with and without the data size, the daemon kept off the bus on each OS.
    for (mode, pid) in [(UsbMode::Dfu, 0x1227), (UsbMode::Recovery, 0x1281)] {
        for backup in [true, false] {
            let mut phone = healthy_phone();
            phone.usb = Some(UsbFacts::new(mode, pid, "bus 1 port 1-1"));
            let mut host = healthy_host();
            if !backup {
                host.local_backup.set_known(None);
            }
            out.push(diagnose(&phone, &host));
        }
    }
    for os in [HostOs::Linux, HostOs::Macos] {
        let mut phone = healthy_phone();
        if let Some(u) = phone.usb.as_mut() {
            u.listed_by_usbmuxd = false;
        }
        let mut host = healthy_host();
        host.os.set_known(os);
        host.usb_access.set_known(UsbAccess::Denied {
            detail: "libusb: access denied".to_owned(),
        });
        out.push(diagnose(&phone, &host));
    }
    for size_known in [true, false] {
        let mut phone = healthy_phone();
        phone.product_type.set_known("iPhone16,2".to_owned());
        if !size_known {
            phone.data_available.set_unknown(UnknownReason::QueryFailed);
        }
        out.push(diagnose(&phone, &healthy_host()));
    }
    out
}

/// The steps a user can reach: findings' remedies and the escalation plan (not the manual checks).
fn reachable(d: &Diagnosis) -> impl Iterator<Item = &Step> {
    d.findings
        .iter()
        .flat_map(|f| f.remedies.iter())
        .chain(d.escalation.stages.iter().flat_map(|s| s.steps.iter()))
}

#[test]
fn every_guide_step_is_reachable_in_both_languages() {
    let expected = guide_steps();
    assert_eq!(expected.len(), 46, "the guide list changed size");
    let diagnoses = diagnoses();
    for &lang in Lang::ALL {
        let mut reached = BTreeSet::new();
        for d in &diagnoses {
            for step in reachable(d) {
                let text = step.text.render(lang);
                assert!(
                    !text.trim().is_empty() && !text.contains('⟨') && !text.contains('{'),
                    "{}: {text:?}",
                    step.text.key
                );
                if let Origin::Guide {
                    seed,
                    section,
                    step: n,
                } = &step.origin
                {
                    let key = (seed.clone(), section.clone(), *n);
                    assert!(
                        expected.contains_key(&key),
                        "{} cites a guide step that does not exist: {key:?}",
                        step.text.key
                    );
                    reached.insert(key);
                }
            }
        }
        let missing: Vec<_> = expected
            .iter()
            .filter(|(k, _)| !reached.contains(*k))
            .collect();
        assert!(
            missing.is_empty(),
            "{lang:?}: unreachable guide steps: {missing:#?}"
        );
    }
}

#[test]
fn every_finding_and_stage_variant_is_exercised() {
    // Guards the test above: if a scenario stopped raising its finding, coverage would silently shrink.
    let diagnoses = diagnoses();
    let found: BTreeSet<&str> = diagnoses
        .iter()
        .flat_map(|d| d.findings.iter().map(|f| f.id.as_str()))
        .collect();
    let all: BTreeSet<&str> = backupd_rules::CheckId::ALL
        .iter()
        .map(|id| id.as_str())
        .filter(|id| *id != "backup.local_stale")
        .collect();
    assert_eq!(found.intersection(&all).count(), all.len(), "{found:?}");
    assert!(diagnoses.iter().any(|d| d.escalation.dfu_offered));
    assert!(diagnoses.iter().any(|d| !d.escalation.dfu_offered));
}

#[test]
fn whatsapp_finding_follows_the_second_guide_in_its_order() {
    let d = &diagnoses()[0];
    let finding = d
        .finding(backupd_rules::CheckId::WhatsappIcloudBackup)
        .expect("whatsapp finding");
    let numbers: Vec<u8> = finding
        .remedies
        .iter()
        .filter_map(|s| match &s.origin {
            Origin::Guide { seed, step, .. } if seed == "001_aca6c7205cd1f5de.txt" => Some(*step),
            _ => None,
        })
        .collect();
    // The guide's steps 3..=14 in its order, then the causes it names (a poor connection, maintenance).
    let mut expected: Vec<u8> = (3..=14).collect();
    expected.extend([1, 2]);
    assert_eq!(numbers, expected);
}

#[test]
fn quotes_appear_in_the_guides() {
    // The seed files are not part of this repository; point BACKUPD_GUIDES_DIR at them to run this check.
    let Some(dir) = std::env::var_os("BACKUPD_GUIDES_DIR") else {
        eprintln!(
            "BACKUPD_GUIDES_DIR is not set; skipping the check of the quotes against the guides"
        );
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let mut texts = BTreeMap::new();
    for ((seed, section, n), quote) in guide_steps() {
        let text = texts.entry(seed.clone()).or_insert_with(|| {
            std::fs::read_to_string(dir.join(&seed)).unwrap_or_else(|e| panic!("{seed}: {e}"))
        });
        let start = text
            .find(&section)
            .unwrap_or_else(|| panic!("{seed}: no heading {section:?}"));
        // The quote must come after its section heading.
        let body = &text[start..];
        assert!(
            body.contains(&quote),
            "{seed} «{section}» step {n}: {quote:?} is not in the guide"
        );
    }
}

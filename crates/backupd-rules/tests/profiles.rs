//! Snapshot tests: the simulator's three example profiles, rendered in Italian and English and as JSON.
//!
//! The expected files are in `tests/snapshots/`; run with `UPDATE_SNAPSHOTS=1` to rewrite them after a deliberate
//! change, and review the diff.

mod common;

use backupd_rules::{CheckId, Diagnosis, Lang, Outcome, render_text};
use common::{assert_snapshot, profile_a, profile_b, profile_c, profiles};

#[test]
fn rendered_text_matches_the_snapshots() {
    for profile in profiles() {
        let diagnosis = profile.diagnose();
        for &lang in Lang::ALL {
            let text = render_text(&diagnosis, lang);
            assert!(
                !text.contains('⟨'),
                "{}: a catalog key is missing",
                profile.name
            );
            assert!(
                !text.contains('{'),
                "{}: a placeholder was not filled",
                profile.name
            );
            assert_snapshot(&format!("{}.{}.txt", profile.name, lang.as_str()), &text);
        }
    }
}

#[test]
fn json_matches_the_snapshots_and_round_trips() {
    for profile in profiles() {
        let diagnosis = profile.diagnose();
        let json = serde_json::to_string_pretty(&diagnosis).expect("serialize") + "\n";
        assert_snapshot(&format!("{}.json", profile.name), &json);
        let back: Diagnosis = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, diagnosis);
    }
}

#[test]
fn json_shape_is_the_documented_contract() {
    let diagnosis = profile_c().diagnose();
    let v = serde_json::to_value(&diagnosis).expect("serialize");
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    assert_eq!(keys(&v), ["checks", "escalation", "findings"]);
    assert_eq!(
        keys(&v["checks"][0]),
        ["evidence", "id", "label", "manual", "outcome"]
    );
    assert_eq!(v["checks"][0]["id"], "host.usbmuxd_unavailable");
    assert_eq!(v["checks"][0]["outcome"], "pass");

    let finding = v["findings"]
        .as_array()
        .and_then(|f| {
            f.iter()
                .find(|f| f["id"] == "icloud.storage_likely_insufficient")
        })
        .expect("storage finding");
    assert_eq!(
        keys(finding),
        [
            "evidence",
            "explanation",
            "id",
            "remedies",
            "severity",
            "title"
        ]
    );
    assert_eq!(finding["severity"], "warning");
    assert_eq!(
        finding["title"]["key"],
        "icloud.storage_likely_insufficient.title"
    );
    assert_eq!(
        finding["title"]["args"]["estimate"]["bytes"],
        60_000_000_000_u64
    );
    assert_eq!(
        keys(&finding["evidence"][0]),
        ["fact", "source", "unknown", "value"]
    );
    assert_eq!(finding["evidence"][0]["fact"], "data_capacity");
    assert_eq!(finding["evidence"][0]["source"]["kind"], "lockdown");
    assert_eq!(
        finding["evidence"][0]["source"]["domain"],
        "com.apple.disk_usage"
    );
    assert_eq!(finding["evidence"][0]["source"]["key"], "TotalDataCapacity");
    let step = &finding["remedies"][0];
    assert_eq!(keys(step), ["origin", "text"]);
    assert_eq!(step["origin"]["kind"], "guide");
    assert_eq!(step["origin"]["seed"], "000_65ab203472675010.txt");
    assert_eq!(
        step["origin"]["section"],
        "Assicurati di avere abbastanza spazio di archiviazione su iCloud"
    );
    assert_eq!(step["origin"]["step"], 1);

    let quota_used = finding["evidence"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["fact"] == "icloud_quota_used"))
        .expect("quota evidence");
    assert_eq!(quota_used["unknown"], "not_available_over_usb");
    assert_eq!(quota_used["source"]["kind"], "unobservable");

    assert_eq!(
        keys(&v["escalation"]),
        ["dfu_offered", "simple_checks_passed", "stages"]
    );
    assert_eq!(v["escalation"]["stages"][3]["id"], "escalation.dfu_restore");
    assert_eq!(v["escalation"]["dfu_offered"], false);
}

fn problems(d: &Diagnosis) -> Vec<&'static str> {
    d.findings.iter().map(|f| f.id.as_str()).collect()
}

#[test]
fn profiles_find_what_they_were_built_to_show() {
    let a = profile_a().diagnose();
    assert!(problems(&a).is_empty(), "{:?}", problems(&a));
    assert!(a.checks.iter().all(|c| c.outcome == Outcome::Pass));
    assert!(a.escalation.simple_checks_passed && a.escalation.dfu_offered);

    let b = profile_b().diagnose();
    assert_eq!(
        problems(&b),
        [
            "wifi.not_connected",
            "power.not_charging",
            "icloud.backup_stale",
            "backup.local_missing"
        ]
    );
    assert!(!b.escalation.simple_checks_passed && !b.escalation.dfu_offered);
    assert_eq!(b.check(CheckId::BackupLocalStale), None);

    let c = profile_c().diagnose();
    assert_eq!(
        problems(&c),
        [
            "icloud.storage_likely_insufficient",
            "icloud.backup_stale",
            "whatsapp.icloud_backup",
            "backup.local_stale",
            "backup.encryption_on"
        ]
    );
    let whatsapp = c.finding(CheckId::WhatsappIcloudBackup).expect("whatsapp");
    let steps: Vec<String> = whatsapp
        .remedies
        .iter()
        .map(|s| s.text.render(Lang::It))
        .collect();
    // The second guide's order: restart, update, check the 5 GB, allow WhatsApp to use iCloud; then maintenance.
    let position = |needle: &str| {
        steps
            .iter()
            .position(|s| s.contains(needle))
            .unwrap_or_else(|| panic!("no step mentions {needle}: {steps:#?}"))
    };
    assert!(position("riavvia l’app") < position("“Aggiorna”"));
    assert!(position("“Aggiorna”") < position("5 GB"));
    assert!(position("5 GB") < position("interruttore"));
    assert!(position("interruttore") < position("manutenzione"));
}

#[test]
fn plans_of_several_phones_print_each_stage_once_and_name_the_phones_where_they_differ() {
    let (a, b, c) = (
        profile_a().diagnose(),
        profile_b().diagnose(),
        profile_c().diagnose(),
    );
    let plans = [
        ("Anna", &a.escalation),
        ("Bruno", &b.escalation),
        ("Carla", &c.escalation),
    ];
    let text = backupd_rules::render_plans(&plans, Lang::En);
    for stage in ["A. ", "B. ", "C. ", "D. "] {
        assert_eq!(
            text.lines().filter(|l| l.starts_with(stage)).count(),
            1,
            "{text}"
        );
    }
    // Sign-out and reset are the same for everyone; the local backup and DFU stages depend on each phone.
    let stage_b = &text[text.find("\nB. ").expect("B")..text.find("\nC. ").expect("C")];
    assert!(!stage_b.contains("Anna"), "{stage_b}");
    let stage_c = &text[text.find("\nC. ").expect("C")..text.find("\nD. ").expect("D")];
    assert!(stage_c.contains("   Anna:"), "{stage_c}");
    assert!(
        stage_c.contains("   Bruno:") && stage_c.contains("   Carla:"),
        "{stage_c}"
    );
    // Some phone has findings, so the plan says to fix them first.
    assert!(text.contains("First fix the problems above"), "{text}");
    // One phone: exactly the plan of the full report.
    let one = backupd_rules::render_plans(&[("Anna", &a.escalation)], Lang::It);
    assert!(render_text(&a, Lang::It).ends_with(&one));
}

//! "Evidence against" tables: for each check, the facts that must keep it from raising an alarm, the facts that
//! make it a problem, and what it says when facts conflict or are missing. Each row changes a healthy phone and
//! host (see `common`) and states the outcome, so a row that stopped mattering would fail.

mod common;

use backupd_rules::{
    App, CheckId, Diagnosis, HostFacts, Lang, LocalBackup, LocalWhatsapp, Outcome, RulesConfig,
    Snapshot, Source, Timestamp, UnknownReason, UsbmuxdStatus, WHATSAPP_BUNDLE_ID, WifiState,
};
use common::{DAY, GB, HOUR, ago, healthy_host, healthy_phone, now};

type Change = fn(&mut Snapshot, &mut HostFacts);

struct Row {
    what: &'static str,
    change: Change,
    expect: Option<Outcome>,
}

fn row(what: &'static str, change: Change, expect: Option<Outcome>) -> Row {
    Row {
        what,
        change,
        expect,
    }
}

const PASS: Option<Outcome> = Some(Outcome::Pass);
const PROBLEM: Option<Outcome> = Some(Outcome::Problem);
const UNKNOWN: Option<Outcome> = Some(Outcome::Unknown);
const SKIPPED: Option<Outcome> = None;
const LOCKED: UnknownReason = UnknownReason::DeviceLocked;

fn run(check: CheckId, rows: &[Row]) -> Vec<Diagnosis> {
    rows.iter()
        .map(|r| {
            let (mut phone, mut host) = (healthy_phone(), healthy_host());
            (r.change)(&mut phone, &mut host);
            let d = backupd_rules::diagnose(&phone, &host, now(), &RulesConfig::default());
            let got = d.check(check).map(|c| c.outcome);
            assert_eq!(got, r.expect, "{check}: {}", r.what);
            assert_eq!(
                d.finding(check).is_some(),
                r.expect == PROBLEM,
                "{check}: {}",
                r.what
            );
            d
        })
        .collect()
}

fn evidence(d: &Diagnosis, check: CheckId, fact: &str) -> Option<String> {
    d.check(check)?
        .evidence
        .iter()
        .find(|e| e.fact == fact)
        .map(|e| format!("{} [{:?}]", e.value, e.source))
}

/// The 64 GB phone of the issue: lots of data, but iCloud Backup on and working.
fn big_phone(p: &mut Snapshot) {
    p.data_capacity.set_known(120 * GB);
    p.data_available.set_known(56 * GB);
}

fn stale(p: &mut Snapshot) {
    p.last_icloud_backup.set_known(Some(ago(8 * DAY)));
}

fn local(h: &mut HostFacts, size: Option<u64>) {
    let b = LocalBackup::new(ago(6 * HOUR), true, false);
    h.local_backup
        .set_known(Some(size.map_or(b, |s| b.with_size(s))));
}

#[test]
fn icloud_storage_needs_evidence_and_a_recent_backup_outweighs_the_estimate() {
    let id = CheckId::IcloudStorageLikelyInsufficient;
    let rows = [
        row(
            "64 GB used, iCloud backup 10 hours ago: it fits",
            |p, h| {
                big_phone(p);
                p.last_icloud_backup.set_known(Some(ago(10 * HOUR)));
                local(h, None);
            },
            PASS,
        ),
        row(
            "64 GB used, last iCloud backup 8 days ago, no local backup",
            |p, h| {
                big_phone(p);
                stale(p);
                h.local_backup.set_known(None);
            },
            PROBLEM,
        ),
        row(
            "64 GB used but the local backup is 3 GB: the local size wins",
            |p, h| {
                big_phone(p);
                stale(p);
                local(h, Some(3 * GB));
            },
            PASS,
        ),
        row(
            "a 6 GB local backup, stale iCloud backup",
            |p, h| {
                stale(p);
                local(h, Some(6 * GB));
            },
            PROBLEM,
        ),
        row(
            "a 6 GB local backup, date of the last iCloud backup unknown",
            |p, h| {
                p.last_icloud_backup.set_unknown(LOCKED);
                local(h, Some(6 * GB));
            },
            PROBLEM,
        ),
        row(
            "only the 64 GB upper bound, date unknown: nothing supports a conclusion",
            |p, h| {
                big_phone(p);
                p.last_icloud_backup.set_unknown(LOCKED);
                local(h, None);
            },
            UNKNOWN,
        ),
        row(
            "never backed up, 4.2 GB used: fits the free 5 GB",
            |p, h| {
                p.last_icloud_backup.set_known(None);
                local(h, None);
            },
            PASS,
        ),
        row(
            "nothing known",
            |p, h| {
                p.last_icloud_backup.set_unknown(LOCKED);
                p.data_available.set_unknown(LOCKED);
                local(h, None);
            },
            UNKNOWN,
        ),
    ];
    let d = run(id, &rows);
    let e = |i: usize| evidence(&d[i], id, "icloud_backup_estimate").unwrap_or_default();
    assert!(
        evidence(&d[0], id, "recent_icloud_backup").is_some(),
        "the pass says why"
    );
    assert!(
        e(1).starts_with("<= 64.0 GB") && e(1).contains("upper bound"),
        "{}",
        e(1)
    );
    assert!(
        e(2).starts_with("~ 3.0 GB") && e(2).contains("local backup"),
        "{}",
        e(2)
    );
    assert!(e(3).starts_with("~ 6.0 GB"), "{}", e(3));
}

#[test]
fn wifi_off_now_is_no_alarm_when_icloud_backups_happen() {
    let id = CheckId::WifiNotConnected;
    run(
        id,
        &[
            row("associated", |_, _| {}, PASS),
            row(
                "off Wi-Fi here, iCloud backup yesterday",
                |p, _| p.wifi.set_known(WifiState::new(false, None)),
                PASS,
            ),
            row(
                "off Wi-Fi, last iCloud backup 8 days ago",
                |p, _| {
                    p.wifi.set_known(WifiState::new(false, None));
                    stale(p);
                },
                PROBLEM,
            ),
            row(
                "off Wi-Fi, never backed up",
                |p, _| {
                    p.wifi.set_known(WifiState::new(false, None));
                    p.last_icloud_backup.set_known(None);
                },
                PROBLEM,
            ),
            row(
                "off Wi-Fi, date unknown",
                |p, _| {
                    p.wifi.set_known(WifiState::new(false, None));
                    p.last_icloud_backup.set_unknown(LOCKED);
                },
                PROBLEM,
            ),
            row(
                "IORegistry entry missing",
                |p, _| p.wifi.set_unknown(UnknownReason::NotReported),
                UNKNOWN,
            ),
        ],
    );
}

#[test]
fn power_counts_this_computers_port_and_a_full_battery_is_not_evidence() {
    let id = CheckId::PowerNotCharging;
    run(
        id,
        &[
            row(
                "charging from this computer",
                |p, _| {
                    p.external_power.set_known(true);
                    p.battery_charging.set_known(true);
                },
                PASS,
            ),
            row(
                "on power, battery full so not charging",
                |p, _| {
                    p.external_power.set_known(true);
                    p.battery_charging.set_known(false);
                    p.battery_level.set_known(100);
                },
                PASS,
            ),
            row(
                "charging, ExternalConnected unread",
                |p, _| p.external_power.set_unknown(UnknownReason::NotReported),
                PASS,
            ),
            row(
                "no power, iCloud backup yesterday",
                |p, _| {
                    p.external_power.set_known(false);
                    p.battery_charging.set_known(false);
                },
                PASS,
            ),
            row(
                "no power, iCloud backup 8 days ago",
                |p, _| {
                    p.external_power.set_known(false);
                    p.battery_charging.set_known(false);
                    stale(p);
                },
                PROBLEM,
            ),
            row(
                "not charging, ExternalConnected unread",
                |p, _| {
                    p.external_power.set_unknown(UnknownReason::NotReported);
                    p.battery_charging.set_known(false);
                },
                UNKNOWN,
            ),
        ],
    );
}

#[test]
fn icloud_stale_is_silent_when_icloud_backup_is_off() {
    let id = CheckId::IcloudBackupStale;
    run(
        id,
        &[
            row("yesterday", |_, _| {}, PASS),
            row("8 days ago", |p, _| stale(p), PROBLEM),
            row(
                "never, iCloud Backup on",
                |p, _| p.last_icloud_backup.set_known(None),
                PROBLEM,
            ),
            row(
                "never, iCloud Backup off: icloud.backup_disabled speaks",
                |p, _| {
                    p.last_icloud_backup.set_known(None);
                    p.icloud_backup_enabled.set_known(false);
                },
                SKIPPED,
            ),
            row(
                "8 days ago, iCloud Backup setting unknown",
                |p, _| {
                    stale(p);
                    p.icloud_backup_enabled.set_unknown(LOCKED);
                },
                PROBLEM,
            ),
            row(
                "a date in the future (clock skew)",
                |p, _| p.last_icloud_backup.set_known(Some(ago(-DAY))),
                PASS,
            ),
            row(
                "date unknown",
                |p, _| p.last_icloud_backup.set_unknown(LOCKED),
                UNKNOWN,
            ),
        ],
    );
}

#[test]
fn phone_storage_low_is_about_free_space_only() {
    let id = CheckId::DeviceStorageLow;
    run(
        id,
        &[
            row("5 GB free", |_, _| {}, PASS),
            row(
                "exactly the minimum",
                |p, _| p.data_available.set_known(GB),
                PASS,
            ),
            row(
                "500 MB free, even with a recent iCloud backup",
                |p, _| p.data_available.set_known(500_000_000),
                PROBLEM,
            ),
            row(
                "free space unknown",
                |p, _| p.data_available.set_unknown(LOCKED),
                UNKNOWN,
            ),
        ],
    );
}

#[test]
fn host_disk_counts_what_a_backup_here_already_holds() {
    let id = CheckId::HostDiskInsufficient;
    run(
        id,
        &[
            row("200 GB free", |_, _| {}, PASS),
            row(
                "1 GB free, no backup here: a first backup needs 4.2 GB",
                |_, h| {
                    h.backup_dir_free.set_known(GB);
                    h.local_backup.set_known(None);
                },
                PROBLEM,
            ),
            row(
                "1 GB free, a 3 GB backup here: 1.2 GB beyond it does not fit",
                |_, h| h.backup_dir_free.set_known(GB),
                PROBLEM,
            ),
            row(
                "2 GB free, a 3 GB backup here: what changed cannot be known",
                |_, h| h.backup_dir_free.set_known(2 * GB),
                UNKNOWN,
            ),
            row(
                "1 GB free, a backup here of unknown size",
                |_, h| {
                    h.backup_dir_free.set_known(GB);
                    local(h, None);
                },
                UNKNOWN,
            ),
            row(
                "free space unknown",
                |_, h| h.backup_dir_free.set_unknown(UnknownReason::QueryFailed),
                UNKNOWN,
            ),
        ],
    );
}

#[test]
fn usbmuxd_evidence_names_the_socket_that_was_tried() {
    let id = CheckId::UsbmuxdUnavailable;
    let d = run(
        id,
        &[
            row(
                "the daemon's own socket answered",
                |_, h| {
                    h.usbmuxd = backupd_rules::Fact::known(
                        UsbmuxdStatus::Reachable,
                        Source::host("connect(/tmp/sim/mux.sock)"),
                    );
                },
                PASS,
            ),
            row(
                "nobody listens",
                |_, h| {
                    h.usbmuxd = backupd_rules::Fact::known(
                        UsbmuxdStatus::NotRunning,
                        Source::host("connect(/tmp/sim/mux.sock)"),
                    );
                },
                PROBLEM,
            ),
        ],
    );
    let e = evidence(&d[1], id, "usbmuxd").unwrap_or_default();
    assert!(e.contains("/tmp/sim/mux.sock"), "{e}");
}

fn with_whatsapp(p: &mut Snapshot) {
    p.apps
        .set_known(vec![App::new(WHATSAPP_BUNDLE_ID, Some("25.10.72"))]);
}

#[test]
fn whatsapp_reports_what_the_local_backup_holds() {
    let id = CheckId::WhatsappIcloudBackup;
    let rows = [
        row("not installed", |_, _| {}, PASS),
        row(
            "not installed, chats in an old backup",
            |_, h| {
                h.local_whatsapp.set_known(LocalWhatsapp::Chats {
                    messages: 10,
                    newest_message: Some(ago(DAY)),
                })
            },
            PASS,
        ),
        row(
            "installed, chats in the local backup",
            |p, h| {
                with_whatsapp(p);
                h.local_whatsapp.set_known(LocalWhatsapp::Chats {
                    messages: 312,
                    newest_message: Some(Timestamp::from_unix_secs(1_795_170_600)),
                });
            },
            PROBLEM,
        ),
        row(
            "installed, the backup holds no WhatsApp data",
            |p, h| {
                with_whatsapp(p);
                h.local_whatsapp.set_known(LocalWhatsapp::Absent);
            },
            PROBLEM,
        ),
        row(
            "installed, encrypted backup and no password",
            |p, h| {
                with_whatsapp(p);
                h.local_whatsapp.set_known(LocalWhatsapp::Encrypted);
            },
            PROBLEM,
        ),
        row(
            "installed, no local backup",
            |p, h| {
                with_whatsapp(p);
                h.local_backup.set_known(None);
            },
            PROBLEM,
        ),
        row(
            "app list unread",
            |p, _| p.apps.set_unknown(UnknownReason::QueryFailed),
            UNKNOWN,
        ),
    ];
    let d = run(id, &rows);
    let first_step = |i: usize, lang: Lang| {
        d[i].finding(id)
            .and_then(|f| f.remedies.first())
            .map(|s| s.text.render(lang))
            .unwrap_or_default()
    };
    let safe = first_step(2, Lang::En);
    assert!(
        safe.contains("chats up to 2026-11-20 10:30 UTC are safe on this computer")
            && safe.contains("312 messages"),
        "{safe}"
    );
    assert!(first_step(2, Lang::It).contains("fino al 2026-11-20 10:30 UTC sono al sicuro"));
    assert!(first_step(3, Lang::En).contains("holds no WhatsApp chats"));
    assert!(first_step(4, Lang::En).contains("--inspect"));
    // With no local backup, the guide's steps alone, as before.
    assert!(first_step(5, Lang::En).contains("close and restart the WhatsApp app"));
    for diagnosis in &d[2..=5] {
        let f = diagnosis.finding(id).expect("finding");
        assert_eq!(f.severity, backupd_rules::Severity::Info, "never a warning");
    }
}

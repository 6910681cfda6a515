//! `backups`: the table of each phone's local backups in both languages, `--json`, and unknown phones.

use backupd_api::{BackupEntry, BackupList, exit};

use crate::common::{
    FakeDaemon, HEALTHY_UDID, NOW, PROBLEM_UDID, Plan, Route, assert_snapshot, detached_device,
    healthy_device, json, problem_device, run_on, status,
};

const DAY: i64 = 86_400;

fn entry(
    name: &str,
    date: Option<i64>,
    size: u64,
    ios: Option<&str>,
    encrypted: bool,
    verified: bool,
) -> BackupEntry {
    BackupEntry {
        name: name.to_owned(),
        path: format!("/var/lib/backupd/backups/{HEALTHY_UDID}/{name}"),
        date,
        size,
        ios_version: ios.map(str::to_owned),
        encrypted,
        verified,
        verify_method: None,
        password_checked_at: None,
    }
}

fn healthy_backups() -> BackupList {
    BackupList {
        udid: HEALTHY_UDID.to_owned(),
        backups: vec![
            entry(
                "current",
                Some(NOW - 6 * 3_600),
                5_214_000_000,
                Some("18.5"),
                false,
                true,
            ),
            entry(
                "2026-11-14T080000Z",
                Some(NOW - 7 * DAY),
                4_980_500_000,
                Some("18.5"),
                false,
                true,
            ),
            entry(
                "2026-10-02T193000Z",
                Some(NOW - 50 * DAY),
                812_300_000,
                Some("18.0.1"),
                true,
                false,
            ),
            entry("2026-01-01T000000Z", None, 45_000, None, false, false),
        ],
    }
}

fn daemon() -> FakeDaemon {
    let empty = BackupList {
        udid: PROBLEM_UDID.to_owned(),
        backups: Vec::new(),
    };
    FakeDaemon::start(Plan {
        routes: vec![
            Route::get(
                backupd_api::PATH_DEVICES,
                200,
                json(&status(vec![healthy_device(), problem_device(), {
                    let mut d = detached_device();
                    d.udid = "00008101-000000000000DEAD".to_owned();
                    d.name = None;
                    d
                }])),
            ),
            Route::get(
                &format!("/v1/devices/{HEALTHY_UDID}/backups"),
                200,
                json(&healthy_backups()),
            ),
            Route::get(
                &format!("/v1/devices/{PROBLEM_UDID}/backups"),
                200,
                json(&empty),
            ),
            // The third phone is one the daemon forgot between the two requests: 404, left out.
        ],
        ..Plan::default()
    })
}

#[test]
fn one_phone_as_a_table_in_both_languages() {
    let daemon = daemon();
    for lang in ["en", "it"] {
        let output = run_on(&daemon, &["--lang", lang, "backups", HEALTHY_UDID]);
        assert_eq!(output.code, exit::OK, "{}", output.transcript());
        assert_snapshot(&format!("backups_one.{lang}.txt"), &output.transcript());
    }
}

#[test]
fn every_known_phone_has_its_section() {
    let daemon = daemon();
    let output = run_on(&daemon, &["--lang", "en", "backups"]);
    assert_eq!(output.code, exit::OK, "{}", output.transcript());
    assert_snapshot("backups_all.en.txt", &output.transcript());
    let log = daemon.log();
    assert!(log.contains(&format!("GET /v1/devices/{PROBLEM_UDID}/backups")));
    assert!(log.contains(&"GET /v1/devices/00008101-000000000000DEAD/backups".to_owned()));
}

#[test]
fn json_is_the_daemons_own() {
    let daemon = daemon();
    let output = run_on(&daemon, &["backups", HEALTHY_UDID, "--json"]);
    assert_eq!(output.code, exit::OK, "{}", output.transcript());
    assert_eq!(output.stdout, format!("{}\n", json(&healthy_backups())));

    let output = run_on(&daemon, &["backups", "--json"]);
    assert_eq!(output.code, exit::OK, "{}", output.transcript());
    let printed: Vec<BackupList> = serde_json::from_str(&output.stdout).expect("an array of lists");
    assert_eq!(printed.len(), 2);
    assert_eq!(printed[0], healthy_backups());
    assert_eq!(printed[1].udid, PROBLEM_UDID);
}

#[test]
fn fields_a_newer_daemon_adds_are_kept_in_json() {
    let mut value = serde_json::to_value(healthy_backups()).expect("value");
    value["backups"][0]["kept_until"] = serde_json::json!(NOW + DAY);
    let daemon = FakeDaemon::start(Plan {
        routes: vec![
            Route::get(backupd_api::PATH_DEVICES, 200, json(&status(Vec::new()))),
            Route::get(
                &format!("/v1/devices/{HEALTHY_UDID}/backups"),
                200,
                serde_json::to_string(&value).expect("json"),
            ),
        ],
        ..Plan::default()
    });
    let output = run_on(&daemon, &["backups", HEALTHY_UDID, "--json"]);
    assert_eq!(output.code, exit::OK, "{}", output.transcript());
    let printed: serde_json::Value = serde_json::from_str(&output.stdout).expect("JSON");
    assert_eq!(printed, value);
    // And the table still shows, without a name for a phone the daemon does not list.
    let output = run_on(&daemon, &["--lang", "en", "backups", HEALTHY_UDID]);
    assert_eq!(output.code, exit::OK, "{}", output.transcript());
    assert!(
        output
            .stdout
            .starts_with(&format!("== {HEALTHY_UDID} ==\n"))
    );
}

#[test]
fn an_unknown_phone_exits_4_and_no_phone_is_said() {
    // The daemon lists what is on disk for any UDID: an empty list for a phone it does not know.
    let daemon = FakeDaemon::start(Plan {
        routes: vec![
            Route::get(backupd_api::PATH_DEVICES, 200, json(&status(Vec::new()))),
            Route::get(
                &format!("/v1/devices/{PROBLEM_UDID}/backups"),
                200,
                json(&BackupList {
                    udid: PROBLEM_UDID.to_owned(),
                    backups: Vec::new(),
                }),
            ),
        ],
        ..Plan::default()
    });
    let output = run_on(&daemon, &["backups", PROBLEM_UDID]);
    assert_eq!(output.code, exit::NOT_FOUND, "{}", output.transcript());
    assert!(output.stderr.starts_with(&format!(
        "error: the daemon knows no phone {PROBLEM_UDID}\n"
    )));
    // And a 404, should a daemon answer one.
    let output = run_on(&daemon, &["backups", HEALTHY_UDID]);
    assert_eq!(output.code, exit::NOT_FOUND, "{}", output.transcript());
    assert!(output.stderr.starts_with(&format!(
        "error: the daemon knows no phone {HEALTHY_UDID}\n"
    )));
    let output = run_on(&daemon, &["--lang", "en", "backups"]);
    assert_eq!(output.code, exit::OK, "{}", output.transcript());
    assert_eq!(
        output.stdout,
        "The daemon knows no iPhone yet: plug one in by USB and unlock it.\n"
    );
    let output = run_on(&daemon, &["backups", "--json"]);
    assert_eq!(output.stdout, "[]\n");
}

//! `status`: the rendered output in both languages and its exit code, and `--json`.

use backupd_api::{Status, exit};

use crate::common::{
    FakeDaemon, HEALTHY_UDID, PROBLEM_UDID, TRUST_UDID, assert_snapshot, detached_device,
    healthy_device, json, problem_device, run_on, status, status_usbmuxd_down, trust_device,
};

/// Runs `status` in both languages against `fixture` and compares each transcript with its snapshot.
fn check(name: &str, fixture: &Status, extra: &[&str], code: i32) {
    let daemon = FakeDaemon::with_status(fixture);
    for lang in ["en", "it"] {
        let mut args = vec!["--lang", lang, "status"];
        args.extend_from_slice(extra);
        let output = run_on(&daemon, &args);
        assert_eq!(output.code, code, "{name} {lang}: {}", output.transcript());
        assert_snapshot(&format!("status_{name}.{lang}.txt"), &output.transcript());
    }
}

#[test]
fn a_problem_exits_1() {
    check(
        "problem",
        &status(vec![problem_device(), detached_device()]),
        &[],
        exit::PROBLEMS,
    );
}

#[test]
fn all_passing_exits_0() {
    check("all_pass", &status(vec![healthy_device()]), &[], exit::OK);
}

#[test]
fn no_phone_exits_6() {
    check(
        "no_phone",
        &status(vec![detached_device()]),
        &[],
        exit::NOT_READY,
    );
}

#[test]
fn a_phone_waiting_for_trust_exits_6() {
    check("trust", &status(vec![trust_device()]), &[], exit::NOT_READY);
}

#[test]
fn usbmuxd_down_is_a_host_problem() {
    check("usbmuxd_down", &status_usbmuxd_down(), &[], exit::PROBLEMS);
}

#[test]
fn one_phone_in_any_spelling_even_when_unplugged() {
    let fixture = status(vec![problem_device(), detached_device()]);
    let daemon = FakeDaemon::with_status(&fixture);
    let spelled = HEALTHY_UDID.replace('-', "").to_lowercase();
    let output = run_on(&daemon, &["--lang", "en", "status", &spelled]);
    assert_eq!(output.code, exit::OK, "{}", output.transcript());
    assert!(
        output
            .stdout
            .contains(&format!("UDID:      {HEALTHY_UDID}"))
    );
    assert!(output.stdout.contains("Connected: no"));
    assert!(!output.stdout.contains(PROBLEM_UDID));
}

#[test]
fn every_phone_counts_towards_the_exit_code() {
    // A healthy phone next to one with problems: 1. Next to one waiting for Trust: 6.
    let daemon = FakeDaemon::with_status(&status(vec![healthy_device(), problem_device()]));
    assert_eq!(run_on(&daemon, &["status"]).code, exit::PROBLEMS);
    let daemon = FakeDaemon::with_status(&status(vec![healthy_device(), trust_device()]));
    let output = run_on(&daemon, &["--lang", "en", "status", "--details"]);
    assert_eq!(output.code, exit::NOT_READY);
    assert!(
        output
            .stdout
            .contains("Waiting for you to tap Trust on the phone.")
    );
    assert!(output.stdout.contains(TRUST_UDID));
}

#[test]
fn json_is_the_daemons_own() {
    let fixture = status(vec![problem_device(), detached_device()]);
    let daemon = FakeDaemon::with_status(&fixture);
    let output = run_on(&daemon, &["status", "--json"]);
    assert_eq!(output.code, exit::PROBLEMS);
    let printed: serde_json::Value = serde_json::from_str(&output.stdout).expect("JSON");
    assert_eq!(printed, serde_json::to_value(&fixture).expect("fixture"));
    let device = &printed["devices"][0];
    assert_eq!(device["udid"], PROBLEM_UDID);
    assert_eq!(device["name"], "Marco’s iPhone");
    let checks = device["diagnosis"]["checks"].as_array().expect("checks");
    assert!(
        checks
            .iter()
            .any(|c| c["id"] == "wifi.not_connected" && c["outcome"] == "problem")
    );
    assert!(
        checks
            .iter()
            .any(|c| c["id"] == "pairing.trust_pending" && c["outcome"] == "pass")
    );
    let findings = device["diagnosis"]["findings"]
        .as_array()
        .expect("findings");
    assert_eq!(findings[0]["id"], "wifi.not_connected");
    assert_eq!(findings[0]["severity"], "critical");
    // Byte for byte what the daemon sent, with one line feed at the end.
    assert_eq!(output.stdout, format!("{}\n", json(&fixture)));
}

#[test]
fn json_for_one_phone_keeps_only_it() {
    let fixture = status(vec![problem_device(), detached_device()]);
    let daemon = FakeDaemon::with_status(&fixture);
    let output = run_on(&daemon, &["status", "--json", &HEALTHY_UDID.to_lowercase()]);
    assert_eq!(output.code, exit::OK);
    let printed: serde_json::Value = serde_json::from_str(&output.stdout).expect("JSON");
    let devices = printed["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["udid"], HEALTHY_UDID);
    assert_eq!(
        printed["host"],
        serde_json::to_value(&fixture.host).expect("host")
    );
}

#[test]
fn fields_a_newer_daemon_adds_are_kept_in_json_and_ignored_in_text() {
    let mut value = serde_json::to_value(status(vec![healthy_device()])).expect("fixture");
    value["devices"][0]["battery_health"] = serde_json::json!(91);
    value["uptime_secs"] = serde_json::json!(12);
    let daemon = FakeDaemon::start(crate::common::Plan {
        routes: vec![crate::common::Route::get(
            backupd_api::PATH_DEVICES,
            200,
            value.to_string(),
        )],
        ..Default::default()
    });
    let output = run_on(&daemon, &["status", "--json"]);
    assert_eq!(output.code, exit::OK, "{}", output.transcript());
    let printed: serde_json::Value = serde_json::from_str(&output.stdout).expect("JSON");
    assert_eq!(printed, value);
    assert_eq!(run_on(&daemon, &["status"]).code, exit::OK);
}

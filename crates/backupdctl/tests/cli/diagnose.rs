//! `diagnose`: subscribes, asks, waits for the event of each phone, then prints like `status`.

use std::time::{Duration, Instant};

use backupd_api::{Accepted, Device, exit};

use crate::common::{
    FakeDaemon, NOW, PROBLEM_UDID, Plan, Route, TRUST_UDID, json, problem_device, run_on, status,
    trust_device,
};

fn accepted(udids: &[&str]) -> String {
    json(&Accepted {
        udids: udids.iter().map(|u| (*u).to_owned()).collect(),
    })
}

fn event(kind: &str, udid: &str, extra: &str) -> String {
    format!(r#"{{"event":"{kind}","udid":"{udid}"{extra}}}"#)
}

/// A daemon whose phone `device` gets a new diagnosis only after the POST: `GET /v1/devices` shows the old one
/// (an hour older) until then, the new one after, and `events_after_post` are streamed when the POST arrives.
fn daemon_for(device: &Device, events_after_post: Vec<String>) -> FakeDaemon {
    let mut old = device.clone();
    old.diagnosed_at = Some(NOW - 3_600);
    let udid = device.udid.as_str();
    FakeDaemon::start(Plan {
        routes: vec![
            Route::get(backupd_api::PATH_DEVICES, 200, json(&status(vec![old]))),
            Route::get(
                backupd_api::PATH_DEVICES,
                200,
                json(&status(vec![device.clone()])),
            )
            .after_post(),
            Route::post(backupd_api::PATH_DIAGNOSE_ALL, 202, accepted(&[udid])),
            Route::post(
                &format!("/v1/devices/{udid}/diagnose"),
                202,
                accepted(&[udid]),
            ),
        ],
        events_after_post,
        hold_events: true,
        ..Plan::default()
    })
}

#[test]
fn waits_for_the_diagnosis_then_prints_it_like_status() {
    let device = problem_device();
    let daemon = daemon_for(
        &device,
        vec![
            // Another phone's event does not end the wait; this phone's does.
            event("attached", "0000-OTHER", ""),
            event("diagnosis_ready", PROBLEM_UDID, r#","problems":true"#),
        ],
    );
    let started = Instant::now();
    let output = run_on(&daemon, &["--lang", "en", "diagnose", "--timeout", "30"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it waited for the timeout"
    );
    assert_eq!(output.code, exit::PROBLEMS, "{}", output.transcript());
    let log = daemon.log();
    let subscribed = log.iter().position(|r| r == "GET /v1/events");
    let posted = log.iter().position(|r| r == "POST /v1/diagnose");
    assert!(
        subscribed.is_some() && posted.is_some() && subscribed < posted,
        "must subscribe before asking: {log:?}"
    );
    assert_eq!(
        output.stderr,
        "Asked for a new diagnosis of 1 phone(s); waiting up to 30 s …\n"
    );

    // The same text as `status` on the daemon's state afterwards.
    let after = FakeDaemon::with_status(&status(vec![device]));
    let shown = run_on(&after, &["--lang", "en", "status"]);
    assert_eq!(output.stdout, shown.stdout);
    assert!(output.stdout.contains("Diagnosed: 2026-11-21 07:58 UTC"));
}

#[test]
fn one_phone_in_any_spelling_and_json() {
    let device = problem_device();
    let daemon = daemon_for(
        &device,
        vec![event(
            "diagnosis_ready",
            PROBLEM_UDID,
            r#","problems":true"#,
        )],
    );
    let output = run_on(
        &daemon,
        &["diagnose", PROBLEM_UDID, "--json", "--timeout", "30"],
    );
    assert_eq!(output.code, exit::PROBLEMS, "{}", output.transcript());
    assert!(
        daemon
            .log()
            .contains(&format!("POST /v1/devices/{PROBLEM_UDID}/diagnose"))
    );
    let printed: serde_json::Value = serde_json::from_str(&output.stdout).expect("JSON");
    assert_eq!(
        printed["devices"][0]["diagnosed_at"],
        device.diagnosed_at.expect("set")
    );
}

#[test]
fn without_its_event_the_wait_times_out() {
    // No event and a `diagnosed_at` that never moves: nothing says the new diagnosis was made.
    let device = problem_device();
    let daemon = FakeDaemon::start(Plan {
        routes: vec![
            Route::get(backupd_api::PATH_DEVICES, 200, json(&status(vec![device]))),
            Route::post(
                backupd_api::PATH_DIAGNOSE_ALL,
                202,
                accepted(&[PROBLEM_UDID]),
            ),
        ],
        events_after_post: vec![event(
            "diagnosis_ready",
            "0000-OTHER",
            r#","problems":false"#,
        )],
        hold_events: true,
        ..Plan::default()
    });
    let started = Instant::now();
    let output = run_on(&daemon, &["--lang", "en", "diagnose", "--timeout", "1"]);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(output.code, exit::NOT_READY, "{}", output.transcript());
    assert!(
        output
            .stdout
            .contains("No new diagnosis within 1 s; this is the previous one.")
    );
    // The previous diagnosis is still shown, for what it is worth.
    assert!(output.stdout.contains("(wifi.not_connected)"));
}

#[test]
fn trust_needed_ends_the_wait_with_the_pairing_finding() {
    let device = trust_device();
    let daemon = daemon_for(
        &device,
        vec![event(
            "trust_needed",
            &TRUST_UDID.to_lowercase(),
            r#","finding":"pairing.trust_pending""#,
        )],
    );
    let started = Instant::now();
    let output = run_on(&daemon, &["--lang", "it", "diagnose", "--timeout", "30"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it waited for the timeout"
    );
    assert_eq!(output.code, exit::NOT_READY, "{}", output.transcript());
    assert!(
        output
            .stdout
            .contains("In attesa che tu tocchi “Autorizza” sull’iPhone.")
    );
    assert!(output.stdout.contains("(pairing.trust_pending)"));
}

#[test]
fn a_new_diagnosis_without_an_event_is_noticed() {
    // The daemon sends no event when a phone waiting for Trust is read again with the same outcome; the newer
    // `diagnosed_at` ends the wait.
    let device = trust_device();
    let daemon = daemon_for(&device, Vec::new());
    let started = Instant::now();
    let output = run_on(&daemon, &["--lang", "en", "diagnose", "--timeout", "30"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it waited for the timeout"
    );
    assert_eq!(output.code, exit::NOT_READY, "{}", output.transcript());
    assert!(
        output
            .stdout
            .contains("Waiting for you to tap Trust on the phone.")
    );
    assert!(!output.stdout.contains("No new diagnosis"));
}

#[test]
fn with_no_phone_there_is_nothing_to_wait_for() {
    let daemon = FakeDaemon::start(Plan {
        routes: vec![
            Route::get(backupd_api::PATH_DEVICES, 200, json(&status(Vec::new()))),
            Route::post(backupd_api::PATH_DIAGNOSE_ALL, 202, accepted(&[])),
        ],
        hold_events: true,
        ..Plan::default()
    });
    let started = Instant::now();
    let output = run_on(&daemon, &["--lang", "en", "diagnose"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(output.code, exit::NOT_READY, "{}", output.transcript());
    assert!(output.stdout.contains("No iPhone is connected"));
}

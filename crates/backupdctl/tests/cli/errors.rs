//! Exit codes and messages of failures: unreachable daemon, unknown phone, daemon errors, bad arguments.

use backupd_api::exit;

use crate::common::{
    FakeDaemon, HEALTHY_UDID, Plan, Route, assert_snapshot, healthy_device, json, run, run_on,
    status,
};

#[test]
fn no_socket_is_unreachable() {
    let output = run(&[
        "--socket",
        "/nonexistent/backupd-test.sock",
        "--lang",
        "en",
        "status",
    ]);
    assert_eq!(output.code, exit::DAEMON_UNREACHABLE);
    assert_eq!(output.stdout, "");
    assert_snapshot("error_unreachable.txt", &output.transcript());
}

#[test]
fn a_stale_socket_is_unreachable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("backupd.sock");
    // Bound and closed: the file stays, nobody listens, connecting is refused.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    let shown = socket.to_str().expect("UTF-8 path");
    for command in ["status", "diagnose", "watch"] {
        let output = run(&["--socket", shown, command]);
        assert_eq!(output.code, exit::DAEMON_UNREACHABLE, "{command}");
        assert!(output.stderr.starts_with(&format!(
            "error: failed to reach the backupd daemon at {shown}\n"
        )));
        assert!(output.stderr.contains("refused"), "{}", output.stderr);
        assert!(output.stderr.contains("sudo systemctl start backupd"));
        assert!(
            output.stderr.contains(
                "sudo launchctl load -w /Library/LaunchDaemons/org.backupd.backupd.plist"
            )
        );
        assert!(output.stderr.contains("backupd --socket PATH"));
        assert!(output.stderr.contains("BACKUPD_SOCKET"));
    }
}

#[test]
fn an_unknown_udid_exits_4() {
    let daemon = FakeDaemon::with_status(&status(vec![healthy_device()]));
    let output = run_on(&daemon, &["status", "00008110-FFFFFFFFFFFFFFFF"]);
    assert_eq!(output.code, exit::NOT_FOUND);
    assert_eq!(output.stdout, "");
    assert_snapshot("error_unknown_udid.txt", &output.transcript());
}

#[test]
fn a_daemon_error_exits_5() {
    let daemon = FakeDaemon::start(Plan {
        routes: vec![Route::get(
            backupd_api::PATH_DEVICES,
            503,
            r#"{"error":{"code":"internal","message":"the daemon is stopping"}}"#,
        )],
        ..Plan::default()
    });
    let output = run_on(&daemon, &["status"]);
    assert_eq!(output.code, exit::DAEMON_ERROR);
    assert_snapshot("error_daemon_503.txt", &output.transcript());

    let daemon = FakeDaemon::start(Plan {
        routes: vec![Route::get(
            backupd_api::PATH_DEVICES,
            500,
            "Internal Server Error",
        )],
        ..Plan::default()
    });
    let output = run_on(&daemon, &["status", "--json"]);
    assert_eq!(output.code, exit::DAEMON_ERROR);
    assert!(output.stderr.starts_with(
        "error: the daemon answered GET /v1/devices with 500: Internal Server Error\n"
    ));
}

#[test]
fn a_phase_from_a_newer_daemon_is_kept_not_refused() {
    let mut newer = serde_json::to_value(status(vec![healthy_device()])).expect("fixture");
    newer["devices"][0]["phase"] = serde_json::json!("backing_up");
    let daemon = FakeDaemon::start(Plan {
        routes: vec![Route::get(
            backupd_api::PATH_DEVICES,
            200,
            newer.to_string(),
        )],
        ..Plan::default()
    });
    let output = run_on(&daemon, &["status"]);
    assert_eq!(output.code, exit::OK, "{}", output.stderr);
}

#[test]
fn garbage_from_the_daemon_exits_5_without_panicking() {
    let mut truncated = json(&status(vec![healthy_device()]));
    truncated.truncate(truncated.len() / 2);
    let mut wrong_type = serde_json::to_value(status(vec![healthy_device()])).expect("fixture");
    wrong_type["devices"][0]["connected"] = serde_json::json!("yes");
    for body in [
        String::new(),
        "null".to_owned(),
        "[]".to_owned(),
        truncated,
        wrong_type.to_string(),
        "\u{0}\u{1}\u{2}".to_owned(),
    ] {
        let daemon = FakeDaemon::start(Plan {
            routes: vec![Route::get(backupd_api::PATH_DEVICES, 200, body.clone())],
            ..Plan::default()
        });
        let output = run_on(&daemon, &["status"]);
        assert_eq!(output.code, exit::DAEMON_ERROR, "{body:?}");
        assert!(
            output
                .stderr
                .starts_with("error: failed to read the daemon's answer to GET /v1/devices\n"),
            "{}",
            output.stderr
        );
    }
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["status", "--bogus"][..],
        &["diagnose", "--timeout", "soon"],
        &["status", "not/a/udid"],
        &["--lang", "de", "status"],
        &["frobnicate"],
        &[],
    ] {
        let output = run(args);
        assert_eq!(
            output.code,
            exit::USAGE,
            "{args:?}: {}",
            output.transcript()
        );
        assert_eq!(output.stdout, "", "{args:?}");
        assert!(output.stderr.contains("error:") || output.stderr.contains("Usage:"));
    }
    assert_snapshot(
        "error_bad_udid.txt",
        &run(&["status", "not/a/udid"]).transcript(),
    );
}

#[test]
fn diagnosing_an_unknown_or_unplugged_phone_exits_4() {
    let mut unplugged = healthy_device();
    unplugged.connected = false;
    unplugged.phase = backupd_api::Phase::Detached;
    let not_attached = |udid: &str| {
        Route::post(
            &format!("/v1/devices/{udid}/diagnose"),
            404,
            format!(r#"{{"error":{{"code":"not_found","message":"no attached phone {udid}"}}}}"#),
        )
    };
    let daemon = FakeDaemon::start(Plan {
        routes: vec![
            Route::get(
                backupd_api::PATH_DEVICES,
                200,
                json(&status(vec![unplugged])),
            ),
            not_attached(HEALTHY_UDID),
            not_attached("0000"),
        ],
        hold_events: true,
        ..Plan::default()
    });
    let output = run_on(&daemon, &["diagnose", HEALTHY_UDID]);
    assert_eq!(output.code, exit::NOT_FOUND, "{}", output.transcript());
    assert!(output.stderr.starts_with(&format!(
        "error: phone {HEALTHY_UDID} is not connected, so it cannot be diagnosed again\n"
    )));
    let output = run_on(&daemon, &["diagnose", "0000"]);
    assert_eq!(output.code, exit::NOT_FOUND, "{}", output.transcript());
    assert!(
        output
            .stderr
            .starts_with("error: the daemon knows no phone 0000\n")
    );
}

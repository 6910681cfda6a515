//! `watch`: events in words or raw, until the stream ends; `--notify` with and without a desktop session.

use backupd_api::exit;

use crate::common::{FakeDaemon, Plan, assert_snapshot, run_on};

fn events() -> Vec<String> {
    [
        r#"{"event":"usbmuxd_available"}"#,
        r#"{"event":"attached","udid":"00008110-001A2B3C4D5E6F01"}"#,
        r#"{"event":"trust_needed","udid":"00008110-001A2B3C4D5E6F01","finding":"pairing.trust_pending"}"#,
        r#"{"event":"diagnosis_ready","udid":"00008110-001A2B3C4D5E6F01","problems":true}"#,
        r#"{"event":"diagnosis_ready","udid":"00008110-001A2B3C4D5E6F01","problems":false}"#,
        r#"{"event":"detached","udid":"00008110-001A2B3C4D5E6F01"}"#,
        r#"{"event":"usbmuxd_unavailable","error":"connection refused"}"#,
        r#"{"event":"backup_progress","udid":"00008110-001A2B3C4D5E6F01","percent":40}"#,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn daemon() -> FakeDaemon {
    FakeDaemon::start(Plan {
        events: events(),
        ..Plan::default()
    })
}

#[test]
fn json_prints_the_lines_as_they_come() {
    let daemon = daemon();
    let output = run_on(&daemon, &["watch", "--json"]);
    assert_eq!(output.code, exit::OK, "{}", output.transcript());
    let expected: String = events().iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(output.stdout, expected);
    assert_eq!(daemon.log(), ["GET /v1/events"]);
}

#[test]
fn words_in_both_languages() {
    let daemon = daemon();
    for lang in ["en", "it"] {
        let output = run_on(&daemon, &["--lang", lang, "watch"]);
        assert_eq!(output.code, exit::OK);
        assert_snapshot(&format!("watch.{lang}.txt"), &output.transcript());
    }
}

#[test]
fn lines_that_are_not_json_are_skipped_with_a_warning() {
    let daemon = FakeDaemon::start(Plan {
        events: vec![
            "garbage".to_owned(),
            r#"{"event":"attached","udid":"A1"}"#.to_owned(),
            String::new(),
            "[1,2,3]".to_owned(),
            r#"{"event":"detached","udid":"A1"}"#.to_owned(),
        ],
        ..Plan::default()
    });
    let output = run_on(&daemon, &["--lang", "en", "watch"]);
    assert_eq!(output.code, exit::OK);
    assert_eq!(
        output.stdout,
        "A1: iPhone connected\nA1: iPhone disconnected\n"
    );
    assert_eq!(
        output
            .stderr
            .matches("warning: ignoring an event line that is not JSON")
            .count(),
        2
    );
}

/// `--notify` needs the real process environment (PATH, DISPLAY), so these run the binary.
#[cfg(target_os = "linux")]
mod notify {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use super::daemon;

    fn backupdctl(socket: &std::path::Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_backupdctl"));
        command
            .env_clear()
            .arg("--socket")
            .arg(socket)
            .args(["--lang", "en", "watch", "--notify"]);
        command
    }

    #[test]
    fn each_event_becomes_a_notification() {
        let daemon = daemon();
        let bin = tempfile::tempdir().expect("tempdir");
        let log = bin.path().join("notifications.log");
        let script = bin.path().join("notify-send");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s|' \"$@\" >> '{}'\necho >> '{}'\n",
                log.display(),
                log.display()
            ),
        )
        .expect("write the fake notify-send");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let output = backupdctl(daemon.socket())
            .env("PATH", bin.path())
            .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
            .output()
            .expect("run backupdctl");
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        let stdout = String::from_utf8(output.stdout).expect("UTF-8");
        let sent = std::fs::read_to_string(&log).expect("notifications were sent");
        let expected: String = stdout
            .lines()
            .map(|l| format!("--|backupd|{l}|\n"))
            .collect();
        assert_eq!(sent, expected);
        assert_eq!(sent.lines().count(), 8);
        assert!(sent.contains("--|backupd|00008110-001A2B3C4D5E6F01: iPhone connected|\n"));
    }

    #[test]
    fn without_a_desktop_session_it_warns_once_and_keeps_printing() {
        let daemon = daemon();
        let bin = tempfile::tempdir().expect("tempdir");
        let output = backupdctl(daemon.socket())
            .env("PATH", bin.path())
            .output()
            .expect("run backupdctl");
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        let stdout = String::from_utf8(output.stdout).expect("UTF-8");
        let stderr = String::from_utf8(output.stderr).expect("UTF-8");
        assert_eq!(stdout.lines().count(), 8);
        assert_eq!(
            stderr.matches("no desktop session found").count(),
            1,
            "{stderr}"
        );
    }

    #[test]
    fn a_failing_notifier_is_reported_once() {
        let daemon = daemon();
        let bin = tempfile::tempdir().expect("tempdir");
        let script = bin.path().join("notify-send");
        std::fs::write(&script, "#!/bin/sh\nexit 1\n").expect("write");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let output = backupdctl(daemon.socket())
            .env("PATH", bin.path())
            .env("DISPLAY", ":0")
            .output()
            .expect("run backupdctl");
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        let stderr = String::from_utf8(output.stderr).expect("UTF-8");
        assert_eq!(
            stderr.matches("a desktop notification failed").count(),
            1,
            "{stderr}"
        );
        assert_eq!(
            String::from_utf8(output.stdout)
                .expect("UTF-8")
                .lines()
                .count(),
            8
        );
    }
}

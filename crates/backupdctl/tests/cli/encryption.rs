//! `encryption`: passwords from the environment reach the daemon in the right body and nowhere else; empty ones
//! are refused before anything is sent; the job is followed to its end. These run the binary, because the
//! passwords come from the process's environment.

use std::process::Command;

use backupd_api::{Job, JobKind, JobState, Jobs, exit};

use crate::backup::{at, finished_event, job, progress_event};
use crate::common::{FakeDaemon, HEALTHY_UDID, Plan, Route, healthy_device, json, status};

const OLD: &str = "hunter2-old-Pässword";
const NEW: &str = "correct horse battery staple";

fn encryption_job(state: JobState) -> Job {
    let mut j = job(3, HEALTHY_UDID, state, at("preparing", 0.0, 0, 0, 0.0));
    j.kind = JobKind::Encryption;
    j
}

fn daemon(end: &Job) -> FakeDaemon {
    let mut waiting = encryption_job(JobState::Running);
    waiting.progress = at("waiting_for_passcode", 1.0, 0, 0, 0.0);
    FakeDaemon::start(Plan {
        routes: vec![
            Route::get(
                backupd_api::PATH_DEVICES,
                200,
                json(&status(vec![healthy_device()])),
            ),
            Route::post(
                &format!("/v1/devices/{HEALTHY_UDID}/encryption"),
                202,
                json(&encryption_job(JobState::Running)),
            ),
            Route::get(
                backupd_api::PATH_JOBS,
                200,
                json(&Jobs { jobs: Vec::new() }),
            ),
        ],
        events_after_post: vec![progress_event(&waiting), finished_event(end)],
        hold_events: true,
        ..Plan::default()
    })
}

/// Environment variables of a run.
type Env<'a> = &'a [(&'a str, &'a str)];

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn backupdctl(daemon: &FakeDaemon, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backupdctl"));
    command
        .env_clear()
        .arg("--socket")
        .arg(daemon.socket())
        .args(["--lang", "en"])
        .args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("run backupdctl");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8"),
    }
}

fn assert_secret(run: &Run, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !run.stdout.contains(s),
            "a password in stdout: {}",
            run.stdout
        );
        assert!(
            !run.stderr.contains(s),
            "a password in stderr: {}",
            run.stderr
        );
    }
}

fn body_sent(daemon: &FakeDaemon) -> serde_json::Value {
    let bodies = daemon.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(
        bodies[0].0,
        format!("POST /v1/devices/{HEALTHY_UDID}/encryption")
    );
    serde_json::from_str(&bodies[0].1).expect("a JSON body")
}

#[test]
fn on_sends_the_new_password_and_waits_for_the_phone() {
    let daemon = daemon(&encryption_job(JobState::Succeeded));
    let run = backupdctl(
        &daemon,
        &["encryption", "on"],
        &[("BACKUPD_NEW_BACKUP_PASSWORD", NEW)],
    );
    assert_eq!(run.code, Some(exit::OK), "{}", run.stderr);
    assert_eq!(
        body_sent(&daemon),
        serde_json::json!({"action": "on", "old_password": null, "new_password": NEW})
    );
    assert_secret(&run, &[NEW]);
    assert_eq!(
        run.stdout,
        format!(
            "Backup encryption is on for {HEALTHY_UDID}: its next backups are encrypted with the new password. Keep it safe: without it they cannot be restored.\n"
        )
    );
    assert!(run.stderr.contains(
        "The iPhone will ask for its passcode to confirm (iOS 13 and later): unlock it and enter the passcode when asked."
    ));
    assert!(
        run.stderr
            .contains("Enter your passcode on the iPhone to confirm the change")
    );
    let log = daemon.log();
    let subscribed = log.iter().position(|r| r == "GET /v1/events");
    let posted = log.iter().position(|r| r.ends_with("/encryption"));
    assert!(subscribed.is_some() && subscribed < posted, "{log:?}");
}

#[test]
fn change_password_sends_both_and_off_only_the_current_one() {
    let daemon = daemon(&encryption_job(JobState::Succeeded));
    let both = [
        ("BACKUPD_BACKUP_PASSWORD", OLD),
        ("BACKUPD_NEW_BACKUP_PASSWORD", NEW),
    ];
    let run = backupdctl(
        &daemon,
        &["encryption", "change-password", HEALTHY_UDID],
        &both,
    );
    assert_eq!(run.code, Some(exit::OK), "{}", run.stderr);
    assert_eq!(
        body_sent(&daemon),
        serde_json::json!({"action": "change", "old_password": OLD, "new_password": NEW})
    );
    assert_secret(&run, &[OLD, NEW]);
    assert_eq!(
        run.stdout,
        format!("The backup password of {HEALTHY_UDID} was changed.\n")
    );

    let daemon = self::daemon(&encryption_job(JobState::Succeeded));
    let run = backupdctl(&daemon, &["encryption", "off"], &both);
    assert_eq!(run.code, Some(exit::OK), "{}", run.stderr);
    assert_eq!(
        body_sent(&daemon),
        serde_json::json!({"action": "off", "old_password": OLD, "new_password": null})
    );
    assert_secret(&run, &[OLD, NEW]);
}

#[test]
fn a_wrong_current_password_exits_7_with_the_reason() {
    let mut failed = encryption_job(JobState::Failed);
    failed.error =
        Some("the iPhone refused the change: Invalid password (MBErrorDomain 207)".into());
    failed.device_error_code = Some(207);
    let daemon = daemon(&failed);
    let run = backupdctl(
        &daemon,
        &["encryption", "off"],
        &[("BACKUPD_BACKUP_PASSWORD", OLD)],
    );
    assert_eq!(run.code, Some(exit::JOB_FAILED), "{}", run.stderr);
    assert!(
        run.stderr.contains("The current backup password is wrong"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Nothing was changed on the iPhone."));
    assert_eq!(run.stdout, "");
    assert_secret(&run, &[OLD]);
}

#[test]
fn empty_or_unchanged_passwords_are_refused_before_anything_is_sent() {
    let daemon = daemon(&encryption_job(JobState::Succeeded));
    let cases: [(&[&str], Env<'_>, &str); 3] = [
        (
            &["encryption", "on"],
            &[("BACKUPD_NEW_BACKUP_PASSWORD", "")],
            "error: the new backup password is empty\n  BACKUPD_NEW_BACKUP_PASSWORD is set but empty",
        ),
        (
            &["encryption", "change-password"],
            &[
                ("BACKUPD_BACKUP_PASSWORD", ""),
                ("BACKUPD_NEW_BACKUP_PASSWORD", NEW),
            ],
            "error: the current backup password is empty\n",
        ),
        (
            &["encryption", "change-password"],
            &[
                ("BACKUPD_BACKUP_PASSWORD", NEW),
                ("BACKUPD_NEW_BACKUP_PASSWORD", NEW),
            ],
            "error: the new backup password is the same as the current one\n",
        ),
    ];
    for (args, env, expected) in cases {
        let run = backupdctl(&daemon, args, env);
        assert_eq!(run.code, Some(exit::USAGE), "{args:?}: {}", run.stderr);
        assert!(run.stderr.starts_with(expected), "{args:?}: {}", run.stderr);
        assert_secret(&run, &[NEW]);
    }
    assert!(daemon.bodies().is_empty());
    assert!(!daemon.log().iter().any(|r| r.starts_with("POST")));
}

#[test]
fn without_a_password_or_a_terminal_the_variable_is_named() {
    let daemon = daemon(&encryption_job(JobState::Succeeded));
    let run = backupdctl(&daemon, &["encryption", "on"], &[]);
    assert_eq!(run.code, Some(exit::USAGE), "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("error: no terminal to ask for the new backup password on")
    );
    assert!(
        run.stderr
            .contains("Set BACKUPD_NEW_BACKUP_PASSWORD to the password")
    );
    assert!(daemon.bodies().is_empty());
}

#[test]
fn a_busy_phone_exits_8() {
    let mut running = job(
        8,
        HEALTHY_UDID,
        JobState::Running,
        at("transferring", 3.0, 1, 1, 1.0),
    );
    running.kind = JobKind::Backup;
    let daemon = FakeDaemon::start(Plan {
        routes: vec![
            Route::post(
                &format!("/v1/devices/{HEALTHY_UDID}/encryption"),
                409,
                r#"{"error":{"code":"busy","message":"the phone already has a job"}}"#,
            ),
            Route::get(
                backupd_api::PATH_JOBS,
                200,
                json(&Jobs {
                    jobs: vec![running],
                }),
            ),
        ],
        hold_events: true,
        ..Plan::default()
    });
    let run = backupdctl(
        &daemon,
        &["encryption", "on", HEALTHY_UDID],
        &[("BACKUPD_NEW_BACKUP_PASSWORD", NEW)],
    );
    assert_eq!(run.code, Some(exit::BUSY), "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("error: a backup of this iPhone is already running (job 8)\n"),
        "{}",
        run.stderr
    );
    assert_secret(&run, &[NEW]);
}

//! `backup`: starting, following a job on the event stream to its end, busy phones, choosing the phone, Ctrl-C
//! and `--cancel`.

use std::time::{Duration, Instant};

use backupd_api::{Job, JobKind, JobProgress, JobState, Jobs, exit};

use crate::common::{
    FakeDaemon, HEALTHY_UDID, NOW, PROBLEM_UDID, Plan, Route, assert_snapshot, detached_device,
    healthy_device, json, problem_device, run_on, status,
};

fn backup_path(udid: &str) -> String {
    format!("/v1/devices/{udid}/backup")
}

/// A backup job of `udid` at `stage`.
pub(crate) fn job(id: u64, udid: &str, state: JobState, progress: JobProgress) -> Job {
    Job {
        id,
        udid: udid.to_owned(),
        kind: JobKind::Backup,
        state,
        full: false,
        started_at: NOW,
        finished_at: (state != JobState::Running).then(|| NOW + progress.elapsed_secs as i64),
        progress,
        error: None,
        device_error_code: None,
        verified_files: None,
        verify_method: None,
        password_ok: None,
    }
}

pub(crate) fn at(stage: &str, secs: f64, bytes: u64, files: u64, percent: f64) -> JobProgress {
    JobProgress {
        stage: stage.to_owned(),
        bytes,
        files,
        device_percent: percent,
        announced_bytes: 0,
        elapsed_secs: secs,
    }
}

pub(crate) fn progress_event(job: &Job) -> String {
    serde_json::to_string(&serde_json::json!({"event": "job_progress", "job": job}))
        .expect("serialize")
}

pub(crate) fn finished_event(job: &Job) -> String {
    serde_json::to_string(&serde_json::json!({"event": "job_finished", "job": job}))
        .expect("serialize")
}

fn running(id: u64, udid: &str) -> Job {
    job(id, udid, JobState::Running, at("preparing", 0.0, 0, 0, 0.0))
}

/// The events of a backup of the healthy phone from its start to `end`, with noise in between: another
/// phone's job, an event of a newer daemon and a line that is not JSON.
fn a_backup_until(end: Job) -> Vec<String> {
    let u = HEALTHY_UDID;
    let mut transferring = job(
        7,
        u,
        JobState::Running,
        at("transferring", 10.0, 50_000_000, 100, 2.0),
    );
    transferring.progress.announced_bytes = 900_000_000;
    let mut later = transferring.clone();
    later.progress = at("transferring", 20.0, 400_000_000, 1_200, 20.0);
    vec![
        progress_event(&job(
            7,
            u,
            JobState::Running,
            at("preparing", 0.2, 0, 0, 0.0),
        )),
        progress_event(&job(
            7,
            u,
            JobState::Running,
            at("waiting_for_passcode", 1.0, 0, 0, 0.0),
        )),
        progress_event(&job(
            6,
            PROBLEM_UDID,
            JobState::Running,
            at("verifying", 30.0, 0, 0, 0.0),
        )),
        progress_event(&transferring),
        r#"{"event":"backup_snapshot_taken","udid":"x"}"#.to_owned(),
        "not json".to_owned(),
        progress_event(&later),
        progress_event(&job(
            7,
            u,
            JobState::Running,
            at("verifying", 62.0, 2_000_000_000, 5_000, 100.0),
        )),
        finished_event(&end),
    ]
}

fn succeeded() -> Job {
    let mut done = job(
        7,
        HEALTHY_UDID,
        JobState::Succeeded,
        at("done", 71.0, 2_000_000_000, 5_000, 100.0),
    );
    done.verified_files = Some(5_000);
    done
}

/// A daemon with `phones` whose backup POST answers `status` with `body`, then streams `events`.
fn daemon(
    phones: Vec<backupd_api::Device>,
    status_code: u16,
    body: String,
    events: Vec<String>,
) -> FakeDaemon {
    let udid = phones
        .iter()
        .find(|d| d.connected)
        .map_or(HEALTHY_UDID.to_owned(), |d| d.udid.clone());
    FakeDaemon::start(Plan {
        routes: vec![
            Route::get(backupd_api::PATH_DEVICES, 200, json(&status(phones))),
            Route::post(&backup_path(&udid), status_code, body),
            Route::get(
                backupd_api::PATH_JOBS,
                200,
                json(&Jobs { jobs: Vec::new() }),
            ),
        ],
        events_after_post: events,
        hold_events: true,
        ..Plan::default()
    })
}

#[test]
fn wait_follows_the_job_to_a_verified_backup() {
    let daemon = daemon(
        vec![healthy_device()],
        202,
        json(&running(7, HEALTHY_UDID)),
        a_backup_until(succeeded()),
    );
    let started = Instant::now();
    let output = run_on(&daemon, &["--lang", "en", "backup", "--wait", HEALTHY_UDID]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(output.code, exit::OK, "{}", output.transcript());
    assert_snapshot("backup_wait_succeeded.en.txt", &output.transcript());
    let log = daemon.log();
    let subscribed = log.iter().position(|r| r == "GET /v1/events");
    let posted = log
        .iter()
        .position(|r| *r == format!("POST {}", backup_path(HEALTHY_UDID)));
    assert!(
        subscribed.is_some() && posted.is_some() && subscribed < posted,
        "must subscribe before starting: {log:?}"
    );
    assert_eq!(
        daemon.bodies(),
        [(
            format!("POST {}", backup_path(HEALTHY_UDID)),
            r#"{"full":false}"#.to_owned()
        )]
    );
}

#[test]
fn wait_in_italian_and_full() {
    let daemon = daemon(
        vec![healthy_device()],
        202,
        json(&running(7, HEALTHY_UDID)),
        a_backup_until(succeeded()),
    );
    let output = run_on(&daemon, &["--lang", "it", "backup", "--full", "--wait"]);
    assert_eq!(output.code, exit::OK, "{}", output.transcript());
    assert_snapshot("backup_wait_succeeded.it.txt", &output.transcript());
    assert_eq!(daemon.bodies()[0].1, r#"{"full":true}"#);
}

#[test]
fn a_passcode_not_entered_exits_7_with_what_to_do() {
    let mut failed = job(
        7,
        HEALTHY_UDID,
        JobState::Failed,
        at("waiting_for_passcode", 40.0, 0, 0, 0.0),
    );
    failed.error =
        Some("the iPhone stopped the backup: Device locked (MBErrorDomain 208)".to_owned());
    failed.device_error_code = Some(208);
    let daemon = daemon(
        vec![healthy_device()],
        202,
        json(&running(7, HEALTHY_UDID)),
        vec![
            progress_event(&job(
                7,
                HEALTHY_UDID,
                JobState::Running,
                at("waiting_for_passcode", 1.0, 0, 0, 0.0),
            )),
            finished_event(&failed),
        ],
    );
    let output = run_on(&daemon, &["--lang", "en", "backup", "--wait"]);
    assert_eq!(output.code, exit::JOB_FAILED, "{}", output.transcript());
    assert_eq!(output.stdout, "");
    assert_snapshot("backup_wait_208.en.txt", &output.transcript());
    assert!(output.stderr.contains(
        "The iPhone asked for its passcode and none was entered in time: unlock it, start again and enter the passcode when asked."
    ));
}

#[test]
fn other_device_codes_and_cancellation_exit_7_with_their_explanation() {
    let cases = [
        (
            JobState::Failed,
            Some(105),
            "The disk of this computer is full",
        ),
        (JobState::Failed, Some(207), "The backup password is wrong"),
        (JobState::Failed, Some(3), "restart the iPhone"),
        (
            JobState::Failed,
            Some(205),
            "backupdctl backup --full --wait 00008110-001A2B3C4D5E6F01",
        ),
        (JobState::Failed, Some(4242), "error code 4242"),
        (JobState::Failed, None, "failed: the host went away"),
        (JobState::Cancelled, None, "was cancelled"),
    ];
    for (state, code, expected) in cases {
        let mut end = job(7, HEALTHY_UDID, state, at("transferring", 5.0, 1, 1, 1.0));
        end.device_error_code = code;
        end.error = (state == JobState::Failed).then(|| "the host went away".to_owned());
        let daemon = daemon(
            vec![healthy_device()],
            202,
            json(&running(7, HEALTHY_UDID)),
            vec![finished_event(&end)],
        );
        let output = run_on(&daemon, &["--lang", "en", "backup", "--wait"]);
        assert_eq!(
            output.code,
            exit::JOB_FAILED,
            "{code:?}: {}",
            output.transcript()
        );
        assert!(
            output.stderr.contains(expected),
            "{code:?}: {}",
            output.stderr
        );
        assert!(
            output.stderr.ends_with("The previous backup is intact.\n"),
            "{}",
            output.stderr
        );
    }
}

#[test]
fn a_job_that_failed_at_once_is_reported_without_events() {
    let mut failed = job(
        7,
        HEALTHY_UDID,
        JobState::Failed,
        at("preparing", 0.1, 0, 0, 0.0),
    );
    failed.error = Some("the backup folder is not writable".to_owned());
    let daemon = daemon(vec![healthy_device()], 202, json(&failed), Vec::new());
    let output = run_on(&daemon, &["--lang", "en", "backup", "--wait"]);
    assert_eq!(output.code, exit::JOB_FAILED, "{}", output.transcript());
    assert!(output.stderr.contains("the backup folder is not writable"));
}

fn busy_daemon(running_job: Job, events_after_post: Vec<String>) -> FakeDaemon {
    let udid = running_job.udid.clone();
    FakeDaemon::start(Plan {
        routes: vec![
            Route::get(
                backupd_api::PATH_DEVICES,
                200,
                json(&status(vec![healthy_device()])),
            ),
            Route::post(
                &backup_path(&udid),
                409,
                r#"{"error":{"code":"busy","message":"the phone already has a job"}}"#,
            ),
            Route::get(
                backupd_api::PATH_JOBS,
                200,
                json(&Jobs {
                    jobs: vec![
                        running(9, PROBLEM_UDID),
                        running_job,
                        job(2, &udid, JobState::Succeeded, at("done", 60.0, 1, 1, 100.0)),
                    ],
                }),
            ),
        ],
        events_after_post,
        hold_events: true,
        ..Plan::default()
    })
}

#[test]
fn a_busy_phone_exits_8_naming_its_job() {
    let daemon = busy_daemon(running(5, HEALTHY_UDID), Vec::new());
    let output = run_on(&daemon, &["--lang", "en", "backup", HEALTHY_UDID]);
    assert_eq!(output.code, exit::BUSY, "{}", output.transcript());
    assert_eq!(output.stdout, "");
    assert_snapshot("backup_busy.txt", &output.transcript());
}

#[test]
fn wait_on_a_busy_phone_follows_its_running_backup() {
    let mut done = job(
        5,
        HEALTHY_UDID,
        JobState::Succeeded,
        at("done", 125.0, 3_210_000_000, 4_321, 100.0),
    );
    done.verified_files = Some(4_321);
    let daemon = busy_daemon(running(5, HEALTHY_UDID), vec![finished_event(&done)]);
    let output = run_on(&daemon, &["--lang", "en", "backup", "--wait", HEALTHY_UDID]);
    assert_eq!(output.code, exit::OK, "{}", output.transcript());
    assert!(
        output
            .stderr
            .contains("A backup of this iPhone is already running (job 5): following it.")
    );
    assert_eq!(
        output.stdout,
        format!(
            "Backup of {HEALTHY_UDID} finished: 4321 files, 3.21 GB in 2 min 05 s; verified: 4321 files.\n"
        )
    );
}

#[test]
fn wait_does_not_follow_an_encryption_change() {
    let mut change = running(5, HEALTHY_UDID);
    change.kind = JobKind::Encryption;
    let daemon = busy_daemon(change, Vec::new());
    let output = run_on(&daemon, &["--lang", "en", "backup", "--wait", HEALTHY_UDID]);
    assert_eq!(output.code, exit::BUSY, "{}", output.transcript());
    assert!(
        output
            .stderr
            .starts_with("error: an encryption change of this iPhone is already running (job 5)\n")
    );
}

#[test]
fn without_wait_it_prints_the_job_and_how_to_follow_it() {
    let daemon = daemon(
        vec![detached_device(), problem_device()],
        202,
        json(&running(12, PROBLEM_UDID)),
        Vec::new(),
    );
    // No UDID: the only connected phone.
    let output = run_on(&daemon, &["--lang", "en", "backup"]);
    assert_eq!(output.code, exit::OK, "{}", output.transcript());
    assert_eq!(
        output.stdout,
        format!(
            "Started backup job 12 of {PROBLEM_UDID}.\nFollow it with `backupdctl backup --wait {PROBLEM_UDID}` or `backupdctl watch`; `backupdctl backup --cancel {PROBLEM_UDID}` stops it.\n"
        )
    );
    assert!(
        daemon
            .log()
            .contains(&format!("POST {}", backup_path(PROBLEM_UDID)))
    );
    assert!(!daemon.log().contains(&"GET /v1/events".to_owned()));
}

#[test]
fn without_a_udid_two_phones_are_a_usage_error_and_none_exits_6() {
    let daemon = daemon(
        vec![healthy_device(), problem_device()],
        202,
        json(&running(12, HEALTHY_UDID)),
        Vec::new(),
    );
    let output = run_on(&daemon, &["backup", "--wait"]);
    assert_eq!(output.code, exit::USAGE, "{}", output.transcript());
    assert_snapshot("backup_two_phones.txt", &output.transcript());
    assert!(!daemon.log().iter().any(|r| r.starts_with("POST")));

    let daemon = self::daemon(vec![detached_device()], 202, String::new(), Vec::new());
    let output = run_on(&daemon, &["backup"]);
    assert_eq!(output.code, exit::NOT_READY, "{}", output.transcript());
    assert!(output.stderr.starts_with("error: no iPhone is connected\n"));
    assert!(!daemon.log().iter().any(|r| r.starts_with("POST")));
}

#[test]
fn an_unplugged_or_unknown_phone_exits_4() {
    let daemon = FakeDaemon::start(Plan {
        routes: vec![Route::get(
            backupd_api::PATH_DEVICES,
            200,
            json(&status(vec![detached_device()])),
        )],
        ..Plan::default()
    });
    // The fake answers 404 to every POST it has no route for, as the daemon does for a phone not attached.
    let output = run_on(&daemon, &["backup", HEALTHY_UDID]);
    assert_eq!(output.code, exit::NOT_FOUND, "{}", output.transcript());
    assert!(output.stderr.starts_with(&format!(
        "error: phone {HEALTHY_UDID} is not connected, so it cannot be backed up\n"
    )));
    let output = run_on(&daemon, &["backup", PROBLEM_UDID]);
    assert_eq!(output.code, exit::NOT_FOUND, "{}", output.transcript());
    assert!(output.stderr.starts_with(&format!(
        "error: the daemon knows no phone {PROBLEM_UDID}\n"
    )));
}

#[test]
fn the_event_stream_ending_early_is_a_daemon_error() {
    let daemon = FakeDaemon::start(Plan {
        routes: vec![
            Route::post(
                &backup_path(HEALTHY_UDID),
                202,
                json(&running(7, HEALTHY_UDID)),
            ),
            Route::get("/v1/jobs/7", 200, json(&running(7, HEALTHY_UDID))),
        ],
        // Not held: the stream ends at once, with the job still running.
        ..Plan::default()
    });
    let output = run_on(&daemon, &["backup", "--wait", HEALTHY_UDID]);
    assert_eq!(output.code, exit::DAEMON_ERROR, "{}", output.transcript());
    assert!(
        output
            .stderr
            .contains("the daemon closed the event stream while job 7 was running"),
        "{}",
        output.stderr
    );
    assert!(daemon.log().contains(&"GET /v1/jobs/7".to_owned()));
}

fn cancel_daemon(
    jobs: Vec<Job>,
    status_code: u16,
    answer: &Job,
    events: Vec<String>,
) -> FakeDaemon {
    FakeDaemon::start(Plan {
        routes: vec![
            Route::get(
                backupd_api::PATH_DEVICES,
                200,
                json(&status(vec![healthy_device()])),
            ),
            Route::get(backupd_api::PATH_JOBS, 200, json(&Jobs { jobs })),
            Route::post(
                &format!("/v1/jobs/{}/cancel", answer.id),
                status_code,
                json(answer),
            ),
        ],
        events_after_post: events,
        hold_events: true,
        ..Plan::default()
    })
}

#[test]
fn cancel_stops_the_running_backup() {
    let cancelled = job(
        5,
        HEALTHY_UDID,
        JobState::Cancelled,
        at("transferring", 9.0, 1, 1, 3.0),
    );
    let daemon = cancel_daemon(
        vec![running(9, PROBLEM_UDID), running(5, HEALTHY_UDID)],
        202,
        &running(5, HEALTHY_UDID),
        vec![
            finished_event(&running(9, PROBLEM_UDID)),
            finished_event(&cancelled),
        ],
    );
    let output = run_on(&daemon, &["--lang", "en", "backup", "--cancel"]);
    assert_eq!(output.code, exit::OK, "{}", output.transcript());
    assert_eq!(
        output.stdout,
        format!("Cancelled backup job 5 of {HEALTHY_UDID}.\nThe previous backup is intact.\n")
    );
    assert!(daemon.log().contains(&"POST /v1/jobs/5/cancel".to_owned()));
    assert!(!daemon.log().contains(&"POST /v1/jobs/9/cancel".to_owned()));
}

#[test]
fn cancel_without_a_running_backup_exits_4() {
    let daemon = cancel_daemon(
        vec![
            running(9, PROBLEM_UDID),
            job(
                5,
                HEALTHY_UDID,
                JobState::Succeeded,
                at("done", 9.0, 1, 1, 100.0),
            ),
        ],
        200,
        &running(5, HEALTHY_UDID),
        Vec::new(),
    );
    let output = run_on(
        &daemon,
        &["--lang", "en", "backup", "--cancel", HEALTHY_UDID],
    );
    assert_eq!(output.code, exit::NOT_FOUND, "{}", output.transcript());
    assert!(output.stderr.starts_with(&format!(
        "error: no backup of phone {HEALTHY_UDID} is running\n"
    )));
    assert!(!daemon.log().iter().any(|r| r.starts_with("POST")));
}

#[test]
fn cancel_of_a_job_that_just_ended_exits_4() {
    let ended = job(
        5,
        HEALTHY_UDID,
        JobState::Succeeded,
        at("done", 9.0, 1, 1, 100.0),
    );
    let daemon = cancel_daemon(vec![running(5, HEALTHY_UDID)], 200, &ended, Vec::new());
    let output = run_on(
        &daemon,
        &["--lang", "en", "backup", "--cancel", HEALTHY_UDID],
    );
    assert_eq!(output.code, exit::NOT_FOUND, "{}", output.transcript());
    assert_eq!(
        output.stderr,
        "Job 5 ended before it could be stopped: succeeded.\n"
    );
}

#[test]
fn cancel_conflicts_with_wait_and_full() {
    for flag in ["--wait", "--full"] {
        let output = crate::common::run(&["backup", "--cancel", flag]);
        assert_eq!(output.code, exit::USAGE, "{flag}");
        assert!(
            output.stderr.contains("cannot be used with"),
            "{}",
            output.stderr
        );
    }
}

/// Ctrl-C needs a process of its own: these run the binary.
mod interrupt {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn ctrl_c_stops_waiting_and_leaves_the_backup_running() {
        let daemon = daemon(
            vec![healthy_device()],
            202,
            json(&running(7, HEALTHY_UDID)),
            vec![progress_event(&job(
                7,
                HEALTHY_UDID,
                JobState::Running,
                at("waiting_for_passcode", 1.0, 0, 0, 0.0),
            ))],
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_backupdctl"))
            .env_clear()
            .arg("--socket")
            .arg(daemon.socket())
            .args(["--lang", "en", "backup", "--wait"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run backupdctl");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // The progress shows once the CLI listens for Ctrl-C and follows the job.
        let first = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("a progress line");
        assert_eq!(first, "Preparing the backup");
        let second = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("a progress line");
        assert_eq!(
            second,
            "Enter your passcode on the iPhone to start the backup"
        );
        let killed = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("kill -INT");
        assert!(killed.success());
        let output = child.wait_with_output().expect("wait");
        let _ = reader.join();
        let rest: Vec<String> = rx.try_iter().collect();
        assert_eq!(output.status.code(), Some(130), "{rest:?}");
        assert!(
            rest.iter().any(|l| l.starts_with(
                "Stopped waiting; backup job 7 goes on in the daemon. `backupdctl backup --wait"
            )),
            "{rest:?}"
        );
        assert!(output.stdout.is_empty());
        // Detaching cancels nothing.
        assert!(!daemon.log().iter().any(|r| r.contains("cancel")));
    }
}

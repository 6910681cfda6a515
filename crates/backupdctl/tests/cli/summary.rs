//! `status` with several phones: one line per phone (1, 3 and 20 phones, both languages), a narrow terminal,
//! running jobs, and `--details` with the escalation plan printed once.

use backupd_api::{Device, JobState, Jobs, Status, exit};

use crate::backup::{at, job};
use crate::common::{
    FakeDaemon, HEALTHY_UDID, PROBLEM_UDID, Plan, Route, TRUST_UDID, assert_snapshot,
    healthy_device, json, problem_device, run_on, status, trust_device,
};

/// A daemon answering `GET /v1/devices` with `status` and `GET /v1/jobs` with `jobs`.
fn daemon(status: &Status, jobs: Jobs) -> FakeDaemon {
    FakeDaemon::start(Plan {
        routes: vec![
            Route::get(backupd_api::PATH_DEVICES, 200, json(status)),
            Route::get(backupd_api::PATH_JOBS, 200, json(&jobs)),
        ],
        ..Plan::default()
    })
}

fn three() -> Status {
    status(vec![healthy_device(), problem_device(), trust_device()])
}

fn running_backup_of_marco() -> Jobs {
    Jobs {
        jobs: vec![job(
            7,
            PROBLEM_UDID,
            JobState::Running,
            at("transferring", 30.0, 1_000_000, 12, 42.0),
        )],
    }
}

/// Twenty phones of a shop: the three kinds, in turn, each with its own UDID and name.
fn twenty() -> Status {
    let devices: Vec<Device> = (0..20)
        .map(|i| {
            let mut d = match i % 3 {
                0 => healthy_device(),
                1 => problem_device(),
                _ => trust_device(),
            };
            d.udid = format!("00008110-0000000000{i:06}");
            if d.name.is_some() {
                d.name = Some(format!("iPhone {:02}", i + 1));
            }
            d
        })
        .collect();
    status(devices)
}

fn check(name: &str, fixture: &Status, jobs: Jobs, extra: &[&str], code: i32) -> String {
    let daemon = daemon(fixture, jobs);
    let mut english = String::new();
    for lang in ["en", "it"] {
        let mut args = vec!["--lang", lang, "status"];
        args.extend_from_slice(extra);
        let output = run_on(&daemon, &args);
        assert_eq!(output.code, code, "{name} {lang}: {}", output.transcript());
        assert_snapshot(&format!("summary_{name}.{lang}.txt"), &output.transcript());
        if lang == "en" {
            english = output.stdout;
        }
    }
    english
}

#[test]
fn one_phone_is_the_full_report_as_before() {
    let out = check(
        "1",
        &status(vec![healthy_device()]),
        Jobs { jobs: vec![] },
        &[],
        exit::OK,
    );
    assert!(out.contains("== iPhone di Anna =="), "{out}");
    assert!(out.contains("Checked and passed"), "{out}");
}

#[test]
fn three_phones_one_line_each_with_the_worst_problem_and_the_running_job() {
    let out = check(
        "3",
        &three(),
        running_backup_of_marco(),
        &[],
        exit::PROBLEMS,
    );
    let lines: Vec<&str> = out.lines().collect();
    let row = |udid: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(udid))
            .copied()
            .unwrap_or_else(|| panic!("no line for {udid}:\n{out}"))
    };
    assert!(row(HEALTHY_UDID).contains("none"), "{out}");
    let marco = row(PROBLEM_UDID);
    assert!(
        marco.contains("3 · critical: The iPhone is not connected to a Wi-Fi network"),
        "{marco}"
    );
    assert!(marco.contains("backup 42%"), "{marco}");
    assert!(
        row(TRUST_UDID).contains("waiting for you on the phone"),
        "{out}"
    );
    assert!(
        !out.contains("If iCloud backup still does not work"),
        "{out}"
    );
    assert!(out.lines().count() < 12, "{out}");
}

#[test]
fn twenty_phones_fit_on_a_screen() {
    let out = check("20", &twenty(), Jobs { jobs: vec![] }, &[], exit::PROBLEMS);
    // The host line, a blank, the header, twenty phones, a blank and the hint.
    assert_eq!(out.lines().count(), 25, "{out}");
}

#[test]
fn a_narrow_terminal_cuts_the_problem_then_stacks_the_phones() {
    let out = check(
        "narrow",
        &three(),
        running_backup_of_marco(),
        &["--width", "170"],
        exit::PROBLEMS,
    );
    assert!(
        out.lines().all(|l| console::measure_text_width(l) <= 170),
        "{out}"
    );
    assert!(out.contains('…'), "{out}");
    let out = check(
        "stacked",
        &three(),
        running_backup_of_marco(),
        &["--width", "60"],
        exit::PROBLEMS,
    );
    for line in out.lines() {
        assert!(console::measure_text_width(line) <= 60, "{line:?}\n{out}");
    }
    assert!(out.contains("  problems: 3 · critical:"), "{out}");
}

#[test]
fn details_print_every_report_and_the_plan_once_after_them() {
    let out = check(
        "details",
        &three(),
        Jobs { jobs: vec![] },
        &["--details"],
        exit::PROBLEMS,
    );
    let heading = "\nIf iCloud backup still does not work\n";
    assert_eq!(out.matches(heading).count(), 1, "{out}");
    let plan = out.find(heading).expect("plan");
    for name in ["== iPhone di Anna ==", "== Marco’s iPhone =="] {
        assert!(out.find(name).is_some_and(|at| at < plan), "{name}\n{out}");
    }
    assert!(
        out.contains("Waiting for you to tap Trust on the phone."),
        "{out}"
    );
}

#[test]
fn json_is_unchanged_with_several_phones() {
    let fixture = three();
    let daemon = daemon(&fixture, running_backup_of_marco());
    let output = run_on(&daemon, &["status", "--json"]);
    let printed: serde_json::Value = serde_json::from_str(&output.stdout).expect("JSON");
    assert_eq!(printed, serde_json::to_value(&fixture).expect("fixture"));
}

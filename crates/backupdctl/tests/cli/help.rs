//! `--help` is part of the interface: snapshotted.

use backupd_api::exit;

use crate::common::{assert_snapshot, run};

#[test]
fn top_level_help() {
    let output = run(&["--help"]);
    assert_eq!(output.code, exit::OK);
    assert_eq!(output.stderr, "");
    assert_snapshot("help.txt", &output.stdout);
}

#[test]
fn status_help() {
    let output = run(&["status", "--help"]);
    assert_eq!(output.code, exit::OK);
    assert_snapshot("help_status.txt", &output.stdout);
}

#[test]
fn every_command_has_its_help() {
    for command in ["diagnose", "watch", "backup", "backups", "encryption"] {
        let output = run(&[command, "--help"]);
        assert_eq!(output.code, exit::OK);
        assert_snapshot(&format!("help_{command}.txt"), &output.stdout);
    }
}

#[test]
fn help_names_every_exit_code() {
    let output = run(&["--help"]);
    for code in [
        exit::OK,
        exit::PROBLEMS,
        exit::USAGE,
        exit::DAEMON_UNREACHABLE,
        exit::NOT_FOUND,
        exit::DAEMON_ERROR,
        exit::NOT_READY,
        exit::JOB_FAILED,
        exit::BUSY,
    ] {
        assert!(
            output.stdout.contains(&format!("\n  {code}  ")),
            "exit code {code} is not documented in --help"
        );
    }
}

#[test]
fn backup_help_tells_about_ctrl_c_and_the_passcode() {
    let output = run(&["backup", "--help"]);
    assert!(output.stdout.contains("Ctrl-C stops waiting (exit 130)"));
    let output = run(&["encryption", "--help"]);
    for needle in [
        "BACKUPD_BACKUP_PASSWORD",
        "BACKUPD_NEW_BACKUP_PASSWORD",
        "iOS 13 and later",
        "change-password",
    ] {
        assert!(output.stdout.contains(needle), "{needle}");
    }
}

#[test]
fn completions_and_man_page_can_be_built_from_the_command() {
    let command = backupdctl::command();
    assert_eq!(command.get_name(), "backupdctl");
    let names: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
    assert_eq!(
        names,
        [
            "status",
            "diagnose",
            "watch",
            "backup",
            "backups",
            "encryption"
        ]
    );
}

//! `backups UDID --inspect`: WhatsApp's chats in the newest backup, and the password of an encrypted one
//! going to the daemon in the request body only.

use std::process::Command;

use backupd_api::{Inspection, WhatsappInBackup, exit};

use crate::common::{FakeDaemon, HEALTHY_UDID, NOW, Plan, Route, json};

fn path() -> String {
    format!("/v1/devices/{HEALTHY_UDID}/inspect")
}

fn found(whatsapp: WhatsappInBackup) -> String {
    json(&Inspection {
        udid: HEALTHY_UDID.to_owned(),
        backup_date: Some(NOW - 3_600),
        whatsapp,
    })
}

fn chats() -> WhatsappInBackup {
    WhatsappInBackup::Chats {
        messages: 312,
        newest_message: Some(NOW - 7_200),
    }
}

fn backupdctl(
    daemon: &FakeDaemon,
    lang: &str,
    env: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backupdctl"));
    command
        .env_clear()
        .arg("--socket")
        .arg(daemon.socket())
        .args(["--lang", lang, "backups", HEALTHY_UDID, "--inspect"]);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("run backupdctl");
    (
        output.status.code(),
        String::from_utf8(output.stdout).expect("UTF-8"),
        String::from_utf8(output.stderr).expect("UTF-8"),
    )
}

#[test]
fn a_plain_backup_says_up_to_when_the_chats_are_safe() {
    let daemon = FakeDaemon::start(Plan {
        routes: vec![Route::post(&path(), 200, found(chats()))],
        ..Plan::default()
    });
    let (code, out, err) = backupdctl(&daemon, "en", &[]);
    assert_eq!(code, Some(exit::OK), "{out}{err}");
    assert_eq!(
        out,
        "The local backup of 2026-11-21 07:00 UTC holds 312 WhatsApp messages: your chats up to 2026-11-21 06:00 UTC are safe on this computer.\n"
    );
    let (_, out, _) = backupdctl(&daemon, "it", &[]);
    assert!(
        out.contains("le tue chat fino al 2026-11-21 06:00 UTC sono al sicuro"),
        "{out}"
    );
    // No password was asked for or sent.
    assert!(daemon.bodies().iter().all(|(_, b)| !b.contains("password")));
}

#[test]
fn the_password_from_the_environment_goes_in_the_request_body_only() {
    let daemon = FakeDaemon::start(Plan {
        routes: vec![Route::post(&path(), 200, found(chats()))],
        ..Plan::default()
    });
    let (code, out, err) = backupdctl(
        &daemon,
        "en",
        &[("BACKUPD_BACKUP_PASSWORD", "giulia-backup")],
    );
    assert_eq!(code, Some(exit::OK), "{out}{err}");
    assert!(out.contains("312 WhatsApp messages"), "{out}");
    assert!(!out.contains("giulia-backup") && !err.contains("giulia-backup"));
    let bodies = daemon.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(
        bodies[0].1.contains("\"password\":\"giulia-backup\""),
        "{bodies:?}"
    );
}

#[test]
fn without_a_password_or_a_terminal_it_says_how_to_give_one() {
    let daemon = FakeDaemon::start(Plan {
        routes: vec![Route::post(
            &path(),
            200,
            found(WhatsappInBackup::Encrypted),
        )],
        ..Plan::default()
    });
    let (code, out, _) = backupdctl(&daemon, "en", &[]);
    assert_eq!(code, Some(exit::USAGE), "{out}");
    assert!(
        out.contains("BACKUPD_BACKUP_PASSWORD") && out.contains("--inspect"),
        "{out}"
    );
}

#[test]
fn a_backup_the_daemon_cannot_read_is_a_daemon_error() {
    let daemon = FakeDaemon::start(Plan {
        routes: vec![Route::post(
            &path(),
            422,
            r#"{"error":{"code":"unreadable","message":"cannot read WhatsApp's chat database: file is not a database"}}"#,
        )],
        ..Plan::default()
    });
    let (code, _, err) = backupdctl(&daemon, "en", &[]);
    assert_eq!(code, Some(exit::DAEMON_ERROR), "{err}");
    assert!(err.contains("not a database"), "{err}");
}

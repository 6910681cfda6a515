//! Encrypted backups through the daemon and the real `backupdctl`: encryption turned on, off and on again,
//! a backup checked in full with the password, `backups --check-password` (exit 0, 9, 4), and the rules saying
//! when the password was checked.

use backupd_api::{Event, Job, JobState, Phase, Status, exit};
use backupd_e2e::{DaemonRig, Events, SimRig, ctl_env, decrypt_with_peer};
use backupd_sim::profile::builtin;

const UDID: &str = "00008110-001A2B3C4D5E6F01";
const FIRST: &str = "prima password";
const SECOND: &str = "seconda password";
const THIRD: &str = "terza password";

fn ready(s: &Status) -> bool {
    s.devices
        .iter()
        .any(|d| d.udid == UDID && d.phase == Phase::Ready)
}

fn check_of(s: &Status, id: &str) -> Option<serde_json::Value> {
    let d = s.devices.iter().find(|d| d.udid == UDID)?;
    let v = serde_json::to_value(d.diagnosis.as_ref()?).ok()?;
    v["checks"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
}

async fn finished(events: &mut Events, id: u64) -> Job {
    match events
        .wait_for(
            120,
            |e| matches!(e, Event::JobFinished { job } if job.id == id),
        )
        .await
    {
        Event::JobFinished { job } => job,
        _ => unreachable!("matched above"),
    }
}

/// Runs `backupdctl` with the password in `BACKUPD_BACKUP_PASSWORD` (and the new one when given).
async fn ctl_pw(
    daemon: &DaemonRig,
    args: &[&str],
    current: Option<&str>,
    new: Option<&str>,
) -> std::process::Output {
    let mut env = Vec::new();
    if let Some(p) = current {
        env.push(("BACKUPD_BACKUP_PASSWORD", p));
    }
    if let Some(p) = new {
        env.push(("BACKUPD_NEW_BACKUP_PASSWORD", p));
    }
    ctl_env(&daemon.api, "en", args, &env).await
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_off_on_then_a_full_check_with_the_password_and_password_checks_by_exit_code() {
    let mut profile = builtin("healthy").expect("profile");
    profile.backup.kdf_iterations = 10;
    profile.backup.kdf_dp_iterations = 100;
    let sim = SimRig::start(vec![profile]).await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    daemon.wait_for(20, "a diagnosis", ready).await;

    // No encrypted backup yet: nothing to check a password against.
    let none = ctl_pw(
        &daemon,
        &["backups", UDID, "--check-password"],
        Some(FIRST),
        None,
    )
    .await;
    assert_eq!(none.status.code(), Some(exit::NOT_FOUND), "{}", text(&none));

    // On, off, on again with another password, each through the daemon as a job.
    for (args, current, new) in [
        (vec!["encryption", "on", UDID], None, Some(FIRST)),
        (vec!["encryption", "off", UDID], Some(FIRST), None),
        (vec!["encryption", "on", UDID], None, Some(SECOND)),
    ] {
        let o = ctl_pw(&daemon, &args, current, new).await;
        assert_eq!(o.status.code(), Some(exit::OK), "{args:?}: {}", text(&o));
        assert!(
            !text(&o).contains(FIRST) && !text(&o).contains(SECOND),
            "a password was printed"
        );
    }

    // A backup checked in full with the password.
    let o = ctl_pw(
        &daemon,
        &["backup", UDID, "--full", "--wait", "--password"],
        Some(SECOND),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(exit::OK), "{}", text(&o));
    assert!(
        text(&o).contains("opened with your password"),
        "{}",
        text(&o)
    );
    let folder = daemon.backup_dir.join(UDID);
    let opened = decrypt_with_peer(&folder, SECOND, &[])
        .await
        .expect("the new password opens it");
    assert!(opened.rows > 0);
    assert!(
        matches!(
            decrypt_with_peer(&folder, FIRST, &[]).await,
            Err((Some(3), _))
        ),
        "the old password no longer opens the new backup"
    );
    // The full check counts as a password check: the rules say when.
    let status = daemon
        .wait_for(20, "the password check seen by the rules", |s| {
            check_of(s, "backup.encryption_on").is_some_and(|c| {
                c["evidence"].to_string().contains("password_checked")
                    && !c["evidence"].to_string().contains("never")
            })
        })
        .await;
    let check = check_of(&status, "backup.encryption_on").expect("the check");
    assert_eq!(check["outcome"], "problem", "{check}");

    // backups --check-password: 0 for the right one, 9 for a wrong one, and the listing says it was checked.
    let right = ctl_pw(
        &daemon,
        &["backups", UDID, "--check-password"],
        Some(SECOND),
        None,
    )
    .await;
    assert_eq!(right.status.code(), Some(exit::OK), "{}", text(&right));
    assert!(
        text(&right).contains("The password opens the newest backup"),
        "{}",
        text(&right)
    );
    let wrong = ctl_pw(
        &daemon,
        &["backups", UDID, "--check-password"],
        Some(FIRST),
        None,
    )
    .await;
    assert_eq!(
        wrong.status.code(),
        Some(exit::WRONG_PASSWORD),
        "{}",
        text(&wrong)
    );
    assert!(
        text(&wrong).contains("wrong backup password"),
        "{}",
        text(&wrong)
    );
    let listing = ctl_pw(&daemon, &["backups", UDID], None, None).await;
    assert!(
        text(&listing).contains("The password was checked on"),
        "{}",
        text(&listing)
    );

    // The status text says it too.
    let shown = ctl_pw(&daemon, &["status", UDID], None, None).await;
    assert!(
        text(&shown).contains("The password was checked on"),
        "{}",
        text(&shown)
    );

    // Changing the password: the phone checks the current one (207 when wrong), and the next backup is
    // sealed with the new one, which makes the earlier check stale.
    let refused = ctl_pw(
        &daemon,
        &["encryption", "change-password", UDID],
        Some(FIRST),
        Some(THIRD),
    )
    .await;
    assert_eq!(
        refused.status.code(),
        Some(exit::JOB_FAILED),
        "{}",
        text(&refused)
    );
    assert!(text(&refused).contains("207"), "{}", text(&refused));
    let changed = ctl_pw(
        &daemon,
        &["encryption", "change-password", UDID],
        Some(SECOND),
        Some(THIRD),
    )
    .await;
    assert_eq!(changed.status.code(), Some(exit::OK), "{}", text(&changed));
    let o = ctl_pw(&daemon, &["backup", UDID, "--wait"], None, None).await;
    assert_eq!(o.status.code(), Some(exit::OK), "{}", text(&o));
    assert!(
        decrypt_with_peer(&folder, THIRD, &[]).await.is_ok(),
        "the new password opens the backup"
    );
    let stale = ctl_pw(&daemon, &["backups", UDID], None, None).await;
    assert!(
        !text(&stale).contains("The password was checked on"),
        "{}",
        text(&stale)
    );
    let old = ctl_pw(
        &daemon,
        &["backups", UDID, "--check-password"],
        Some(SECOND),
        None,
    )
    .await;
    assert_eq!(
        old.status.code(),
        Some(exit::WRONG_PASSWORD),
        "{}",
        text(&old)
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_for_a_backup_keeps_the_backup_and_exits_9_and_nothing_is_recorded() {
    let profile = backupd_e2e::encrypted_profile("healthy", SECOND);
    let sim = SimRig::start(vec![profile]).await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    daemon.wait_for(20, "a diagnosis", ready).await;
    let mut events = Events::subscribe(&daemon.api).await;
    let o = ctl_pw(
        &daemon,
        &["backup", UDID, "--wait", "--password"],
        Some(FIRST),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(exit::WRONG_PASSWORD), "{}", text(&o));
    assert!(text(&o).contains("complete and kept"), "{}", text(&o));
    let jobs = daemon.get(backupd_api::PATH_JOBS).await.1;
    let jobs: backupd_api::Jobs = serde_json::from_str(&jobs).expect("jobs");
    let job = &jobs.jobs[0];
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.password_ok, Some(false));
    assert_eq!(job.verify_method.as_deref(), Some("structure"));
    let listing = ctl_pw(&daemon, &["backups", UDID], None, None).await;
    assert!(
        !text(&listing).contains("The password was checked on"),
        "a wrong password is no check: {}",
        text(&listing)
    );
    assert!(
        text(&listing).contains("checked by its structure"),
        "{}",
        text(&listing)
    );
    // A job with the right password afterwards is a full check.
    let id = {
        let o = ctl_pw(&daemon, &["backup", UDID, "--password"], Some(SECOND), None).await;
        assert_eq!(o.status.code(), Some(exit::OK), "{}", text(&o));
        let jobs = daemon.get(backupd_api::PATH_JOBS).await.1;
        let jobs: backupd_api::Jobs = serde_json::from_str(&jobs).expect("jobs");
        jobs.jobs[0].id
    };
    let done = finished(&mut events, id).await;
    assert_eq!(done.verify_method.as_deref(), Some("decrypted"), "{done:?}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_chats_are_found_inside_an_encrypted_backup_with_the_password() {
    // The WhatsApp phone as it ships (encrypted backups), with test-sized key derivation.
    let mut profile = builtin("icloud-full-whatsapp").expect("profile");
    profile.backup.kdf_iterations = 10;
    profile.backup.kdf_dp_iterations = 100;
    let password = profile
        .backup
        .password
        .clone()
        .expect("the profile's password");
    let udid = profile.identity.udid.clone();
    let sim = SimRig::start(vec![profile]).await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    daemon
        .wait_for(20, "a diagnosis", |s| {
            s.devices
                .iter()
                .any(|d| d.udid == udid && d.phase == Phase::Ready)
        })
        .await;
    let o = ctl_env(&daemon.api, "en", &["backup", &udid, "--wait"], &[]).await;
    assert_eq!(o.status.code(), Some(exit::OK), "{}", text(&o));
    // Without the password the chats cannot be read; with it they are, and the counts are the phone's.
    let locked = ctl_env(&daemon.api, "en", &["backups", &udid, "--inspect"], &[]).await;
    assert_ne!(locked.status.code(), Some(exit::OK), "{}", text(&locked));
    let opened = ctl_env(
        &daemon.api,
        "en",
        &["backups", &udid, "--inspect"],
        &[("BACKUPD_BACKUP_PASSWORD", password.as_str())],
    )
    .await;
    assert_eq!(opened.status.code(), Some(exit::OK), "{}", text(&opened));
    assert!(text(&opened).contains("312"), "{}", text(&opened));
    let wrong = ctl_env(
        &daemon.api,
        "en",
        &["backups", &udid, "--inspect"],
        &[("BACKUPD_BACKUP_PASSWORD", "not it")],
    )
    .await;
    assert_ne!(wrong.status.code(), Some(exit::OK), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("wrong backup password"),
        "{}",
        text(&wrong)
    );
    daemon.stop().await;
}

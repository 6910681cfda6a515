//! The real `backupdctl` against the real daemon and the simulated phone, as a person uses them.

use backupd_api::{Phase, exit};
use backupd_e2e::{DaemonRig, SimRig, ctl};

const UDID: &str = "00008110-001A2B3C4D5E6F01";

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_then_a_backup_then_every_check_passes() {
    let sim = SimRig::builtin("healthy").await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    daemon
        .wait_for(20, "a diagnosis", |s| {
            s.devices.iter().any(|d| d.phase == Phase::Ready)
        })
        .await;

    let out = ctl(&daemon.api, "en", &["status"]).await;
    assert_eq!(out.status.code(), Some(exit::PROBLEMS), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("iPhone di Anna"), "{said}");
    assert!(said.contains("backup.local_missing"), "{said}");

    let out = ctl(&daemon.api, "en", &["backup", "--wait"]).await;
    assert_eq!(out.status.code(), Some(exit::OK), "{}", text(&out));
    assert!(
        text(&out).to_lowercase().contains("verified"),
        "{}",
        text(&out)
    );

    let out = ctl(&daemon.api, "en", &["backups", UDID]).await;
    assert_eq!(out.status.code(), Some(exit::OK), "{}", text(&out));
    assert!(text(&out).contains("current"), "{}", text(&out));

    // The daemon diagnoses again after the backup; `diagnose` waits for it.
    let out = ctl(&daemon.api, "it", &["diagnose", UDID]).await;
    assert_eq!(
        out.status.code(),
        Some(exit::OK),
        "every check passes now:\n{}",
        text(&out)
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_daemon_says_how_to_start_it() {
    let dir = tempfile::tempdir().expect("dir");
    let out = ctl(&dir.path().join("nothing.sock"), "en", &["status"]).await;
    assert_eq!(out.status.code(), Some(exit::DAEMON_UNREACHABLE));
    let said = text(&out);
    assert!(said.contains("nothing.sock"), "{said}");
    assert!(said.contains("backupd"), "{said}");
}

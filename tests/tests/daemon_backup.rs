//! Backups as daemon jobs, over the real API: start, progress, finish, cancel, busy, and the rules seeing
//! the result.

use backupd_api::{Event, Job, JobState, Phase, Status};
use backupd_e2e::{DaemonRig, Events, SimRig};
use backupd_sim::profile::builtin;

const UDID: &str = "00008110-001A2B3C4D5E6F01";

fn ready(s: &Status) -> bool {
    s.devices
        .iter()
        .any(|d| d.udid == UDID && d.phase == Phase::Ready)
}

fn outcome(s: &Status, id: &str) -> Option<String> {
    let d = s.devices.iter().find(|d| d.udid == UDID)?;
    let v = serde_json::to_value(d.diagnosis.as_ref()?).ok()?;
    v["checks"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
        .and_then(|c| c["outcome"].as_str().map(str::to_owned))
}

async fn post_json(api: &std::path::Path, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(api).await.expect("connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (
        head.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        body.to_owned(),
    )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_job_completes_verifies_and_changes_the_diagnosis() {
    let sim = SimRig::builtin("healthy").await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    let status = daemon.wait_for(20, "a diagnosis", ready).await;
    assert_eq!(
        outcome(&status, "backup.local_missing").as_deref(),
        Some("problem")
    );
    let mut events = Events::subscribe(&daemon.api).await;
    let (code, body) = post_json(&daemon.api, &format!("/v1/devices/{UDID}/backup"), "{}").await;
    assert_eq!(code, 202, "{body}");
    let job: Job = serde_json::from_str(&body).expect("job");
    assert_eq!(job.state, JobState::Running);
    let progress = events.wait_for(60, |e| matches!(e, Event::JobProgress { job: j } if j.id == job.id && j.progress.bytes > 0)).await;
    assert!(matches!(progress, Event::JobProgress { .. }));
    let done = finished(&mut events, job.id).await;
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert!(done.verified_files.is_some_and(|n| n > 10), "{done:?}");
    assert_eq!(done.progress.stage, "done");

    let (code, body) = daemon.get(&format!("/v1/devices/{UDID}/backups")).await;
    assert_eq!(code, 200);
    let list: backupd_api::BackupList = serde_json::from_str(&body).expect("list");
    assert_eq!(list.backups.len(), 1);
    assert!(list.backups[0].verified);
    assert_eq!(list.backups[0].ios_version.as_deref(), Some("17.5.1"));

    // The rules see the verified backup: nothing is missing any more, and DFU is no longer locked.
    let status = daemon
        .wait_for(20, "the diagnosis after the backup", |s| {
            outcome(s, "backup.local_missing").as_deref() == Some("pass")
        })
        .await;
    let device = status
        .devices
        .iter()
        .find(|d| d.udid == UDID)
        .expect("device");
    let diagnosis = device.diagnosis.as_ref().expect("diagnosis");
    assert!(
        diagnosis.escalation.dfu_offered,
        "a fresh verified backup unlocks the DFU stage"
    );
    let (code, body) = daemon.get("/v1/jobs").await;
    assert_eq!(code, 200);
    assert!(body.contains("\"succeeded\""));
    daemon.stop().await;

    // The history survives a restart of the daemon.
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    let (code, body) = daemon.get(&format!("/v1/jobs/{}", job.id)).await;
    assert_eq!(code, 200, "{body}");
    let kept: Job = serde_json::from_str(&body).expect("job");
    assert_eq!(kept.state, JobState::Succeeded);
    assert_eq!(kept.verified_files, done.verified_files);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_job_is_busy_and_a_cancelled_one_leaves_the_previous_backup() {
    let mut profile = builtin("healthy").expect("profile");
    // The phone waits for its passcode: the job stays running until cancelled.
    profile.backup.faults.passcode_prompt = true;
    profile.backup.faults.passcode_timeout_secs = 60;
    let sim = SimRig::start(vec![profile]).await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    daemon.wait_for(20, "a diagnosis", ready).await;
    let mut events = Events::subscribe(&daemon.api).await;
    let (code, body) = post_json(
        &daemon.api,
        &format!("/v1/devices/{UDID}/backup"),
        r#"{"full": true}"#,
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let job: Job = serde_json::from_str(&body).expect("job");
    assert!(job.full);
    events
        .wait_for(30, |e| matches!(e, Event::JobProgress { job: j } if j.id == job.id && j.progress.stage == "waiting_for_passcode"))
        .await;
    let (code, body) = post_json(&daemon.api, &format!("/v1/devices/{UDID}/backup"), "").await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("\"busy\""));
    let (code, _) = daemon.post(&format!("/v1/jobs/{}/cancel", job.id)).await;
    assert_eq!(code, 202);
    let done = finished(&mut events, job.id).await;
    assert_eq!(done.state, JobState::Cancelled);
    let status = daemon
        .wait_for(20, "the leftover seen by the rules", |s| {
            outcome(s, "backup.unfinished_leftover").as_deref() == Some("problem")
        })
        .await;
    assert_eq!(
        outcome(&status, "backup.local_missing").as_deref(),
        Some("problem")
    );
    let (code, _) = daemon.post("/v1/jobs/999/cancel").await;
    assert_eq!(code, 404);
    let (code, _) = post_json(
        &daemon.api,
        "/v1/devices/00008110-FFFFFFFFFFFFFFFF/backup",
        "{}",
    )
    .await;
    assert_eq!(code, 404);
    let (code, _) = post_json(&daemon.api, "/v1/devices/0000/backup", "{}").await;
    assert_eq!(code, 400);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_is_turned_on_and_the_rules_see_it() {
    let sim = SimRig::builtin("healthy").await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    let status = daemon.wait_for(20, "a diagnosis", ready).await;
    assert_eq!(
        outcome(&status, "backup.encryption_on").as_deref(),
        Some("pass")
    );
    let (code, _) = post_json(
        &daemon.api,
        &format!("/v1/devices/{UDID}/encryption"),
        r#"{"action":"on"}"#,
    )
    .await;
    assert_eq!(code, 400, "turning encryption on needs a password");
    let mut events = Events::subscribe(&daemon.api).await;
    let (code, body) = post_json(
        &daemon.api,
        &format!("/v1/devices/{UDID}/encryption"),
        r#"{"action":"on","new_password":"correct horse"}"#,
    )
    .await;
    assert_eq!(code, 202, "{body}");
    assert!(
        !body.contains("correct horse"),
        "the password never comes back"
    );
    let job: Job = serde_json::from_str(&body).expect("job");
    let done = finished(&mut events, job.id).await;
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    daemon
        .wait_for(20, "encryption seen by the rules", |s| {
            outcome(s, "backup.encryption_on").as_deref() == Some("problem")
        })
        .await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_asked_before_trust_waits_and_pairs_only_once() {
    let mut profile = builtin("healthy").expect("profile");
    profile.pairing.trust = backupd_sim::profile::TrustPolicy::Manual;
    let sim = SimRig::start(vec![profile]).await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    daemon
        .wait_for(20, "the phone attached", |s| {
            s.devices.iter().any(|d| d.udid == UDID && d.connected)
        })
        .await;
    let mut events = Events::subscribe(&daemon.api).await;
    let (code, body) = post_json(&daemon.api, &format!("/v1/devices/{UDID}/backup"), "{}").await;
    assert_eq!(code, 202, "{body}");
    let job: Job = serde_json::from_str(&body).expect("job");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let phone = sim.sim.muxd().phone(UDID).expect("phone");
    assert!(
        phone.trusted_hosts().is_empty(),
        "nothing is trusted before the tap"
    );
    phone.answer_trust(backupd_sim::TrustAnswer::Trust);
    let done = finished(&mut events, job.id).await;
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(
        phone.trusted_hosts().len(),
        1,
        "the job used the phone task's pairing, not its own"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_backup_the_whatsapp_check_says_which_chats_are_safe_here() {
    // The WhatsApp phone without backup encryption, so the chat database in its backup can be read.
    let mut profile = builtin("icloud-full-whatsapp").expect("profile");
    profile.backup.password = None;
    if let Some(d) = profile.lockdown.get_mut("com.apple.mobile.backup") {
        d.insert("WillEncrypt".into(), toml::Value::Boolean(false));
    }
    let udid = profile.identity.udid.clone();
    let sim = SimRig::start(vec![profile]).await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    let is_ready = |s: &Status| {
        s.devices
            .iter()
            .any(|d| d.udid == udid && d.phase == Phase::Ready)
    };
    daemon.wait_for(20, "a diagnosis", is_ready).await;
    let mut events = Events::subscribe(&daemon.api).await;
    let (code, body) = post_json(&daemon.api, &format!("/v1/devices/{udid}/backup"), "{}").await;
    assert_eq!(code, 202, "{body}");
    let job: Job = serde_json::from_str(&body).expect("job");
    let done = finished(&mut events, job.id).await;
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");

    let first_step = |s: &Status| -> Option<String> {
        let d = s.devices.iter().find(|d| d.udid == udid)?;
        let f = d
            .diagnosis
            .as_ref()?
            .findings
            .iter()
            .find(|f| f.id.as_str() == "whatsapp.icloud_backup")?;
        Some(f.remedies.first()?.text.render(backupd_rules::Lang::En))
    };
    let status = daemon
        .wait_for(20, "the WhatsApp chats in the diagnosis", |s| {
            first_step(s).is_some_and(|t| t.contains("are safe on this computer"))
        })
        .await;
    let said = first_step(&status).unwrap_or_default();
    assert!(
        said.contains("up to 2026-11-20 21:47 UTC") && said.contains("312 messages"),
        "{said}"
    );

    // The usbmuxd evidence names the socket the daemon really uses, not the default one.
    let device = status
        .devices
        .iter()
        .find(|d| d.udid == udid)
        .expect("device");
    let check = device
        .diagnosis
        .as_ref()
        .and_then(|d| d.check(backupd_rules::CheckId::UsbmuxdUnavailable))
        .expect("usbmuxd check");
    let source = format!("{:?}", check.evidence[0].source);
    assert!(
        source.contains(&sim.socket.display().to_string()) && !source.contains("/var/run/usbmuxd"),
        "{source}"
    );

    // `backups UDID --inspect` asks the daemon to look now: the same rows.
    let (code, body) = post_json(&daemon.api, &format!("/v1/devices/{udid}/inspect"), "{}").await;
    assert_eq!(code, 200, "{body}");
    let found: backupd_api::Inspection = serde_json::from_str(&body).expect("inspection");
    assert_eq!(
        found.whatsapp,
        backupd_api::WhatsappInBackup::Chats {
            messages: 312,
            newest_message: Some(1_795_211_220),
        }
    );
    daemon.stop().await;
}

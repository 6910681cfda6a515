//! backupd against the simulator: plug in a phone and get a diagnosis, over the real API socket.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use backupd_api::{Event, MuxerState, Phase, Status};
use backupd_e2e::{DaemonRig, Events, SimRig};
use backupd_sim::profile::{TrustPolicy, builtin};
use backupd_sim::{Config, Simulator, TrustAnswer};

const HEALTHY: &str = "00008110-001A2B3C4D5E6F01";
const NO_WIFI: &str = "00008101-000E1D2C3B4A5F02";
const WHATSAPP: &str = "6d1f9a3b2c4e5f60718293a4b5c6d7e8f9012345";

fn ready(status: &Status, udid: &str) -> bool {
    status
        .devices
        .iter()
        .any(|d| d.udid == udid && d.phase == Phase::Ready && d.diagnosis.is_some())
}

fn outcomes(status: &Status, udid: &str) -> BTreeMap<String, String> {
    let device = status
        .devices
        .iter()
        .find(|d| d.udid == udid)
        .expect("device listed");
    let diagnosis = device.diagnosis.as_ref().expect("diagnosis");
    let json = serde_json::to_value(diagnosis).expect("json");
    json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().expect("id").to_owned(),
                c["outcome"].as_str().expect("outcome").to_owned(),
            )
        })
        .collect()
}

fn findings(status: &Status, udid: &str) -> Vec<String> {
    let Some(device) = status.devices.iter().find(|d| d.udid == udid) else {
        return Vec::new();
    };
    device
        .diagnosis
        .as_ref()
        .map(|d| {
            d.findings
                .iter()
                .map(|f| f.id.as_str().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_gives_a_diagnosis_with_the_phones_problems() {
    let sim = SimRig::builtin("wifi-off-no-charger").await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    let status = daemon
        .wait_for(20, "a diagnosis", |s| ready(s, NO_WIFI))
        .await;
    let device = &status.devices[0];
    assert_eq!(device.name.as_deref(), Some("iPhone di Marco"));
    assert_eq!(device.product_version.as_deref(), Some("16.7.8"));
    assert!(device.connected);
    let o = outcomes(&status, NO_WIFI);
    assert_eq!(o["wifi.not_connected"], "problem");
    assert_eq!(o["power.not_charging"], "problem");
    assert_eq!(o["pairing.trust_pending"], "pass");
    assert_eq!(o["whatsapp.icloud_backup"], "pass");
    assert_eq!(o["backup.local_missing"], "problem");
    assert_eq!(status.host.usbmuxd, MuxerState::Connected);
    // The daemon paired through usbmuxd like any host: the simulated muxer holds the record.
    assert!(sim.pair_dir().join(format!("{NO_WIFI}.plist")).is_file());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phones_at_once_with_different_problems() {
    let sim = SimRig::start(vec![
        builtin("healthy").expect("p"),
        builtin("icloud-full-whatsapp").expect("p"),
    ])
    .await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    let status = daemon
        .wait_for(30, "two diagnoses", |s| {
            ready(s, HEALTHY) && ready(s, WHATSAPP)
        })
        .await;
    let healthy = findings(&status, HEALTHY);
    let whatsapp = findings(&status, WHATSAPP);
    assert_eq!(
        healthy,
        ["backup.local_missing"],
        "the healthy phone only lacks a local backup"
    );
    for id in [
        "icloud.storage_likely_insufficient",
        "icloud.backup_stale",
        "whatsapp.icloud_backup",
        "backup.encryption_on",
    ] {
        assert!(
            whatsapp.iter().any(|f| f == id),
            "{id} missing from {whatsapp:?}"
        );
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_and_reattach_are_reported_and_rediagnosed() {
    let sim = SimRig::builtin("healthy").await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    daemon
        .wait_for(20, "a diagnosis", |s| ready(s, HEALTHY))
        .await;
    let mut events = Events::subscribe(&daemon.api).await;

    assert!(sim.sim.muxd().detach(HEALTHY));
    events
        .wait_for(
            10,
            |e| matches!(e, Event::Detached { udid } if udid == HEALTHY),
        )
        .await;
    let status = daemon
        .wait_for(10, "detached", |s| s.devices.iter().any(|d| !d.connected))
        .await;
    assert_eq!(status.devices[0].phase, Phase::Detached);
    assert!(
        status.devices[0].diagnosis.is_some(),
        "the last diagnosis is kept"
    );

    assert!(sim.sim.muxd().attach(HEALTHY));
    events
        .wait_for(
            10,
            |e| matches!(e, Event::Attached { udid } if udid == HEALTHY),
        )
        .await;
    events
        .wait_for(
            20,
            |e| matches!(e, Event::DiagnosisReady { udid, .. } if udid == HEALTHY),
        )
        .await;
    let status = daemon
        .wait_for(10, "ready again", |s| {
            ready(s, HEALTHY) && s.devices[0].connected
        })
        .await;
    assert_eq!(
        status.devices.len(),
        1,
        "the same phone, not a second entry"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_pending_then_accepted() {
    let mut profile = builtin("healthy").expect("profile");
    profile.pairing.trust = TrustPolicy::Manual;
    let sim = SimRig::start(vec![profile]).await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    let mut events = Events::subscribe(&daemon.api).await;
    let ev = events
        .wait_for(20, |e| matches!(e, Event::TrustNeeded { .. }))
        .await;
    assert_eq!(
        ev,
        Event::TrustNeeded {
            udid: HEALTHY.into(),
            finding: "pairing.trust_pending".into()
        }
    );
    let status = daemon
        .wait_for(10, "waiting for the person", |s| {
            s.devices
                .first()
                .is_some_and(|d| d.phase == Phase::WaitingForUser)
        })
        .await;
    let found = findings(&status, HEALTHY);
    assert_eq!(
        found.first().map(String::as_str),
        Some("pairing.trust_pending"),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .all(|f| f.starts_with("pairing.") || f.starts_with("backup.")),
        "only host facts besides trust: {found:?}"
    );
    assert_eq!(
        outcomes(&status, HEALTHY)["wifi.not_connected"],
        "unknown",
        "nothing is readable yet"
    );

    sim.sim
        .muxd()
        .phone(HEALTHY)
        .expect("phone")
        .answer_trust(TrustAnswer::Trust);
    let status = daemon
        .wait_for(20, "trusted and read", |s| ready(s, HEALTHY))
        .await;
    assert_eq!(findings(&status, HEALTHY), ["backup.local_missing"]);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_phone_asks_to_be_unlocked() {
    let mut profile = builtin("healthy").expect("profile");
    profile.pairing.locked = true;
    let sim = SimRig::start(vec![profile]).await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    let status = daemon
        .wait_for(20, "a passcode finding", |s| {
            findings(s, HEALTHY)
                .iter()
                .any(|f| f == "pairing.passcode_required")
        })
        .await;
    assert_eq!(status.devices[0].phase, Phase::WaitingForUser);
    sim.sim
        .muxd()
        .phone(HEALTHY)
        .expect("phone")
        .set_locked(false);
    daemon
        .wait_for(20, "read after unlock", |s| ready(s, HEALTHY))
        .await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usbmuxd_going_away_and_coming_back() {
    let rig = SimRig::builtin("healthy").await;
    let daemon = DaemonRig::start(rig.dir.path(), &rig.socket).await;
    daemon
        .wait_for(20, "a diagnosis", |s| ready(s, HEALTHY))
        .await;
    let mut events = Events::subscribe(&daemon.api).await;

    let SimRig { dir, sim, socket } = rig;
    sim.shutdown().await;
    events
        .wait_for(10, |e| matches!(e, Event::UsbmuxdUnavailable { .. }))
        .await;
    let status = daemon
        .wait_for(10, "usbmuxd unavailable", |s| {
            s.host.usbmuxd == MuxerState::Unavailable
        })
        .await;
    let host = status.host.diagnosis.as_ref().expect("host diagnosis");
    assert_eq!(
        host.findings
            .iter()
            .map(|f| f.id.as_str())
            .collect::<Vec<_>>(),
        ["host.usbmuxd_unavailable"]
    );
    assert!(
        !status.devices[0].connected,
        "no phone is reachable without usbmuxd"
    );

    // usbmuxd restarts on the same socket with its records: the daemon reconnects by itself.
    let sim = Simulator::start(Config {
        socket: socket.clone(),
        tcp: None,
        control: None,
        state_dir: dir.path().join("state"),
        profiles: vec![builtin("healthy").expect("profile")],
    })
    .await
    .expect("simulator restarts");
    events
        .wait_for(40, |e| matches!(e, Event::UsbmuxdAvailable))
        .await;
    let status = daemon
        .wait_for(20, "read again", |s| {
            ready(s, HEALTHY) && s.devices[0].connected
        })
        .await;
    assert_eq!(status.host.usbmuxd, MuxerState::Connected);
    assert!(
        status
            .host
            .diagnosis
            .as_ref()
            .is_some_and(|d| d.findings.is_empty())
    );
    daemon.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_status_clients() {
    let sim = SimRig::builtin("healthy").await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    daemon
        .wait_for(20, "a diagnosis", |s| ready(s, HEALTHY))
        .await;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let api = daemon.api.clone();
        clients
            .spawn(async move { backupd_e2e::http(&api, "GET", backupd_api::PATH_DEVICES).await });
    }
    let mut answered = 0;
    while let Some(r) = clients.join_next().await {
        let (code, body) = r.expect("client task");
        assert_eq!(code, 200);
        let status: Status = serde_json::from_str(&body).expect("status JSON");
        assert!(ready(&status, HEALTHY));
        answered += 1;
    }
    assert_eq!(answered, 50);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_shape_is_the_documented_contract() {
    let sim = SimRig::builtin("icloud-full-whatsapp").await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    daemon
        .wait_for(20, "a diagnosis", |s| ready(s, WHATSAPP))
        .await;
    let (code, body) = daemon.get("/v1/devices").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let dev = &v["devices"][0];
    assert_eq!(dev["udid"], WHATSAPP);
    assert_eq!(dev["name"], "iPhone di Giulia");
    assert_eq!(dev["phase"], "ready");
    let checks = dev["diagnosis"]["checks"].as_array().expect("checks");
    assert!(checks.iter().all(|c| c["id"].is_string()
        && ["pass", "problem", "unknown"].contains(&c["outcome"].as_str().unwrap_or(""))));
    let findings = dev["diagnosis"]["findings"].as_array().expect("findings");
    let whatsapp = findings
        .iter()
        .find(|f| f["id"] == "whatsapp.icloud_backup")
        .expect("whatsapp finding");
    assert!(["critical", "warning", "info"].contains(&whatsapp["severity"].as_str().unwrap_or("")));
    assert!(
        whatsapp["remedies"]
            .as_array()
            .is_some_and(|r| r.len() >= 4),
        "the second guide's steps"
    );
    assert_eq!(v["host"]["usbmuxd"], "connected");

    let (code, one) = daemon
        .get(&format!("/v1/devices/{}", WHATSAPP.to_uppercase()))
        .await;
    assert_eq!(code, 200, "any spelling of the UDID finds the phone");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&one).expect("json")["udid"],
        WHATSAPP
    );
    let (code, err) = daemon.get("/v1/devices/00008110-FFFFFFFFFFFFFFFF").await;
    assert_eq!(code, 404);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&err).expect("json")["error"]["code"],
        "not_found"
    );
    // What is not a UDID never reaches the supervisor or the file system: `..` named the folder above.
    for bad in [
        "/v1/devices/0000",
        "/v1/devices/../backups",
        "/v1/devices/%2e%2e/backups",
    ] {
        let (code, err) = daemon.get(bad).await;
        assert_eq!(code, 400, "{bad}: {err}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&err).expect("json")["error"]["code"],
            "bad_request"
        );
    }
    let (code, _) = daemon.post("/v1/devices").await;
    assert_eq!(code, 405);
    let (code, info) = daemon.get("/v1/info").await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&info).expect("json")["api"],
        "v1"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_on_request_and_on_a_phone_notification() {
    let sim = SimRig::builtin("healthy").await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    daemon
        .wait_for(20, "a diagnosis", |s| ready(s, HEALTHY))
        .await;
    let mut events = Events::subscribe(&daemon.api).await;
    let (code, body) = daemon
        .post(&format!("/v1/devices/{HEALTHY}/diagnose"))
        .await;
    assert_eq!(code, 202, "{body}");
    events
        .wait_for(
            20,
            |e| matches!(e, Event::DiagnosisReady { udid, .. } if udid == HEALTHY),
        )
        .await;
    let (code, _) = daemon
        .post("/v1/devices/00008110-FFFFFFFFFFFFFFFF/diagnose")
        .await;
    assert_eq!(code, 404);
    let (code, _) = daemon.post("/v1/devices/0000/diagnose").await;
    assert_eq!(code, 400);

    // The phone posts com.apple.mobile.backup.domain_changed when its backup settings change.
    let before = daemon.status().await.devices[0].diagnosed_at;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    sim.sim
        .muxd()
        .phone(HEALTHY)
        .expect("phone")
        .post_notification("com.apple.mobile.backup.domain_changed");
    events
        .wait_for(
            20,
            |e| matches!(e, Event::DiagnosisReady { udid, .. } if udid == HEALTHY),
        )
        .await;
    let after = daemon.status().await.devices[0].diagnosed_at;
    assert!(after > before, "{before:?} -> {after:?}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_survives_a_restart() {
    let sim = SimRig::builtin("healthy").await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    daemon
        .wait_for(20, "a diagnosis", |s| ready(s, HEALTHY))
        .await;
    daemon.stop().await;
    assert!(sim.dir.path().join("daemon-state/state.json").is_file());
    sim.sim.muxd().detach(HEALTHY);
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    let status = daemon.status().await;
    let device = status
        .devices
        .iter()
        .find(|d| d.udid == HEALTHY)
        .expect("remembered");
    assert!(!device.connected);
    assert_eq!(device.name.as_deref(), Some("iPhone di Anna"));
    assert!(device.diagnosis.is_some());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_0660_and_refuses_a_user_outside_its_group() {
    let sim = SimRig::builtin("healthy").await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    let mode = std::fs::metadata(&daemon.api)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
    if !nix_is_root() {
        eprintln!(
            "not root: cannot run a client as another uid; the mode check above stands for it"
        );
        daemon.stop().await;
        return;
    }
    // The folders above the socket must let the other user reach it, so that only the socket's mode decides.
    let mut p = daemon.api.parent();
    while let Some(dir) = p {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
        if dir == sim.dir.path() {
            break;
        }
        p = dir.parent();
    }
    let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1]); print('connected')\nexcept PermissionError:\n print('refused')\n";
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&daemon.api)
        .uid(65534)
        .gid(65534)
        .output()
        .await
        .expect("run python3 as nobody");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "refused",
        "{out:?}"
    );
    daemon.stop().await;
}

fn nix_is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_phone_never_stalls_another() {
    let mut impostor = builtin("wifi-off-no-charger").expect("profile");
    // This phone presents a key that is not the one it paired with: pinning refuses every session.
    impostor.faults.impostor_tls = true;
    let sim = SimRig::start(vec![impostor, builtin("healthy").expect("profile")]).await;
    let daemon = DaemonRig::start(sim.dir.path(), &sim.socket).await;
    let status = daemon
        .wait_for(
            30,
            "the healthy phone diagnosed and the impostor failed",
            |s| {
                ready(s, HEALTHY)
                    && s.devices
                        .iter()
                        .any(|d| d.udid == NO_WIFI && d.phase == Phase::Failed)
            },
        )
        .await;
    let failed = status
        .devices
        .iter()
        .find(|d| d.udid == NO_WIFI)
        .expect("listed");
    assert!(
        failed.error.as_deref().is_some_and(|e| e.contains("TLS")),
        "{failed:?}"
    );
    assert!(
        failed.diagnosis.is_none(),
        "nothing was read from a phone that failed the key check"
    );
    assert_eq!(findings(&status, HEALTHY), ["backup.local_missing"]);
    daemon.stop().await;
}

//! Our client against the simulated phone, in one process: pairing, trust states, values, services, events.

use std::time::{Duration, SystemTime};

use backupd_mux::services::{DiagnosticsRelay, InstallationProxy, NotificationProxy};
use backupd_mux::{MuxEvent, Muxd, Pairing, TrustProblem};
use backupd_proto::pair::PairRecord;
use backupd_proto::services::{self, diagnostics};
use backupd_proto::tls::DevicePinning;
use backupd_proto::usbmuxd::{Address, Device};
use backupd_sim::profile::{Profile, TrustPolicy, builtin};
use backupd_sim::{Config, Simulator, TrustAnswer};

struct Rig {
    _dir: tempfile::TempDir,
    sim: Simulator,
    muxd: Muxd,
}

async fn rig(profiles: Vec<Profile>) -> Rig {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("mux.sock");
    let sim = Simulator::start(Config {
        socket: socket.clone(),
        tcp: None,
        control: None,
        state_dir: dir.path().join("state"),
        profiles,
    })
    .await
    .expect("simulator starts");
    let muxd = Muxd::new(Address::parse(&format!("UNIX:{}", socket.display())));
    Rig {
        _dir: dir,
        sim,
        muxd,
    }
}

async fn only_device(muxd: &Muxd) -> Device {
    let devices = muxd.list_devices().await.expect("list devices");
    assert_eq!(devices.len(), 1, "{devices:?}");
    devices.into_iter().next().expect("one device")
}

fn healthy() -> Profile {
    builtin("healthy").expect("built-in profile")
}

#[tokio::test]
async fn pairs_then_reads_values_and_services() {
    let r = rig(vec![healthy()]).await;
    let device = only_device(&r.muxd).await;
    assert_eq!(device.udid, "00008110-001A2B3C4D5E6F01");

    let mut pairing = Pairing::new();
    let mut trusted = pairing
        .open(&r.muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await
        .unwrap_or_else(|e| panic!("pairing failed: {e:?}"));
    assert!(trusted.newly_paired);

    // The record was saved through usbmuxd, readable by any client, and holds the escrow bag.
    let stored = r
        .muxd
        .read_pair_record(&device.udid)
        .await
        .expect("read")
        .expect("record saved");
    let stored = PairRecord::from_plist(&stored).expect("stored record parses");
    assert_eq!(stored.host_id, trusted.record.host_id);
    assert_eq!(stored.escrow_bag.as_ref().map(Vec::len), Some(32));
    assert_eq!(stored.system_buid, r.muxd.read_buid().await.expect("buid"));

    let ld = &mut trusted.lockdown;
    let version = ld
        .get_value(None, Some("ProductVersion"))
        .await
        .expect("get");
    assert_eq!(
        version
            .and_then(|v| v.as_string().map(str::to_owned))
            .as_deref(),
        Some("17.5.1")
    );
    let battery = ld
        .get_value(Some("com.apple.mobile.battery"), None)
        .await
        .expect("battery");
    let battery = battery
        .and_then(|v| v.into_dictionary())
        .expect("battery dict");
    assert_eq!(
        battery
            .get("BatteryCurrentCapacity")
            .and_then(|v| v.as_unsigned_integer()),
        Some(86)
    );
    let disk = ld
        .get_value(Some("com.apple.disk_usage"), Some("TotalDataAvailable"))
        .await
        .expect("disk");
    assert_eq!(
        disk.and_then(|v| v.as_unsigned_integer()),
        Some(109_800_000_000)
    );

    let mut diag = DiagnosticsRelay::start(ld).await.expect("diagnostics");
    let wifi = diag
        .wifi_interface()
        .await
        .expect("wifi entry")
        .expect("entry present");
    let state = diagnostics::wifi_state(&wifi);
    assert!(state.associated);
    assert_eq!(state.ssid.as_deref(), Some("Casa"));
    diag.goodbye().await;

    let mut apps = InstallationProxy::start(ld).await.expect("instproxy");
    let found = apps
        .lookup(&[services::WHATSAPP_BUNDLE_ID])
        .await
        .expect("lookup");
    assert!(
        found.is_empty(),
        "healthy profile has no WhatsApp: {found:?}"
    );
    let all = apps.browse_user_apps(100).await.expect("browse");
    assert_eq!(
        all.iter().map(|a| a.bundle_id.as_str()).collect::<Vec<_>>(),
        ["com.spotify.client"]
    );

    // A second session reuses the stored record instead of pairing again.
    let again = Pairing::new()
        .open(&r.muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await
        .unwrap_or_else(|e| panic!("second open failed: {e:?}"));
    assert!(!again.newly_paired);
    r.sim.shutdown().await;
}

#[tokio::test]
async fn whatsapp_lookup_reports_version_and_icloud_entitlements() {
    let r = rig(vec![builtin("icloud-full-whatsapp").expect("profile")]).await;
    let device = only_device(&r.muxd).await;
    assert_eq!(device.udid, "6d1f9a3b2c4e5f60718293a4b5c6d7e8f9012345");
    let mut trusted = Pairing::new()
        .open(&r.muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await
        .expect("paired");
    let mut apps = InstallationProxy::start(&mut trusted.lockdown)
        .await
        .expect("instproxy");
    let found = apps
        .lookup(&[services::WHATSAPP_BUNDLE_ID])
        .await
        .expect("lookup");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].version.as_deref(), Some("24.22.79"));
    assert_eq!(found[0].uses_icloud, Some(true));
}

#[tokio::test]
async fn trust_dialog_pending_until_the_person_taps_trust() {
    let mut profile = healthy();
    profile.pairing.trust = TrustPolicy::Manual;
    let r = rig(vec![profile]).await;
    let device = only_device(&r.muxd).await;
    let mut pairing = Pairing::new();
    for _ in 0..2 {
        match pairing
            .open(&r.muxd, &device, DevicePinning::Pinned, SystemTime::now())
            .await
        {
            Err(TrustProblem::Pending) => {}
            other => panic!("expected pending, got {other:?}"),
        }
    }
    assert!(
        r.muxd
            .read_pair_record(&device.udid)
            .await
            .expect("read")
            .is_none(),
        "nothing saved while pending"
    );
    r.sim
        .muxd()
        .phone(&device.udid)
        .expect("phone")
        .answer_trust(TrustAnswer::Trust);
    let trusted = pairing
        .open(&r.muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await;
    assert!(
        matches!(trusted, Ok(ref t) if t.newly_paired),
        "{trusted:?}"
    );
}

#[tokio::test]
async fn denied_and_passcode_locked_are_typed() {
    let mut profile = healthy();
    profile.pairing.trust = TrustPolicy::Deny;
    let r = rig(vec![profile]).await;
    let device = only_device(&r.muxd).await;
    let outcome = Pairing::new()
        .open(&r.muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await;
    assert!(matches!(outcome, Err(TrustProblem::Denied)), "{outcome:?}");

    let mut profile = healthy();
    profile.pairing.locked = true;
    let r = rig(vec![profile]).await;
    let device = only_device(&r.muxd).await;
    let mut pairing = Pairing::new();
    let outcome = pairing
        .open(&r.muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await;
    assert!(
        matches!(outcome, Err(TrustProblem::PasscodeLocked)),
        "{outcome:?}"
    );
    r.sim
        .muxd()
        .phone(&device.udid)
        .expect("phone")
        .set_locked(false);
    let outcome = pairing
        .open(&r.muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await;
    assert!(outcome.is_ok(), "{outcome:?}");
}

#[tokio::test]
async fn a_phone_that_forgot_us_is_paired_again() {
    let r = rig(vec![healthy()]).await;
    let device = only_device(&r.muxd).await;
    let first = Pairing::new()
        .open(&r.muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await
        .expect("paired");
    r.sim
        .muxd()
        .phone(&device.udid)
        .expect("phone")
        .reset_trust();
    let second = Pairing::new()
        .open(&r.muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await
        .expect("re-paired");
    assert!(second.newly_paired);
    assert_ne!(first.record.host_id, second.record.host_id);
}

#[tokio::test]
async fn pinning_refuses_an_impostor_key_and_the_switch_allows_it() {
    let mut profile = healthy();
    profile.faults.impostor_tls = true;
    let r = rig(vec![profile]).await;
    let device = only_device(&r.muxd).await;
    let pinned = Pairing::new()
        .open(&r.muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await;
    match pinned {
        Err(TrustProblem::Failed(e)) => assert_eq!(e.kind(), backupd_mux::ErrorKind::Tls, "{e:?}"),
        other => panic!("pinned session must fail on TLS, got {other:?}"),
    }
    let unpinned = Pairing::new()
        .open(&r.muxd, &device, DevicePinning::Disabled, SystemTime::now())
        .await;
    assert!(unpinned.is_ok(), "{unpinned:?}");
}

#[tokio::test]
async fn listen_reports_detach_and_reattach_with_a_new_device_id() {
    let r = rig(vec![healthy()]).await;
    let mut listener = r.muxd.listen().await.expect("listen");
    let first = match listener.next_event().await.expect("event") {
        MuxEvent::Attached(d) => d,
        other => panic!("{other:?}"),
    };
    assert!(r.sim.muxd().detach(&first.udid));
    assert_eq!(
        listener.next_event().await.expect("event"),
        MuxEvent::Detached {
            device_id: first.device_id
        }
    );
    assert!(r.muxd.list_devices().await.expect("list").is_empty());
    assert!(r.sim.muxd().attach(&first.udid));
    match listener.next_event().await.expect("event") {
        MuxEvent::Attached(d) => {
            assert_eq!(d.udid, first.udid);
            assert_ne!(d.device_id, first.device_id);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn notification_proxy_relays_backup_domain_changes() {
    let r = rig(vec![healthy()]).await;
    let device = only_device(&r.muxd).await;
    let mut trusted = Pairing::new()
        .open(&r.muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await
        .expect("paired");
    let mut np = NotificationProxy::start(&mut trusted.lockdown)
        .await
        .expect("np");
    np.observe(services::BACKUP_DOMAIN_CHANGED)
        .await
        .expect("observe");
    // Let the observation reach the phone before the change happens.
    tokio::time::sleep(Duration::from_millis(100)).await;
    trusted
        .lockdown
        .set_value(
            Some("com.apple.mobile.backup"),
            "CloudBackupEnabled",
            false.into(),
        )
        .await
        .expect("set value");
    let event = tokio::time::timeout(Duration::from_secs(5), np.next_event())
        .await
        .expect("in time")
        .expect("event");
    assert_eq!(
        event,
        services::notification::Event::Relay(services::BACKUP_DOMAIN_CHANGED.into())
    );
    np.shutdown().await.expect("proxy death");
}

#[tokio::test]
async fn services_over_tls_when_the_phone_asks_for_it() {
    let mut profile = healthy();
    profile.services.ssl = true;
    let r = rig(vec![profile]).await;
    let device = only_device(&r.muxd).await;
    let mut trusted = Pairing::new()
        .open(&r.muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await
        .expect("paired");
    let mut diag = DiagnosticsRelay::start(&mut trusted.lockdown)
        .await
        .expect("diagnostics over TLS");
    assert!(diag.wifi_interface().await.expect("wifi").is_some());
}

#[tokio::test]
async fn unknown_device_and_closed_port_are_refused_by_the_muxer() {
    let r = rig(vec![healthy()]).await;
    let device = only_device(&r.muxd).await;
    let err = r
        .muxd
        .connect(device.device_id + 99, 62078)
        .await
        .expect_err("no such device");
    assert_eq!(err.kind(), backupd_mux::ErrorKind::Refused);
    let err = r
        .muxd
        .connect(device.device_id, 1234)
        .await
        .expect_err("closed port");
    assert_eq!(err.kind(), backupd_mux::ErrorKind::Refused);
}

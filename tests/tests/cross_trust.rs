//! Trust made by one client is accepted by the others: libimobiledevice, pymobiledevice3 and ours share the
//! muxer's pair records, so each must read what the others wrote.

use std::time::SystemTime;

use backupd_e2e::{SimRig, key_values, stdout_ok};
use backupd_mux::{Muxd, Pairing};
use backupd_proto::pair::PairRecord;
use backupd_proto::tls::DevicePinning;
use backupd_proto::usbmuxd::Address;

const UDID: &str = "00008110-001A2B3C4D5E6F01";

fn muxd(rig: &SimRig) -> Muxd {
    Muxd::new(Address::parse(&format!("UNIX:{}", rig.socket.display())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_made_by_idevicepair_works_for_our_client() {
    let rig = SimRig::builtin("healthy").await;
    stdout_ok(
        &rig.idevice("idevicepair", &["pair"]).await,
        "idevicepair pair",
    );
    let theirs = PairRecord::from_plist(
        &std::fs::read(rig.pair_dir().join(format!("{UDID}.plist"))).expect("read"),
    )
    .expect("parse");

    let muxd = muxd(&rig);
    let device = muxd.list_devices().await.expect("list").remove(0);
    let mut trusted = Pairing::new()
        .open(&muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await
        .unwrap_or_else(|e| panic!("our client refused libimobiledevice's record: {e:?}"));
    assert!(
        !trusted.newly_paired,
        "we must reuse the record, not pair again"
    );
    assert_eq!(trusted.record.host_id, theirs.host_id);
    let name = trusted
        .lockdown
        .get_value(None, Some("DeviceName"))
        .await
        .expect("value");
    assert_eq!(
        name.and_then(|v| v.into_string()).as_deref(),
        Some("iPhone di Anna")
    );
    assert_eq!(
        rig.sim
            .muxd()
            .phone(UDID)
            .expect("phone")
            .trusted_hosts()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_made_by_our_client_works_for_ideviceinfo_and_pymobiledevice3() {
    let rig = SimRig::builtin("healthy").await;
    let muxd = muxd(&rig);
    let device = muxd.list_devices().await.expect("list").remove(0);
    let ours = Pairing::new()
        .open(&muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await
        .expect("paired");
    assert!(ours.newly_paired);

    let battery = key_values(&stdout_ok(
        &rig.idevice("ideviceinfo", &["-q", "com.apple.mobile.battery"])
            .await,
        "ideviceinfo with our record",
    ));
    assert_eq!(
        battery.get("BatteryCurrentCapacity").map(String::as_str),
        Some("86")
    );
    stdout_ok(
        &rig.idevice("idevicepair", &["validate"]).await,
        "idevicepair validate with our record",
    );

    let out = stdout_ok(
        &rig.pymobiledevice3(&["lockdown", "info"]).await,
        "pymobiledevice3 with our record",
    );
    let info: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(info["TelephonyCapability"], true);

    let hosts = rig.sim.muxd().phone(UDID).expect("phone").trusted_hosts();
    assert_eq!(
        hosts,
        std::slice::from_ref(&ours.record.host_id),
        "nobody paired a second time"
    );
}

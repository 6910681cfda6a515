//! libimobiledevice's own tools (Debian's libimobiledevice-utils 1.3.0) against the simulated phone.

use backupd_e2e::{SimRig, key_values, stdout_ok};
use backupd_proto::pair::PairRecord;
use backupd_sim::TrustAnswer;
use backupd_sim::profile::{TrustPolicy, builtin};

const HEALTHY_UDID: &str = "00008110-001A2B3C4D5E6F01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idevice_id_lists_every_simulated_phone() {
    let rig = backupd_e2e::SimRig::start(vec![
        builtin("healthy").expect("profile"),
        builtin("icloud-full-whatsapp").expect("profile"),
    ])
    .await;
    let out = stdout_ok(&rig.idevice("idevice_id", &["-l"]).await, "idevice_id -l");
    let mut ids: Vec<&str> = out.lines().collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [HEALTHY_UDID, "6d1f9a3b2c4e5f60718293a4b5c6d7e8f9012345"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idevicepair_pairs_after_the_trust_tap_then_validates() {
    let mut profile = builtin("healthy").expect("profile");
    profile.pairing.trust = TrustPolicy::Manual;
    let rig = SimRig::start(vec![profile]).await;

    let first = rig.idevice("idevicepair", &["pair"]).await;
    assert!(
        !first.status.success(),
        "pairing must wait for the Trust tap"
    );
    let said = String::from_utf8_lossy(&first.stdout).into_owned()
        + &String::from_utf8_lossy(&first.stderr);
    assert!(
        said.contains("trust dialog"),
        "idevicepair should ask to accept the dialog: {said}"
    );

    rig.sim
        .muxd()
        .phone(HEALTHY_UDID)
        .expect("phone")
        .answer_trust(TrustAnswer::Trust);
    let out = stdout_ok(
        &rig.idevice("idevicepair", &["pair"]).await,
        "idevicepair pair",
    );
    assert_eq!(
        out.trim(),
        format!("SUCCESS: Paired with device {HEALTHY_UDID}")
    );
    let out = stdout_ok(
        &rig.idevice("idevicepair", &["validate"]).await,
        "idevicepair validate",
    );
    assert_eq!(
        out.trim(),
        format!("SUCCESS: Validated pairing with device {HEALTHY_UDID}")
    );

    // The record went through SavePairRecord into the muxer's store, private to its owner.
    let path = rig.pair_dir().join(format!("{HEALTHY_UDID}.plist"));
    let meta = std::fs::metadata(&path).expect("pair record saved");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let record = PairRecord::from_plist(&std::fs::read(&path).expect("read"))
        .expect("libimobiledevice record parses");
    let trusted = rig
        .sim
        .muxd()
        .phone(HEALTHY_UDID)
        .expect("phone")
        .trusted_hosts();
    assert_eq!(trusted, std::slice::from_ref(&record.host_id));
    assert_eq!(record.escrow_bag.map(|b| b.len()), Some(32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idevicepair_reports_a_denied_trust() {
    let mut profile = builtin("healthy").expect("profile");
    profile.pairing.trust = TrustPolicy::Deny;
    let rig = SimRig::start(vec![profile]).await;
    let out = rig.idevice("idevicepair", &["pair"]).await;
    assert!(!out.status.success());
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("denied"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ideviceinfo_prints_the_profile_values_in_a_session() {
    let rig = SimRig::builtin("healthy").await;
    stdout_ok(
        &rig.idevice("idevicepair", &["pair"]).await,
        "idevicepair pair",
    );

    let root = key_values(&stdout_ok(
        &rig.idevice("ideviceinfo", &[]).await,
        "ideviceinfo",
    ));
    assert_eq!(
        root.get("DeviceName").map(String::as_str),
        Some("iPhone di Anna")
    );
    assert_eq!(
        root.get("ProductType").map(String::as_str),
        Some("iPhone14,5")
    );
    assert_eq!(
        root.get("ProductVersion").map(String::as_str),
        Some("17.5.1")
    );
    assert_eq!(root.get("BuildVersion").map(String::as_str), Some("21F90"));
    assert_eq!(
        root.get("UniqueDeviceID").map(String::as_str),
        Some(HEALTHY_UDID)
    );
    // Values only a session may read are there too.
    assert_eq!(
        root.get("TelephonyCapability").map(String::as_str),
        Some("true")
    );

    let battery = key_values(&stdout_ok(
        &rig.idevice("ideviceinfo", &["-q", "com.apple.mobile.battery"])
            .await,
        "ideviceinfo -q com.apple.mobile.battery",
    ));
    assert_eq!(
        battery.get("BatteryCurrentCapacity").map(String::as_str),
        Some("86")
    );
    assert_eq!(
        battery.get("BatteryIsCharging").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        battery.get("ExternalConnected").map(String::as_str),
        Some("true")
    );

    let disk = key_values(&stdout_ok(
        &rig.idevice("ideviceinfo", &["-q", "com.apple.disk_usage"])
            .await,
        "ideviceinfo -q com.apple.disk_usage",
    ));
    assert_eq!(
        disk.get("TotalDiskCapacity").map(String::as_str),
        Some("128000000000")
    );
    assert_eq!(
        disk.get("TotalDataAvailable").map(String::as_str),
        Some("109800000000")
    );

    let key = stdout_ok(
        &rig.idevice("ideviceinfo", &["-k", "ProductVersion"]).await,
        "ideviceinfo -k",
    );
    assert_eq!(key.trim(), "17.5.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ideviceinfo_without_trust_is_refused_a_session() {
    let mut profile = builtin("healthy").expect("profile");
    profile.pairing.trust = TrustPolicy::Manual;
    let rig = SimRig::start(vec![profile]).await;
    // Untrusted while the dialog is up: the simple query works, a domain needs a session and fails.
    let simple = key_values(&stdout_ok(
        &rig.idevice("ideviceinfo", &["-s"]).await,
        "ideviceinfo -s",
    ));
    assert_eq!(
        simple.get("ProductVersion").map(String::as_str),
        Some("17.5.1")
    );
    let out = rig
        .idevice("ideviceinfo", &["-q", "com.apple.mobile.battery"])
        .await;
    assert!(
        !out.status.success(),
        "no session while the Trust dialog is pending"
    );
    assert!(
        rig.pair_dir()
            .read_dir()
            .expect("dir")
            .all(|e| { e.expect("entry").file_name() == "SystemConfiguration.plist" }),
        "no pair record saved"
    );
    // libimobiledevice pairs by itself when it has no record; once the person taps Trust it gets the values.
    rig.sim
        .muxd()
        .phone(HEALTHY_UDID)
        .expect("phone")
        .answer_trust(TrustAnswer::Trust);
    let battery = key_values(&stdout_ok(
        &rig.idevice("ideviceinfo", &["-q", "com.apple.mobile.battery"])
            .await,
        "ideviceinfo after the Trust tap",
    ));
    assert_eq!(
        battery.get("BatteryCurrentCapacity").map(String::as_str),
        Some("86")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idevicediagnostics_reads_the_wifi_interface() {
    let rig = SimRig::builtin("healthy").await;
    stdout_ok(
        &rig.idevice("idevicepair", &["pair"]).await,
        "idevicepair pair",
    );
    let out = stdout_ok(
        &rig.idevice(
            "idevicediagnostics",
            &["ioregentry", "AppleBCMWLANSkywalkInterface"],
        )
        .await,
        "idevicediagnostics ioregentry",
    );
    let value =
        plist::Value::from_reader_xml(out.as_bytes()).expect("idevicediagnostics prints a plist");
    let entry = value
        .as_dictionary()
        .and_then(|d| d.get("IORegistry"))
        .and_then(plist::Value::as_dictionary)
        .expect("IORegistry entry");
    assert_eq!(
        entry.get("IO80211SSID").and_then(plist::Value::as_string),
        Some("Casa")
    );
    assert_eq!(
        entry
            .get("IOInterfaceName")
            .and_then(plist::Value::as_string),
        Some("en0")
    );
}

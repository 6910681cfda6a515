//! pymobiledevice3 (PyPI) against the simulated phone.

use backupd_e2e::{SimRig, stdout_ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usbmux_list_shows_the_phone() {
    let rig = SimRig::builtin("wifi-off-no-charger").await;
    let out = stdout_ok(
        &rig.pymobiledevice3(&["usbmux", "list"]).await,
        "pymobiledevice3 usbmux list",
    );
    let list: serde_json::Value = serde_json::from_str(&out).expect("JSON device list");
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1, "{out}");
    let dev = &list[0];
    assert_eq!(dev["Identifier"], "00008101-000E1D2C3B4A5F02");
    assert_eq!(dev["ConnectionType"], "USB");
    assert_eq!(dev["DeviceName"], "iPhone di Marco");
    assert_eq!(dev["ProductVersion"], "16.7.8");
    assert_eq!(dev["ProductType"], "iPhone13,2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockdown_info_pairs_by_itself_and_reads_every_value() {
    let rig = SimRig::builtin("icloud-full-whatsapp").await;
    let udid = "6d1f9a3b2c4e5f60718293a4b5c6d7e8f9012345";
    let out = stdout_ok(
        &rig.pymobiledevice3(&["lockdown", "info"]).await,
        "pymobiledevice3 lockdown info",
    );
    let info: serde_json::Value = serde_json::from_str(&out).expect("JSON values");
    assert_eq!(info["DeviceName"], "iPhone di Giulia");
    assert_eq!(info["ProductVersion"], "18.1");
    assert_eq!(info["UniqueDeviceID"], udid);
    // Only a session answers this: pairing and TLS (with the host certificate) really happened.
    assert_eq!(info["TelephonyCapability"], true);
    let phone = rig.sim.muxd().phone(udid).expect("phone");
    assert_eq!(
        phone.trusted_hosts().len(),
        1,
        "pymobiledevice3 paired once"
    );
    // It saved the record through the muxer named by USBMUXD_SOCKET_ADDRESS.
    assert!(rig.pair_dir().join(format!("{udid}.plist")).is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_and_ioregistry_through_services() {
    let rig = SimRig::builtin("icloud-full-whatsapp").await;
    let out = stdout_ok(
        &rig.pymobiledevice3(&["apps", "list"]).await,
        "pymobiledevice3 apps list",
    );
    let apps: serde_json::Value = serde_json::from_str(&out).expect("JSON apps");
    assert_eq!(
        apps["net.whatsapp.WhatsApp"]["CFBundleShortVersionString"],
        "24.22.79"
    );
    let out = stdout_ok(
        &rig.pymobiledevice3(&[
            "diagnostics",
            "ioregistry",
            "--name",
            "AppleBCMWLANSkywalkInterface",
        ])
        .await,
        "pymobiledevice3 diagnostics ioregistry",
    );
    let entry: serde_json::Value = serde_json::from_str(&out).expect("JSON entry");
    assert_eq!(entry["IO80211SSID"], "Ufficio");
}

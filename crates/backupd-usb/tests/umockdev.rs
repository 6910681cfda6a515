//! The watcher with the real libusb on emulated devices: `umockdev-run` makes libusb enumerate the phones
//! described in `tests/umockdev/` (descriptors and strings as real phones report them). These tests fail, never
//! skip, when umockdev is missing: `cargo xtask ci` installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn descriptions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/umockdev")
}

/// Runs the scanner under umockdev with the hub and the named devices; one JSON object per device.
fn scan(devices: &[&str]) -> Vec<Value> {
    let dir = descriptions();
    let mut cmd = Command::new("umockdev-run");
    cmd.arg("-d").arg(dir.join("hub.umockdev"));
    for d in devices {
        cmd.arg("-d").arg(dir.join(format!("{d}.umockdev")));
    }
    cmd.arg("--").arg(env!("CARGO_BIN_EXE_backupd-usb-scan"));
    let out = cmd
        .output()
        .expect("umockdev-run must be installed (Debian: umockdev); cargo xtask ci installs it");
    assert!(
        out.status.success(),
        "scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn a_phone_in_dfu_mode_is_seen_with_its_ecid_and_boot_rom_tag() {
    let found = scan(&["dfu"]);
    assert_eq!(found.len(), 1, "{found:?}");
    let d = &found[0];
    assert_eq!(d["mode"], "dfu");
    assert_eq!(d["product_id"], 0x1227);
    assert_eq!(d["speed"], "high");
    assert_eq!(d["strings_from"], "sysfs");
    assert_eq!(d["boot"]["ecid"], 0x000C_2C68_0044_E02E_u64);
    assert_eq!(d["boot"]["cpid"], 0x8015);
    assert_eq!(d["boot"]["srtg"], "iBoot-3332.0.0.1.23");
    assert_eq!(d["mux_interface"], Value::Null);
}

#[test]
fn a_phone_in_recovery_mode_reports_its_serial_number() {
    let found = scan(&["recovery"]);
    assert_eq!(found.len(), 1, "{found:?}");
    let d = &found[0];
    assert_eq!(d["mode"], "recovery");
    assert_eq!(d["boot"]["serial_number"], "F2LZK0HEALTH");
    assert_eq!(d["boot"]["ecid"], 0x001A_2B3C_4D5E_6F01_u64);
    assert_eq!(d["active_configuration"], 1);
}

#[test]
fn a_normal_phone_shows_its_udid_and_the_mux_interface_usbmuxd_would_pick() {
    let found = scan(&["normal", "normal-unclaimed", "dfu"]);
    assert_eq!(found.len(), 3, "{found:?}");
    let normal: Vec<&Value> = found.iter().filter(|d| d["mode"] == "normal").collect();
    assert_eq!(normal.len(), 2);
    let claimed = normal
        .iter()
        .find(|d| d["udid"] == "00008110-001A2B3C4D5E6F01")
        .expect("the configured phone");
    assert_eq!(claimed["mux_interface"]["configuration"], 4);
    assert_eq!(claimed["mux_interface"]["interface"], 1);
    assert_eq!(claimed["active_configuration"], 4);
    assert_eq!(claimed["configurations"], 4);
    // usbmuxd's udev rule leaves a phone unconfigured until usbmuxd picks a configuration.
    let unclaimed = normal
        .iter()
        .find(|d| d["udid"] == "00008101-000E1D2C3B4A5F02")
        .expect("the unconfigured phone");
    assert_eq!(unclaimed["active_configuration"], Value::Null);
}

#[test]
fn an_empty_bus_has_no_apple_device() {
    assert!(scan(&[]).is_empty());
}

//! Snapshots shared by the integration tests: a healthy phone and the simulator's three example profiles.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;

use backupd_rules::{
    App, Diagnosis, HostFacts, HostOs, LocalBackup, PairingState, RulesConfig, Snapshot, Timestamp,
    UnknownReason, UsbAccess, UsbFacts, UsbMode, UsbmuxdStatus, WHATSAPP_BUNDLE_ID, WifiState,
};

/// The fixed "now" of every test: 2026-11-21T08:00:00Z, the day after the simulator profiles' last backups.
pub(crate) const NOW: i64 = 1_795_248_000;
pub(crate) const HOUR: i64 = 3_600;
pub(crate) const DAY: i64 = 86_400;
pub(crate) const GB: u64 = 1_000_000_000;

pub(crate) fn now() -> Timestamp {
    Timestamp::from_unix_secs(NOW)
}

pub(crate) fn ago(secs: i64) -> Timestamp {
    Timestamp::from_unix_secs(NOW - secs)
}

/// A phone where every check passes with the default config (4.2 GB used, so it fits the free 5 GB).
pub(crate) fn healthy_phone() -> Snapshot {
    let mut s = Snapshot::unread(UnknownReason::NotQueried);
    s.pairing.set_known(PairingState::Paired);
    s.product_type.set_known("iPhone15,2".to_owned());
    s.product_version.set_known("18.5".to_owned());
    s.wifi
        .set_known(WifiState::new(true, Some("Casa".to_owned())));
    s.icloud_backup_enabled.set_known(true);
    s.last_icloud_backup.set_known(Some(ago(DAY)));
    s.will_encrypt.set_known(false);
    s.battery_level.set_known(80);
    s.battery_charging.set_known(true);
    s.external_power.set_known(true);
    s.disk_capacity.set_known(64 * GB);
    s.data_capacity.set_known(58 * GB);
    s.data_available.set_known(53_800_000_000);
    s.apps.set_known(vec![
        App::new("com.spotify.client", Some("9.0.40")),
        App::new("it.poste.bancoposta", Some("5.12.0")),
    ]);
    // On the bus in normal mode, listed by usbmuxd; a Lightning iPhone 14 Pro, so USB 2 is all it has.
    let mut usb = UsbFacts::new(UsbMode::Normal, 0x12a8, "bus 1 port 1-2");
    usb.speed_mbps = Some(480);
    usb.listed_by_usbmuxd = true;
    usb.ecid = Some("001A2B3C4D5E6F01".to_owned());
    s.usb = Some(usb);
    s
}

/// A Linux host with usbmuxd up, room to spare, and a verified local backup from a few hours ago.
pub(crate) fn healthy_host() -> HostFacts {
    let mut h = HostFacts::unread(UnknownReason::NotQueried);
    h.os.set_known(HostOs::Linux);
    h.usbmuxd.set_known(UsbmuxdStatus::Reachable);
    h.backup_dir_free.set_known(200 * GB);
    h.local_backup.set_known(Some(
        LocalBackup::new(ago(6 * HOUR), true, false).with_size(3 * GB),
    ));
    h.unfinished_backup.set_known(false);
    h.usb_access.set_known(UsbAccess::Granted);
    h
}

pub(crate) fn diagnose(phone: &Snapshot, host: &HostFacts) -> Diagnosis {
    backupd_rules::diagnose(phone, host, now(), &RulesConfig::default())
}

/// One of the simulator's example profiles, as the daemon would convert it, with host facts and a config.
pub(crate) struct Profile {
    pub(crate) name: &'static str,
    pub(crate) phone: Snapshot,
    pub(crate) host: HostFacts,
    pub(crate) config: RulesConfig,
}

impl Profile {
    pub(crate) fn diagnose(&self) -> Diagnosis {
        backupd_rules::diagnose(&self.phone, &self.host, now(), &self.config)
    }
}

pub(crate) fn profiles() -> Vec<Profile> {
    vec![profile_a(), profile_b(), profile_c(), profile_d()]
}

/// The facts every simulator profile reports the same way: paired, with its values read over lockdown.
fn sim_phone(
    product_type: &str,
    product_version: &str,
    wifi: WifiState,
    battery: (u8, bool, bool),
    disk: (u64, u64, u64),
    backup: (bool, bool, i64),
    apps: Vec<App>,
) -> Snapshot {
    let mut s = Snapshot::unread(UnknownReason::NotQueried);
    s.pairing.set_known(PairingState::Paired);
    s.product_type.set_known(product_type.to_owned());
    s.product_version.set_known(product_version.to_owned());
    s.wifi.set_known(wifi);
    let (level, charging, external) = battery;
    s.battery_level.set_known(level);
    s.battery_charging.set_known(charging);
    s.external_power.set_known(external);
    let (total, data, available) = disk;
    s.disk_capacity.set_known(total);
    s.data_capacity.set_known(data);
    s.data_available.set_known(available);
    let (will_encrypt, enabled, last) = backup;
    s.will_encrypt.set_known(will_encrypt);
    s.icloud_backup_enabled.set_known(enabled);
    s.last_icloud_backup
        .set_known(Some(Timestamp::from_unix_secs(last)));
    s.apps.set_known(apps);
    s
}

/// (a) `crates/backupd-sim/profiles/healthy.toml`: on Wi-Fi, charging, iCloud Backup on and recent, plenty of
/// storage, no WhatsApp. Its 43 GB of data need a paid plan, so this user configured 200 GB.
pub(crate) fn profile_a() -> Profile {
    let phone = sim_phone(
        "iPhone14,5",
        "17.5.1",
        WifiState::new(true, Some("Casa".to_owned())),
        (86, true, true),
        (128_000_000_000, 114_000_000_000, 71_000_000_000),
        // LastCloudBackupDate 2026-11-20T02:14:00Z.
        (false, true, 1_795_140_840),
        vec![App::new("com.spotify.client", Some("8.9.96"))],
    );
    let mut config = RulesConfig::default();
    config.icloud_quota_bytes = 200 * GB;
    Profile {
        name: "a_healthy",
        phone,
        host: healthy_host(),
        config,
    }
}

/// (b) `wifi-off-no-charger.toml`: Wi-Fi off and no charger; a 50 GB plan; no local backup on this host yet.
pub(crate) fn profile_b() -> Profile {
    let phone = sim_phone(
        "iPhone13,2",
        "16.7.8",
        WifiState::new(false, None),
        (34, false, false),
        (64_000_000_000, 52_000_000_000, 21_000_000_000),
        // LastCloudBackupDate 2026-11-02T01:40:00Z.
        (false, true, 1_793_583_600),
        vec![App::new("com.google.Maps", Some("6.130.0"))],
    );
    let mut config = RulesConfig::default();
    config.icloud_quota_bytes = 50 * GB;
    let mut host = healthy_host();
    host.local_backup.set_known(None);
    Profile {
        name: "b_wifi_off_no_charger",
        phone,
        host,
        config,
    }
}

/// (c) `icloud-full-whatsapp.toml`: 60 GB used on a 64 GB phone and the free 5 GB of iCloud (the default config),
/// WhatsApp installed, backups encrypted; on the host, an old local backup that was never verified.
pub(crate) fn profile_c() -> Profile {
    let mut whatsapp = App::new(WHATSAPP_BUNDLE_ID, Some("24.22.79"));
    whatsapp.icloud_containers.set_known(true);
    let mut instagram = App::new("com.burbn.instagram", Some("352.0"));
    instagram.icloud_containers.set_known(false);
    let phone = sim_phone(
        "iPhone12,8",
        "18.1",
        WifiState::new(true, Some("Ufficio".to_owned())),
        (72, true, true),
        (64_000_000_000, 62_000_000_000, 2_000_000_000),
        // LastCloudBackupDate 2026-09-14T03:05:00Z.
        (true, true, 1_789_355_100),
        vec![whatsapp, instagram],
    );
    let mut host = healthy_host();
    host.local_backup
        .set_known(Some(LocalBackup::new(ago(40 * DAY), false, true)));
    Profile {
        name: "c_icloud_full_whatsapp",
        phone,
        host,
        config: RulesConfig::default(),
    }
}

/// (d) The healthy phone of issue 12 with WhatsApp: 64 GB of data, the free 5 GB of iCloud, an iCloud backup 10
/// hours ago (so it fits), and a verified local backup of 3.1 GB on this host holding WhatsApp's chats.
pub(crate) fn profile_d() -> Profile {
    let mut whatsapp = App::new(WHATSAPP_BUNDLE_ID, Some("25.10.72"));
    whatsapp.icloud_containers.set_known(true);
    let phone = sim_phone(
        "iPhone15,2",
        "18.5",
        WifiState::new(true, Some("Casa".to_owned())),
        (91, true, true),
        (128_000_000_000, 119_000_000_000, 55_000_000_000),
        (false, true, NOW - 10 * HOUR),
        vec![whatsapp],
    );
    let mut host = healthy_host();
    host.local_backup.set_known(Some(
        LocalBackup::new(ago(2 * HOUR), true, false).with_size(3_100_000_000),
    ));
    host.local_whatsapp
        .set_known(backupd_rules::LocalWhatsapp::Chats {
            messages: 312,
            newest_message: Some(ago(3 * HOUR)),
        });
    Profile {
        name: "d_healthy_whatsapp_local",
        phone,
        host,
        config: RulesConfig::default(),
    }
}

/// Compares `actual` with the committed file `tests/snapshots/<name>`; with `UPDATE_SNAPSHOTS=1`, rewrites it.
pub(crate) fn assert_snapshot(name: &str, actual: &str) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "snapshots", name]
        .iter()
        .collect();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from the snapshot, first at line {}:\n  expected: {:?}\n  actual:   {:?}\n\
             run with UPDATE_SNAPSHOTS=1 to accept the new output",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

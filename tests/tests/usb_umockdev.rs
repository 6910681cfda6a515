//! The daemon with the real libusb on emulated phones: `backupd` runs under `umockdev-run` with the device
//! descriptions of `tests/umockdev/`, beside the simulated usbmuxd, and `backupdctl status --json` must explain
//! each mode. umockdev is required (Debian: umockdev; `cargo xtask ci` installs it): these tests never skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use backupd_api::{Status, exit};
use backupd_e2e::{SimRig, ctl, http};

const ANNA: &str = "00008110-001A2B3C4D5E6F01";

/// The `backupd` binary, built once per run.
fn backupd() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(&root)
                .args(["build", "--quiet", "-p", "backupd"])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building backupd failed");
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"))
                .join("debug")
                .join("backupd")
        })
        .clone()
}

/// `backupd` under umockdev with the hub and the named devices; killed when dropped.
struct Daemon {
    child: Child,
    api: PathBuf,
}

impl Daemon {
    async fn start(folder: &Path, usbmuxd: &Path, devices: &[&str]) -> Self {
        let api = folder.join("api.sock");
        let _ = std::fs::remove_file(&api);
        let config = folder.join("backupd.toml");
        std::fs::write(
            &config,
            format!(
                "socket = {:?}\nusbmuxd = {:?}\nstate_dir = {:?}\nbackup_dir = {:?}\ngroup = \"\"\n\
                 refresh_secs = 3600\nusb_rescan_secs = 1\n",
                api.display().to_string(),
                format!("UNIX:{}", usbmuxd.display()),
                folder.join("daemon-state").display().to_string(),
                folder.join("backups").display().to_string(),
            ),
        )
        .expect("config");
        let descriptions = Path::new(env!("CARGO_MANIFEST_DIR")).join("umockdev");
        let mut cmd = Command::new("umockdev-run");
        cmd.arg("-d").arg(descriptions.join("hub.umockdev"));
        for d in devices {
            cmd.arg("-d")
                .arg(descriptions.join(format!("{d}.umockdev")));
        }
        // Its own process group, so that stopping it reaches backupd under umockdev-run too.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.arg("--")
            .arg(backupd())
            .arg("--config")
            .arg(&config)
            .env("BACKUPD_LOG", "info,backupd=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().expect(
            "umockdev-run must be installed (Debian: umockdev); cargo xtask ci installs it",
        );
        for _ in 0..200 {
            if api.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            api.exists(),
            "backupd did not open its socket under umockdev"
        );
        Self { child, api }
    }

    async fn status(&self) -> Status {
        let (code, body) = http(&self.api, "GET", backupd_api::PATH_DEVICES).await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("status JSON: {e}\n{body}"))
    }

    async fn wait_for(&self, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
        for _ in 0..400 {
            let status = self.status().await;
            if pred(&status) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}; last status:\n{:#?}",
            self.status().await
        );
    }

    /// SIGTERM to the process group: backupd saves its state and stops, then umockdev-run exits.
    fn stop(self) {}

    fn terminate(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn finding_ids(d: &backupd_api::UsbDevice) -> Vec<String> {
    d.diagnosis
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
async fn each_mode_is_explained_and_a_phone_listed_by_both_is_one_phone() {
    let sim = SimRig::builtin("healthy").await;
    let daemon = Daemon::start(
        sim.dir.path(),
        &sim.socket,
        &["normal", "normal-unclaimed", "dfu"],
    )
    .await;
    let status = daemon
        .wait_for("the phone diagnosed and the bus scanned", |s| {
            s.devices.iter().any(|d| d.diagnosis.is_some()) && s.usb_devices.len() == 2
        })
        .await;

    // The simulated phone is on the bus (normal.umockdev) and listed by usbmuxd: one phone, not two.
    assert_eq!(status.devices.len(), 1, "{status:#?}");
    assert!(
        status
            .usb_devices
            .iter()
            .all(|d| d.udid.as_deref() != Some(ANNA)),
        "{status:#?}"
    );
    // The host may read the bus.
    let host = status.host.diagnosis.as_ref().expect("host diagnosis");
    assert!(
        host.checks
            .iter()
            .any(|c| c.id.as_str() == "host.usb_permission"
                && c.outcome == backupd_rules::Outcome::Pass),
        "{host:#?}"
    );

    // The phone in DFU mode: its finding, ECID and chip.
    let dfu = status
        .usb_devices
        .iter()
        .find(|d| d.mode == "dfu")
        .expect("the DFU phone");
    assert_eq!(finding_ids(dfu), ["device.dfu_mode"]);
    assert_eq!(dfu.ecid.as_deref(), Some("000C2C680044E02E"));
    assert_eq!(dfu.chip_id.as_deref(), Some("8015"));
    assert_eq!(dfu.speed_mbps, Some(480));
    assert_eq!(dfu.name, None, "never seen in normal mode");

    // A normal-mode phone usbmuxd does not list.
    let unclaimed = status
        .usb_devices
        .iter()
        .find(|d| d.mode == "normal")
        .expect("the unclaimed phone");
    assert_eq!(finding_ids(unclaimed), ["host.usbmuxd_not_claiming"]);
    assert_eq!(unclaimed.udid.as_deref(), Some("00008101-000E1D2C3B4A5F02"));

    // The CLI: --json carries the same, and the text explains the mode; both exit 1 (problems).
    let out = ctl(&daemon.api, "en", &["status", "--json"]).await;
    assert_eq!(out.status.code(), Some(exit::PROBLEMS));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert_eq!(
        json["usb_devices"].as_array().map(Vec::len),
        Some(2),
        "{json}"
    );
    let out = ctl(&daemon.api, "en", &["status"]).await;
    assert_eq!(out.status.code(), Some(exit::PROBLEMS));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("A phone is in DFU mode (ECID 000C2C680044E02E)"),
        "{text}"
    );
    assert!(text.contains("idevicerestore"), "{text}");
    assert!(text.contains("host.usbmuxd_not_claiming"), "{text}");
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_phone_in_recovery_mode_is_joined_to_its_history() {
    // First the phone in normal mode, through usbmuxd: the daemon learns it.
    let sim = SimRig::builtin("healthy").await;
    let daemon = Daemon::start(sim.dir.path(), &sim.socket, &["normal"]).await;
    daemon
        .wait_for("the phone diagnosed", |s| {
            s.devices.iter().any(|d| d.diagnosis.is_some())
        })
        .await;
    daemon.stop();

    // Then the same phone in recovery mode: usbmuxd lists nothing, the bus shows its ECID and serial number.
    let empty = SimRig::start(Vec::new()).await;
    let daemon = Daemon::start(sim.dir.path(), &empty.socket, &["recovery"]).await;
    let status = daemon
        .wait_for("the recovery-mode phone", |s| !s.usb_devices.is_empty())
        .await;
    let phone = &status.usb_devices[0];
    assert_eq!(phone.mode, "recovery");
    assert_eq!(finding_ids(phone), ["device.recovery_mode"]);
    assert_eq!(phone.ecid.as_deref(), Some("001A2B3C4D5E6F01"));
    assert_eq!(phone.serial_number.as_deref(), Some("F2LZK0HEALTH"));
    assert_eq!(phone.udid.as_deref(), Some(ANNA), "joined by ECID");
    assert_eq!(phone.name.as_deref(), Some("iPhone di Anna"));
    // No local backup of it yet: the finding says only iCloud could bring the data back.
    let finding = &phone.diagnosis.as_ref().expect("diagnosis").findings[0];
    assert!(
        finding
            .remedies
            .iter()
            .any(|s| s.text.key == "own.usbmode.no_backup"),
        "{finding:#?}"
    );
    let out = ctl(&daemon.api, "it", &["status"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("modalità di recupero"), "{text}");
    assert!(text.contains("iPhone di Anna"), "{text}");
    daemon.stop();
}

//! The USB bus as a second source of facts, beside usbmuxd.
//!
//! A watcher task scans the bus with `backupd-usb` on a blocking thread: at start, whenever libusb's hotplug
//! says an Apple device came or went, after every usbmuxd event, and on a slow timer. The supervisor keeps the
//! latest scan in a [`Bus`], which answers what the rules need: the facts of a phone usbmuxd lists (its link
//! speed), the devices usbmuxd does not list (DFU, recovery, or not taken), each joined by ECID to the phone's
//! history, the mode changes, and whether the daemon may read the bus at all.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use backupd_api as api;
use backupd_proto::usb::{format_ecid, ids_from_udid};
use backupd_rules::{UsbAccess, UsbFacts, UsbMode};
use backupd_usb::{Mode, Scan, UsbDevice};

/// The latest scan, shared with the phone tasks (for the link speed in their diagnosis).
pub type Shared = watch::Receiver<Option<Arc<Scan>>>;

/// What the watcher reports: a scan, or why libusb could not list the bus.
pub type ScanResult = Result<Scan, String>;

/// How long a normal-mode phone may sit on the bus unlisted before it counts as one usbmuxd does not take:
/// usbmuxd needs a moment to pick a configuration and list a phone just plugged in.
pub const SETTLE: Duration = Duration::from_secs(5);

/// How many ECIDs' last modes are remembered.
const MAX_MODES: usize = 256;

/// Scans the bus until `cancel`: now, on hotplug, on `nudge` (usbmuxd events), and every `rescan`.
pub async fn watch(
    tx: mpsc::Sender<ScanResult>,
    nudge: Arc<Notify>,
    rescan: Duration,
    tracker: TaskTracker,
    cancel: CancellationToken,
) {
    // libusb's hotplug events need a thread that waits in libusb; it checks the token twice a second.
    let hotplug_nudge = nudge.clone();
    let hotplug_cancel = cancel.clone();
    tracker.spawn_blocking(move || {
        let Some(hotplug) = backupd_usb::Hotplug::new() else {
            tracing::debug!("libusb has no hotplug here; rescanning on usbmuxd events and a timer");
            return;
        };
        while !hotplug_cancel.is_cancelled() {
            if hotplug.wait(Duration::from_millis(500)) {
                hotplug_nudge.notify_one();
            }
        }
    });
    loop {
        let scan = tokio::task::spawn_blocking(backupd_usb::scan)
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        if let Err(e) = &scan {
            tracing::warn!(error = %e, "cannot read the USB bus");
        }
        if tx.send(scan).await.is_err() {
            return;
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = nudge.notified() => {
                // Let a burst of changes (a phone re-enumerating) settle into one scan.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            () = tokio::time::sleep(rescan) => {}
        }
    }
}

/// A phone the daemon knows from usbmuxd (now or in its history).
#[derive(Debug, Clone)]
pub struct Known {
    /// Its UDID.
    pub udid: String,
    /// Its name.
    pub name: Option<String>,
    /// Its `ProductType`.
    pub product_type: Option<String>,
}

/// The supervisor's view of the bus.
#[derive(Debug)]
pub struct Bus {
    latest: Option<ScanResult>,
    modes: BTreeMap<u64, Mode>,
    usb_only: BTreeSet<String>,
    unlisted_since: BTreeMap<String, std::time::Instant>,
    settle: Duration,
    shared: watch::Sender<Option<Arc<Scan>>>,
}

impl Bus {
    /// An empty view, and the receiver the phone tasks read.
    pub fn new() -> (Self, Shared) {
        let (shared, rx) = watch::channel(None);
        (
            Self {
                latest: None,
                modes: BTreeMap::new(),
                usb_only: BTreeSet::new(),
                unlisted_since: BTreeMap::new(),
                settle: SETTLE,
                shared,
            },
            rx,
        )
    }

    /// Takes a scan. `listed` are the normalised UDIDs usbmuxd lists; `history` the phones known before.
    /// Returns the events to send and the UDIDs of listed phones that appeared on the bus (to diagnose again).
    pub fn on_scan(
        &mut self,
        scan: ScanResult,
        listed: &BTreeSet<String>,
        history: &[Known],
    ) -> (Vec<api::Event>, Vec<String>) {
        let mut events = Vec::new();
        let before: BTreeSet<String> = self
            .latest
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(|s| {
                s.devices
                    .iter()
                    .filter_map(|d| d.udid.as_deref().map(normalize))
                    .collect()
            })
            .unwrap_or_default();
        let mut appeared = Vec::new();
        if let Ok(scan) = &scan {
            for d in &scan.devices {
                if let Some(ecid) = d.ecid() {
                    let last = self.modes.get(&ecid).copied().or_else(|| {
                        // A phone seen before through usbmuxd was last in normal mode.
                        (d.mode != Mode::Normal && joined(d, history).is_some())
                            .then_some(Mode::Normal)
                    });
                    if let Some(from) = last.filter(|m| *m != d.mode) {
                        tracing::info!(ecid = format_ecid(ecid), %from, to = %d.mode, "phone changed mode");
                        events.push(api::Event::ModeChanged {
                            ecid: format_ecid(ecid),
                            udid: joined(d, history).map(|k| k.udid.clone()),
                            from: from.to_string(),
                            to: d.mode.to_string(),
                        });
                    }
                    if self.modes.len() < MAX_MODES || self.modes.contains_key(&ecid) {
                        self.modes.insert(ecid, d.mode);
                    }
                }
                if let Some(udid) = d.udid.as_deref().map(normalize)
                    && listed.contains(&udid)
                    && !before.contains(&udid)
                {
                    appeared.push(udid);
                }
            }
            let unlisted: BTreeSet<String> = scan
                .devices
                .iter()
                .filter(|d| !is_listed(d, listed))
                .map(id)
                .collect();
            self.unlisted_since.retain(|id, _| unlisted.contains(id));
            for id in unlisted {
                self.unlisted_since
                    .entry(id)
                    .or_insert_with(std::time::Instant::now);
            }
            let now: BTreeMap<String, &UsbDevice> = scan
                .devices
                .iter()
                .filter(|d| !is_listed(d, listed) && self.settled(d))
                .map(|d| (id(d), d))
                .collect();
            for (id, d) in &now {
                if !self.usb_only.contains(id) {
                    tracing::info!(id, mode = %d.mode, location = location(d), "device on USB that usbmuxd does not list");
                    events.push(api::Event::UsbDeviceAttached {
                        id: id.clone(),
                        mode: d.mode.to_string(),
                    });
                }
            }
            for id in &self.usb_only {
                if !now.contains_key(id) {
                    events.push(api::Event::UsbDeviceDetached { id: id.clone() });
                }
            }
            self.usb_only = now.into_keys().collect();
            self.shared.send_replace(Some(Arc::new(scan.clone())));
        }
        self.latest = Some(scan);
        (events, appeared)
    }

    /// Whether an unlisted device counts: DFU and recovery at once, a normal-mode phone once usbmuxd has had
    /// [`SETTLE`] to list it.
    fn settled(&self, d: &UsbDevice) -> bool {
        d.mode != Mode::Normal
            || self
                .unlisted_since
                .get(&id(d))
                .is_some_and(|t| t.elapsed() >= self.settle)
    }

    /// Whether the daemon may read the bus; `None` before the first scan.
    pub fn access(&self) -> Option<UsbAccess> {
        Some(match self.latest.as_ref()? {
            Err(e) => UsbAccess::Denied { detail: e.clone() },
            Ok(scan) => match scan.permission_denied().next() {
                Some(d) => UsbAccess::Denied {
                    detail: format!(
                        "cannot open {} to read its serial number (permission denied)",
                        location(d)
                    ),
                },
                None => UsbAccess::Granted,
            },
        })
    }

    /// The devices usbmuxd does not list, with their facts for the rules and their history.
    pub fn usb_only(&self, listed: &BTreeSet<String>, history: &[Known]) -> Vec<UsbOnly> {
        let Some(Ok(scan)) = &self.latest else {
            return Vec::new();
        };
        scan.devices
            .iter()
            .filter(|d| !is_listed(d, listed) && self.settled(d))
            .map(|d| {
                let known = joined(d, history).cloned();
                let facts = facts(d, false);
                let view = api::UsbDevice {
                    id: id(d),
                    mode: d.mode.to_string(),
                    product_id: d.product_id,
                    location: location(d),
                    speed_mbps: Some(d.speed.bits_per_second() / 1_000_000)
                        .filter(|_| d.speed != backupd_usb::Speed::Unknown),
                    ecid: d.ecid().map(format_ecid),
                    chip_id: d
                        .boot
                        .as_ref()
                        .map(|b| format!("{:04X}", b.cpid))
                        .or_else(|| {
                            d.udid
                                .as_deref()
                                .and_then(ids_from_udid)
                                .map(|(c, _)| format!("{c:04X}"))
                        }),
                    serial_number: facts.serial_number.clone(),
                    udid: d
                        .udid
                        .clone()
                        .or_else(|| known.as_ref().map(|k| k.udid.clone())),
                    name: known.as_ref().and_then(|k| k.name.clone()),
                    product_type: known.as_ref().and_then(|k| k.product_type.clone()),
                    diagnosis: None,
                };
                UsbOnly { facts, view, known }
            })
            .collect()
    }
}

/// A device seen only on the bus: the rules' facts, the API view (without its diagnosis yet) and the phone it
/// was joined to.
#[derive(Debug)]
pub struct UsbOnly {
    /// For the rules.
    pub facts: UsbFacts,
    /// For the API.
    pub view: api::UsbDevice,
    /// The phone this ECID was seen as before.
    pub known: Option<Known>,
}

/// The facts of a phone usbmuxd lists, from the latest scan.
pub fn phone_facts(scan: Option<&Scan>, udid: &str) -> Option<UsbFacts> {
    let key = normalize(udid);
    scan?
        .devices
        .iter()
        .find(|d| d.udid.as_deref().map(normalize).as_deref() == Some(key.as_str()))
        .map(|d| facts(d, true))
}

fn facts(d: &UsbDevice, listed: bool) -> UsbFacts {
    let mode = match d.mode {
        Mode::Normal => UsbMode::Normal,
        Mode::Recovery => UsbMode::Recovery,
        Mode::Dfu => UsbMode::Dfu,
        _ => UsbMode::Other,
    };
    let mut f = UsbFacts::new(mode, d.product_id, location(d));
    f.speed_mbps = Some(d.speed.bits_per_second() / 1_000_000)
        .filter(|_| d.speed != backupd_usb::Speed::Unknown);
    f.ecid = d.ecid().map(format_ecid);
    f.serial_number = d.boot.as_ref().and_then(|b| b.serial_number.clone());
    f.listed_by_usbmuxd = listed;
    f
}

fn normalize(udid: &str) -> String {
    backupd_proto::usbmuxd::normalize_udid(udid)
}

fn is_listed(d: &UsbDevice, listed: &BTreeSet<String>) -> bool {
    d.udid
        .as_deref()
        .is_some_and(|u| listed.contains(&normalize(u)))
}

/// The phone in the history with the same ECID (from a UDID of the newer form) or the same UDID.
fn joined<'a>(d: &UsbDevice, history: &'a [Known]) -> Option<&'a Known> {
    if let Some(udid) = d.udid.as_deref() {
        let key = normalize(udid);
        if let Some(k) = history.iter().find(|k| normalize(&k.udid) == key) {
            return Some(k);
        }
    }
    let ecid = d.ecid()?;
    history
        .iter()
        .find(|k| ids_from_udid(&k.udid).is_some_and(|(_, e)| e == ecid))
}

fn id(d: &UsbDevice) -> String {
    match d.ecid() {
        Some(e) => format!("ecid:{}", format_ecid(e)),
        None => format!("usb:{}", d.port_path),
    }
}

fn location(d: &UsbDevice) -> String {
    format!("bus {} port {}", d.bus, d.port_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NORMAL: &str = r#"{"bus":1,"address":7,"port_path":"1-3","product_id":4776,"mode":"normal","speed":"high","usb_version":512,"configurations":4,"active_configuration":4,"mux_interface":{"configuration":4,"interface":1},"product":"iPhone","serial":"00008110-001A2B3C4D5E6F01","strings_from":"sysfs","udid":"00008110-001A2B3C4D5E6F01","boot":null}"#;
    const RECOVERY: &str = r#"{"bus":1,"address":9,"port_path":"1-3","product_id":4737,"mode":"recovery","speed":"high","usb_version":512,"configurations":1,"active_configuration":1,"mux_interface":null,"product":"Apple Mobile Device (Recovery Mode)","serial":"SDOM:01 CPID:8110 ECID:001A2B3C4D5E6F01 SRNM:[F2LZK0HEALTH]","strings_from":"sysfs","udid":null,"boot":{"cpid":33040,"cprv":null,"cpfm":null,"scep":null,"bdid":null,"ecid":7365887390543617,"ibfl":null,"sdom":1,"serial_number":"F2LZK0HEALTH","imei":null,"srtg":null,"pwnd":null}}"#;

    fn scan(devices: &[&str]) -> ScanResult {
        let devices: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
        Ok(
            serde_json::from_str(&format!(r#"{{"devices":[{}]}}"#, devices.join(",")))
                .expect("scan JSON"),
        )
    }

    fn anna() -> Vec<Known> {
        vec![Known {
            udid: "00008110-001A2B3C4D5E6F01".into(),
            name: Some("iPhone di Anna".into()),
            product_type: Some("iPhone14,5".into()),
        }]
    }

    fn settled_bus() -> (Bus, Shared) {
        let (mut bus, rx) = Bus::new();
        bus.settle = Duration::ZERO;
        (bus, rx)
    }

    #[test]
    fn a_phone_just_plugged_in_is_not_reported_before_usbmuxd_had_time_to_list_it() {
        let (mut bus, _rx) = Bus::new();
        let (events, _) = bus.on_scan(scan(&[NORMAL, RECOVERY]), &BTreeSet::new(), &[]);
        let only = bus.usb_only(&BTreeSet::new(), &[]);
        assert_eq!(
            only.len(),
            1,
            "only the recovery-mode device counts at once"
        );
        assert_eq!(only[0].facts.mode, UsbMode::Recovery);
        let attached = events
            .iter()
            .filter(|e| matches!(e, api::Event::UsbDeviceAttached { .. }))
            .count();
        assert_eq!(attached, 1, "{events:?}");
    }

    #[test]
    fn a_phone_listed_by_both_is_one_phone() {
        let (mut bus, _rx) = settled_bus();
        let listed: BTreeSet<String> = [normalize("00008110-001A2B3C4D5E6F01")].into();
        let (events, appeared) = bus.on_scan(scan(&[NORMAL]), &listed, &anna());
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(appeared, vec![normalize("00008110-001A2B3C4D5E6F01")]);
        assert!(bus.usb_only(&listed, &anna()).is_empty());
        let facts = phone_facts(bus.shared.borrow().as_deref(), "00008110-001a2b3c4d5e6f01")
            .expect("the phone's bus facts");
        assert_eq!(facts.speed_mbps, Some(480));
        assert!(facts.listed_by_usbmuxd);
        assert_eq!(bus.access(), Some(UsbAccess::Granted));
    }

    #[test]
    fn a_phone_usbmuxd_does_not_list_is_usb_only() {
        let (mut bus, _rx) = settled_bus();
        let (events, _) = bus.on_scan(scan(&[NORMAL]), &BTreeSet::new(), &[]);
        assert!(
            matches!(&events[..], [api::Event::UsbDeviceAttached { mode, .. }] if mode == "normal")
        );
        let only = bus.usb_only(&BTreeSet::new(), &[]);
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].facts.mode, UsbMode::Normal);
        assert!(!only[0].facts.listed_by_usbmuxd);
    }

    #[test]
    fn leaving_normal_mode_into_recovery_and_back_are_mode_changes() {
        let (mut bus, _rx) = settled_bus();
        let listed: BTreeSet<String> = [normalize("00008110-001A2B3C4D5E6F01")].into();
        let _ = bus.on_scan(scan(&[NORMAL]), &listed, &anna());
        let (events, _) = bus.on_scan(scan(&[RECOVERY]), &BTreeSet::new(), &anna());
        assert!(
            events.iter().any(
                |e| matches!(e, api::Event::ModeChanged { from, to, udid: Some(u), .. }
                if from == "normal" && to == "recovery" && u == "00008110-001A2B3C4D5E6F01")
            ),
            "{events:?}"
        );
        let only = bus.usb_only(&BTreeSet::new(), &anna());
        assert_eq!(only[0].view.name.as_deref(), Some("iPhone di Anna"));
        assert_eq!(only[0].view.serial_number.as_deref(), Some("F2LZK0HEALTH"));
        assert_eq!(only[0].view.id, "ecid:001A2B3C4D5E6F01");
        let (events, _) = bus.on_scan(scan(&[NORMAL]), &listed, &anna());
        assert!(
            events
                .iter()
                .any(|e| matches!(e, api::Event::ModeChanged { from, to, .. }
                if from == "recovery" && to == "normal"))
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, api::Event::UsbDeviceDetached { .. }))
        );
    }

    #[test]
    fn a_phone_known_from_history_first_seen_in_recovery_left_normal_mode() {
        let (mut bus, _rx) = settled_bus();
        let (events, _) = bus.on_scan(scan(&[RECOVERY]), &BTreeSet::new(), &anna());
        assert!(
            events
                .iter()
                .any(|e| matches!(e, api::Event::ModeChanged { from, .. } if from == "normal"))
        );
        // Unknown to the history: no change to speak of.
        let (mut bus, _rx) = settled_bus();
        let (events, _) = bus.on_scan(scan(&[RECOVERY]), &BTreeSet::new(), &[]);
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, api::Event::ModeChanged { .. }))
        );
    }

    #[test]
    fn an_unreadable_bus_is_a_denied_access() {
        let (mut bus, _rx) = settled_bus();
        assert_eq!(bus.access(), None);
        let _ = bus.on_scan(Err("libusb: access denied".into()), &BTreeSet::new(), &[]);
        assert!(matches!(bus.access(), Some(UsbAccess::Denied { .. })));
        assert!(bus.usb_only(&BTreeSet::new(), &[]).is_empty());
    }
}

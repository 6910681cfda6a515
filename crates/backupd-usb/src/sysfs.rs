//! Linux: a USB device's strings and speed from sysfs, found by bus number and address, without opening it.
//!
//! Every attribute read is bounded: sysfs attributes are at most a page, and a string descriptor far less.

use std::io::Read;
use std::path::Path;

use backupd_proto::usb::{MAX_SERIAL_LEN, Speed};

const DEVICES: &str = "/sys/bus/usb/devices";

/// What sysfs says about one device.
pub(crate) struct Attrs {
    pub(crate) serial: Option<String>,
    pub(crate) product: Option<String>,
    pub(crate) speed: Option<Speed>,
}

/// The attributes of the device at `bus`/`address`, if sysfs lists it.
pub(crate) fn find(bus: u8, address: u8) -> Option<Attrs> {
    let entries = std::fs::read_dir(DEVICES).ok()?;
    for entry in entries.flatten() {
        let dir = entry.path();
        // Interfaces (`1-1:1.0`) and root hubs' ports have no busnum/devnum of their own.
        let (Some(b), Some(a)) = (number(&dir, "busnum"), number(&dir, "devnum")) else {
            continue;
        };
        if b == u32::from(bus) && a == u32::from(address) {
            return Some(Attrs {
                serial: attr(&dir, "serial"),
                product: attr(&dir, "product"),
                speed: attr(&dir, "speed").map(|s| Speed::from_sysfs(&s)),
            });
        }
    }
    None
}

fn number(dir: &Path, name: &str) -> Option<u32> {
    attr(dir, name)?.parse().ok()
}

fn attr(dir: &Path, name: &str) -> Option<String> {
    let file = std::fs::File::open(dir.join(name)).ok()?;
    let mut buf = Vec::new();
    file.take(MAX_SERIAL_LEN as u64)
        .read_to_end(&mut buf)
        .ok()?;
    let text = String::from_utf8_lossy(&buf);
    let text = text.trim_end_matches(['\n', '\0']).trim();
    (!text.is_empty()).then(|| text.to_owned())
}

//! What the USB bus says about a phone, as plain facts: the rules never see libusb or protocol types.
//!
//! The daemon fills [`UsbFacts`] from its USB watcher for a phone usbmuxd lists (then the link speed matters)
//! and for a device seen only on the bus (a phone in DFU or recovery mode, or one usbmuxd does not take), and
//! [`UsbAccess`] for the host.

use serde::{Deserialize, Serialize};

/// What a device on the bus is doing, by its product id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UsbMode {
    /// Running iOS.
    Normal,
    /// iBoot's recovery mode.
    Recovery,
    /// The boot ROM's DFU mode.
    Dfu,
    /// Any other Apple mode (WTF, port DFU, KIS, a Mac's restore or iBridge).
    Other,
}

/// One device as the USB bus shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UsbFacts {
    /// Its mode.
    pub mode: UsbMode,
    /// The product id, e.g. 0x1281.
    pub product_id: u16,
    /// Link speed in Mbit/s (480 is USB 2), when reported.
    pub speed_mbps: Option<u64>,
    /// The ECID, 16 hex digits, when known (DFU and recovery serial strings, newer UDIDs).
    pub ecid: Option<String>,
    /// The serial number, when the phone reports it (recovery mode) or is known from its history.
    pub serial_number: Option<String>,
    /// Whether usbmuxd lists this device.
    pub listed_by_usbmuxd: bool,
    /// Where on the host it was seen, e.g. `bus 1 port 1-2`.
    pub location: String,
}

impl UsbFacts {
    /// A device seen on the bus.
    pub fn new(mode: UsbMode, product_id: u16, location: impl Into<String>) -> Self {
        Self {
            mode,
            product_id,
            speed_mbps: None,
            ecid: None,
            serial_number: None,
            listed_by_usbmuxd: false,
            location: location.into(),
        }
    }
}

/// Whether the daemon may read the USB devices it needs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
#[non_exhaustive]
pub enum UsbAccess {
    /// It lists the bus and reads every Apple device's identity.
    Granted,
    /// It cannot: libusb cannot list the bus, or a device's strings are out of reach.
    Denied {
        /// What failed, in technical terms.
        detail: String,
    },
}

/// Product types whose USB-C port supports USB 3 (10 Gbit/s): iPhone 15 Pro and Pro Max, iPhone 16 Pro and Pro
/// Max. iPhone 15 and 16 (non-Pro) are USB 2 only, and so is every Lightning iPhone. Later models are not listed
/// until confirmed, so a finding never rests on a guess.
pub const USB3_PRODUCT_TYPES: &[(&str, &str)] = &[
    ("iPhone16,1", "iPhone 15 Pro"),
    ("iPhone16,2", "iPhone 15 Pro Max"),
    ("iPhone17,1", "iPhone 16 Pro"),
    ("iPhone17,2", "iPhone 16 Pro Max"),
];

/// The marketing name of a product type whose port supports USB 3.
pub(crate) fn usb3_model_name(product_type: &str) -> Option<&'static str> {
    USB3_PRODUCT_TYPES
        .iter()
        .find(|(p, _)| *p == product_type)
        .map(|(_, name)| *name)
}

/// A USB link's useful rate for a backup, in bytes per second: 60% of the signalling rate, an estimate of
/// protocol overhead; the phone's flash and encryption can make either figure slower.
pub(crate) fn backup_rate_bytes(speed_mbps: u64) -> u64 {
    speed_mbps.saturating_mul(1_000_000) / 8 * 6 / 10
}

/// A duration in words both languages read alike: `45 min`, `2 h 10 min`, `< 1 min`.
pub(crate) fn duration_text(secs: u64) -> String {
    let minutes = secs.div_ceil(60);
    match minutes {
        0 => "< 1 min".to_owned(),
        m if m < 60 => format!("{m} min"),
        m if m % 60 == 0 => format!("{} h", m / 60),
        m => format!("{} h {} min", m / 60, m % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations() {
        assert_eq!(backup_rate_bytes(480), 36_000_000);
        assert_eq!(backup_rate_bytes(10_000), 750_000_000);
        assert_eq!(duration_text(0), "< 1 min");
        assert_eq!(duration_text(59), "1 min");
        assert_eq!(duration_text(3600), "1 h");
        assert_eq!(duration_text(7_801), "2 h 11 min");
    }
}

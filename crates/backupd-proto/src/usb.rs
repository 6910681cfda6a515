//! Apple devices as the USB bus shows them, sans-IO: which mode a product id means, which interface usbmuxd
//! would use, the link speed, and the serial-number string that phones in DFU and recovery mode report.
//!
//! Facts and their sources: `../shared/protocol-wave2.md` §3. The product ids are libirecovery's
//! (`include/libirecovery.h`) for DFU, WTF, recovery, port DFU and KIS, and usbmuxd's (`src/usb.h`) for the
//! normal range, the Apple-silicon restore range and the T2/iBridge. Nothing here opens a device: the USB
//! watcher (`backupd-usb`) reads descriptors and strings and hands them to these functions.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Apple's USB vendor id.
pub const APPLE_VENDOR_ID: u16 = 0x05ac;

/// The longest serial string accepted. A USB string descriptor holds at most 126 UTF-16 units; sysfs and
/// libusb hand it over as UTF-8, so a few bytes per unit at most.
pub const MAX_SERIAL_LEN: usize = 512;

/// What an Apple device on the bus is doing, from its product id alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mode {
    /// Running iOS (product ids 0x1290–0x12AF): usbmuxd's business.
    Normal,
    /// iBoot's recovery mode (0x1280–0x1283); the phone shows a cable and a computer.
    Recovery,
    /// The boot ROM's DFU mode (0x1227); the screen stays black.
    Dfu,
    /// "WTF" mode of very old devices (0x1222).
    Wtf,
    /// Port DFU (0xF014).
    PortDfu,
    /// KIS (0x1881), read through its own protocol rather than string descriptors.
    Kis,
    /// An Apple-silicon Mac in restore mode (0x1901–0x1905), which usbmuxd also serves.
    MacRestore,
    /// A Mac's T2 / iBridge coprocessor (0x8600), which usbmuxd also serves.
    IBridge,
}

impl Mode {
    /// The serialized name, e.g. `recovery`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Recovery => "recovery",
            Self::Dfu => "dfu",
            Self::Wtf => "wtf",
            Self::PortDfu => "port_dfu",
            Self::Kis => "kis",
            Self::MacRestore => "mac_restore",
            Self::IBridge => "ibridge",
        }
    }

    /// Whether usbmuxd takes devices of this mode (usbmuxd `src/usb.c`: 0x8600, 0x1901–0x1905, 0x1290–0x12AF).
    pub fn usbmuxd_serves(self) -> bool {
        matches!(self, Self::Normal | Self::MacRestore | Self::IBridge)
    }

    /// Whether the serial string is libirecovery's `KEY:VALUE` list (DFU, WTF, recovery, port DFU) rather than
    /// a UDID.
    pub fn reports_boot_serial(self) -> bool {
        matches!(self, Self::Recovery | Self::Dfu | Self::Wtf | Self::PortDfu)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The mode of an Apple mobile device, or `None` for any other device (another vendor, or an Apple keyboard,
/// hub or display).
pub fn classify(vendor_id: u16, product_id: u16) -> Option<Mode> {
    if vendor_id != APPLE_VENDOR_ID {
        return None;
    }
    Some(match product_id {
        0x1290..=0x12af => Mode::Normal,
        0x1280..=0x1283 => Mode::Recovery,
        0x1227 => Mode::Dfu,
        0x1222 => Mode::Wtf,
        0xf014 => Mode::PortDfu,
        0x1881 => Mode::Kis,
        0x1901..=0x1905 => Mode::MacRestore,
        0x8600 => Mode::IBridge,
        _ => return None,
    })
}

/// The negotiated link speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Speed {
    /// Not reported.
    Unknown,
    /// 1.5 Mbit/s.
    Low,
    /// 12 Mbit/s (USB 1.1).
    Full,
    /// 480 Mbit/s (USB 2).
    High,
    /// 5 Gbit/s (USB 3.x Gen 1).
    Super,
    /// 10 Gbit/s or more (USB 3.x Gen 2).
    SuperPlus,
}

impl Speed {
    /// Bits per second, as usbmuxd publishes `ConnectionSpeed` (an unknown speed counts as 480 Mbit/s there too).
    pub fn bits_per_second(self) -> u64 {
        match self {
            Self::Low => 1_500_000,
            Self::Full => 12_000_000,
            Self::High | Self::Unknown => 480_000_000,
            Self::Super => 5_000_000_000,
            Self::SuperPlus => 10_000_000_000,
        }
    }

    /// The serialized name, e.g. `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Low => "low",
            Self::Full => "full",
            Self::High => "high",
            Self::Super => "super",
            Self::SuperPlus => "super_plus",
        }
    }

    /// Parses Linux's sysfs `speed` attribute, in Mbit/s: `1.5`, `12`, `480`, `5000`, `10000`, `20000`.
    pub fn from_sysfs(mbps: &str) -> Self {
        match mbps.trim() {
            "1.5" => Self::Low,
            "12" => Self::Full,
            "480" => Self::High,
            "5000" => Self::Super,
            "10000" | "20000" => Self::SuperPlus,
            _ => Self::Unknown,
        }
    }
}

/// One interface alternate setting, as the watcher read it from the configuration descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceDesc {
    /// `bInterfaceNumber`.
    pub number: u8,
    /// `bAlternateSetting`.
    pub alt_setting: u8,
    /// `bInterfaceClass`.
    pub class: u8,
    /// `bInterfaceSubClass`.
    pub subclass: u8,
    /// `bInterfaceProtocol`.
    pub protocol: u8,
    /// `bNumEndpoints`.
    pub endpoints: u8,
}

/// One configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDesc {
    /// `bConfigurationValue`.
    pub value: u8,
    /// Its interfaces, every alternate setting.
    pub interfaces: Vec<InterfaceDesc>,
}

/// Where usbmuxd would talk to the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuxInterface {
    /// The configuration holding it.
    pub configuration: u8,
    /// The interface number.
    pub interface: u8,
}

/// The usbmux interface's class, subclass and protocol (usbmuxd `src/usb.h`).
pub const MUX_CLASS: (u8, u8, u8) = (255, 254, 2);

/// Finds the usbmux interface as usbmuxd does: walking configurations from the highest value down, the first
/// interface of class 255, subclass 254, protocol 2 with exactly two endpoints.
///
/// usbmuxd's source joins the three comparisons with `||` (protocol-wave2 §3.2), which on real phones finds the
/// same interface since no other interface of theirs has class 255 with two endpoints before it; we require all
/// three, which is what the comparison means.
pub fn find_mux_interface(configs: &[ConfigDesc]) -> Option<MuxInterface> {
    let mut ordered: Vec<&ConfigDesc> = configs.iter().collect();
    ordered.sort_by_key(|c| std::cmp::Reverse(c.value));
    ordered.into_iter().find_map(|c| {
        c.interfaces
            .iter()
            .find(|i| (i.class, i.subclass, i.protocol) == MUX_CLASS && i.endpoints == 2)
            .map(|i| MuxInterface {
                configuration: c.value,
                interface: i.number,
            })
    })
}

/// Why a serial string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsbError {
    /// Longer than [`MAX_SERIAL_LEN`].
    #[error("serial string of {0} bytes is longer than {MAX_SERIAL_LEN}")]
    TooLong(usize),
    /// A numeric field is not hexadecimal or does not fit.
    #[error("serial string field {key} is not a hex number: {value:?}")]
    BadNumber {
        /// The key, e.g. `ECID`.
        key: &'static str,
        /// What it held.
        value: String,
    },
    /// A bracketed field has no closing bracket.
    #[error("serial string field {0} has no closing bracket")]
    Unterminated(String),
    /// No field the boot ROM or iBoot always reports (`CPID`, `ECID`).
    #[error("not a DFU or recovery serial string: no CPID or ECID")]
    NotBootSerial,
}

/// The identity a phone in DFU or recovery mode reports in its serial-number string, typed.
///
/// libirecovery (`irecv_load_device_info_from_iboot_string`) and pymobiledevice3 (`irecv.py`) read the same
/// space-separated `KEY:VALUE` list; numbers are hexadecimal, `SRNM`, `IMEI` and `SRTG` are in brackets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BootSerial {
    /// `CPID`, the chip id (0x8015 is A11, 0x8110 A15).
    pub cpid: u32,
    /// `CPRV`, the chip revision.
    pub cprv: Option<u32>,
    /// `CPFM`, chip fuse mode: bit 0 security mode, bit 1 production mode.
    pub cpfm: Option<u32>,
    /// `SCEP`, the security epoch.
    pub scep: Option<u32>,
    /// `BDID`, the board id.
    pub bdid: Option<u32>,
    /// `ECID`, the chip's unique id.
    pub ecid: u64,
    /// `IBFL`, iBoot flags.
    pub ibfl: Option<u32>,
    /// `SDOM`, the security domain.
    pub sdom: Option<u32>,
    /// `SRNM`, the serial number (recovery mode only).
    pub serial_number: Option<String>,
    /// `IMEI` (recovery mode of cellular devices).
    pub imei: Option<String>,
    /// `SRTG`, the boot ROM or iBoot tag, e.g. `iBoot-3332.0.0.1.23`.
    pub srtg: Option<String>,
    /// `PWND`: the boot ROM was exploited (checkm8 and kin); the name of the tool.
    pub pwnd: Option<String>,
}

impl BootSerial {
    /// Parses a DFU or recovery serial string.
    ///
    /// Unknown keys are ignored (new iBoots add some, e.g. `SIKA`); a string without `CPID` and `ECID` is not
    /// one of these. libirecovery defaults a missing `CPID` to 0x8900 for the first iPhone; we refuse it,
    /// since without an ECID nothing ties the device to a phone.
    pub fn parse(serial: &str) -> Result<Self, UsbError> {
        if serial.len() > MAX_SERIAL_LEN {
            return Err(UsbError::TooLong(serial.len()));
        }
        let mut out = Self::default();
        let (mut cpid, mut ecid) = (None, None);
        let mut rest = serial.trim();
        while !rest.is_empty() {
            let (key, after) = match rest.split_once(':') {
                Some((k, a)) => (k.trim(), a),
                None => break,
            };
            let (value, next) = if let Some(inner) = after.strip_prefix('[') {
                let end = inner
                    .find(']')
                    .ok_or_else(|| UsbError::Unterminated(key.to_owned()))?;
                (&inner[..end], &inner[end + 1..])
            } else {
                match after.find(char::is_whitespace) {
                    Some(end) => (&after[..end], &after[end..]),
                    None => (after, ""),
                }
            };
            rest = next.trim_start();
            match key {
                "CPID" => cpid = Some(hex32("CPID", value)?),
                "CPRV" => out.cprv = Some(hex32("CPRV", value)?),
                "CPFM" => out.cpfm = Some(hex32("CPFM", value)?),
                "SCEP" => out.scep = Some(hex32("SCEP", value)?),
                "BDID" => out.bdid = Some(hex32("BDID", value)?),
                "IBFL" => out.ibfl = Some(hex32("IBFL", value)?),
                "SDOM" => out.sdom = Some(hex32("SDOM", value)?),
                "ECID" => {
                    ecid =
                        Some(
                            u64::from_str_radix(value, 16).map_err(|_| UsbError::BadNumber {
                                key: "ECID",
                                value: value.to_owned(),
                            })?,
                        );
                }
                "SRNM" => out.serial_number = Some(value.to_owned()),
                "IMEI" => out.imei = Some(value.to_owned()),
                "SRTG" => out.srtg = Some(value.to_owned()),
                "PWND" => out.pwnd = Some(value.to_owned()),
                _ => {}
            }
        }
        match (cpid, ecid) {
            (Some(c), Some(e)) => {
                out.cpid = c;
                out.ecid = e;
                Ok(out)
            }
            _ => Err(UsbError::NotBootSerial),
        }
    }

    /// Whether the chip is production-fused (`CPFM` bit 1).
    pub fn production_fused(&self) -> Option<bool> {
        self.cpfm.map(|f| f & 0b10 != 0)
    }
}

fn hex32(key: &'static str, value: &str) -> Result<u32, UsbError> {
    u32::from_str_radix(value, 16).map_err(|_| UsbError::BadNumber {
        key,
        value: value.to_owned(),
    })
}

/// The ECID written as the tools show it: 16 upper-case hex digits, as in the serial string and in the UDID.
pub fn format_ecid(ecid: u64) -> String {
    format!("{ecid:016X}")
}

/// The chip id and ECID inside a UDID of the form phones with an A12 or later use, `CCCCCCCC-EEEEEEEEEEEEEEEE`
/// (8 hex digits of chip id, a dash, 16 of ECID); `None` for the older 40-digit form, which hides both.
///
/// This is how a phone seen in normal mode is recognised later in DFU or recovery mode, where it reports only
/// its ECID.
pub fn ids_from_udid(udid: &str) -> Option<(u32, u64)> {
    let (chip, ecid) = udid.trim().split_once('-')?;
    if chip.len() != 8 || ecid.len() != 16 {
        return None;
    }
    let chip = u32::from_str_radix(chip, 16).ok()?;
    let ecid = u64::from_str_radix(ecid, 16).ok()?;
    Some((chip, ecid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_ids_classify_as_libirecovery_and_usbmuxd_list_them() {
        assert_eq!(classify(APPLE_VENDOR_ID, 0x12a8), Some(Mode::Normal));
        assert_eq!(classify(APPLE_VENDOR_ID, 0x1290), Some(Mode::Normal));
        assert_eq!(classify(APPLE_VENDOR_ID, 0x12af), Some(Mode::Normal));
        assert_eq!(classify(APPLE_VENDOR_ID, 0x12b0), None);
        for pid in 0x1280..=0x1283 {
            assert_eq!(classify(APPLE_VENDOR_ID, pid), Some(Mode::Recovery));
        }
        assert_eq!(classify(APPLE_VENDOR_ID, 0x1284), None);
        assert_eq!(classify(APPLE_VENDOR_ID, 0x1227), Some(Mode::Dfu));
        assert_eq!(
            classify(APPLE_VENDOR_ID, 0x1226),
            None,
            "unconfirmed DFU ids"
        );
        assert_eq!(classify(APPLE_VENDOR_ID, 0x1222), Some(Mode::Wtf));
        assert_eq!(classify(APPLE_VENDOR_ID, 0xf014), Some(Mode::PortDfu));
        assert_eq!(classify(APPLE_VENDOR_ID, 0x1881), Some(Mode::Kis));
        assert_eq!(classify(APPLE_VENDOR_ID, 0x1905), Some(Mode::MacRestore));
        assert_eq!(classify(APPLE_VENDOR_ID, 0x8600), Some(Mode::IBridge));
        // An Apple keyboard, and a phone's ids under another vendor.
        assert_eq!(classify(APPLE_VENDOR_ID, 0x024f), None);
        assert_eq!(classify(0x18d1, 0x1227), None);
    }

    #[test]
    fn only_usbmuxd_modes_are_served_and_only_boot_modes_report_boot_serials() {
        assert!(Mode::Normal.usbmuxd_serves());
        assert!(!Mode::Recovery.usbmuxd_serves());
        assert!(!Mode::Dfu.usbmuxd_serves());
        assert!(Mode::Dfu.reports_boot_serial());
        assert!(!Mode::Normal.reports_boot_serial());
        assert!(!Mode::Kis.reports_boot_serial());
    }

    fn iface(number: u8, class: u8, subclass: u8, protocol: u8, endpoints: u8) -> InterfaceDesc {
        InterfaceDesc {
            number,
            alt_setting: 0,
            class,
            subclass,
            protocol,
            endpoints,
        }
    }

    #[test]
    fn the_mux_interface_is_found_in_the_highest_configuration_first() {
        // A normal-mode iPhone: 1 PTP, 2 iPod USB, 3 PTP + mux, 4 iPod + mux + network.
        let configs = vec![
            ConfigDesc {
                value: 1,
                interfaces: vec![iface(0, 6, 1, 1, 3)],
            },
            ConfigDesc {
                value: 3,
                interfaces: vec![iface(0, 6, 1, 1, 3), iface(1, 255, 254, 2, 2)],
            },
            ConfigDesc {
                value: 4,
                interfaces: vec![
                    iface(0, 6, 1, 1, 3),
                    iface(1, 255, 254, 2, 2),
                    iface(2, 255, 253, 1, 2),
                ],
            },
        ];
        assert_eq!(
            find_mux_interface(&configs),
            Some(MuxInterface {
                configuration: 4,
                interface: 1
            })
        );
        // Three endpoints is not the mux interface; neither is a vendor interface with another subclass.
        let none = vec![ConfigDesc {
            value: 1,
            interfaces: vec![iface(0, 255, 254, 2, 3), iface(1, 255, 255, 81, 2)],
        }];
        assert_eq!(find_mux_interface(&none), None);
    }

    #[test]
    fn sysfs_speeds_map_to_usbmuxds_figures() {
        assert_eq!(Speed::from_sysfs("480\n"), Speed::High);
        assert_eq!(Speed::from_sysfs("5000"), Speed::Super);
        assert_eq!(Speed::from_sysfs("10000"), Speed::SuperPlus);
        assert_eq!(Speed::from_sysfs("1.5"), Speed::Low);
        assert_eq!(Speed::from_sysfs("fast"), Speed::Unknown);
        assert_eq!(Speed::Unknown.bits_per_second(), 480_000_000);
        assert_eq!(Speed::SuperPlus.bits_per_second(), 10_000_000_000);
    }

    #[test]
    fn udids_of_a12_and_later_carry_chip_and_ecid() {
        assert_eq!(
            ids_from_udid("00008110-001A2B3C4D5E6F01"),
            Some((0x8110, 0x001A_2B3C_4D5E_6F01))
        );
        assert_eq!(
            ids_from_udid("6d1f9a3b2c4e5f60718293a4b5c6d7e8f9012345"),
            None
        );
        assert_eq!(ids_from_udid("0000811-001A2B3C4D5E6F012"), None);
        assert_eq!(ids_from_udid("0000811G-001A2B3C4D5E6F01"), None);
        assert_eq!(format_ecid(0xC2C680044E02E), "000C2C680044E02E");
    }

    #[test]
    fn malformed_serials_are_refused_with_a_reason() {
        assert_eq!(
            BootSerial::parse("CPID:8015 ECID:XYZ"),
            Err(UsbError::BadNumber {
                key: "ECID",
                value: "XYZ".into()
            })
        );
        assert_eq!(
            BootSerial::parse("CPID:8015 ECID:1 SRTG:[iBoot"),
            Err(UsbError::Unterminated("SRTG".into()))
        );
        assert_eq!(
            BootSerial::parse("00008110-001A2B3C4D5E6F01"),
            Err(UsbError::NotBootSerial)
        );
        assert_eq!(BootSerial::parse(""), Err(UsbError::NotBootSerial));
        assert_eq!(
            BootSerial::parse(&"A".repeat(MAX_SERIAL_LEN + 1)),
            Err(UsbError::TooLong(MAX_SERIAL_LEN + 1))
        );
        assert_eq!(
            BootSerial::parse("CPID:1FFFFFFFF ECID:1"),
            Err(UsbError::BadNumber {
                key: "CPID",
                value: "1FFFFFFFF".into()
            })
        );
    }
}

//! The USB bus as a second source of facts, beside usbmuxd: every Apple mobile device plugged in, in any mode,
//! with its link speed, configuration and identifiers. Nothing here claims an interface or changes a
//! configuration, so usbmuxd keeps the phone.
//!
//! Two paths read the identifying strings (serial number, product name):
//! - Linux: the kernel's sysfs attributes of the device (`serial`, `product`, `speed`), found by bus number and
//!   address. No device is opened, so an unprivileged daemon sees them, and so does libusb under umockdev in
//!   the tests.
//! - Elsewhere (macOS), and on Linux when sysfs does not have them: open the device with libusb and read the
//!   string descriptors. Opening claims nothing.
//!
//! Descriptors and speed come from libusb without opening the device on every platform. What the strings
//! mean is decided in `backupd_proto::usb` (sans-IO): the mode from the product id, the ECID and serial
//! number from a DFU or recovery serial string, the UDID in normal mode.
//!
//! [`scan`] is blocking (libusb); the daemon calls it on a blocking thread. [`Hotplug`] tells when to scan
//! again where libusb supports hotplug; where it does not, the daemon rescans on usbmuxd events and a timer.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use backupd_proto::usb::{BootSerial, Mode, MuxInterface, Speed};
use backupd_proto::usb::{ConfigDesc, InterfaceDesc, classify, find_mux_interface};
use rusb::UsbContext;

#[cfg(target_os = "linux")]
mod sysfs;

/// Errors of the USB watcher.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsbError {
    /// libusb could not start or list devices (no usbfs, no permission, no libusb backend).
    #[error("libusb cannot list USB devices: {0}")]
    Libusb(#[from] rusb::Error),
}

/// Where a device's identifying strings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StringSource {
    /// The kernel's sysfs attributes (Linux), without opening the device.
    Sysfs,
    /// String descriptors read from the opened device.
    Device,
    /// Neither: the device could not be opened for lack of permission.
    PermissionDenied,
    /// Neither, for another reason (the device went away, an I/O error).
    Unreadable,
}

/// One Apple mobile device on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UsbDevice {
    /// Bus number.
    pub bus: u8,
    /// Address on the bus.
    pub address: u8,
    /// The port path, `bus-port.port…` as Linux names it, e.g. `1-2.4`.
    pub port_path: String,
    /// `idProduct`.
    pub product_id: u16,
    /// What the product id says the device is doing.
    pub mode: Mode,
    /// The negotiated link speed.
    pub speed: Speed,
    /// `bcdUSB`: the USB version the device reports for this link.
    pub usb_version: u16,
    /// `bNumConfigurations`.
    pub configurations: u8,
    /// The active configuration; `None` when the device is unconfigured (usbmuxd's udev rule leaves phones so
    /// until usbmuxd picks one) or it could not be read.
    pub active_configuration: Option<u8>,
    /// The usbmux interface, in normal mode.
    pub mux_interface: Option<MuxInterface>,
    /// The product string, e.g. `iPhone` or `Apple Mobile Device (Recovery Mode)`.
    pub product: Option<String>,
    /// The serial-number string as reported.
    pub serial: Option<String>,
    /// Where the strings came from.
    pub strings_from: StringSource,
    /// In normal mode, the UDID (the serial string).
    pub udid: Option<String>,
    /// In DFU or recovery mode, the parsed serial string.
    pub boot: Option<BootSerial>,
}

impl UsbDevice {
    /// The ECID: from the serial string in DFU or recovery mode, or from a normal-mode UDID of the newer form.
    pub fn ecid(&self) -> Option<u64> {
        self.boot.as_ref().map(|b| b.ecid).or_else(|| {
            self.udid
                .as_deref()
                .and_then(backupd_proto::usb::ids_from_udid)
                .map(|(_, e)| e)
        })
    }
}

/// What one scan of the bus found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Scan {
    /// Every Apple mobile device, by bus and address.
    pub devices: Vec<UsbDevice>,
}

impl Scan {
    /// Devices whose strings could not be read for lack of permission.
    pub fn permission_denied(&self) -> impl Iterator<Item = &UsbDevice> {
        self.devices
            .iter()
            .filter(|d| d.strings_from == StringSource::PermissionDenied)
    }
}

/// Lists every Apple mobile device on the bus and reads what identifies it. Blocking.
pub fn scan() -> Result<Scan, UsbError> {
    let ctx = rusb::Context::new()?;
    let list = ctx.devices()?;
    let mut devices = Vec::new();
    for device in list.iter() {
        // A device that vanished between listing and reading is simply not there any more.
        let Ok(desc) = device.device_descriptor() else {
            continue;
        };
        let Some(mode) = classify(desc.vendor_id(), desc.product_id()) else {
            continue;
        };
        devices.push(read_device(&device, &desc, mode));
    }
    devices.sort_by_key(|d| (d.bus, d.address));
    Ok(Scan { devices })
}

fn read_device<T: UsbContext>(
    device: &rusb::Device<T>,
    desc: &rusb::DeviceDescriptor,
    mode: Mode,
) -> UsbDevice {
    let bus = device.bus_number();
    let address = device.address();
    let ports = device.port_numbers().unwrap_or_default();
    let port_path = format!(
        "{bus}-{}",
        ports
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(".")
    );
    let configs: Vec<ConfigDesc> = (0..desc.num_configurations())
        .filter_map(|i| device.config_descriptor(i).ok())
        .map(|c| ConfigDesc {
            value: c.number(),
            interfaces: c
                .interfaces()
                .flat_map(|i| i.descriptors().collect::<Vec<_>>())
                .map(|d| InterfaceDesc {
                    number: d.interface_number(),
                    alt_setting: d.setting_number(),
                    class: d.class_code(),
                    subclass: d.sub_class_code(),
                    protocol: d.protocol_code(),
                    endpoints: d.num_endpoints(),
                })
                .collect(),
        })
        .collect();
    let active_configuration = device.active_config_descriptor().ok().map(|c| c.number());
    let mux_interface = if mode == Mode::Normal {
        find_mux_interface(&configs)
    } else {
        None
    };
    let mut speed = speed_of(device.speed());
    let (mut product, mut serial, mut strings_from) = (None, None, StringSource::Unreadable);
    #[cfg(target_os = "linux")]
    if let Some(attrs) = sysfs::find(bus, address) {
        if attrs.serial.is_some() || attrs.product.is_some() {
            product = attrs.product;
            serial = attrs.serial;
            strings_from = StringSource::Sysfs;
        }
        if speed == Speed::Unknown
            && let Some(s) = attrs.speed
        {
            speed = s;
        }
    }
    if strings_from != StringSource::Sysfs {
        (product, serial, strings_from) = read_strings(device, desc);
    }
    let serial = serial
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let udid = serial.clone().filter(|_| mode == Mode::Normal);
    let boot = match (&serial, mode.reports_boot_serial()) {
        (Some(s), true) => match BootSerial::parse(s) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(bus, address, error = %e, "unreadable DFU/recovery serial string");
                None
            }
        },
        _ => None,
    };
    UsbDevice {
        bus,
        address,
        port_path,
        product_id: desc.product_id(),
        mode,
        speed,
        usb_version: bcd(desc.usb_version()),
        configurations: desc.num_configurations(),
        active_configuration: active_configuration.filter(|v| *v != 0),
        mux_interface,
        product,
        serial,
        strings_from,
        udid,
        boot,
    }
}

/// Opens the device (claiming nothing) and reads its product and serial strings.
fn read_strings<T: UsbContext>(
    device: &rusb::Device<T>,
    desc: &rusb::DeviceDescriptor,
) -> (Option<String>, Option<String>, StringSource) {
    let handle = match device.open() {
        Ok(h) => h,
        Err(rusb::Error::Access) => return (None, None, StringSource::PermissionDenied),
        Err(e) => {
            tracing::debug!(error = %e, "cannot open USB device to read its strings");
            return (None, None, StringSource::Unreadable);
        }
    };
    let timeout = Duration::from_millis(500);
    let language = handle
        .read_languages(timeout)
        .ok()
        .and_then(|l| l.first().copied());
    let read = |index: Option<u8>| {
        let (index, language) = (index?, language?);
        handle.read_string_descriptor(language, index, timeout).ok()
    };
    let product = read(desc.product_string_index());
    let serial = read(desc.serial_number_string_index());
    let source = if product.is_some() || serial.is_some() {
        StringSource::Device
    } else {
        StringSource::Unreadable
    };
    (product, serial, source)
}

fn speed_of(s: rusb::Speed) -> Speed {
    match s {
        rusb::Speed::Low => Speed::Low,
        rusb::Speed::Full => Speed::Full,
        rusb::Speed::High => Speed::High,
        rusb::Speed::Super => Speed::Super,
        rusb::Speed::SuperPlus => Speed::SuperPlus,
        _ => Speed::Unknown,
    }
}

fn bcd(v: rusb::Version) -> u16 {
    (u16::from(v.major()) << 8) | (u16::from(v.minor()) << 4) | u16::from(v.sub_minor())
}

/// Arrivals and departures of Apple devices, where libusb supports hotplug (Linux, macOS).
pub struct Hotplug {
    ctx: rusb::Context,
    changed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    _registration: rusb::Registration<rusb::Context>,
}

impl std::fmt::Debug for Hotplug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hotplug").finish_non_exhaustive()
    }
}

struct Flag(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl rusb::Hotplug<rusb::Context> for Flag {
    fn device_arrived(&mut self, _device: rusb::Device<rusb::Context>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn device_left(&mut self, _device: rusb::Device<rusb::Context>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Hotplug {
    /// Registers for Apple devices; `None` where libusb has no hotplug support or registration fails.
    pub fn new() -> Option<Self> {
        if !rusb::has_hotplug() {
            return None;
        }
        let ctx = rusb::Context::new().ok()?;
        let changed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let registration = rusb::HotplugBuilder::new()
            .vendor_id(backupd_proto::usb::APPLE_VENDOR_ID)
            .enumerate(false)
            .register(&ctx, Box::new(Flag(changed.clone())))
            .ok()?;
        Some(Self {
            ctx,
            changed,
            _registration: registration,
        })
    }

    /// Waits up to `timeout` for libusb's events; whether an Apple device came or went. Blocking.
    pub fn wait(&self, timeout: Duration) -> bool {
        if let Err(e) = self.ctx.handle_events(Some(timeout)) {
            tracing::debug!(error = %e, "libusb hotplug events");
        }
        self.changed
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcd_versions_read_as_written() {
        assert_eq!(bcd(rusb::Version(2, 0, 0)), 0x0200);
        assert_eq!(bcd(rusb::Version(3, 2, 0)), 0x0320);
        assert_eq!(bcd(rusb::Version(2, 1, 0)), 0x0210);
    }

    #[test]
    fn the_ecid_comes_from_the_boot_serial_or_the_udid() {
        let mut d = UsbDevice {
            bus: 1,
            address: 2,
            port_path: "1-1".into(),
            product_id: 0x12a8,
            mode: Mode::Normal,
            speed: Speed::High,
            usb_version: 0x200,
            configurations: 4,
            active_configuration: Some(4),
            mux_interface: None,
            product: Some("iPhone".into()),
            serial: Some("00008110-001A2B3C4D5E6F01".into()),
            strings_from: StringSource::Sysfs,
            udid: Some("00008110-001A2B3C4D5E6F01".into()),
            boot: None,
        };
        assert_eq!(d.ecid(), Some(0x001A_2B3C_4D5E_6F01));
        d.udid = Some("6d1f9a3b2c4e5f60718293a4b5c6d7e8f9012345".into());
        assert_eq!(d.ecid(), None);
        d.boot = BootSerial::parse("CPID:8015 ECID:000C2C680044E02E").ok();
        assert_eq!(d.ecid(), Some(0x000C_2C68_0044_E02E));
    }
}

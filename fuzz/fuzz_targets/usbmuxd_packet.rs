//! Fuzz target `usbmuxd_packet`: see [`backupd_fuzz::usbmuxd_packet`] for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| backupd_fuzz::usbmuxd_packet(data));

//! Fuzz target `afc_packet`: see [`backupd_fuzz::afc_packet`] for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| backupd_fuzz::afc_packet(data));

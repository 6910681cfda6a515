//! Fuzz target `mobilebackup2_message`: see [`backupd_fuzz::mobilebackup2_message`] for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| backupd_fuzz::mobilebackup2_message(data));

//! Fuzz target `devicelink_message`: see [`backupd_fuzz::devicelink_message`] for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| backupd_fuzz::devicelink_message(data));

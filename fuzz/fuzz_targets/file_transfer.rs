//! Fuzz target `file_transfer`: see [`backupd_fuzz::file_transfer`] for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| backupd_fuzz::file_transfer(data));

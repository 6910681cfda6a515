//! Fuzz target `lockdown_frame`: see [`backupd_fuzz::lockdown_frame`] for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| backupd_fuzz::lockdown_frame(data));

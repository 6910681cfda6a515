//! Fuzz target `pair_record`: see [`backupd_fuzz::pair_record`] for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| backupd_fuzz::pair_record(data));

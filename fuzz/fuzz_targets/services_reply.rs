//! Fuzz target `services_reply`: see [`backupd_fuzz::services_reply`] for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| backupd_fuzz::services_reply(data));

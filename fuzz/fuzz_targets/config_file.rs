//! Fuzz target `config_file`: see `fuzz/src/daemon.rs` for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, reason = "each target uses one of the file's functions")]
#[path = "../src/daemon.rs"]
mod daemon;

fuzz_target!(|data: &[u8]| daemon::config_file(data));

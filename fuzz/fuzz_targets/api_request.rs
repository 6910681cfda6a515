//! Fuzz target `api_request`: see `fuzz/src/daemon.rs` for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, reason = "each target uses one of the file's functions")]
#[path = "../src/daemon.rs"]
mod daemon;

fuzz_target!(|data: &[u8]| daemon::api_request(data));

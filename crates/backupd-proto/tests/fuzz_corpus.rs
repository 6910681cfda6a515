//! Replays the cargo-fuzz corpus through the fuzz targets' own code in an ordinary `cargo test`.
//!
//! rustls's `test_read_fuzz_corpus` habit: a crash the fuzzer once found, saved into `fuzz/corpus/<target>/`,
//! stays fixed without anyone running nightly. The targets' code is `fuzz/src/lib.rs`, included here as a
//! module, so the replay and the fuzzer run the very same checks.

use std::fs;
use std::path::{Path, PathBuf};

#[expect(
    unreachable_pub,
    reason = "the fuzz crate exports these functions to its target binaries"
)]
#[path = "../../../fuzz/src/lib.rs"]
mod fuzz_targets;

/// What a fuzz target does with one input.
type Target = fn(&[u8]);

/// Targets of the daemon's inputs, replayed by `crates/backupd/tests/fuzz_corpus.rs` (they need its crates).
const DAEMON_TARGETS: [&str; 2] = ["api_request", "config_file"];

/// Every fuzz target and the function it runs.
const TARGETS: [(&str, Target); 8] = [
    ("usbmuxd_packet", fuzz_targets::usbmuxd_packet),
    ("lockdown_frame", fuzz_targets::lockdown_frame),
    ("services_reply", fuzz_targets::services_reply),
    ("devicelink_message", fuzz_targets::devicelink_message),
    ("mobilebackup2_message", fuzz_targets::mobilebackup2_message),
    ("file_transfer", fuzz_targets::file_transfer),
    ("afc_packet", fuzz_targets::afc_packet),
    ("pair_record", fuzz_targets::pair_record),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

/// The corpus files of one target, without cargo-fuzz's hidden temporary files.
fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = corpus_dir().join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let (_, run) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known target");
    let files = corpus_files(target);
    assert!(!files.is_empty(), "the {target} corpus is empty");
    for path in files {
        let data = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        // Named before the run, so that a panic's output says which input caused it.
        eprintln!("{target}: {}", path.display());
        run(&data);
    }
}

#[test]
fn usbmuxd_packet_corpus_replays_without_panic() {
    replay("usbmuxd_packet");
}

#[test]
fn lockdown_frame_corpus_replays_without_panic() {
    replay("lockdown_frame");
}

#[test]
fn services_reply_corpus_replays_without_panic() {
    replay("services_reply");
}

#[test]
fn devicelink_message_corpus_replays_without_panic() {
    replay("devicelink_message");
}

#[test]
fn mobilebackup2_message_corpus_replays_without_panic() {
    replay("mobilebackup2_message");
}

#[test]
fn file_transfer_corpus_replays_without_panic() {
    replay("file_transfer");
}

#[test]
fn afc_packet_corpus_replays_without_panic() {
    replay("afc_packet");
}

#[test]
fn pair_record_corpus_replays_without_panic() {
    replay("pair_record");
}

#[test]
fn every_corpus_directory_belongs_to_a_replayed_target() {
    let mut dirs: Vec<String> = fs::read_dir(corpus_dir())
        .expect("list fuzz/corpus")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .map(|p| {
            p.file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    dirs.sort();
    let mut targets: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    targets.extend(DAEMON_TARGETS);
    targets.sort();
    assert_eq!(dirs, targets);
}

#[test]
fn every_target_in_the_fuzz_manifest_is_replayed() {
    let manifest =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/Cargo.toml"))
            .expect("read fuzz/Cargo.toml");
    let mut bins: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|name| *name != "backupd-fuzz")
        .collect();
    bins.sort();
    let mut targets: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    targets.extend(DAEMON_TARGETS);
    targets.sort();
    assert_eq!(bins, targets);
}

//! Replays the corpus of the daemon's fuzz targets (`api_request`, `config_file`) through the targets' own
//! code in an ordinary `cargo test`, as `crates/backupd-proto/tests/fuzz_corpus.rs` does for the protocol's.

use std::fs;
use std::path::{Path, PathBuf};

#[expect(
    unreachable_pub,
    reason = "the fuzz target binaries call these functions"
)]
#[path = "../../../fuzz/src/daemon.rs"]
mod daemon;

fn replay(target: &str, run: fn(&[u8])) {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
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
    assert!(!files.is_empty(), "the {target} corpus is empty");
    for path in files {
        let data = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        eprintln!("{target}: {}", path.display());
        run(&data);
    }
}

#[test]
fn api_request_corpus_replays_without_panic() {
    replay("api_request", daemon::api_request);
}

#[test]
fn config_file_corpus_replays_without_panic() {
    replay("config_file", daemon::config_file);
}

//! The unplug campaign: the simulated phone is cut at points drawn over the whole byte range of a backup and
//! at every DeviceLink message boundary of it; after each cut the previous backup is byte-identical and
//! verifies, the leftover staging folder is reported by recovery, and the next backup succeeds.
//!
//! `BACKUPD_CHAOS_POINTS` sets how many byte points (default 10, the CI size); `cargo xtask chaos unplug
//! --points N` runs it at full size and prints the figures.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use backupd_backup::engine::{self, BackupError, BackupRequest, Progress, Stage};
use backupd_backup::store::{Recovery, Store};
use backupd_backup::verify;
use backupd_mux::{Muxd, Pairing};
use backupd_proto::tls::DevicePinning;
use backupd_proto::usbmuxd::Address;
use backupd_sim::backup::BackupFaults;
use backupd_sim::profile::builtin;
use backupd_sim::{Config, Simulator};
use tokio::sync::watch;

const UDID: &str = "00008110-001A2B3C4D5E6F01";

/// A simulator serving the phone of `state` (same key, same trusted hosts) with `faults`.
async fn sim(dir: &Path, state: &Path, name: &str, faults: BackupFaults) -> (Simulator, Muxd) {
    let mut profile = builtin("healthy").expect("profile");
    profile.backup.faults = faults;
    let socket = dir.join(format!("{name}.sock"));
    let sim = Simulator::start(Config {
        socket: socket.clone(),
        tcp: None,
        control: None,
        state_dir: state.to_path_buf(),
        profiles: vec![profile],
    })
    .await
    .expect("simulator");
    (sim, Muxd::new(Address::Unix(socket)))
}

async fn backup(muxd: &Muxd, store: &Store, full: bool) -> Result<engine::Outcome, BackupError> {
    let device = muxd
        .list_devices()
        .await
        .expect("list")
        .into_iter()
        .next()
        .expect("a phone");
    let mut trusted = Pairing::new()
        .open(muxd, &device, DevicePinning::Pinned, SystemTime::now())
        .await
        .expect("trusted");
    let tx = watch::channel(Progress {
        stage: Stage::Preparing,
        bytes: 0,
        files: 0,
        device_percent: 0.0,
        announced_bytes: 0,
        elapsed_secs: 0.0,
    })
    .0;
    let request = BackupRequest {
        full,
        keep_versions: 2,
        min_free_bytes: 0,
        password: None,
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        engine::backup(&mut trusted.lockdown, &trusted.record, store, &request, &tx),
    )
    .await
    .expect("the backup ends in time")
}

fn current_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            if e.path().is_dir() {
                walk(&e.path(), &format!("{name}/"), out);
            } else {
                out.push((name, std::fs::read(e.path()).expect("read")));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

/// `n` byte offsets spread over `0..=total`, both ends included, each nudged by a fixed pseudo-random
/// amount so that runs of different sizes do not all fall on round numbers.
fn byte_points(n: u64, total: u64) -> Vec<u64> {
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut points: Vec<u64> = (0..n)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let base = if n <= 1 { 0 } else { total * i / (n - 1) };
            let step = total / n.max(1);
            let jitter = if step == 0 || i == 0 || i + 1 == n {
                0
            } else {
                seed % step
            };
            (base + jitter).min(total)
        })
        .collect();
    points.sort_unstable();
    points.dedup();
    points
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_campaign_never_harms_the_previous_backup() {
    let n: u64 = std::env::var("BACKUPD_CHAOS_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().expect("dir");
    let state = dir.path().join("sim");
    let store = Store::new(dir.path().join("backups"));
    let (good, muxd) = sim(dir.path(), &state, "good", BackupFaults::default()).await;
    backup(&muxd, &store, true).await.expect("first backup");
    let total = good
        .muxd()
        .phone(UDID)
        .expect("phone")
        .backup()
        .file_set()
        .total_bytes();
    // The last point is the last byte: a cut "after every byte" would cut nothing.
    let mut cuts: Vec<(String, BackupFaults)> = byte_points(n, total - 1)
        .into_iter()
        .map(|at| {
            (
                format!("after {at} of {total} data bytes"),
                BackupFaults {
                    disconnect_after_bytes: Some(at),
                    ..BackupFaults::default()
                },
            )
        })
        .collect();
    // Message boundaries: cut before message 0, 1, 2, ... until a run goes through uncut.
    let mut message = 0u64;
    let mut held = 0u64;
    let mut byte_cuts = 0u64;
    let mut message_cuts = 0u64;
    let started = Instant::now();
    let mut runs = 0u64;
    loop {
        runs += 1;
        let (what, faults) = if let Some(c) = cuts.pop() {
            byte_cuts += 1;
            c
        } else {
            let f = BackupFaults {
                disconnect_before_message: Some(message),
                ..BackupFaults::default()
            };
            message += 1;
            (format!("before DeviceLink message {}", message - 1), f)
        };
        let before = current_bytes(&store.current_dir(UDID));
        let (faulty, faulty_muxd) =
            sim(dir.path(), &state, &format!("cut-{runs}"), faults.clone()).await;
        // Full backups, so that the whole byte range and every message of a backup are on the wire.
        let result = backup(&faulty_muxd, &store, true).await;
        faulty.shutdown().await;
        match result {
            Ok(outcome) if faults.disconnect_before_message.is_some() => {
                // Past the last message: nothing was cut, and this is the campaign's end.
                assert!(outcome.report.ok, "{what}: {:?}", outcome.report);
                break;
            }
            Ok(outcome) => panic!("{what}: the phone was not cut: {:?}", outcome.report),
            Err(err) => {
                assert!(
                    matches!(err, BackupError::Transport(_) | BackupError::Protocol(_)),
                    "{what}: {err:?}"
                );
            }
        }
        if faults.disconnect_before_message.is_some() {
            message_cuts += 1;
        }
        assert_eq!(
            current_bytes(&store.current_dir(UDID)),
            before,
            "{what}: the previous backup changed"
        );
        assert!(
            verify::verify(&store.current_dir(UDID), &[]).ok,
            "{what}: the previous backup no longer verifies"
        );
        assert_eq!(
            store.recover(UDID).expect("recover"),
            Recovery::LeftoverStaging,
            "{what}: the leftover is reported"
        );
        // The next backup succeeds.
        let next = backup(&muxd, &store, false).await.expect("the next backup");
        assert!(next.report.ok, "{what}: the next backup");
        assert_eq!(store.recover(UDID).expect("recover"), Recovery::Clean);
        held += 1;
    }
    eprintln!(
        "chaos unplug: {held} cuts held ({byte_cuts} byte points over {total} bytes, {message_cuts} DeviceLink message boundaries) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(message_cuts > 0);
    good.shutdown().await;
}

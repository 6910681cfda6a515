//! `backupdctl` against a fake daemon: its outputs (snapshots), its exit codes, `diagnose`'s wait, `watch`,
//! and the backup commands: `backup` following a job on the event stream, `backups`, `encryption`.
//!
//! The fake daemon answers canned JSON built from `backupd-api` types with real diagnoses from `backupd-rules`, so
//! no simulator is needed; the real daemon is tested in its own crate and end to end. Snapshots live in
//! `tests/snapshots/`; `UPDATE_SNAPSHOTS=1 cargo test -p backupdctl` rewrites them.

mod backup;
mod backups;
mod common;
mod diagnose;
mod encryption;
mod errors;
mod help;
mod inspect;
mod status;
mod summary;
mod watch;

//! backupd-sim

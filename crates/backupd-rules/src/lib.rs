//! backupd-rules

//! Finder-style local backups of an iPhone that never lose the last good copy.
//!
//! - [`store`]: the folder layout, staging, the journaled commit, hard-linked versions, recovery.
//! - [`verify`]: checking that a backup holds what its `Manifest.db` lists.
//! - [`engine`]: the host side of a mobilebackup2 backup, into the store.
//! - [`inspect`]: what a finished backup holds (WhatsApp's chats), read-only.
//! - [`encrypted`]: reading an encrypted backup with its password (check it, decrypt `Manifest.db` and files).
//!
//! This crate spawns no tasks; the daemon runs backups as jobs.

pub mod encrypted;
pub mod engine;
pub mod inspect;
pub mod store;
pub mod verify;

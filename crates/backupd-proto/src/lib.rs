//! Sans-IO protocol core of backupd: no I/O, no clock.
//!
//! Codecs and state machines for the usbmuxd socket protocol, lockdownd, pairing and the lockdown services
//! backupd uses. Every function takes bytes (and, where time matters, `now`) in and gives bytes and typed
//! values out; `backupd-mux` moves the bytes over sockets. Device input is attacker input: every length read
//! from the wire is bounded before anything is allocated for it.

pub mod afc;
pub mod backup_cipher;
pub mod devicelink;
pub mod keybag;
pub mod lockdown;
pub mod mobilebackup2;
pub mod pair;
pub mod plist_util;
pub mod services;
pub mod tls;
pub mod usb;
pub mod usbmuxd;

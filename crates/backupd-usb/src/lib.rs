//! backupd-usb

//! Golden tests: serial-number strings exactly as real phones in DFU and recovery mode report them.
//!
//! Each string is quoted from a public report (cited by the search tool's `find_string` id, which names the
//! stored text it was read from); ECIDs that the reports redacted are not used.

use backupd_proto::usb::{BootSerial, Mode, classify, format_ecid};

/// iPhone X (CPID 8015, BDID 0x0E) in recovery mode, product id 0x1281, from a forensics talk's USB descriptor
/// dump ("Apple Mobile Device (Recovery Mode)", find_string id 63101187945). iBoot's recovery serial carries
/// `SDOM` first and the serial number in `SRNM`, and no `SRTG`.
const IPHONE_X_RECOVERY: &str = "SDOM:01 CPID:8015 CPRV:11 CPFM:03 SCEP:01 BDID:0E ECID:000C2C680044E02E IBFL:3D SRNM:[FK1WT6BPJCLH]";

/// The same phone in DFU mode, product id 0x1227, same talk: the boot ROM reports no `SDOM` and no serial number,
/// and `SRTG` is the boot ROM's tag.
const IPHONE_X_DFU: &str = "CPID:8015 CPRV:11 CPFM:03 SCEP:01 BDID:0E ECID:000C2C680044E02E IBFL:3C SRTG:[iBoot-3332.0.0.1.23]";

/// An A15 (CPID 8110) in DFU mode as a tool logged `serial=` for 05ac:1227 (find_string id 71344460368); the
/// report elides the middle of the ECID, so only the fields around it are checked.
const A15_DFU_PREFIX: &str = "SDOM:01 CPID:8110 CPRV:11 CPFM:03 SCEP:01 BDID:18 ";
const A15_DFU_SUFFIX: &str = " IBFL:3C SRTG:[iBoot-6338.0.0.200.19]";

/// An A10 (CPID 8010) in DFU, as a Rust tool's comment quotes it (find_string id 22933674974).
const A10_DFU: &str = "CPID:8010 CPRV:11 CPFM:03 SCEP:01 BDID:08 ECID:000269E20846003A IBFL:3C SRTG:[iBoot-2696.0.0.1.33]";

/// An A11 exploited with a checkm8-style tool: a `PWND:[…]` suffix (find_string id 60691431047, ECID
/// redacted there; ours is the iPhone X's above).
const A11_PWNED: &str = "CPID:8020 CPRV:11 CPFM:03 SCEP:01 BDID:0E ECID:000C2C680044E02E IBFL:3C SRTG:[iBoot-3865.0.0.4.7] PWND:[usbliter8]";

/// A new iBoot adds keys older parsers never saw (`SIKA`, find_string id 18775318713; ECID replaced there by
/// XXXXXX, ours is the iPhone X's).
const A12_SIKA: &str = "SDOM:01 CPID:8120 CPRV:11 CPFM:03 SCEP:01 BDID:0E ECID:000C2C680044E02E IBFL:3C SIKA:00 SRTG:[iBoot-7195.0.0.300.25]";

#[test]
fn iphone_x_in_recovery_mode() {
    assert_eq!(classify(0x05ac, 0x1281), Some(Mode::Recovery));
    let s = BootSerial::parse(IPHONE_X_RECOVERY).expect("parse");
    assert_eq!(s.cpid, 0x8015);
    assert_eq!(s.cprv, Some(0x11));
    assert_eq!(s.cpfm, Some(0x03));
    assert_eq!(s.scep, Some(0x01));
    assert_eq!(s.bdid, Some(0x0e));
    assert_eq!(s.ecid, 0x000C_2C68_0044_E02E);
    assert_eq!(s.ibfl, Some(0x3d));
    assert_eq!(s.sdom, Some(0x01));
    assert_eq!(s.serial_number.as_deref(), Some("FK1WT6BPJCLH"));
    assert_eq!(s.srtg, None);
    assert_eq!(s.production_fused(), Some(true));
    assert_eq!(format_ecid(s.ecid), "000C2C680044E02E");
}

#[test]
fn iphone_x_in_dfu_mode_is_the_same_chip() {
    assert_eq!(classify(0x05ac, 0x1227), Some(Mode::Dfu));
    let dfu = BootSerial::parse(IPHONE_X_DFU).expect("parse");
    let recovery = BootSerial::parse(IPHONE_X_RECOVERY).expect("parse");
    assert_eq!(dfu.ecid, recovery.ecid);
    assert_eq!(dfu.cpid, recovery.cpid);
    assert_eq!(dfu.serial_number, None);
    assert_eq!(dfu.sdom, None);
    assert_eq!(dfu.ibfl, Some(0x3c));
    assert_eq!(dfu.srtg.as_deref(), Some("iBoot-3332.0.0.1.23"));
}

#[test]
fn a15_and_a10_in_dfu_mode() {
    let a15 = BootSerial::parse(&format!(
        "{A15_DFU_PREFIX}ECID:0012100000A0B00E{A15_DFU_SUFFIX}"
    ))
    .expect("parse");
    assert_eq!((a15.cpid, a15.bdid), (0x8110, Some(0x18)));
    assert_eq!(a15.srtg.as_deref(), Some("iBoot-6338.0.0.200.19"));
    let a10 = BootSerial::parse(A10_DFU).expect("parse");
    assert_eq!(
        (a10.cpid, a10.bdid, a10.ecid),
        (0x8010, Some(0x08), 0x0002_69E2_0846_003A)
    );
}

#[test]
fn exploited_and_newer_iboots_still_parse() {
    let pwned = BootSerial::parse(A11_PWNED).expect("parse");
    assert_eq!(pwned.pwnd.as_deref(), Some("usbliter8"));
    assert_eq!(pwned.srtg.as_deref(), Some("iBoot-3865.0.0.4.7"));
    let sika = BootSerial::parse(A12_SIKA).expect("parse");
    assert_eq!(sika.cpid, 0x8120);
    assert_eq!(sika.srtg.as_deref(), Some("iBoot-7195.0.0.300.25"));
}

#[test]
fn key_order_does_not_matter_as_in_libirecovery() {
    // libirecovery finds each key with strstr, so order is free; so is ours.
    let shuffled = "ECID:000C2C680044E02E SRNM:[FK1WT6BPJCLH] CPID:8015 IBFL:3D";
    let s = BootSerial::parse(shuffled).expect("parse");
    assert_eq!((s.cpid, s.ecid), (0x8015, 0x000C_2C68_0044_E02E));
    assert_eq!(s.serial_number.as_deref(), Some("FK1WT6BPJCLH"));
}

proptest::proptest! {
    #[test]
    fn any_string_parses_or_is_refused_without_panicking(s in "\\PC{0,600}") {
        let _ = BootSerial::parse(&s);
    }

    #[test]
    fn any_key_value_soup_parses_or_is_refused(s in "([A-Z]{2,5}:(\\[[ -~]{0,20}\\]|[0-9A-Fa-f]{0,20}) ?){0,12}") {
        let _ = BootSerial::parse(&s);
    }
}

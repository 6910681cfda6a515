//! The checks that rest on the USB bus: a phone in DFU or recovery mode, a phone usbmuxd does not take, a slow
//! link, and whether the daemon may read USB devices at all.

use super::{Ctx, Eval, MACOS, bytes, evidence_of, fact_evidence};
use crate::diagnosis::{Arg, Evidence, Outcome};
use crate::facts::{Fact, HostFacts, HostOs, Source, UnknownReason};
use crate::usb::{UsbAccess, UsbFacts, UsbMode, backup_rate_bytes, duration_text, usb3_model_name};

/// Remedy variant: a verified local backup of this phone exists.
pub(super) const BACKUP: &str = "backup";
/// Remedy variant: the backup time could be estimated.
pub(super) const TIMES: &str = "times";

fn mode_name(mode: UsbMode) -> &'static str {
    match mode {
        UsbMode::Normal => "normal",
        UsbMode::Recovery => "recovery",
        UsbMode::Dfu => "dfu",
        UsbMode::Other => "other",
    }
}

fn usb_evidence(usb: &UsbFacts) -> Vec<Evidence> {
    let source = Source::host(&format!("USB {}", usb.location));
    let mut evidence = vec![
        evidence_of("usb_mode", mode_name(usb.mode).to_owned(), &source),
        evidence_of(
            "usb_product_id",
            format!("0x{:04x}", usb.product_id),
            &source,
        ),
        evidence_of(
            "listed_by_usbmuxd",
            usb.listed_by_usbmuxd.to_string(),
            &source,
        ),
    ];
    if let Some(ecid) = &usb.ecid {
        evidence.push(evidence_of("ecid", ecid.clone(), &source));
    }
    if let Some(serial) = &usb.serial_number {
        evidence.push(evidence_of("serial_number", serial.clone(), &source));
    }
    if let Some(speed) = usb.speed_mbps {
        evidence.push(evidence_of("usb_speed", format!("{speed} Mbit/s"), &source));
    }
    evidence
}

/// When the phone was not seen on the bus: unknown if the daemon could not look (the question stands and
/// cannot be answered), otherwise the check does not run (no USB watcher, or not found yet).
fn not_seen(ctx: &Ctx<'_>) -> Option<Eval> {
    let looked = matches!(
        &ctx.host.usb_access,
        Fact::Known {
            value: UsbAccess::Denied { .. },
            ..
        } | Fact::Unknown {
            reason: UnknownReason::QueryFailed,
            ..
        }
    );
    looked.then(|| {
        Eval::new(
            Outcome::Unknown,
            vec![
                fact_evidence("usb_access", &ctx.host.usb_access, access_text),
                Evidence {
                    fact: "usb_mode".to_owned(),
                    value: "unknown".to_owned(),
                    unknown: Some(UnknownReason::QueryFailed),
                    source: Source::host("libusb"),
                },
            ],
        )
    })
}

fn access_text(a: &UsbAccess) -> String {
    match a {
        UsbAccess::Granted => "granted".to_owned(),
        UsbAccess::Denied { detail } => format!("denied: {detail}"),
    }
}

/// `device.dfu_mode` and `device.recovery_mode`.
pub(super) fn mode(ctx: &Ctx<'_>, problem: UsbMode) -> Option<Eval> {
    let Some(usb) = ctx.phone.usb.as_ref() else {
        return not_seen(ctx);
    };
    let mut evidence = usb_evidence(usb);
    if usb.mode != problem {
        return Some(Eval::new(Outcome::Pass, evidence));
    }
    let backup = ctx
        .host
        .local_backup
        .value()
        .and_then(Option::as_ref)
        .filter(|b| b.verified);
    evidence.push(super::local_backup_evidence(ctx.host));
    let eval = Eval::new(Outcome::Problem, evidence).arg(
        "ecid",
        Arg::Text(usb.ecid.clone().unwrap_or_else(|| "?".to_owned())),
    );
    Some(match backup {
        Some(b) => eval.arg("date", Arg::Date(b.date)).variant(BACKUP),
        None => eval,
    })
}

/// `host.usbmuxd_not_claiming`: a normal-mode phone on the bus that usbmuxd does not list.
pub(super) fn not_claiming(ctx: &Ctx<'_>) -> Option<Eval> {
    let Some(usb) = ctx.phone.usb.as_ref() else {
        return not_seen(ctx);
    };
    if usb.mode != UsbMode::Normal {
        return None;
    }
    let mut evidence = usb_evidence(usb);
    evidence.push(fact_evidence("usbmuxd", &ctx.host.usbmuxd, |s| {
        format!("{s:?}").to_lowercase()
    }));
    if usb.listed_by_usbmuxd {
        return Some(Eval::new(Outcome::Pass, evidence));
    }
    let eval =
        Eval::new(Outcome::Problem, evidence).arg("location", Arg::Text(usb.location.clone()));
    Some(match ctx.host.os.value() {
        Some(HostOs::Macos) => eval.variant(MACOS),
        _ => eval,
    })
}

/// `usb.slow_link`: a phone whose port supports USB 3 on a USB 2 (or slower) link.
pub(super) fn slow_link(ctx: &Ctx<'_>) -> Option<Eval> {
    let Some(usb) = ctx.phone.usb.as_ref() else {
        return not_seen(ctx);
    };
    if usb.mode != UsbMode::Normal {
        return None;
    }
    let speed = usb.speed_mbps?;
    let mut evidence = usb_evidence(usb);
    evidence.push(fact_evidence(
        "product_type",
        &ctx.phone.product_type,
        Clone::clone,
    ));
    let Some(product) = ctx.phone.product_type.value() else {
        return Some(Eval::new(Outcome::Unknown, evidence));
    };
    let Some(model) = usb3_model_name(product) else {
        return Some(Eval::new(Outcome::Pass, evidence));
    };
    if speed > 480 {
        return Some(Eval::new(Outcome::Pass, evidence));
    }
    // USB 3.2 Gen 2 is what these models support (protocol-wave2 §3.6).
    let fast = 10_000;
    let used = ctx.phone.used_data();
    if let Some(used) = used {
        evidence.push(Evidence {
            fact: "full_backup_estimate".to_owned(),
            value: format!(
                "{} at {speed} Mbit/s, {} at {fast} Mbit/s for {}",
                duration_text(used / backup_rate_bytes(speed).max(1)),
                duration_text(used / backup_rate_bytes(fast)),
                bytes(used)
            ),
            unknown: None,
            source: Source::derived("used data / (60% of the link rate)"),
        });
    }
    let eval = Eval::new(Outcome::Problem, evidence)
        .arg("speed", Arg::Text(format!("{speed} Mbit/s")))
        .arg("model", Arg::Text(model.to_owned()));
    Some(match used {
        Some(used) => eval
            .arg("used", Arg::Bytes(used))
            .arg(
                "slow_time",
                Arg::Text(duration_text(used / backup_rate_bytes(speed).max(1))),
            )
            .arg(
                "fast_time",
                Arg::Text(duration_text(used / backup_rate_bytes(fast))),
            )
            .variant(TIMES),
        None => eval,
    })
}

/// `host.usb_permission`: runs when the daemon has a USB watcher.
pub(super) fn permission(host: &HostFacts) -> Option<Eval> {
    let evidence = vec![fact_evidence("usb_access", &host.usb_access, access_text)];
    let access = match &host.usb_access {
        Fact::Unknown {
            reason: UnknownReason::NotQueried,
            ..
        } => return None,
        Fact::Unknown { .. } => return Some(Eval::new(Outcome::Unknown, evidence)),
        Fact::Known { value, .. } => value,
    };
    Some(match access {
        UsbAccess::Denied { .. } => {
            let eval = Eval::new(Outcome::Problem, evidence);
            match host.os.value() {
                Some(HostOs::Macos) => eval.variant(MACOS),
                _ => eval,
            }
        }
        _ => Eval::new(Outcome::Pass, evidence),
    })
}

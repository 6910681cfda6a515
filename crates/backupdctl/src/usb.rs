//! `backupdctl status`: the devices the daemon sees only on the USB bus (a phone in DFU or recovery mode, a
//! phone usbmuxd does not take), with their identifiers and what their mode means.

use std::fmt::Write as _;

use backupd_api::UsbDevice;

use crate::text::{self, Lang, pick};

/// Whether any device seen only on the bus has a finding.
pub(crate) fn has_problems(devices: &[UsbDevice]) -> bool {
    devices
        .iter()
        .any(|d| d.diagnosis.as_ref().is_some_and(|d| !d.findings.is_empty()))
}

fn mode(lang: Lang, mode: &str) -> String {
    match (mode, lang) {
        ("dfu", Lang::En) => "DFU mode".into(),
        ("dfu", Lang::It) => "modalità DFU".into(),
        ("recovery", Lang::En) => "recovery mode".into(),
        ("recovery", Lang::It) => "modalità di recupero".into(),
        ("normal", Lang::En) => "normal mode (iOS running)".into(),
        ("normal", Lang::It) => "modalità normale (iOS in esecuzione)".into(),
        (other, _) => other.to_owned(),
    }
}

/// Renders each device: a heading, its identifiers, then its findings with their steps.
pub(crate) fn render(out: &mut String, devices: &[UsbDevice], lang: Lang) {
    if devices.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{}",
        pick(
            lang,
            format!("Seen only on USB, not through usbmuxd ({})", devices.len()),
            format!("Visti solo su USB, non tramite usbmuxd ({})", devices.len()),
        )
    );
    for d in devices {
        let who = d
            .name
            .clone()
            .or_else(|| d.product_type.clone())
            .unwrap_or_else(|| pick(lang, "Apple device".into(), "dispositivo Apple".into()));
        let _ = writeln!(out, "\n== {who} ==");
        let mut rows: Vec<(&str, String)> = vec![
            (pick(lang, "mode", "modalità"), mode(lang, &d.mode)),
            (
                pick(lang, "USB", "USB"),
                match d.speed_mbps {
                    Some(s) => format!("{}, 05ac:{:04x}, {s} Mbit/s", d.location, d.product_id),
                    None => format!("{}, 05ac:{:04x}", d.location, d.product_id),
                },
            ),
        ];
        if let Some(ecid) = &d.ecid {
            rows.push(("ECID", ecid.clone()));
        }
        if let Some(chip) = &d.chip_id {
            rows.push(("CPID", chip.clone()));
        }
        if let Some(serial) = &d.serial_number {
            rows.push((
                pick(lang, "serial number", "numero di serie"),
                serial.clone(),
            ));
        }
        if let Some(udid) = &d.udid {
            rows.push(("UDID", udid.clone()));
        }
        let width = rows
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0)
            + 1;
        for (label, value) in rows {
            let _ = writeln!(out, "{:<width$} {value}", format!("{label}:"));
        }
        let findings = d
            .diagnosis
            .as_ref()
            .map_or(&[][..], |d| d.findings.as_slice());
        for (n, f) in findings.iter().enumerate() {
            let _ = writeln!(
                out,
                "\n{}. [{}] {} ({})",
                n + 1,
                text::severity(lang, f.severity),
                f.title.render(lang.rules()),
                f.id
            );
            let _ = writeln!(out, "   {}", f.explanation.render(lang.rules()));
            let _ = writeln!(out, "   {}:", text::what_to_do(lang));
            for (i, step) in f.remedies.iter().enumerate() {
                let _ = writeln!(out, "     {}. {}", i + 1, step.text.render(lang.rules()));
            }
        }
    }
}

//! `backupdctl status`: the host and the phones, with their diagnoses, and the exit code that sums them up.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write;

use backupd_api::{Device, Job, Jobs, Phase, Status, exit};
use backupd_rules::{Diagnosis, Finding};

use crate::client::{self, Client};
use crate::summary::{self, Look};
use crate::text::{self, Lang};
use crate::{ExpectedError, normalize_udid, write_out};

/// Which phones to show.
#[derive(Debug, Clone)]
pub(crate) enum Selection {
    /// Every connected phone.
    Connected,
    /// One phone by UDID in any spelling, connected or not; unknown is [`ExpectedError::DeviceNotFound`].
    One(String),
    /// These phones (normalised UDIDs), in the daemon's order; the ones it no longer lists are left out.
    These(BTreeSet<String>),
}

/// Phones whose new diagnosis did not come in time (`diagnose`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Late {
    /// Normalised UDIDs.
    pub(crate) udids: BTreeSet<String>,
    /// How long we waited.
    pub(crate) secs: u64,
}

/// How `status` shows the phones, besides which ones.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct View {
    /// The daemon's JSON instead of text.
    pub(crate) json: bool,
    /// The full report of every phone shown, even when there are several.
    pub(crate) details: bool,
    /// Width and colour.
    pub(crate) look: Look,
}

/// `backupdctl status [UDID] [--details] [--json]`.
pub(crate) async fn run(
    client: &Client,
    udid: Option<&str>,
    view: View,
    lang: Lang,
    out: &mut impl Write,
) -> Result<i32, ExpectedError> {
    let body = client.get(backupd_api::PATH_DEVICES).await?;
    let selection = match udid {
        Some(u) => Selection::One(u.to_owned()),
        None => Selection::Connected,
    };
    // The summary shows running jobs; a daemon that cannot list them still gets its summary, without.
    let mut jobs = Vec::new();
    if !view.json && !view.details && udid.is_none() {
        let status: Status = client::parse("GET /v1/devices", &body)?;
        if status.devices.iter().filter(|d| d.connected).count() > 1
            && let Ok(answer) = client.get(backupd_api::PATH_JOBS).await
            && let Ok(list) = serde_json::from_slice::<Jobs>(&answer)
        {
            jobs = list.jobs;
        }
    }
    show(out, &body, &selection, &Late::default(), view, &jobs, lang)
}

/// Prints the answer to `GET /v1/devices` for `selection`, as text or as the daemon's JSON, and returns the exit
/// code. With several phones and no `details`, the text is a summary, one line each (`jobs` give the running
/// ones); with one phone, or `details`, the full reports, and the escalation plan once after them.
pub(crate) fn show(
    out: &mut impl Write,
    body: &[u8],
    selection: &Selection,
    late: &Late,
    view: View,
    jobs: &[Job],
    lang: Lang,
) -> Result<i32, ExpectedError> {
    let what = format!("GET {}", backupd_api::PATH_DEVICES);
    let status: Status = client::parse(&what, body)?;
    let shown = select(&status, selection)?;
    let assessed: Vec<(&Device, Assessment)> =
        shown.iter().map(|d| (*d, assess(d, late, lang))).collect();
    let code = exit_code(&status, &assessed);
    let text = if view.json {
        json_text(&what, body, selection)?
    } else if assessed.len() > 1 && !view.details {
        render_summary(&status, &assessed, jobs, lang, view.look)
    } else {
        render(&status, &assessed, selection, lang)
    };
    write_out(out, &text)?;
    Ok(code)
}

/// The daemon's JSON: as it was sent when nothing is left out (it is pretty already), else re-printed pretty
/// without the phones not asked for.
fn json_text(what: &str, body: &[u8], selection: &Selection) -> Result<String, ExpectedError> {
    if matches!(selection, Selection::Connected) {
        let mut text = String::from_utf8_lossy(body).trim_end().to_owned();
        text.push('\n');
        return Ok(text);
    }
    let mut value: serde_json::Value = client::parse(what, body)?;
    filter_json(&mut value, selection);
    let mut text =
        serde_json::to_string_pretty(&value).map_err(|e| ExpectedError::DaemonGarbled {
            what: what.to_owned(),
            source: Box::new(e),
        })?;
    text.push('\n');
    Ok(text)
}

/// The phones of `status` that `selection` asks for.
fn select<'a>(status: &'a Status, selection: &Selection) -> Result<Vec<&'a Device>, ExpectedError> {
    Ok(match selection {
        Selection::Connected => status.devices.iter().filter(|d| d.connected).collect(),
        Selection::One(udid) => {
            let key = normalize_udid(udid);
            let found = status
                .devices
                .iter()
                .find(|d| normalize_udid(&d.udid) == key)
                .ok_or_else(|| ExpectedError::DeviceNotFound { udid: udid.clone() })?;
            vec![found]
        }
        Selection::These(keys) => status
            .devices
            .iter()
            .filter(|d| keys.contains(&normalize_udid(&d.udid)))
            .collect(),
    })
}

/// Keeps in the JSON's `devices` only the phones asked for.
fn filter_json(value: &mut serde_json::Value, selection: &Selection) {
    let keep: Box<dyn Fn(&str) -> bool> = match selection {
        Selection::Connected => return,
        Selection::One(udid) => {
            let key = normalize_udid(udid);
            Box::new(move |u| normalize_udid(u) == key)
        }
        Selection::These(keys) => Box::new(|u| keys.contains(&normalize_udid(u))),
    };
    if let Some(devices) = value
        .get_mut("devices")
        .and_then(serde_json::Value::as_array_mut)
    {
        devices.retain(|d| d.get("udid").and_then(|u| u.as_str()).is_some_and(&keep));
    }
}

/// What a shown phone amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// A diagnosis without findings.
    Pass,
    /// A diagnosis with findings.
    Problems,
    /// No diagnosis to go by yet.
    NotReady,
}

#[derive(Debug)]
struct Assessment {
    /// A sentence about the phone's state, shown before its diagnosis.
    note: Option<String>,
    /// Whether its diagnosis is worth showing.
    show_diagnosis: bool,
    verdict: Verdict,
}

fn verdict(d: &Diagnosis) -> Verdict {
    if d.findings.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Problems
    }
}

fn pairing_finding(d: &Diagnosis) -> Option<&Finding> {
    d.findings
        .iter()
        .find(|f| f.id.as_str().starts_with("pairing."))
}

fn assess(device: &Device, late: &Late, lang: Lang) -> Assessment {
    let diagnosis = device.diagnosis.as_ref();
    let not_ready = |note: String, show_diagnosis: bool| Assessment {
        note: Some(note),
        show_diagnosis,
        verdict: Verdict::NotReady,
    };
    let error = device.error.as_deref().unwrap_or("?");
    if late.udids.contains(&normalize_udid(&device.udid)) {
        return not_ready(
            text::timed_out(lang, late.secs, diagnosis.is_some()),
            diagnosis.is_some(),
        );
    }
    match (device.phase, diagnosis) {
        (Phase::WaitingForUser, d) => {
            let finding = d.and_then(pairing_finding).map_or("", |f| f.id.as_str());
            not_ready(text::waiting_sentence(lang, finding), d.is_some())
        }
        (Phase::Attached | Phase::Reading, None) => {
            not_ready(text::still_reading(lang).to_owned(), false)
        }
        // A pairing problem that is no longer waited on was answered: the new reading will tell.
        (Phase::Attached | Phase::Reading, Some(d)) if pairing_finding(d).is_some() => {
            not_ready(text::still_reading(lang).to_owned(), false)
        }
        (Phase::Attached | Phase::Reading, Some(d)) => Assessment {
            note: Some(text::rereading(lang).to_owned()),
            show_diagnosis: true,
            verdict: verdict(d),
        },
        (Phase::Failed, None) => not_ready(text::failed(lang, error, false), false),
        (Phase::Failed, Some(d)) => Assessment {
            note: Some(text::failed(lang, error, true)),
            show_diagnosis: true,
            verdict: verdict(d),
        },
        (_, None) if device.connected => not_ready(text::still_reading(lang).to_owned(), false),
        (_, None) => not_ready(text::never_diagnosed(lang).to_owned(), false),
        (_, Some(d)) => Assessment {
            note: None,
            show_diagnosis: true,
            verdict: verdict(d),
        },
    }
}

/// 1 when the host or a shown phone has a problem; else 6 when no phone is shown or one has no diagnosis to go
/// by; else 0.
fn exit_code(status: &Status, assessed: &[(&Device, Assessment)]) -> i32 {
    let host = status
        .host
        .diagnosis
        .as_ref()
        .is_some_and(|d| !d.findings.is_empty());
    let usb = crate::usb::has_problems(&status.usb_devices);
    if host || usb || assessed.iter().any(|(_, a)| a.verdict == Verdict::Problems) {
        exit::PROBLEMS
    } else if assessed.is_empty() || assessed.iter().any(|(_, a)| a.verdict == Verdict::NotReady) {
        exit::NOT_READY
    } else {
        exit::OK
    }
}

/// Several phones, one line each (the host first, as in the full report).
fn render_summary(
    status: &Status,
    assessed: &[(&Device, Assessment)],
    jobs: &[Job],
    lang: Lang,
    look: Look,
) -> String {
    let mut host = String::new();
    render_host(&mut host, status, lang);
    let mut out = summary::wrapped(&host, look);
    out.push('\n');
    let rows: Vec<summary::Row> = assessed
        .iter()
        .map(|(d, a)| {
            summary::Row::new(
                d,
                a.show_diagnosis && a.verdict != Verdict::NotReady,
                jobs,
                lang,
            )
        })
        .collect();
    out.push_str(&summary::render(&rows, lang, look));
    out.push('\n');
    out.push_str(&summary::wrapped(text::summary_hint(lang), look));
    out
}

fn render(
    status: &Status,
    assessed: &[(&Device, Assessment)],
    selection: &Selection,
    lang: Lang,
) -> String {
    let mut out = String::new();
    render_host(&mut out, status, lang);
    crate::usb::render(&mut out, &status.usb_devices, lang);
    for (device, assessment) in assessed {
        out.push('\n');
        render_device(&mut out, device, assessment, lang);
    }
    // The escalation plan once, after the phones it applies to.
    let names: Vec<String> = assessed.iter().map(|(d, _)| name(d, lang)).collect();
    let plans: Vec<(&str, &backupd_rules::Escalation)> = assessed
        .iter()
        .zip(&names)
        .filter(|((_, a), _)| a.show_diagnosis)
        .filter_map(|((d, _), n)| d.diagnosis.as_ref().map(|g| (n.as_str(), &g.escalation)))
        .collect();
    if !plans.is_empty() {
        out.push('\n');
        out.push_str(&backupd_rules::render_plans(&plans, lang.rules()));
    }
    if assessed.is_empty() {
        // Writing to a String cannot fail; the results are ignored on purpose.
        let _ = writeln!(out, "\n{}", text::no_phone(lang));
        let others: Vec<&Device> = status.devices.iter().filter(|d| !d.connected).collect();
        if matches!(selection, Selection::Connected) && !others.is_empty() {
            let _ = writeln!(out, "\n{}", text::seen_before(lang));
            for d in others {
                let _ = writeln!(out, "  {} ({})", name(d, lang), d.udid);
            }
        }
    }
    out
}

fn render_host(out: &mut String, status: &Status, lang: Lang) {
    let host = &status.host;
    let reachable = host.usbmuxd == backupd_api::MuxerState::Connected;
    let _ = writeln!(
        out,
        "{}",
        text::host_line(
            lang,
            reachable,
            &host.usbmuxd_address,
            host.usbmuxd_error.as_deref().filter(|_| !reachable),
            &host.backup_dir,
        )
    );
    let findings = host
        .diagnosis
        .as_ref()
        .map_or(&[][..], |d| d.findings.as_slice());
    if findings.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}\n", text::host_problems(lang, findings.len()));
    for (n, f) in findings.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}. [{}] {} ({})",
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

fn name(device: &Device, lang: Lang) -> String {
    device
        .name
        .clone()
        .unwrap_or_else(|| text::unnamed(lang).to_owned())
}

fn render_device(out: &mut String, device: &Device, assessment: &Assessment, lang: Lang) {
    let labels = text::labels(lang);
    let model = match (&device.product_type, &device.product_version) {
        (Some(t), Some(v)) => format!("{t}, iOS {v}"),
        (Some(t), None) => t.clone(),
        (None, Some(v)) => format!("iOS {v}"),
        (None, None) => text::not_read(lang).to_owned(),
    };
    let diagnosed = device
        .diagnosed_at
        .map_or_else(|| text::not_yet(lang).to_owned(), text::utc);
    let rows = [
        (labels.udid, device.udid.clone()),
        (labels.model, model),
        (
            labels.connected,
            text::yes_no(lang, device.connected).to_owned(),
        ),
        (labels.phase, text::phase(lang, device.phase).to_owned()),
        (labels.diagnosed, diagnosed),
    ];
    let width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    let _ = writeln!(out, "== {} ==", name(device, lang));
    for (label, value) in rows {
        let _ = writeln!(out, "{:<width$} {value}", format!("{label}:"));
    }
    if let Some(note) = &assessment.note {
        let _ = writeln!(out, "\n{note}");
    }
    if assessment.show_diagnosis
        && let Some(d) = &device.diagnosis
    {
        out.push('\n');
        out.push_str(&backupd_rules::render_checks(d, lang.rules()));
    }
}

//! Plain-text rendering of a diagnosis, for a CLI to print.

use std::fmt::Write as _;

use crate::catalog::{Lang, ui};
use crate::diagnosis::{Arg, Diagnosis, Escalation, Evidence, Outcome, Step};
use crate::facts::{Source, UnknownReason};

/// Renders `diagnosis` in `lang`: what was checked and passed, then the problems with their evidence and numbered
/// remedy steps, then what could not be checked with how to check it by hand, then the escalation plan.
pub fn render_text(diagnosis: &Diagnosis, lang: Lang) -> String {
    let mut out = render_checks(diagnosis, lang);
    out.push('\n');
    out.push_str(&render_plans(&[("", &diagnosis.escalation)], lang));
    out
}

/// [`render_text`] without the escalation plan: for a report of several phones, whose plans
/// [`render_plans`] prints once, after them.
pub fn render_checks(diagnosis: &Diagnosis, lang: Lang) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "{}\n", ui("heading", lang));

    let passed: Vec<_> = diagnosis
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Pass)
        .collect();
    let _ = writeln!(out, "{} ({})", ui("passed", lang), passed.len());
    for check in &passed {
        let _ = writeln!(out, "  ✓ {}", check.label.render(lang));
    }
    out.push('\n');

    if diagnosis.findings.is_empty() {
        let _ = writeln!(out, "{}\n", ui("no_problems", lang));
    } else {
        let _ = writeln!(
            out,
            "{} ({})\n",
            ui("problems", lang),
            diagnosis.findings.len()
        );
    }
    for (n, finding) in diagnosis.findings.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}. [{}] {} ({})",
            n + 1,
            ui(&format!("severity.{}", finding.severity.as_str()), lang),
            finding.title.render(lang),
            finding.id
        );
        let _ = writeln!(out, "   {}", finding.explanation.render(lang));
        let _ = writeln!(out, "   {}:", ui("evidence", lang));
        for e in &finding.evidence {
            let _ = writeln!(out, "     - {}", evidence(e, lang));
        }
        let _ = writeln!(out, "   {}:", ui("what_to_do", lang));
        steps(&mut out, &finding.remedies, "     ", lang);
        out.push('\n');
    }

    let unknown: Vec<_> = diagnosis
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Unknown)
        .collect();
    if !unknown.is_empty() {
        let _ = writeln!(out, "{} ({})\n", ui("unknown", lang), unknown.len());
        for check in unknown {
            let reasons: Vec<String> = check
                .evidence
                .iter()
                .filter(|e| e.unknown.is_some())
                .map(|e| evidence(e, lang))
                .collect();
            let _ = writeln!(out, "  ? {} ({})", check.label.render(lang), check.id);
            for r in reasons {
                let _ = writeln!(out, "      - {r}");
            }
            let _ = writeln!(out, "    {}:", ui("check_by_hand", lang));
            steps(&mut out, &check.manual, "      ", lang);
            out.push('\n');
        }
    }

    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// The escalation plan once for several phones, each given as (name, its plan): the stages in order, and where
/// a stage's steps differ between phones (the local backup and DFU stages depend on each phone's backup), each
/// version of the steps once, under the names of the phones it is for. With one phone (or identical plans) this
/// is exactly the plan of [`render_text`].
pub fn render_plans(plans: &[(&str, &Escalation)], lang: Lang) -> String {
    let mut out = String::new();
    let Some((_, first)) = plans.first() else {
        return out;
    };
    let _ = writeln!(out, "{}\n", ui("escalation", lang));
    let intro = if plans.iter().all(|(_, p)| p.simple_checks_passed) {
        "escalation.intro_passed"
    } else {
        "escalation.intro_pending"
    };
    let _ = writeln!(out, "{}\n", ui(intro, lang));
    for (n, stage) in first.stages.iter().enumerate() {
        let letter = char::from(b'A'.saturating_add(u8::try_from(n).unwrap_or(u8::MAX)));
        let _ = writeln!(out, "{letter}. {}", stage.title.render(lang));
        let _ = writeln!(out, "   {}", stage.explanation.render(lang));
        // Each distinct rendering of this stage's steps, with the phones it belongs to, in first-seen order.
        let mut versions: Vec<(String, Vec<&str>)> = Vec::new();
        for (name, plan) in plans {
            let mut text = String::new();
            if let Some(s) = plan.stages.iter().find(|s| s.id == stage.id) {
                steps(&mut text, &s.steps, "", lang);
            }
            match versions.iter_mut().find(|(t, _)| *t == text) {
                Some((_, names)) => names.push(name),
                None => versions.push((text, vec![name])),
            }
        }
        let single = versions.len() == 1;
        for (text, names) in versions {
            let indent = if single {
                "   "
            } else {
                let _ = writeln!(out, "   {}:", names.join(", "));
                "     "
            };
            for line in text.lines() {
                let _ = writeln!(out, "{indent}{line}");
            }
        }
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

fn steps(out: &mut String, steps: &[Step], indent: &str, lang: Lang) {
    for (n, step) in steps.iter().enumerate() {
        let _ = writeln!(out, "{indent}{}. {}", n + 1, step.text.render(lang));
    }
}

fn evidence(e: &Evidence, lang: Lang) -> String {
    let value = match e.unknown {
        Some(reason) => format!(
            "{} ({})",
            ui("value_unknown", lang),
            self::reason(reason, lang)
        ),
        None => e.value.clone(),
    };
    format!("{}: {value} [{}]", e.fact, source(&e.source, lang))
}

fn reason(reason: UnknownReason, lang: Lang) -> String {
    let key = match reason {
        UnknownReason::NotPaired => "reason.not_paired",
        UnknownReason::DeviceLocked => "reason.device_locked",
        UnknownReason::NotReported => "reason.not_reported",
        UnknownReason::QueryFailed => "reason.query_failed",
        UnknownReason::NotQueried => "reason.not_queried",
        UnknownReason::NotAvailableOverUsb => "reason.not_available_over_usb",
    };
    ui(key, lang)
}

fn source(source: &Source, lang: Lang) -> String {
    match source {
        Source::Lockdown {
            domain: Some(domain),
            key,
        } => format!("lockdown {domain} {key}"),
        Source::Lockdown { domain: None, key } => format!("lockdown {key}"),
        Source::LockdownRequest { request } => format!("lockdown {request}"),
        Source::IoRegistry { entry } => format!("IORegistry {entry}"),
        Source::InstallationProxy { command } => format!("installation_proxy {command}"),
        Source::Host { detail } => format!("{} {detail}", ui("source.host", lang)),
        Source::Config { key } => format!("{} {key}", ui("source.config", lang)),
        Source::Derived { formula } => format!("{} {formula}", ui("source.derived", lang)),
        Source::Unobservable => ui("source.unobservable", lang),
    }
}

/// Formats a placeholder value for `lang`.
pub(crate) fn arg(arg: &Arg, lang: Lang) -> String {
    match arg {
        Arg::Bytes(b) => bytes(*b, decimal_separator(lang)),
        Arg::Count(n) => n.to_string(),
        Arg::Date(t) => t.short_utc(),
        Arg::Text(s) => s.clone(),
    }
}

fn decimal_separator(lang: Lang) -> char {
    match lang {
        Lang::En => '.',
        Lang::It => ',',
    }
}

/// A size in decimal units, as Apple counts storage: `60.0 GB`, `850 MB`, `12 B`.
pub(crate) fn bytes(b: u64, separator: char) -> String {
    const GB: u64 = 1_000_000_000;
    const MB: u64 = 1_000_000;
    if b >= GB {
        let tenths = b / (GB / 10) + u64::from(b % (GB / 10) >= GB / 20);
        format!("{}{separator}{} GB", tenths / 10, tenths % 10)
    } else if b >= MB {
        let mb = b / MB + u64::from(b % MB >= MB / 2);
        format!("{mb} MB")
    } else {
        format!("{b} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_decimal_units_and_the_language_separator() {
        assert_eq!(bytes(60_000_000_000, '.'), "60.0 GB");
        assert_eq!(bytes(5_000_000_000, ','), "5,0 GB");
        assert_eq!(bytes(1_049_999_999, '.'), "1.0 GB");
        assert_eq!(bytes(1_050_000_000, '.'), "1.1 GB");
        assert_eq!(bytes(850_400_000, '.'), "850 MB");
        assert_eq!(bytes(999, '.'), "999 B");
        assert_eq!(bytes(u64::MAX, '.'), "18446744073.7 GB");
    }
}

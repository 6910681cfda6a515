//! The one-line-per-phone summary of `backupdctl status` with several phones, in the spirit of `docker ps`:
//! a table when it fits the width, one short block per phone when it does not.
//!
//! Each column is a [`Column`]: a header and a way to get its cell from a [`Row`]. A new column (or a section
//! after the table, such as phones seen only as USB devices) is added there without touching the layout code.

use std::fmt::Write as _;

use backupd_api::{Device, Job, JobKind, JobState};
use backupd_rules::{Arg, Diagnosis, Severity, StageId};

use crate::text::{self, Lang};

/// How output may look: the width to fit, and whether colour is allowed (a terminal, and no `NO_COLOR`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Look {
    /// Columns of the terminal; `None` when output goes elsewhere (nothing is cut or wrapped then).
    pub(crate) width: Option<usize>,
    /// Whether to colour the worst problem.
    pub(crate) color: bool,
}

/// One phone's line.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    udid: String,
    name: String,
    model: String,
    ios: String,
    connected: String,
    problems: String,
    worst: Worst,
    backup: String,
    job: String,
}

/// What colours the problems cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Worst {
    None,
    NotReady,
    Severity(Severity),
}

struct Column {
    header: fn(Lang) -> &'static str,
    cell: fn(&Row) -> &str,
    /// The column that gives up width (cut with `…`) when the table is too wide.
    flexible: bool,
}

const COLUMNS: &[Column] = &[
    Column {
        header: |_| "UDID",
        cell: |r| &r.udid,
        flexible: false,
    },
    Column {
        header: |l| pick(l, "NAME", "NOME"),
        cell: |r| &r.name,
        flexible: false,
    },
    Column {
        header: |l| pick(l, "MODEL", "MODELLO"),
        cell: |r| &r.model,
        flexible: false,
    },
    Column {
        header: |_| "iOS",
        cell: |r| &r.ios,
        flexible: false,
    },
    Column {
        header: |l| pick(l, "CONNECTED", "COLLEGATO"),
        cell: |r| &r.connected,
        flexible: false,
    },
    Column {
        header: |l| pick(l, "PROBLEMS", "PROBLEMI"),
        cell: |r| &r.problems,
        flexible: true,
    },
    Column {
        header: |l| pick(l, "LOCAL BACKUP", "BACKUP LOCALE"),
        cell: |r| &r.backup,
        flexible: false,
    },
    Column {
        header: |l| pick(l, "JOB", "ATTIVITÀ"),
        cell: |r| &r.job,
        flexible: false,
    },
];

/// Below this, the problems column is not worth cutting to: the blocks are used instead.
const MIN_PROBLEMS: usize = 24;
const GAP: &str = "  ";

fn pick(lang: Lang, en: &'static str, it: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::It => it,
    }
}

fn width(s: &str) -> usize {
    console::measure_text_width(s)
}

/// The newest local backup as the diagnosis saw it: its date and whether it was verified. Read from the
/// escalation plan's local-backup stage, which carries the date and picks its steps by verification.
fn local_backup(d: &Diagnosis) -> Option<(i64, bool)> {
    let stage = d
        .escalation
        .stages
        .iter()
        .find(|s| s.id == StageId::LocalBackup)?;
    let Some(Arg::Date(date)) = stage.title.args.get("date") else {
        return None;
    };
    let verified = stage
        .steps
        .first()
        .is_some_and(|s| s.text.key == "own.local.present_verified");
    Some((date.unix_secs(), verified))
}

impl Row {
    /// The row of `device`; `ready` is false when its diagnosis is not one to go by (see `status`), and `jobs`
    /// are the daemon's jobs (a running one is shown).
    pub(crate) fn new(device: &Device, ready: bool, jobs: &[Job], lang: Lang) -> Self {
        let diagnosis = device.diagnosis.as_ref().filter(|_| ready);
        let (problems, worst) = match diagnosis {
            None => (text::phase(lang, device.phase).to_owned(), Worst::NotReady),
            Some(d) => match d.findings.iter().min_by_key(|f| f.severity) {
                None => (text::no_problems(lang).to_owned(), Worst::None),
                Some(f) => (
                    format!(
                        "{} · {}: {}",
                        d.findings.len(),
                        text::severity(lang, f.severity),
                        f.title.render(lang.rules())
                    ),
                    Worst::Severity(f.severity),
                ),
            },
        };
        let backup = match device.diagnosis.as_ref().and_then(local_backup) {
            Some((date, verified)) => {
                format!(
                    "{} ({})",
                    text::utc(date),
                    text::verified_word(lang, verified)
                )
            }
            None if device.diagnosis.is_some() => text::none(lang).to_owned(),
            None => "—".to_owned(),
        };
        let job = jobs
            .iter()
            .find(|j| {
                j.state == JobState::Running
                    && crate::normalize_udid(&j.udid) == crate::normalize_udid(&device.udid)
            })
            .map_or_else(
                || "—".to_owned(),
                |j| match j.kind {
                    JobKind::Backup => text::running_backup(lang, j.progress.device_percent),
                    _ => text::running_other(lang).to_owned(),
                },
            );
        Self {
            udid: device.udid.clone(),
            name: device
                .name
                .clone()
                .unwrap_or_else(|| text::unnamed_short(lang).to_owned()),
            model: device
                .product_type
                .clone()
                .unwrap_or_else(|| "—".to_owned()),
            ios: device
                .product_version
                .clone()
                .unwrap_or_else(|| "—".to_owned()),
            connected: text::yes_no(lang, device.connected).to_owned(),
            problems,
            worst,
            backup,
            job,
        }
    }
}

fn paint(cell: &str, worst: Worst, look: Look) -> String {
    if !look.color {
        return cell.to_owned();
    }
    let code = match worst {
        Worst::None => "32",
        Worst::Severity(Severity::Critical) => "1;31",
        Worst::Severity(Severity::Warning) => "33",
        Worst::Severity(_) => "36",
        Worst::NotReady => return cell.to_owned(),
    };
    format!("\x1b[{code}m{cell}\x1b[0m")
}

/// The summary of `rows`, as a table when it fits `look.width`, else as one block per phone.
pub(crate) fn render(rows: &[Row], lang: Lang, look: Look) -> String {
    let mut widths: Vec<usize> = COLUMNS
        .iter()
        .map(|c| {
            rows.iter()
                .map(|r| width((c.cell)(r)))
                .chain([width((c.header)(lang))])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let total = widths.iter().sum::<usize>() + GAP.len() * (COLUMNS.len() - 1);
    if let Some(limit) = look.width
        && total > limit
    {
        let over = total - limit;
        let Some(flex) = COLUMNS.iter().position(|c| c.flexible) else {
            return blocks(rows, lang, look);
        };
        if widths[flex].saturating_sub(over) < MIN_PROBLEMS {
            return blocks(rows, lang, look);
        }
        widths[flex] -= over;
    }
    let mut out = String::new();
    let header: Vec<String> = COLUMNS
        .iter()
        .map(|c| (c.header)(lang).to_owned())
        .collect();
    line(&mut out, &header, &widths, None, look);
    for row in rows {
        let cells: Vec<String> = COLUMNS
            .iter()
            .zip(&widths)
            .map(|(c, w)| console::truncate_str((c.cell)(row), *w, "…").into_owned())
            .collect();
        let flex = COLUMNS.iter().position(|c| c.flexible);
        line(
            &mut out,
            &cells,
            &widths,
            flex.map(|i| (i, row.worst)),
            look,
        );
    }
    out
}

fn line(
    out: &mut String,
    cells: &[String],
    widths: &[usize],
    paint_at: Option<(usize, Worst)>,
    look: Look,
) {
    let mut text = String::new();
    for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            text.push_str(GAP);
        }
        let pad = " ".repeat(w.saturating_sub(width(cell)));
        match paint_at {
            Some((at, worst)) if at == i => text.push_str(&paint(cell, worst, look)),
            _ => text.push_str(cell),
        }
        text.push_str(&pad);
    }
    let _ = writeln!(out, "{}", text.trim_end());
}

/// One block per phone, each line wrapped at the width with a hanging indent.
fn blocks(rows: &[Row], lang: Lang, look: Look) -> String {
    let limit = look.width.unwrap_or(usize::MAX).max(20);
    let mut out = String::new();
    for row in rows {
        let head = format!(
            "{} · {} · iOS {} · {}: {}",
            row.name,
            row.model,
            row.ios,
            pick(lang, "connected", "collegato"),
            row.connected
        );
        wrap(&mut out, &head, "", limit, None);
        let fields = [
            ("UDID", row.udid.as_str(), None),
            (
                pick(lang, "problems", "problemi"),
                row.problems.as_str(),
                Some(row.worst),
            ),
            (
                pick(lang, "local backup", "backup locale"),
                row.backup.as_str(),
                None,
            ),
            (pick(lang, "job", "attività"), row.job.as_str(), None),
        ];
        for (label, value, worst) in fields {
            let text = format!("{label}: {value}");
            wrap(&mut out, &text, "  ", limit, worst.map(|w| (w, look)));
        }
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// `text` (one paragraph per line) wrapped to `look.width`, or as it is without a width.
pub(crate) fn wrapped(text: &str, look: Look) -> String {
    let Some(limit) = look.width else {
        return text.to_owned();
    };
    let mut out = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            out.push('\n');
        } else {
            wrap(&mut out, line, "", limit.max(20), None);
        }
    }
    out
}

/// Writes `text` after `indent`, wrapped at word boundaries to `limit` columns; continuation lines are indented
/// two more. A word longer than a line is cut.
fn wrap(out: &mut String, text: &str, indent: &str, limit: usize, paint_as: Option<(Worst, Look)>) {
    let mut lines: Vec<String> = Vec::new();
    let mut current = indent.to_owned();
    let continuation = format!("{indent}  ");
    let mut empty = true;
    for word in text.split_whitespace() {
        let room = limit.saturating_sub(width(&current) + usize::from(!empty));
        if !empty && width(word) > room {
            lines.push(std::mem::replace(&mut current, continuation.clone()));
            empty = true;
        }
        if !empty {
            current.push(' ');
        }
        let room = limit.saturating_sub(width(&current));
        current.push_str(&console::truncate_str(word, room.max(1), "…"));
        empty = false;
    }
    lines.push(current);
    for l in lines {
        match paint_as {
            Some((worst, look)) => {
                let body = l.trim_start();
                let lead = &l[..l.len() - body.len()];
                let _ = writeln!(out, "{lead}{}", paint(body, worst, look));
            }
            None => {
                let _ = writeln!(out, "{l}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_words_and_indents_continuations() {
        let mut out = String::new();
        wrap(&mut out, "aaa bbb ccc ddd", "  ", 10, None);
        assert_eq!(out, "  aaa bbb\n    ccc\n    ddd\n");
        let mut out = String::new();
        wrap(&mut out, "abcdefghijklmnop", "", 8, None);
        assert_eq!(out, "abcdefg…\n");
    }
}

//! `backupdctl backups`: the local backups of a phone, or of every phone the daemon knows, as a table or JSON.

use std::fmt::Write as _;
use std::io::Write;

use hyper::{Method, StatusCode};

use backupd_api::{BackupList, Device, PasswordCheck, PasswordCheckResult, Status, exit};

use crate::client::{self, Client};
use crate::job;
use crate::text::{self, Lang};
use crate::{ExpectedError, normalize_udid, write_out};

/// `backupdctl backups [UDID] [--json]`.
pub(crate) async fn run(
    client: &Client,
    udid: Option<&str>,
    json: bool,
    lang: Lang,
    out: &mut impl Write,
) -> Result<i32, ExpectedError> {
    let status = job::devices(client).await?;
    let name_of = |udid: &str| name_of_known(&status, udid).and_then(|d| d.name.clone());
    let phones: Vec<String> = match udid {
        Some(u) => vec![u.to_owned()],
        None => status
            .devices
            .iter()
            .map(|d: &Device| d.udid.clone())
            .collect(),
    };
    let mut lists = Vec::new();
    for phone in &phones {
        let path = format!(
            "{}{phone}/{}",
            backupd_api::PATH_DEVICE_PREFIX,
            backupd_api::DEVICE_BACKUPS
        );
        let what = format!("GET {path}");
        let answer = client.send(Method::GET, &path).await?;
        if answer.status == StatusCode::NOT_FOUND {
            if udid.is_some() {
                return Err(ExpectedError::DeviceNotFound {
                    udid: phone.clone(),
                });
            }
            // Listed a moment ago and forgotten since: nothing to show for it.
            continue;
        }
        let body = client::success(&what, answer)?;
        let list: BackupList = client::parse(&what, &body)?;
        // The daemon lists what is on disk for any UDID: nothing there for a phone it does not know means the
        // UDID is wrong.
        if udid.is_some() && list.backups.is_empty() && name_of_known(&status, phone).is_none() {
            return Err(ExpectedError::DeviceNotFound {
                udid: phone.clone(),
            });
        }
        lists.push((list, body));
    }
    let text = if json {
        json_text(udid.is_some(), &lists)?
    } else if lists.is_empty() {
        format!("{}\n", text::no_phones_known(lang))
    } else {
        let sections: Vec<String> = lists
            .iter()
            .map(|(list, _)| render(list, name_of(&list.udid).as_deref(), lang))
            .collect();
        sections.join("\n")
    };
    write_out(out, &text)?;
    Ok(exit::OK)
}

/// `backupdctl backups [UDID] --check-password`: does the password open the newest backup? Exit 0 when it
/// does, 9 when it does not, 4 when the phone has no encrypted backup here.
pub(crate) async fn check_password(
    client: &Client,
    udid: &str,
    password: crate::password::Secret,
    json: bool,
    lang: Lang,
    out: &mut impl Write,
) -> Result<i32, ExpectedError> {
    let path = format!(
        "{}{udid}/{}",
        backupd_api::PATH_DEVICE_PREFIX,
        backupd_api::DEVICE_CHECK_PASSWORD
    );
    let what = format!("POST {path}");
    let body = PasswordCheck {
        password: password.into_inner(),
    };
    let answer = client.post_json(&path, &body).await?;
    drop(body);
    if answer.status == StatusCode::NOT_FOUND {
        return Err(ExpectedError::NoEncryptedBackup {
            udid: udid.to_owned(),
        });
    }
    let bytes = client::success(&what, answer)?;
    let result: PasswordCheckResult = client::parse(&what, &bytes)?;
    if json {
        write_out(
            out,
            &format!("{}\n", String::from_utf8_lossy(&bytes).trim_end()),
        )?;
    }
    if !result.ok {
        return Err(ExpectedError::WrongPassword { udid: result.udid });
    }
    if !json {
        write_out(
            out,
            &format!(
                "{}\n",
                text::password_opens(lang, &result.udid, result.backup_date)
            ),
        )?;
    }
    Ok(exit::OK)
}

/// The phone of `status` with this UDID, in any spelling.
fn name_of_known<'a>(status: &'a Status, udid: &str) -> Option<&'a Device> {
    let key = normalize_udid(udid);
    status
        .devices
        .iter()
        .find(|d| normalize_udid(&d.udid) == key)
}

/// The daemon's JSON: with a UDID, its answer as it was sent; else an array of the answers, every field kept.
fn json_text(one: bool, lists: &[(BackupList, bytes::Bytes)]) -> Result<String, ExpectedError> {
    if one && let [(_, body)] = lists {
        let mut text = String::from_utf8_lossy(body).trim_end().to_owned();
        text.push('\n');
        return Ok(text);
    }
    let what = format!(
        "GET {}…/{}",
        backupd_api::PATH_DEVICE_PREFIX,
        backupd_api::DEVICE_BACKUPS
    );
    let values = lists
        .iter()
        .map(|(_, body)| client::parse::<serde_json::Value>(&what, body))
        .collect::<Result<Vec<_>, _>>()?;
    let mut text =
        serde_json::to_string_pretty(&values).map_err(|e| ExpectedError::DaemonGarbled {
            what,
            source: Box::new(e),
        })?;
    text.push('\n');
    Ok(text)
}

/// One phone's section: a header, then its backups as a table.
pub(crate) fn render(list: &BackupList, name: Option<&str>, lang: Lang) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = match name {
        Some(name) => writeln!(out, "== {name} ({}) ==", list.udid),
        None => writeln!(out, "== {} ==", list.udid),
    };
    if list.backups.is_empty() {
        let _ = writeln!(out, "{}", text::no_backups(lang, &list.udid));
        return out;
    }
    let header = text::backup_columns(lang).map(str::to_owned);
    let rows: Vec<[String; 6]> = list
        .backups
        .iter()
        .map(|b| {
            [
                b.name.clone(),
                b.date
                    .map_or_else(|| text::unknown(lang).to_owned(), text::utc),
                text::size(lang, b.size),
                b.ios_version.clone().unwrap_or_else(|| "?".to_owned()),
                text::yes_no(lang, b.encrypted).to_owned(),
                text::verified_cell(lang, b.verified, b.verify_method.as_deref()),
            ]
        })
        .collect();
    let mut widths = [0_usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            let pad = width.saturating_sub(cell.chars().count());
            // Sizes line up on the right, everything else on the left.
            if i == 2 {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
            line.push_str("  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if let Some(current) = list
        .backups
        .iter()
        .find(|b| b.name == "current" && b.encrypted)
        && let Some(note) = text::backups_encryption_note(
            lang,
            &list.udid,
            current.verify_method.as_deref(),
            current.password_checked_at,
        )
    {
        let _ = writeln!(out, "{note}");
    }
    out
}

//! `backupdctl diagnose`: asks for a new diagnosis, waits for it on the event stream, then shows it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use hyper::{Method, StatusCode};
use tokio::time::Instant;

use backupd_api::{Accepted, Event, Status};

use crate::client::{self, Client};
use crate::status::{self, Late, Selection};
use crate::text::{self, Lang};
use crate::{ExpectedError, normalize_udid};

/// How often the phones' `diagnosed_at` is looked at while waiting.
///
/// The daemon sends no event when a phone that waits for the Trust tap is read again with the same outcome; the
/// new `diagnosed_at` is then the only sign that the reading asked for was made.
const POLL: Duration = Duration::from_secs(2);

/// What `diagnose` was asked.
#[derive(Debug)]
pub(crate) struct Options<'a> {
    /// One phone, or every connected phone.
    pub(crate) udid: Option<&'a str>,
    /// How long to wait for the new diagnoses.
    pub(crate) timeout: Duration,
    /// Print the daemon's JSON.
    pub(crate) json: bool,
    /// The full report of every phone even when there are several.
    pub(crate) details: bool,
    /// Width and colour of the text.
    pub(crate) look: crate::summary::Look,
}

/// `backupdctl diagnose [UDID] [--timeout SECS] [--json]`.
pub(crate) async fn run(
    client: &Client,
    options: &Options<'_>,
    lang: Lang,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<i32, ExpectedError> {
    // Subscribe before asking, so that the events of the new diagnosis cannot come before we listen.
    let mut events = client.events().await?;
    let devices_path = backupd_api::PATH_DEVICES;
    let before: Status = client::parse(
        &format!("GET {devices_path}"),
        &client.get(devices_path).await?,
    )?;
    let path = match options.udid {
        Some(u) => format!("{}{u}/diagnose", backupd_api::PATH_DEVICE_PREFIX),
        None => backupd_api::PATH_DIAGNOSE_ALL.to_owned(),
    };
    let what = format!("POST {path}");
    let answer = client.send(Method::POST, &path).await?;
    if answer.status == StatusCode::NOT_FOUND
        && let Some(udid) = options.udid
    {
        let key = normalize_udid(udid);
        let known = before
            .devices
            .iter()
            .any(|d| normalize_udid(&d.udid) == key);
        let udid = udid.to_owned();
        return Err(if known {
            ExpectedError::DeviceNotConnected {
                udid,
                consequence: "it cannot be diagnosed again",
            }
        } else {
            ExpectedError::DeviceNotFound { udid }
        });
    }
    let accepted: Accepted = client::parse(&what, &client::success(&what, answer)?)?;
    let requested: BTreeSet<String> = accepted.udids.iter().map(|u| normalize_udid(u)).collect();

    let mut pending = requested.clone();
    if !pending.is_empty() {
        let notice = text::asked(lang, pending.len(), options.timeout.as_secs());
        // A notice for a person at a terminal; failing to show it changes nothing.
        let _ = writeln!(err, "{notice}");
    }
    let baseline: BTreeMap<String, Option<i64>> = before
        .devices
        .iter()
        .map(|d| (normalize_udid(&d.udid), d.diagnosed_at))
        .collect();
    let deadline = Instant::now() + options.timeout;
    let mut poll = tokio::time::interval_at(Instant::now() + POLL, POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pending.is_empty() {
        tokio::select! {
            line = events.next_line() => match line? {
                Some(line) => {
                    // Lines this version cannot read are events of a newer daemon, none of which ends the wait.
                    if let Ok(event) = serde_json::from_slice::<Event>(&line) {
                        settle(&event, &mut pending);
                    }
                }
                // The daemon is stopping; what it has is shown below, or the next request says it is gone.
                None => break,
            },
            _ = poll.tick() => {
                let now: Status = client::parse(
                    &format!("GET {devices_path}"),
                    &client.get(devices_path).await?,
                )?;
                for d in &now.devices {
                    let key = normalize_udid(&d.udid);
                    if d.diagnosed_at > baseline.get(&key).copied().flatten() {
                        pending.remove(&key);
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => break,
        }
    }

    let late = Late {
        udids: pending,
        secs: options.timeout.as_secs(),
    };
    let body = client.get(devices_path).await?;
    let selection = if requested.is_empty() {
        Selection::Connected
    } else {
        Selection::These(requested)
    };
    let view = status::View {
        json: options.json,
        details: options.details,
        look: options.look,
    };
    status::show(out, &body, &selection, &late, view, &[], lang)
}

/// Takes the phone an event is about off the wait list when the event ends its wait.
fn settle(event: &Event, pending: &mut BTreeSet<String>) {
    match event {
        Event::DiagnosisReady { udid, .. }
        | Event::TrustNeeded { udid, .. }
        | Event::Detached { udid } => {
            pending.remove(&normalize_udid(udid));
        }
        // Without usbmuxd the daemon stops reading every phone: nothing more will come.
        Event::UsbmuxdUnavailable { .. } => pending.clear(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_end_the_wait_of_their_phone_only() {
        let mut pending: BTreeSet<String> = ["AAAA".to_owned(), "BBBB".to_owned()].into();
        settle(
            &Event::Attached {
                udid: "aaaa".into(),
            },
            &mut pending,
        );
        assert_eq!(pending.len(), 2);
        settle(
            &Event::DiagnosisReady {
                udid: "aa-aa".into(),
                problems: true,
            },
            &mut pending,
        );
        assert_eq!(pending, ["BBBB".to_owned()].into());
        settle(
            &Event::TrustNeeded {
                udid: "bbbb".into(),
                finding: "pairing.trust_pending".into(),
            },
            &mut pending,
        );
        assert!(pending.is_empty());

        let mut pending: BTreeSet<String> = ["AAAA".to_owned()].into();
        settle(
            &Event::UsbmuxdUnavailable {
                error: "gone".into(),
            },
            &mut pending,
        );
        assert!(pending.is_empty());
    }
}

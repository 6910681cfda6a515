//! `backupdctl watch`: the daemon's events, one line each, in words or as JSON, optionally as notifications.

use std::io::Write;

use backupd_api::{Event, exit};

use crate::client::Client;
use crate::job;
use crate::notify::Notifier;
use crate::text::{self, Lang};
use crate::{ExpectedError, write_out};

/// `backupdctl watch [--json] [--notify]`: runs until the daemon ends the stream or Ctrl-C.
pub(crate) async fn run(
    client: &Client,
    json: bool,
    notify: bool,
    lang: Lang,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<i32, ExpectedError> {
    let mut notifier = if notify {
        let found = Notifier::from_process();
        if found.is_none() {
            let _ = writeln!(err, "{}", text::no_desktop(lang));
        }
        found
    } else {
        None
    };
    let mut events = client.events().await?;
    let interrupted = async {
        // Without a SIGINT handler, Ctrl-C still ends the process the default way.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupted);
    loop {
        let line = tokio::select! {
            line = events.next_line() => line?,
            () = &mut interrupted => return Ok(exit::OK),
        };
        let Some(line) = line else {
            let _ = writeln!(err, "{}", text::stream_ended(lang));
            return Ok(exit::OK);
        };
        let words = describe(&line, lang);
        if json {
            let mut raw = String::from_utf8_lossy(&line).into_owned();
            raw.push('\n');
            write_out(out, &raw)?;
        } else {
            match &words {
                Some(w) => write_out(out, &format!("{w}\n"))?,
                None => {
                    let _ = writeln!(err, "{}", text::unreadable_event(lang));
                }
            }
        }
        if let (Some(n), Some(w)) = (&notifier, &words)
            && worth_notifying(&line)
            && let Err(why) = n.send(w).await
        {
            let _ = writeln!(err, "{}", text::notify_failed(lang, &why));
            notifier = None;
        }
    }
}

/// One event line in words; `None` when the line is not a JSON object.
fn describe(line: &[u8], lang: Lang) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    if !value.is_object() {
        return None;
    }
    let name = value
        .get("event")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("?")
        .to_owned();
    Some(match serde_json::from_value::<Event>(value) {
        Ok(Event::Attached { udid }) => text::attached(lang, &udid),
        Ok(Event::Detached { udid }) => text::detached(lang, &udid),
        Ok(Event::TrustNeeded { udid, finding }) => {
            format!("{udid}: {}", text::waiting(lang, &finding))
        }
        Ok(Event::DiagnosisReady { udid, problems }) => {
            text::diagnosis_ready(lang, &udid, problems)
        }
        Ok(Event::UsbmuxdUnavailable { error }) => text::usbmuxd_unavailable(lang, &error),
        Ok(Event::UsbmuxdAvailable) => text::usbmuxd_available(lang).to_owned(),
        Ok(Event::JobProgress { job } | Event::JobFinished { job }) => {
            text::job_event(lang, &job, &job::progress_line(lang, &job, None))
        }
        Ok(_) | Err(_) => text::unknown_event(lang, &name),
    })
}

/// Whether an event deserves a desktop notification: not a job's progress, which comes several times a second.
fn worth_notifying(line: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("event").and_then(|e| e.as_str()).map(str::to_owned))
        .is_none_or(|name| name != "job_progress")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_in_words() {
        let cases = [
            (
                r#"{"event":"attached","udid":"A1"}"#,
                Lang::En,
                "A1: iPhone connected",
            ),
            (
                r#"{"event":"detached","udid":"A1"}"#,
                Lang::It,
                "A1: iPhone scollegato",
            ),
            (
                r#"{"event":"trust_needed","udid":"A1","finding":"pairing.trust_pending"}"#,
                Lang::En,
                "A1: waiting for you to tap Trust on the phone",
            ),
            (
                r#"{"event":"diagnosis_ready","udid":"A1","problems":false}"#,
                Lang::It,
                "A1: diagnosi pronta: nessun problema trovato",
            ),
            (
                r#"{"event":"usbmuxd_unavailable","error":"connection refused"}"#,
                Lang::En,
                "usbmuxd is not reachable: connection refused",
            ),
            (
                r#"{"event":"usbmuxd_available"}"#,
                Lang::It,
                "usbmuxd è di nuovo raggiungibile",
            ),
            (
                r#"{"event":"backup_started","udid":"A1"}"#,
                Lang::En,
                "event `backup_started` (unknown to this backupdctl)",
            ),
            (
                r#"{"event":"attached"}"#,
                Lang::En,
                "event `attached` (unknown to this backupdctl)",
            ),
            (
                r#"{"event":"job_progress","job":{"id":3,"udid":"A1","kind":"backup","state":"running","started_at":0,"progress":{"stage":"transferring","bytes":2500000000,"files":1200,"device_percent":41.6,"announced_bytes":0,"elapsed_secs":60.0}}}"#,
                Lang::En,
                "A1: backup job 3: Copying from the iPhone: 2.50 GB, 1200 files, iPhone at 42%",
            ),
            (
                r#"{"event":"job_finished","job":{"id":3,"udid":"A1","kind":"backup","state":"failed","started_at":0,"error":"the iPhone stopped the backup: Device locked (MBErrorDomain 208)","device_error_code":208}}"#,
                Lang::It,
                "A1: backup 3: non riuscito: the iPhone stopped the backup: Device locked (MBErrorDomain 208)",
            ),
            (
                r#"{"event":"job_finished","job":{"id":4,"udid":"A1","kind":"encryption","state":"succeeded","started_at":0}}"#,
                Lang::En,
                "A1: encryption change job 4: succeeded",
            ),
        ];
        for (line, lang, expected) in cases {
            assert_eq!(
                describe(line.as_bytes(), lang).as_deref(),
                Some(expected),
                "{line}"
            );
        }
        assert!(!worth_notifying(br#"{"event":"job_progress","job":{}}"#));
        assert!(worth_notifying(br#"{"event":"job_finished","job":{}}"#));
        assert_eq!(describe(b"not json", Lang::En), None);
        assert_eq!(describe(b"[1,2]", Lang::En), None);
    }
}

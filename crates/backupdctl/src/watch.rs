//! `backupdctl watch`: the daemon's events, one line each, in words or as JSON, optionally as notifications.

use std::io::Write;

use backupd_api::{Event, exit};

use crate::client::Client;
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
        Ok(_) | Err(_) => text::unknown_event(lang, &name),
    })
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
        ];
        for (line, lang, expected) in cases {
            assert_eq!(
                describe(line.as_bytes(), lang).as_deref(),
                Some(expected),
                "{line}"
            );
        }
        assert_eq!(describe(b"not json", Lang::En), None);
        assert_eq!(describe(b"[1,2]", Lang::En), None);
    }
}

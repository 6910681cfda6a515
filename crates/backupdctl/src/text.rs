//! The CLI's own words, in English and Italian; the diagnoses themselves come from `backupd-rules`' catalog.

use backupd_api::Phase;
use backupd_rules::Severity;

/// The language of texts. The variants have no doc comments on purpose: clap would show them as a list in
/// `--help`, where `[possible values: en, it]` says it all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Lang {
    En,
    It,
}

impl Lang {
    /// The language a locale asks for (`it_IT.UTF-8` is Italian); English when unset or anything else.
    pub(crate) fn from_locale(locale: Option<&str>) -> Self {
        match locale.map(str::parse::<backupd_rules::Lang>) {
            Some(Ok(backupd_rules::Lang::It)) => Self::It,
            _ => Self::En,
        }
    }

    /// The same language for `backupd-rules`' renderer.
    pub(crate) fn rules(self) -> backupd_rules::Lang {
        match self {
            Self::En => backupd_rules::Lang::En,
            Self::It => backupd_rules::Lang::It,
        }
    }
}

/// Picks the text for `lang`.
fn pick<T>(lang: Lang, en: T, it: T) -> T {
    match lang {
        Lang::En => en,
        Lang::It => it,
    }
}

/// Seconds since the Unix epoch as `2026-11-21 08:00 UTC`.
pub(crate) fn utc(secs: i64) -> String {
    const DAY: i64 = 86_400;
    let days = secs.div_euclid(DAY);
    let of_day = secs.rem_euclid(DAY);
    // Howard Hinnant's days-to-civil: eras of 400 years make the leap-year rules periodic.
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe
        .saturating_add(era.saturating_mul(400))
        .saturating_add(i64::from(month <= 2));
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        of_day / 3_600,
        of_day % 3_600 / 60
    )
}

// Status: the host.

pub(crate) fn host_line(
    lang: Lang,
    reachable: bool,
    address: &str,
    error: Option<&str>,
    backup_dir: &str,
) -> String {
    let error = error.map(|e| format!(": {e}")).unwrap_or_default();
    match (lang, reachable) {
        (Lang::En, true) => {
            format!("Host: usbmuxd is reachable at {address}; local backups go to {backup_dir}")
        }
        (Lang::En, false) => format!(
            "Host: usbmuxd is NOT reachable at {address}{error}; local backups go to {backup_dir}"
        ),
        (Lang::It, true) => format!(
            "Computer: usbmuxd è raggiungibile su {address}; i backup locali vanno in {backup_dir}"
        ),
        (Lang::It, false) => format!(
            "Computer: usbmuxd NON è raggiungibile su {address}{error}; i backup locali vanno in {backup_dir}"
        ),
    }
}

pub(crate) fn host_problems(lang: Lang, n: usize) -> String {
    pick(
        lang,
        format!("Problems on this computer ({n})"),
        format!("Problemi su questo computer ({n})"),
    )
}

pub(crate) fn what_to_do(lang: Lang) -> &'static str {
    pick(lang, "What to do", "Cosa fare")
}

pub(crate) fn severity(lang: Lang, severity: Severity) -> &'static str {
    match (lang, severity) {
        (Lang::En, Severity::Critical) => "critical",
        (Lang::En, Severity::Warning) => "warning",
        (Lang::En, _) => "info",
        (Lang::It, Severity::Critical) => "critico",
        (Lang::It, Severity::Warning) => "attenzione",
        (Lang::It, _) => "informativo",
    }
}

// Status: a phone's header.

/// The header's labels: name line excluded.
pub(crate) struct Labels {
    pub(crate) udid: &'static str,
    pub(crate) model: &'static str,
    pub(crate) connected: &'static str,
    pub(crate) phase: &'static str,
    pub(crate) diagnosed: &'static str,
}

pub(crate) fn labels(lang: Lang) -> Labels {
    pick(
        lang,
        Labels {
            udid: "UDID",
            model: "Model",
            connected: "Connected",
            phase: "Phase",
            diagnosed: "Diagnosed",
        },
        Labels {
            udid: "UDID",
            model: "Modello",
            connected: "Collegato",
            phase: "Stato",
            diagnosed: "Diagnosi del",
        },
    )
}

pub(crate) fn unnamed(lang: Lang) -> &'static str {
    pick(
        lang,
        "iPhone (name not read yet)",
        "iPhone (nome non ancora letto)",
    )
}

pub(crate) fn not_read(lang: Lang) -> &'static str {
    pick(lang, "not read yet", "non ancora letto")
}

pub(crate) fn not_yet(lang: Lang) -> &'static str {
    pick(lang, "not yet", "non ancora")
}

pub(crate) fn yes_no(lang: Lang, yes: bool) -> &'static str {
    match (lang, yes) {
        (Lang::En, true) => "yes",
        (Lang::It, true) => "sì",
        (_, false) => "no",
    }
}

pub(crate) fn phase(lang: Lang, phase: Phase) -> &'static str {
    match (lang, phase) {
        (Lang::En, Phase::Attached) => "just plugged in",
        (Lang::En, Phase::WaitingForUser) => "waiting for you on the phone",
        (Lang::En, Phase::Reading) => "reading the phone",
        (Lang::En, Phase::Ready) => "diagnosis ready",
        (Lang::En, Phase::Failed) => "reading failed, will retry",
        (Lang::En, Phase::Detached) => "unplugged",
        (Lang::En, _) => "unknown",
        (Lang::It, Phase::Attached) => "appena collegato",
        (Lang::It, Phase::WaitingForUser) => "aspetta una tua azione sull’iPhone",
        (Lang::It, Phase::Reading) => "lettura dell’iPhone in corso",
        (Lang::It, Phase::Ready) => "diagnosi pronta",
        (Lang::It, Phase::Failed) => "lettura non riuscita, verrà ritentata",
        (Lang::It, Phase::Detached) => "scollegato",
        (Lang::It, _) => "sconosciuto",
    }
}

// Status: why a phone has no diagnosis to show, or what to make of the one shown.

/// What the phone waits for, by the pairing finding's id; a clause that follows "UDID: " in `watch`.
pub(crate) fn waiting(lang: Lang, finding: &str) -> String {
    match (lang, finding) {
        (Lang::En, "pairing.trust_pending") => "waiting for you to tap Trust on the phone".into(),
        (Lang::En, "pairing.passcode_required") => "waiting for you to unlock the phone".into(),
        (Lang::En, "pairing.denied") => {
            "the phone refused this computer (“Don’t Trust”): unplug it, plug it in again and tap Trust"
                .into()
        }
        (Lang::En, "pairing.invalid_host") => {
            "the phone no longer recognises this computer: unplug it, plug it in again and tap Trust"
                .into()
        }
        (Lang::En, "") => "waiting for you to act on the phone".into(),
        (Lang::En, other) => format!("waiting for you to act on the phone ({other})"),
        (Lang::It, "pairing.trust_pending") => {
            "in attesa che tu tocchi “Autorizza” sull’iPhone".into()
        }
        (Lang::It, "pairing.passcode_required") => "in attesa che tu sblocchi l’iPhone".into(),
        (Lang::It, "pairing.denied") => {
            "l’iPhone ha rifiutato questo computer (“Non autorizzare”): scollegalo, ricollegalo e tocca “Autorizza”"
                .into()
        }
        (Lang::It, "pairing.invalid_host") => {
            "l’iPhone non riconosce più questo computer: scollegalo, ricollegalo e tocca “Autorizza”"
                .into()
        }
        (Lang::It, "") => "in attesa di una tua azione sull’iPhone".into(),
        (Lang::It, other) => format!("in attesa di una tua azione sull’iPhone ({other})"),
    }
}

/// `waiting` as a sentence.
pub(crate) fn waiting_sentence(lang: Lang, finding: &str) -> String {
    let clause = waiting(lang, finding);
    let mut chars = clause.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => clause,
    }
}

pub(crate) fn still_reading(lang: Lang) -> &'static str {
    pick(
        lang,
        "Still reading the phone …: run `backupdctl diagnose` to wait for the result.",
        "Sto ancora leggendo l’iPhone …: esegui `backupdctl diagnose` per aspettare il risultato.",
    )
}

pub(crate) fn rereading(lang: Lang) -> &'static str {
    pick(
        lang,
        "Reading the phone again; this is the previous diagnosis.",
        "Sto rileggendo l’iPhone; questa è la diagnosi precedente.",
    )
}

pub(crate) fn failed(lang: Lang, error: &str, previous: bool) -> String {
    match (lang, previous) {
        (Lang::En, false) => {
            format!("Could not read the phone yet: {error}. The daemon tries again by itself.")
        }
        (Lang::En, true) => format!(
            "The last reading failed: {error}. This is the previous diagnosis; the daemon tries again by itself."
        ),
        (Lang::It, false) => format!(
            "Non è ancora stato possibile leggere l’iPhone: {error}. Il demone riprova da solo."
        ),
        (Lang::It, true) => format!(
            "L’ultima lettura non è riuscita: {error}. Questa è la diagnosi precedente; il demone riprova da solo."
        ),
    }
}

pub(crate) fn never_diagnosed(lang: Lang) -> &'static str {
    pick(
        lang,
        "This phone is not connected and has no diagnosis.",
        "Questo iPhone non è collegato e non ha una diagnosi.",
    )
}

pub(crate) fn timed_out(lang: Lang, secs: u64, previous: bool) -> String {
    match (lang, previous) {
        (Lang::En, false) => format!("No diagnosis within {secs} s."),
        (Lang::En, true) => {
            format!("No new diagnosis within {secs} s; this is the previous one.")
        }
        (Lang::It, false) => format!("Nessuna diagnosi entro {secs} s."),
        (Lang::It, true) => {
            format!("Nessuna nuova diagnosi entro {secs} s; questa è la precedente.")
        }
    }
}

pub(crate) fn no_phone(lang: Lang) -> &'static str {
    pick(
        lang,
        "No iPhone is connected: plug one in by USB and unlock it.",
        "Nessun iPhone è collegato: collegane uno via USB e sbloccalo.",
    )
}

pub(crate) fn seen_before(lang: Lang) -> &'static str {
    pick(
        lang,
        "Seen before, not connected now (`backupdctl status UDID` shows one):",
        "Visti in passato, ora non collegati (`backupdctl status UDID` ne mostra uno):",
    )
}

// Diagnose.

pub(crate) fn asked(lang: Lang, n: usize, secs: u64) -> String {
    pick(
        lang,
        format!("Asked for a new diagnosis of {n} phone(s); waiting up to {secs} s …"),
        format!("Chiesta una nuova diagnosi di {n} iPhone; attendo fino a {secs} s …"),
    )
}

// Watch.

pub(crate) fn attached(lang: Lang, udid: &str) -> String {
    pick(
        lang,
        format!("{udid}: iPhone connected"),
        format!("{udid}: iPhone collegato"),
    )
}

pub(crate) fn detached(lang: Lang, udid: &str) -> String {
    pick(
        lang,
        format!("{udid}: iPhone disconnected"),
        format!("{udid}: iPhone scollegato"),
    )
}

pub(crate) fn diagnosis_ready(lang: Lang, udid: &str, problems: bool) -> String {
    match (lang, problems) {
        (Lang::En, false) => format!("{udid}: diagnosis ready: no problems found"),
        (Lang::En, true) => format!(
            "{udid}: diagnosis ready: problems found; `backupdctl status {udid}` shows what to do"
        ),
        (Lang::It, false) => format!("{udid}: diagnosi pronta: nessun problema trovato"),
        (Lang::It, true) => format!(
            "{udid}: diagnosi pronta: trovati problemi; `backupdctl status {udid}` dice cosa fare"
        ),
    }
}

pub(crate) fn usbmuxd_unavailable(lang: Lang, error: &str) -> String {
    pick(
        lang,
        format!("usbmuxd is not reachable: {error}"),
        format!("usbmuxd non è raggiungibile: {error}"),
    )
}

pub(crate) fn usbmuxd_available(lang: Lang) -> &'static str {
    pick(
        lang,
        "usbmuxd is reachable again",
        "usbmuxd è di nuovo raggiungibile",
    )
}

pub(crate) fn unknown_event(lang: Lang, name: &str) -> String {
    pick(
        lang,
        format!("event `{name}` (unknown to this backupdctl)"),
        format!("evento `{name}` (sconosciuto a questo backupdctl)"),
    )
}

pub(crate) fn unreadable_event(lang: Lang) -> &'static str {
    pick(
        lang,
        "warning: ignoring an event line that is not JSON",
        "attenzione: ignoro una riga di evento che non è JSON",
    )
}

pub(crate) fn stream_ended(lang: Lang) -> &'static str {
    pick(
        lang,
        "The daemon closed the event stream.",
        "Il demone ha chiuso il flusso degli eventi.",
    )
}

pub(crate) fn no_desktop(lang: Lang) -> &'static str {
    pick(
        lang,
        "warning: no desktop session found (notify-send with DISPLAY, WAYLAND_DISPLAY or DBUS_SESSION_BUS_ADDRESS on Linux, osascript on macOS); printing events only",
        "attenzione: nessuna sessione desktop trovata (notify-send con DISPLAY, WAYLAND_DISPLAY o DBUS_SESSION_BUS_ADDRESS su Linux, osascript su macOS); stampo solo gli eventi",
    )
}

pub(crate) fn notify_failed(lang: Lang, why: &str) -> String {
    pick(
        lang,
        format!("warning: a desktop notification failed ({why}); printing events only from now on"),
        format!(
            "attenzione: una notifica desktop non è riuscita ({why}); da ora stampo solo gli eventi"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_minutes() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_795_248_000), "2026-11-21 08:00 UTC");
        assert_eq!(utc(1_709_164_800), "2024-02-29 00:00 UTC");
        assert_eq!(utc(-60), "1969-12-31 23:59 UTC");
        for extreme in [i64::MIN, i64::MAX] {
            assert!(utc(extreme).ends_with("UTC"));
        }
    }

    #[test]
    fn locales_choose_the_language() {
        assert_eq!(Lang::from_locale(Some("it_IT.UTF-8")), Lang::It);
        assert_eq!(Lang::from_locale(Some("it")), Lang::It);
        assert_eq!(Lang::from_locale(Some("en_GB.UTF-8")), Lang::En);
        assert_eq!(Lang::from_locale(Some("C")), Lang::En);
        assert_eq!(Lang::from_locale(Some("de_DE")), Lang::En);
        assert_eq!(Lang::from_locale(None), Lang::En);
    }

    #[test]
    fn waiting_sentences_start_with_a_capital() {
        assert_eq!(
            waiting_sentence(Lang::En, "pairing.trust_pending"),
            "Waiting for you to tap Trust on the phone."
        );
        assert_eq!(
            waiting_sentence(Lang::It, "pairing.passcode_required"),
            "In attesa che tu sblocchi l’iPhone."
        );
    }
}

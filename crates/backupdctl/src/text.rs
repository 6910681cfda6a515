//! The CLI's own words, in English and Italian; the diagnoses themselves come from `backupd-rules`' catalog.

use backupd_api::{EncryptionAction, Job, JobKind, JobState, Phase};
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
pub(crate) fn pick<T>(lang: Lang, en: T, it: T) -> T {
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

// Status: the summary of several phones.

pub(crate) fn no_problems(lang: Lang) -> &'static str {
    pick(lang, "none", "nessuno")
}

pub(crate) fn none(lang: Lang) -> &'static str {
    pick(lang, "none", "nessuno")
}

pub(crate) fn verified_word(lang: Lang, verified: bool) -> &'static str {
    match (lang, verified) {
        (Lang::En, true) => "verified",
        (Lang::En, false) => "not verified",
        (Lang::It, true) => "verificato",
        (Lang::It, false) => "non verificato",
    }
}

pub(crate) fn running_backup(lang: Lang, percent: f64) -> String {
    pick(
        lang,
        format!("backup {}%", decimal(lang, percent, 0)),
        format!("backup al {}%", decimal(lang, percent, 0)),
    )
}

pub(crate) fn running_other(lang: Lang) -> &'static str {
    pick(lang, "encryption change", "modifica della crittografia")
}

pub(crate) fn unnamed_short(lang: Lang) -> &'static str {
    pick(lang, "(name not read yet)", "(nome non ancora letto)")
}

pub(crate) fn summary_hint(lang: Lang) -> &'static str {
    pick(
        lang,
        "One iPhone in full: `backupdctl status UDID`. Every iPhone in full: `backupdctl status --details`.",
        "Un iPhone nel dettaglio: `backupdctl status UDID`. Tutti gli iPhone nel dettaglio: `backupdctl status --details`.",
    )
}

// Backups: what a backup holds.

/// What `backups UDID --inspect` found.
pub(crate) fn inspection(lang: Lang, found: &backupd_api::Inspection) -> String {
    use backupd_api::WhatsappInBackup as W;
    let date = found.backup_date.map(utc).unwrap_or_default();
    match (&found.whatsapp, lang) {
        (W::NoBackup, Lang::En) => format!("There is no complete local backup of {} on this computer.", found.udid),
        (W::NoBackup, Lang::It) => format!("Su questo computer non c’è un backup locale completo di {}.", found.udid),
        (W::Absent, Lang::En) => format!("The local backup of {date} holds no WhatsApp chats."),
        (W::Absent, Lang::It) => format!("Il backup locale del {date} non contiene chat di WhatsApp."),
        (W::Chats { messages, newest_message: Some(newest) }, Lang::En) => format!(
            "The local backup of {date} holds {messages} WhatsApp messages: your chats up to {} are safe on this computer.",
            utc(*newest)
        ),
        (W::Chats { messages, newest_message: Some(newest) }, Lang::It) => format!(
            "Il backup locale del {date} contiene {messages} messaggi di WhatsApp: le tue chat fino al {} sono al sicuro su questo computer.",
            utc(*newest)
        ),
        (W::Chats { .. }, Lang::En) => format!("The local backup of {date} holds WhatsApp’s chat database, with no messages."),
        (W::Chats { .. }, Lang::It) => format!("Il backup locale del {date} contiene il database delle chat di WhatsApp, senza messaggi."),
        (W::Encrypted, Lang::En) => format!("The local backup of {date} is encrypted: its password is needed to look inside it."),
        (W::Encrypted, Lang::It) => format!("Il backup locale del {date} è crittografato: per guardarci dentro serve la sua password."),
        (_, Lang::En) => "This daemon found something this version of backupdctl cannot show; try `--json` with a newer backupdctl.".to_owned(),
        (_, Lang::It) => "Il demone ha trovato qualcosa che questa versione di backupdctl non sa mostrare; prova una versione più recente.".to_owned(),
    }
}

pub(crate) fn inspect_needs_password(lang: Lang, udid: &str) -> String {
    pick(
        lang,
        format!(
            "The backup of {udid} is encrypted: give its password at the prompt or in BACKUPD_BACKUP_PASSWORD (`backupdctl backups {udid} --inspect`)."
        ),
        format!(
            "Il backup di {udid} è crittografato: inserisci la sua password quando viene chiesta o in BACKUPD_BACKUP_PASSWORD (`backupdctl backups {udid} --inspect`)."
        ),
    )
}

// Jobs: backups and encryption changes.

/// A number with the decimal separator of `lang`.
fn decimal(lang: Lang, value: f64, places: usize) -> String {
    let text = format!("{value:.places$}");
    match lang {
        Lang::En => text,
        Lang::It => text.replace('.', ","),
    }
}

/// Bytes for a person, in decimal units as Finder shows them: `812 kB`, `45.3 MB`, `5.21 GB`.
pub(crate) fn size(lang: Lang, bytes: u64) -> String {
    const K: f64 = 1e3;
    const M: f64 = 1e6;
    const G: f64 = 1e9;
    const T: f64 = 1e12;
    // Precision beyond 2^53 bytes does not matter for a person.
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    if b < K {
        format!("{bytes} B")
    } else if b < M {
        format!("{} kB", decimal(lang, b / K, 0))
    } else if b < G {
        format!("{} MB", decimal(lang, b / M, 1))
    } else if b < T {
        format!("{} GB", decimal(lang, b / G, 2))
    } else {
        format!("{} TB", decimal(lang, b / T, 2))
    }
}

/// A transfer rate: `25.3 MB/s`.
pub(crate) fn rate(lang: Lang, bytes_per_sec: f64) -> String {
    format!("{} MB/s", decimal(lang, bytes_per_sec / 1e6, 1))
}

/// A duration: `42 s`, `2 min 05 s`, `1 h 07 min`.
pub(crate) fn duration(secs: f64) -> String {
    // Saturating float-to-int conversion; negative and NaN become 0.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let secs = secs.round().max(0.0) as u64;
    if secs < 60 {
        format!("{secs} s")
    } else if secs < 3_600 {
        format!("{} min {:02} s", secs / 60, secs % 60)
    } else {
        format!("{} h {:02} min", secs / 3_600, secs % 3_600 / 60)
    }
}

pub(crate) fn files(lang: Lang, n: u64) -> String {
    match (lang, n) {
        (Lang::En, 1) => "1 file".to_owned(),
        (Lang::En, n) => format!("{n} files"),
        (Lang::It, n) => format!("{n} file"),
    }
}

pub(crate) fn phone_percent(lang: Lang, percent: f64) -> String {
    pick(
        lang,
        format!("iPhone at {}%", decimal(lang, percent, 0)),
        format!("iPhone al {}%", decimal(lang, percent, 0)),
    )
}

pub(crate) fn eta(lang: Lang, secs: f64) -> String {
    pick(
        lang,
        format!("about {} left", duration(secs)),
        format!("circa {} rimanenti", duration(secs)),
    )
}

/// The stage of a job in words (`JobProgress::stage`); an unknown stage as the daemon spells it.
pub(crate) fn stage(lang: Lang, kind: JobKind, stage: &str) -> String {
    let backup = kind == JobKind::Backup;
    let words = match (lang, stage) {
        (Lang::En, "preparing") if backup => "Preparing the backup",
        (Lang::En, "preparing") => "Preparing the change",
        (Lang::En, "waiting_for_passcode") if backup => {
            "Enter your passcode on the iPhone to start the backup"
        }
        (Lang::En, "waiting_for_passcode") => {
            "Enter your passcode on the iPhone to confirm the change"
        }
        (Lang::En, "transferring") => "Copying from the iPhone",
        (Lang::En, "verifying") => "Verifying the backup",
        (Lang::En, "committing") => "Keeping the new backup",
        (Lang::En, "done") => "Done",
        (Lang::It, "preparing") if backup => "Preparazione del backup",
        (Lang::It, "preparing") => "Preparazione della modifica",
        (Lang::It, "waiting_for_passcode") if backup => {
            "Inserisci il codice sull’iPhone per avviare il backup"
        }
        (Lang::It, "waiting_for_passcode") => {
            "Inserisci il codice sull’iPhone per confermare la modifica"
        }
        (Lang::It, "transferring") => "Copia dall’iPhone",
        (Lang::It, "verifying") => "Verifica del backup",
        (Lang::It, "committing") => "Salvataggio del nuovo backup",
        (Lang::It, "done") => "Fatto",
        (_, "") => return pick(lang, "Starting", "Avvio").to_owned(),
        (_, other) => return other.replace('_', " "),
    };
    words.to_owned()
}

fn kind_subject(lang: Lang, kind: JobKind) -> &'static str {
    match (lang, kind) {
        (Lang::En, JobKind::Backup) => "backup",
        (Lang::En, _) => "encryption change",
        (Lang::It, JobKind::Backup) => "backup",
        (Lang::It, _) => "modifica della crittografia",
    }
}

pub(crate) fn job_state(lang: Lang, state: JobState) -> &'static str {
    match (lang, state) {
        (Lang::En, JobState::Running) => "running",
        (Lang::En, JobState::Succeeded) => "succeeded",
        (Lang::En, JobState::Failed) => "failed",
        (Lang::En, JobState::Cancelled) => "cancelled",
        (Lang::En, _) => "unknown",
        (Lang::It, JobState::Running) => "in corso",
        (Lang::It, JobState::Succeeded) => "riuscito",
        (Lang::It, JobState::Failed) => "non riuscito",
        (Lang::It, JobState::Cancelled) => "annullato",
        (Lang::It, _) => "sconosciuto",
    }
}

pub(crate) fn backup_started(lang: Lang, id: u64, udid: &str, full: bool) -> String {
    match (lang, full) {
        (Lang::En, false) => format!("Started backup job {id} of {udid}."),
        (Lang::En, true) => format!("Started backup job {id} of {udid} (full backup)."),
        (Lang::It, false) => format!("Avviato il backup {id} di {udid}."),
        (Lang::It, true) => format!("Avviato il backup {id} di {udid} (backup completo)."),
    }
}

pub(crate) fn follow_hint(lang: Lang, udid: &str) -> String {
    pick(
        lang,
        format!(
            "Follow it with `backupdctl backup --wait {udid}` or `backupdctl watch`; `backupdctl backup --cancel {udid}` stops it."
        ),
        format!(
            "Seguilo con `backupdctl backup --wait {udid}` o `backupdctl watch`; `backupdctl backup --cancel {udid}` lo ferma."
        ),
    )
}

pub(crate) fn attaching(lang: Lang, id: u64) -> String {
    pick(
        lang,
        format!("A backup of this iPhone is already running (job {id}): following it."),
        format!("Un backup di questo iPhone è già in corso (operazione {id}): lo seguo."),
    )
}

pub(crate) fn stopped_waiting(lang: Lang, kind: JobKind, id: u64, udid: &str) -> String {
    match (lang, kind) {
        (Lang::En, JobKind::Backup) => format!(
            "Stopped waiting; backup job {id} goes on in the daemon. `backupdctl backup --wait {udid}` follows it again, `backupdctl backup --cancel {udid}` stops it."
        ),
        (Lang::En, _) => format!(
            "Stopped waiting; job {id} goes on in the daemon (`backupdctl watch` shows when it ends)."
        ),
        (Lang::It, JobKind::Backup) => format!(
            "Smetto di aspettare; il backup {id} continua nel demone. `backupdctl backup --wait {udid}` lo segue di nuovo, `backupdctl backup --cancel {udid}` lo ferma."
        ),
        (Lang::It, _) => format!(
            "Smetto di aspettare; l’operazione {id} continua nel demone (`backupdctl watch` mostra quando finisce)."
        ),
    }
}

pub(crate) fn backup_done(
    lang: Lang,
    udid: &str,
    files_received: u64,
    bytes: u64,
    secs: f64,
    verified: Option<u64>,
) -> String {
    let verified = match (lang, verified) {
        (Lang::En, Some(n)) => format!("verified: {}", files(lang, n)),
        (Lang::En, None) => "verified".to_owned(),
        (Lang::It, Some(n)) => format!("verificati: {}", files(lang, n)),
        (Lang::It, None) => "verificato".to_owned(),
    };
    let (files_received, bytes, took) = (
        files(lang, files_received),
        size(lang, bytes),
        duration(secs),
    );
    pick(
        lang,
        format!("Backup of {udid} finished: {files_received}, {bytes} in {took}; {verified}."),
        format!("Backup di {udid} completato: {files_received}, {bytes} in {took}; {verified}."),
    )
}

pub(crate) fn job_failed(lang: Lang, kind: JobKind, udid: &str, error: Option<&str>) -> String {
    let subject = kind_subject(lang, kind);
    match (lang, error) {
        (Lang::En, Some(e)) => format!("The {subject} of {udid} failed: {e}"),
        (Lang::En, None) => format!("The {subject} of {udid} failed (the daemon gave no reason)"),
        (Lang::It, Some(e)) if kind == JobKind::Backup => {
            format!("Il backup di {udid} non è riuscito: {e}")
        }
        (Lang::It, None) if kind == JobKind::Backup => {
            format!("Il backup di {udid} non è riuscito (il demone non ha detto perché)")
        }
        (Lang::It, Some(e)) => format!("La {subject} di {udid} non è riuscita: {e}"),
        (Lang::It, None) => {
            format!("La {subject} di {udid} non è riuscita (il demone non ha detto perché)")
        }
    }
}

pub(crate) fn job_cancelled(lang: Lang, kind: JobKind, udid: &str) -> String {
    let subject = kind_subject(lang, kind);
    match lang {
        Lang::En => format!("The {subject} of {udid} was cancelled"),
        Lang::It if kind == JobKind::Backup => format!("Il backup di {udid} è stato annullato"),
        Lang::It => format!("La {subject} di {udid} è stata annullata"),
    }
}

pub(crate) fn previous_intact(lang: Lang, kind: JobKind) -> &'static str {
    match (lang, kind) {
        (Lang::En, JobKind::Backup) => "The previous backup is intact.",
        (Lang::En, _) => "Nothing was changed on the iPhone.",
        (Lang::It, JobKind::Backup) => "Il backup precedente è intatto.",
        (Lang::It, _) => "Sull’iPhone non è cambiato nulla.",
    }
}

/// What the phone's MBErrorDomain code means and what to do, for the codes a person can act on.
pub(crate) fn device_error(lang: Lang, kind: JobKind, code: u64, udid: &str) -> Option<String> {
    let encryption = kind != JobKind::Backup;
    Some(match (lang, code) {
        (Lang::En, 208) => "The iPhone asked for its passcode and none was entered in time: unlock it, start again and enter the passcode when asked.".to_owned(),
        (Lang::En, 105) => "The disk of this computer is full where backups go: free some space there (`backupdctl status` names the folder) and start again.".to_owned(),
        (Lang::En, 207) if encryption => "The current backup password is wrong: run the command again with the password set when encryption was turned on.".to_owned(),
        (Lang::En, 207) => "The backup password is wrong: the iPhone encrypts its backups with the password set when encryption was turned on.".to_owned(),
        (Lang::En, 3) => "A snapshot left over from an interrupted backup is still on the iPhone: restart the iPhone, then start again.".to_owned(),
        (Lang::En, 205) => format!("The iPhone could not read the previous backup on this computer (its Manifest.plist is damaged): make a full backup with `backupdctl backup --full --wait {udid}`."),
        (Lang::It, 208) => "L’iPhone ha chiesto il suo codice e nessuno l’ha inserito in tempo: sbloccalo, ricomincia e inserisci il codice quando richiesto.".to_owned(),
        (Lang::It, 105) => "Il disco di questo computer è pieno dove vanno i backup: libera spazio lì (`backupdctl status` indica la cartella) e ricomincia.".to_owned(),
        (Lang::It, 207) if encryption => "La password attuale dei backup è sbagliata: riesegui il comando con la password scelta quando hai attivato la crittografia.".to_owned(),
        (Lang::It, 207) => "La password dei backup è sbagliata: l’iPhone crittografa i backup con la password scelta quando hai attivato la crittografia.".to_owned(),
        (Lang::It, 3) => "Sull’iPhone è rimasta un’istantanea di un backup interrotto: riavvia l’iPhone, poi ricomincia.".to_owned(),
        (Lang::It, 205) => format!("L’iPhone non è riuscito a leggere il backup precedente su questo computer (il suo Manifest.plist è danneggiato): fai un backup completo con `backupdctl backup --full --wait {udid}`."),
        _ => return None,
    })
}

pub(crate) fn unknown_device_error(lang: Lang, code: u64) -> String {
    pick(
        lang,
        format!("The iPhone ended it with error code {code} (MBErrorDomain)."),
        format!("L’iPhone l’ha terminato con il codice di errore {code} (MBErrorDomain)."),
    )
}

pub(crate) fn cancelled_now(lang: Lang, kind: JobKind, id: u64, udid: &str) -> String {
    let subject = kind_subject(lang, kind);
    match lang {
        Lang::En => format!("Cancelled {subject} job {id} of {udid}."),
        Lang::It if kind == JobKind::Backup => format!("Annullato il backup {id} di {udid}."),
        Lang::It => format!("Annullata la {subject} {id} di {udid}."),
    }
}

pub(crate) fn cancel_pending(lang: Lang, id: u64) -> String {
    pick(
        lang,
        format!(
            "Asked the daemon to stop job {id}; it is still stopping (`backupdctl watch` shows when it ends)."
        ),
        format!(
            "Ho chiesto al demone di fermare l’operazione {id}; si sta ancora fermando (`backupdctl watch` mostra quando finisce)."
        ),
    )
}

pub(crate) fn ended_before_cancel(lang: Lang, id: u64, state: JobState) -> String {
    let state = job_state(lang, state);
    pick(
        lang,
        format!("Job {id} ended before it could be stopped: {state}."),
        format!("L’operazione {id} è terminata prima di poterla fermare (esito: {state})."),
    )
}

pub(crate) fn passcode_notice(lang: Lang) -> &'static str {
    pick(
        lang,
        "The iPhone will ask for its passcode to confirm (iOS 13 and later): unlock it and enter the passcode when asked.",
        "L’iPhone chiederà il suo codice per confermare (iOS 13 e successivi): sbloccalo e inserisci il codice quando richiesto.",
    )
}

pub(crate) fn encryption_done(lang: Lang, action: EncryptionAction, udid: &str) -> String {
    match (lang, action) {
        (Lang::En, EncryptionAction::On) => format!(
            "Backup encryption is on for {udid}: its next backups are encrypted with the new password. Keep it safe: without it they cannot be restored."
        ),
        (Lang::En, EncryptionAction::Off) => {
            format!("Backup encryption is off for {udid}: its next backups are not encrypted.")
        }
        (Lang::En, EncryptionAction::Change) => {
            format!("The backup password of {udid} was changed.")
        }
        (Lang::It, EncryptionAction::On) => format!(
            "La crittografia dei backup è attiva per {udid}: i prossimi backup sono crittografati con la nuova password. Conservala: senza non si possono ripristinare."
        ),
        (Lang::It, EncryptionAction::Off) => {
            format!(
                "La crittografia dei backup è disattivata per {udid}: i prossimi backup non sono crittografati."
            )
        }
        (Lang::It, EncryptionAction::Change) => {
            format!("La password dei backup di {udid} è stata cambiata.")
        }
    }
}

pub(crate) fn prompt_current(lang: Lang) -> &'static str {
    pick(
        lang,
        "Current backup password: ",
        "Password attuale dei backup: ",
    )
}

pub(crate) fn prompt_new(lang: Lang) -> &'static str {
    pick(lang, "New backup password: ", "Nuova password dei backup: ")
}

pub(crate) fn prompt_again(lang: Lang) -> &'static str {
    pick(
        lang,
        "New backup password again: ",
        "Ripeti la nuova password dei backup: ",
    )
}

/// A job event for `watch`: `UDID: backup job 3: Copying from the iPhone: …` or its end.
pub(crate) fn job_event(lang: Lang, job: &Job, progress_line: &str) -> String {
    let subject = kind_subject(lang, job.kind);
    let head = pick(
        lang,
        format!("{}: {subject} job {}", job.udid, job.id),
        format!("{}: {subject} {}", job.udid, job.id),
    );
    if job.state == JobState::Running {
        format!("{head}: {progress_line}")
    } else {
        let mut line = format!("{head}: {}", job_state(lang, job.state));
        if let Some(e) = &job.error {
            line.push_str(": ");
            line.push_str(e);
        }
        line
    }
}

// Backups.

/// The column headers of the backups table.
pub(crate) fn backup_columns(lang: Lang) -> [&'static str; 6] {
    pick(
        lang,
        ["Name", "Date", "Size", "iOS", "Encrypted", "Verified"],
        [
            "Nome",
            "Data",
            "Dimensione",
            "iOS",
            "Crittografato",
            "Verificato",
        ],
    )
}

pub(crate) fn no_backups(lang: Lang, udid: &str) -> String {
    pick(
        lang,
        format!("No local backup yet: `backupdctl backup {udid}` makes one."),
        format!("Ancora nessun backup locale: `backupdctl backup {udid}` ne fa uno."),
    )
}

pub(crate) fn no_phones_known(lang: Lang) -> &'static str {
    pick(
        lang,
        "The daemon knows no iPhone yet: plug one in by USB and unlock it.",
        "Il demone non conosce ancora nessun iPhone: collegane uno via USB e sbloccalo.",
    )
}

pub(crate) fn unknown(lang: Lang) -> &'static str {
    pick(lang, "unknown", "sconosciuta")
}

/// How an encrypted backup was verified, after `backup --wait`; `None` for a plain backup.
pub(crate) fn verify_note(lang: Lang, method: Option<&str>) -> Option<String> {
    match method? {
        "structure" => Some(pick(
            lang,
            "Encrypted: checked by its structure, without the password. `backup --password` checks it in full; \
             `backups --check-password` checks that you know the password."
                .to_owned(),
            "Crittografato: controllato nella struttura, senza la password. `backup --password` lo controlla per \
             intero; `backups --check-password` verifica che tu conosca la password."
                .to_owned(),
        )),
        "decrypted" => Some(pick(
            lang,
            "Encrypted: opened with your password, every file checked, a sample decrypted.".to_owned(),
            "Crittografato: aperto con la tua password, ogni file controllato, un campione decifrato.".to_owned(),
        )),
        _ => None,
    }
}

/// A backup kept although the password given for its full check does not open it.
pub(crate) fn backup_password_wrong(lang: Lang, udid: &str) -> String {
    pick(
        lang,
        format!(
            "The backup of {udid} is complete and kept, but the password you gave does not open it: it was \
             checked by its structure only. `backupdctl backups {udid} --check-password` tries another one."
        ),
        format!(
            "Il backup di {udid} è completo ed è stato conservato, ma la password che hai dato non lo apre: è \
             stato controllato solo nella struttura. `backupdctl backups {udid} --check-password` ne prova \
             un’altra."
        ),
    )
}

/// The answer of `backups --check-password` when the password opens the backup.
pub(crate) fn password_opens(lang: Lang, udid: &str, backup_date: Option<i64>) -> String {
    let date = backup_date.map_or_else(|| unknown(lang).to_owned(), utc);
    pick(
        lang,
        format!(
            "The password opens the newest backup of {udid} ({date}). Nothing was changed; the check is recorded."
        ),
        format!(
            "La password apre il backup più recente di {udid} ({date}). Nulla è stato modificato; la verifica è \
             registrata."
        ),
    )
}

/// Below the backups table: how the newest encrypted backup was checked, and when its password was.
pub(crate) fn backups_encryption_note(
    lang: Lang,
    udid: &str,
    method: Option<&str>,
    password_checked_at: Option<i64>,
) -> Option<String> {
    let checked = password_checked_at.map(|at| {
        pick(
            lang,
            format!(
                "The password was checked on {}: it opens the newest backup.",
                utc(at)
            ),
            format!(
                "La password è stata verificata il {}: apre il backup più recente.",
                utc(at)
            ),
        )
    });
    let structure = (method == Some("structure")).then(|| {
        pick(
            lang,
            "The newest backup is encrypted and was checked by its structure, without the password.".to_owned(),
            "Il backup più recente è crittografato ed è stato controllato nella struttura, senza la password."
                .to_owned(),
        )
    });
    let hint = checked.is_none().then(|| {
        pick(
            lang,
            format!("`backupdctl backups {udid} --check-password` checks that you know its password."),
            format!("`backupdctl backups {udid} --check-password` verifica che tu conosca la sua password."),
        )
    });
    let lines: Vec<String> = [structure, checked, hint].into_iter().flatten().collect();
    (method.is_some() || password_checked_at.is_some()).then(|| lines.join("\n"))
}

/// The "verified" cell of the backups table: yes or no, and for an encrypted backup how it was checked.
pub(crate) fn verified_cell(lang: Lang, verified: bool, method: Option<&str>) -> String {
    let yes = yes_no(lang, verified);
    match (verified, method, lang) {
        (true, Some("structure"), Lang::En) => format!("{yes} (structure)"),
        (true, Some("structure"), Lang::It) => format!("{yes} (struttura)"),
        (true, Some("decrypted"), Lang::En) => format!("{yes} (decrypted)"),
        (true, Some("decrypted"), Lang::It) => format!("{yes} (decifrato)"),
        _ => yes.to_owned(),
    }
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
    fn sizes_durations_and_rates_for_people() {
        assert_eq!(size(Lang::En, 512), "512 B");
        assert_eq!(size(Lang::En, 812_345), "812 kB");
        assert_eq!(size(Lang::En, 45_300_000), "45.3 MB");
        assert_eq!(size(Lang::En, 5_214_000_000), "5.21 GB");
        assert_eq!(size(Lang::It, 5_214_000_000), "5,21 GB");
        assert_eq!(size(Lang::En, 1_500_000_000_000), "1.50 TB");
        assert_eq!(duration(42.4), "42 s");
        assert_eq!(duration(125.0), "2 min 05 s");
        assert_eq!(duration(4_020.0), "1 h 07 min");
        assert_eq!(duration(-3.0), "0 s");
        assert_eq!(duration(f64::NAN), "0 s");
        assert_eq!(rate(Lang::En, 25_340_000.0), "25.3 MB/s");
        assert_eq!(rate(Lang::It, 25_340_000.0), "25,3 MB/s");
        assert_eq!(files(Lang::En, 1), "1 file");
        assert_eq!(files(Lang::En, 2), "2 files");
    }

    #[test]
    fn stages_in_words() {
        assert_eq!(
            stage(Lang::En, JobKind::Backup, "waiting_for_passcode"),
            "Enter your passcode on the iPhone to start the backup"
        );
        assert_eq!(
            stage(Lang::It, JobKind::Encryption, "waiting_for_passcode"),
            "Inserisci il codice sull’iPhone per confermare la modifica"
        );
        assert_eq!(stage(Lang::En, JobKind::Backup, "new_stage"), "new stage");
    }

    #[test]
    fn every_explained_device_code_has_both_languages() {
        for code in [3, 105, 205, 207, 208] {
            for kind in [JobKind::Backup, JobKind::Encryption] {
                assert!(device_error(Lang::En, kind, code, "A").is_some(), "{code}");
                assert!(device_error(Lang::It, kind, code, "A").is_some(), "{code}");
            }
        }
        assert!(device_error(Lang::En, JobKind::Backup, 1, "A").is_none());
        assert!(
            device_error(Lang::En, JobKind::Backup, 208, "A")
                .is_some_and(|t| t.contains("enter the passcode when asked"))
        );
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

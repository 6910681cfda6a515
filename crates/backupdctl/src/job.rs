//! What `backup` and `encryption` share: choosing the phone, following a job on the event stream with a
//! progress display, and telling how a job that did not succeed ended.

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

use hyper::StatusCode;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use backupd_api::{Event, Job, JobProgress, JobState, Jobs, Status, exit};

use crate::client::{self, Client, Events};
use crate::text::{self, Lang};
use crate::{ExpectedError, normalize_udid};

/// How often the job is also asked for directly while following it: a backstop for events this version
/// cannot read.
const POLL: Duration = Duration::from_secs(15);
/// The least time between two plain progress lines of the same stage, on the daemon's clock (so that the
/// lines depend on the job alone).
const PLAIN_EVERY_SECS: f64 = 5.0;
/// The span of daemon time the rate and the remaining time are measured over.
const WINDOW_SECS: f64 = 20.0;
/// The exit code after Ctrl-C stopped the wait (128 + SIGINT, as shells report it); the job goes on.
pub(crate) const INTERRUPTED: i32 = 130;

/// `GET /v1/devices`.
pub(crate) async fn devices(client: &Client) -> Result<Status, ExpectedError> {
    let path = backupd_api::PATH_DEVICES;
    client::parse(&format!("GET {path}"), &client.get(path).await?)
}

/// The phone to act on: the one named, else the only connected one. None connected is
/// [`ExpectedError::NoPhoneConnected`]; several is [`ExpectedError::WhichPhone`] (`command` is what to repeat with
/// a UDID).
pub(crate) async fn pick_phone(
    client: &Client,
    udid: Option<&str>,
    command: &str,
) -> Result<String, ExpectedError> {
    if let Some(u) = udid {
        return Ok(u.to_owned());
    }
    let status = devices(client).await?;
    let connected: Vec<_> = status.devices.iter().filter(|d| d.connected).collect();
    match connected.as_slice() {
        [] => Err(ExpectedError::NoPhoneConnected),
        [one] => Ok(one.udid.clone()),
        several => Err(ExpectedError::WhichPhone {
            phones: several
                .iter()
                .map(|d| match &d.name {
                    Some(name) => format!("{} ({name})", d.udid),
                    None => d.udid.clone(),
                })
                .collect(),
            command: command.to_owned(),
        }),
    }
}

/// The error for a 404 on a phone's path: known but unplugged, or unknown.
pub(crate) async fn not_attached(
    client: &Client,
    udid: &str,
    consequence: &'static str,
) -> ExpectedError {
    let key = normalize_udid(udid);
    match devices(client).await {
        Ok(status)
            if status
                .devices
                .iter()
                .any(|d| normalize_udid(&d.udid) == key) =>
        {
            ExpectedError::DeviceNotConnected {
                udid: udid.to_owned(),
                consequence,
            }
        }
        Ok(_) => ExpectedError::DeviceNotFound {
            udid: udid.to_owned(),
        },
        Err(e) => e,
    }
}

/// The running job of the phone, newest first as the daemon lists them.
pub(crate) async fn running_job(client: &Client, udid: &str) -> Result<Option<Job>, ExpectedError> {
    let path = backupd_api::PATH_JOBS;
    let jobs: Jobs = client::parse(&format!("GET {path}"), &client.get(path).await?)?;
    let key = normalize_udid(udid);
    Ok(jobs
        .jobs
        .into_iter()
        .find(|j| j.state == JobState::Running && normalize_udid(&j.udid) == key))
}

/// `GET /v1/jobs/{id}`.
pub(crate) async fn job(client: &Client, id: u64) -> Result<Job, ExpectedError> {
    let path = format!("{}/{id}", backupd_api::PATH_JOBS);
    client::parse(&format!("GET {path}"), &client.get(&path).await?)
}

/// The job in a 2xx answer to a request that starts or stops one.
pub(crate) fn job_of(what: &str, answer: client::Answer) -> Result<Job, ExpectedError> {
    let body = client::success(what, answer)?;
    client::parse(what, &body)
}

/// Whether an answer says the phone already has a job.
pub(crate) fn is_busy(status: StatusCode) -> bool {
    status == StatusCode::CONFLICT
}

/// How a followed job left us.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per command, returned once, never stored in bulk"
)]
pub(crate) enum End {
    /// It ended: succeeded, failed or cancelled.
    Finished(Job),
    /// Ctrl-C: we stopped waiting; the job goes on in the daemon.
    Detached,
}

/// Follows `job` on `events` (subscribed before the job was started, so nothing is missed) until it ends or
/// Ctrl-C, showing its progress.
pub(crate) async fn follow<W: Write>(
    client: &Client,
    events: &mut Events,
    job: Job,
    progress: &mut Progress<'_, W>,
) -> Result<End, ExpectedError> {
    if job.state != JobState::Running {
        return Ok(End::Finished(job));
    }
    let id = job.id;
    let mut poll = tokio::time::interval_at(Instant::now() + POLL, POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Listening for Ctrl-C from here on, before anything is shown. Without a handler, Ctrl-C still ends the
    // process the default way.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let interrupted = async {
        match sigint.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(interrupted);
    progress.show(&job);
    loop {
        tokio::select! {
            line = events.next_line() => match line? {
                Some(line) => match serde_json::from_slice::<Event>(&line) {
                    Ok(Event::JobFinished { job }) if job.id == id => return Ok(End::Finished(job)),
                    Ok(Event::JobProgress { job }) if job.id == id => {
                        if job.state != JobState::Running {
                            return Ok(End::Finished(job));
                        }
                        progress.show(&job);
                    }
                    // Other phones' jobs, other events, and lines of a newer daemon.
                    _ => {}
                },
                None => {
                    // The daemon is stopping: what became of the job is its last word.
                    let job = self::job(client, id).await?;
                    if job.state != JobState::Running {
                        return Ok(End::Finished(job));
                    }
                    return Err(client.broken(format!(
                        "the daemon closed the event stream while job {id} was running"
                    )));
                }
            },
            _ = poll.tick() => {
                // A backstop only: the events carry the progress, so a failed look is not an error.
                if let Ok(job) = self::job(client, id).await
                    && job.state != JobState::Running
                {
                    return Ok(End::Finished(job));
                }
            }
            () = &mut interrupted => return Ok(End::Detached),
        }
    }
}

/// Writes how a job that did not succeed ended to `err` and returns [`exit::JOB_FAILED`].
pub(crate) fn report_failure(job: &Job, lang: Lang, err: &mut impl Write) -> i32 {
    let mut text = match job.state {
        JobState::Cancelled => text::job_cancelled(lang, job.kind, &job.udid),
        _ => text::job_failed(lang, job.kind, &job.udid, job.error.as_deref()),
    };
    text.push('\n');
    if let Some(code) = job.device_error_code {
        let words = text::device_error(lang, job.kind, code, &job.udid)
            .unwrap_or_else(|| text::unknown_device_error(lang, code));
        text.push_str(&words);
        text.push('\n');
    }
    text.push_str(text::previous_intact(lang, job.kind));
    text.push('\n');
    // Nothing is left to tell the user if stderr itself fails; the exit code still says it.
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
    exit::JOB_FAILED
}

/// How long a job took: from its times when it has ended, else as the daemon measured it.
pub(crate) fn took(job: &Job) -> f64 {
    match job.finished_at {
        // Whole seconds; precision beyond 2^53 s does not matter.
        #[allow(clippy::cast_precision_loss)]
        Some(end) if end >= job.started_at => (end - job.started_at) as f64,
        _ => job.progress.elapsed_secs,
    }
}

/// One progress report as measured: `(elapsed_secs, bytes, device_percent)`.
type Sample = (f64, u64, f64);

/// The rate and the remaining time of a transfer, measured over the last [`WINDOW_SECS`] of the daemon's clock.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    stage: String,
    /// `(elapsed_secs, bytes, device_percent)`, oldest first, of the current stage.
    samples: VecDeque<Sample>,
}

impl Tracker {
    /// Takes in a progress report; returns whether its stage differs from the previous one.
    pub(crate) fn update(&mut self, p: &JobProgress) -> bool {
        let changed = self.stage != p.stage;
        if changed {
            self.stage.clone_from(&p.stage);
            self.samples.clear();
        }
        if self
            .samples
            .back()
            .is_some_and(|(t, _, _)| p.elapsed_secs < *t)
        {
            // The daemon's clock went back (a new job?): start measuring again.
            self.samples.clear();
        }
        self.samples
            .push_back((p.elapsed_secs, p.bytes, p.device_percent));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _, _)| p.elapsed_secs - t >= WINDOW_SECS)
        {
            self.samples.pop_front();
        }
        changed
    }

    /// The oldest and newest samples and the seconds between them, once that is a second or more.
    fn span(&self) -> Option<(Sample, Sample, f64)> {
        let first = *self.samples.front()?;
        let last = *self.samples.back()?;
        let span = last.0 - first.0;
        (span >= 1.0).then_some((first, last, span))
    }

    /// Bytes per second, once a second of transfer has been seen.
    pub(crate) fn rate(&self) -> Option<f64> {
        let (first, last, span) = self.span()?;
        // Byte counts far below 2^53.
        #[allow(clippy::cast_precision_loss)]
        let moved = last.1.saturating_sub(first.1) as f64;
        Some(moved / span)
    }

    /// Seconds left: from the phone's percentage when it moves, else from the bytes announced and not yet
    /// received at the current rate.
    pub(crate) fn eta(&self, p: &JobProgress) -> Option<f64> {
        if let Some((first, last, span)) = self.span() {
            let done = last.2 - first.2;
            if last.2 > 0.0 && last.2 < 100.0 && done > 0.0 {
                return Some((100.0 - last.2) * span / done);
            }
        }
        let rate = self.rate().filter(|r| *r > 0.0)?;
        let left = p.announced_bytes.checked_sub(p.bytes).filter(|b| *b > 0)?;
        #[allow(clippy::cast_precision_loss)]
        Some(left as f64 / rate)
    }
}

/// A job's progress in words: the stage, then while transferring the bytes, files, rate, the phone's
/// percentage and the time left, each when known.
pub(crate) fn progress_line(lang: Lang, job: &Job, tracker: Option<&Tracker>) -> String {
    let p = &job.progress;
    let mut line = text::stage(lang, job.kind, &p.stage);
    if p.stage != "transferring" {
        return line;
    }
    let mut parts = vec![text::size(lang, p.bytes), text::files(lang, p.files)];
    if let Some(rate) = tracker.and_then(Tracker::rate) {
        parts.push(text::rate(lang, rate));
    }
    if p.device_percent > 0.0 {
        parts.push(text::phone_percent(lang, p.device_percent));
    }
    if let Some(eta) = tracker.and_then(|t| t.eta(p)) {
        parts.push(text::eta(lang, eta));
    }
    line.push_str(": ");
    line.push_str(&parts.join(", "));
    line
}

/// Where the progress goes: a bar drawn by indicatif on a terminal's stderr, else plain lines.
pub(crate) struct Progress<'w, W: Write> {
    lang: Lang,
    bar: Option<ProgressBar>,
    err: &'w mut W,
    tracker: Tracker,
    /// When the last plain line was written, in the job's `elapsed_secs`.
    last_line: Option<f64>,
    /// Bytes and files of the last plain transfer line written.
    last_transfer: Option<(u64, u64)>,
    /// Whether the bar is in the spinner style (`Some(true)`) or the transfer style.
    spinner: Option<bool>,
    /// A spinner only, without the transfer's bar (encryption changes).
    spinner_only: bool,
}

impl<'w, W: Write> Progress<'w, W> {
    /// A display on `err`; a bar on the process's stderr when `terminal`.
    pub(crate) fn new(lang: Lang, terminal: bool, spinner_only: bool, err: &'w mut W) -> Self {
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            lang,
            bar,
            err,
            tracker: Tracker::default(),
            last_line: None,
            last_transfer: None,
            spinner: None,
            spinner_only,
        }
    }

    /// Shows a progress report.
    pub(crate) fn show(&mut self, job: &Job) {
        let was_transferring = self.tracker.stage == "transferring";
        let changed = self.tracker.update(&job.progress);
        let line = progress_line(self.lang, job, Some(&self.tracker));
        if let Some(bar) = &self.bar {
            let transfer = !self.spinner_only && job.progress.stage == "transferring";
            if self.spinner != Some(!transfer) {
                let template = if transfer {
                    "{spinner:.green} [{elapsed_precise}] [{bar:25.cyan/blue}] {msg}"
                } else {
                    "{spinner:.green} [{elapsed_precise}] {msg}"
                };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style.progress_chars("=> "));
                }
                self.spinner = Some(!transfer);
            }
            // The phone's percentage fills the bar; fractions of a percent do not show.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            bar.set_position(job.progress.device_percent.clamp(0.0, 100.0) as u64);
            bar.set_message(line);
            return;
        }
        let now = job.progress.elapsed_secs;
        let due = self
            .last_line
            .is_none_or(|t| now - t >= PLAIN_EVERY_SECS || now < t);
        let p = &job.progress;
        if changed && was_transferring && self.last_transfer != Some((p.bytes, p.files)) {
            // A short transfer can end between two reports: say what was copied before the next stage.
            let mut copied = job.clone();
            copied.progress.stage = "transferring".into();
            let _ = writeln!(self.err, "{}", progress_line(self.lang, &copied, None));
        }
        if p.stage == "transferring" && (changed || due) {
            self.last_transfer = Some((p.bytes, p.files));
        }
        if changed || due {
            self.last_line = Some(now);
            // Progress is a courtesy; a failing stderr must not stop the wait.
            let _ = writeln!(self.err, "{line}");
            let _ = self.err.flush();
        }
    }

    /// Writes a line to stderr above the bar.
    pub(crate) fn note(&mut self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| {
                let _ = writeln!(self.err, "{line}");
                let _ = self.err.flush();
            }),
            None => {
                let _ = writeln!(self.err, "{line}");
                let _ = self.err.flush();
            }
        }
    }
}

impl<W: Write> Drop for Progress<'_, W> {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_api::JobKind;

    fn progress(stage: &str, secs: f64, bytes: u64, percent: f64, announced: u64) -> JobProgress {
        JobProgress {
            stage: stage.to_owned(),
            bytes,
            files: bytes / 1_000_000,
            device_percent: percent,
            announced_bytes: announced,
            elapsed_secs: secs,
        }
    }

    fn job(p: JobProgress) -> Job {
        Job {
            id: 1,
            udid: "A".into(),
            kind: JobKind::Backup,
            state: JobState::Running,
            full: false,
            started_at: 0,
            finished_at: None,
            progress: p,
            error: None,
            device_error_code: None,
            verified_files: None,
            verify_method: None,
            password_ok: None,
        }
    }

    #[test]
    fn the_rate_is_measured_over_the_window() {
        let mut t = Tracker::default();
        assert!(t.update(&progress("transferring", 10.0, 0, 0.0, 0)));
        assert_eq!(t.rate(), None, "no second of transfer yet");
        assert!(!t.update(&progress("transferring", 10.5, 5_000_000, 0.0, 0)));
        assert_eq!(t.rate(), None);
        t.update(&progress("transferring", 12.0, 20_000_000, 0.0, 0));
        assert_eq!(t.rate(), Some(10_000_000.0));
        // Long after, only the last WINDOW_SECS count: 40 MB/s now.
        for s in 0..=30_u32 {
            let secs = 40.0 + f64::from(s);
            t.update(&progress(
                "transferring",
                secs,
                100_000_000 + u64::from(s) * 40_000_000,
                0.0,
                0,
            ));
        }
        let rate = t.rate().expect("a rate");
        assert!((rate - 40_000_000.0).abs() < 1.0, "{rate}");
        // A new stage starts over.
        assert!(t.update(&progress("verifying", 71.0, 1_300_000_000, 0.0, 0)));
        assert_eq!(t.rate(), None);
    }

    #[test]
    fn the_time_left_comes_from_the_phone_then_from_announced_bytes() {
        let mut t = Tracker::default();
        t.update(&progress("transferring", 0.0, 0, 10.0, 0));
        let p = progress("transferring", 10.0, 100_000_000, 20.0, 500_000_000);
        t.update(&p);
        // 10 points in 10 s, 80 points to go.
        assert_eq!(t.eta(&p), Some(80.0));

        let mut t = Tracker::default();
        t.update(&progress("transferring", 0.0, 0, 0.0, 0));
        let p = progress("transferring", 10.0, 100_000_000, 0.0, 300_000_000);
        t.update(&p);
        // 10 MB/s, 200 MB announced and not received.
        assert_eq!(t.eta(&p), Some(20.0));
        let p = progress("transferring", 20.0, 200_000_000, 0.0, 200_000_000);
        t.update(&p);
        assert_eq!(t.eta(&p), None, "nothing announced is left");
    }

    #[test]
    fn progress_lines_show_what_is_known() {
        let mut t = Tracker::default();
        let first = job(progress("transferring", 0.0, 0, 0.0, 0));
        t.update(&first.progress);
        let second = job(progress("transferring", 4.0, 100_000_000, 25.0, 0));
        t.update(&second.progress);
        assert_eq!(
            progress_line(Lang::En, &second, Some(&t)),
            "Copying from the iPhone: 100.0 MB, 100 files, 25.0 MB/s, iPhone at 25%, about 12 s left"
        );
        assert_eq!(
            progress_line(
                Lang::En,
                &job(progress("waiting_for_passcode", 1.0, 0, 0.0, 0)),
                None
            ),
            "Enter your passcode on the iPhone to start the backup"
        );
    }

    #[test]
    fn plain_lines_come_on_a_new_stage_and_then_every_few_seconds() {
        let mut err = Vec::new();
        {
            let mut p = Progress::new(Lang::En, false, false, &mut err);
            p.show(&job(progress("preparing", 0.0, 0, 0.0, 0)));
            p.show(&job(progress("preparing", 0.5, 0, 0.0, 0)));
            p.show(&job(progress("transferring", 1.0, 1_000_000, 1.0, 0)));
            p.show(&job(progress("transferring", 2.0, 2_000_000, 2.0, 0)));
            p.show(&job(progress("transferring", 6.5, 10_000_000, 9.0, 0)));
            p.show(&job(progress("verifying", 7.0, 10_000_000, 100.0, 0)));
        }
        let text = String::from_utf8(err).expect("UTF-8");
        assert_eq!(
            text,
            "Preparing the backup\n\
             Copying from the iPhone: 1.0 MB, 1 file, iPhone at 1%\n\
             Copying from the iPhone: 10.0 MB, 10 files, 1.6 MB/s, iPhone at 9%, about 1 min 03 s left\n\
             Verifying the backup\n"
        );
    }

    #[test]
    fn a_transfer_shorter_than_a_report_still_says_what_was_copied() {
        let mut err = Vec::new();
        {
            let mut p = Progress::new(Lang::En, false, false, &mut err);
            p.show(&job(progress("transferring", 0.1, 0, 0.0, 0)));
            let mut verifying = job(progress("verifying", 1.2, 3_800_000, 100.0, 0));
            verifying.progress.files = 17;
            p.show(&verifying);
        }
        let text = String::from_utf8(err).expect("UTF-8");
        assert_eq!(
            text,
            "Copying from the iPhone: 0 B, 0 files\n\
             Copying from the iPhone: 3.8 MB, 17 files, iPhone at 100%\n\
             Verifying the backup\n"
        );
    }

    #[test]
    fn failures_are_explained_by_the_phones_code() {
        let mut failed = job(progress("transferring", 1.0, 0, 0.0, 0));
        failed.state = JobState::Failed;
        failed.error =
            Some("the iPhone stopped the backup: Device locked (MBErrorDomain 208)".into());
        failed.device_error_code = Some(208);
        let mut err = Vec::new();
        assert_eq!(
            report_failure(&failed, Lang::En, &mut err),
            exit::JOB_FAILED
        );
        let text = String::from_utf8(err).expect("UTF-8");
        assert!(
            text.contains("The backup of A failed: the iPhone stopped the backup"),
            "{text}"
        );
        assert!(text.contains("none was entered in time"), "{text}");
        assert!(text.ends_with("The previous backup is intact.\n"), "{text}");

        failed.device_error_code = Some(9_999);
        let mut err = Vec::new();
        report_failure(&failed, Lang::En, &mut err);
        assert!(
            String::from_utf8(err)
                .expect("UTF-8")
                .contains("error code 9999")
        );
    }
}

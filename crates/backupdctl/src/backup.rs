//! `backupdctl backup`: starts a local backup of a phone, optionally follows it to its end, or cancels it.

use std::io::Write;
use std::time::Duration;

use hyper::{Method, StatusCode};

use backupd_api::{BackupStart, JobKind, JobState, exit};

use crate::client::Client;
use crate::job::{self, End, Progress};
use crate::text::{self, Lang};
use crate::{ExpectedError, write_out};

/// How long `--cancel` waits for the job to stop before saying it is stopping.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// What `backup` was asked.
#[derive(Debug)]
pub(crate) struct Options<'a> {
    /// The phone, or the only connected one.
    pub(crate) udid: Option<&'a str>,
    /// Ask for a full backup.
    pub(crate) full: bool,
    /// Follow the job to its end.
    pub(crate) wait: bool,
    /// Stop the phone's running job instead.
    pub(crate) cancel: bool,
    /// The backup password, for the full check of an encrypted backup.
    pub(crate) password: Option<crate::password::Secret>,
}

/// `backupdctl backup [UDID] [--full] [--wait] | --cancel [UDID]`.
pub(crate) async fn run(
    client: &Client,
    options: &Options<'_>,
    lang: Lang,
    terminal: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<i32, ExpectedError> {
    if options.cancel {
        return cancel(client, options.udid, lang, out, err).await;
    }
    // Subscribe before starting, so that not even the first event of the job is missed.
    let mut events = if options.wait {
        Some(client.events().await?)
    } else {
        None
    };
    let command = if options.wait {
        "backup --wait"
    } else {
        "backup"
    };
    let udid = job::pick_phone(client, options.udid, command).await?;
    let path = format!(
        "{}{udid}/{}",
        backupd_api::PATH_DEVICE_PREFIX,
        backupd_api::DEVICE_BACKUP
    );
    let what = format!("POST {path}");
    let answer = client
        .post_json(
            &path,
            &BackupStart {
                full: options.full,
                password: options.password.clone().map(|p| p.into_inner()),
            },
        )
        .await?;
    let started = if job::is_busy(answer.status) {
        let running = job::running_job(client, &udid).await?;
        match (&mut events, running) {
            (Some(_), Some(job)) if job.kind == JobKind::Backup => {
                let _ = writeln!(err, "{}", text::attaching(lang, job.id));
                job
            }
            (_, running) => {
                return Err(ExpectedError::Busy {
                    kind: running.as_ref().map_or(JobKind::Backup, |j| j.kind),
                    job: running.map(|j| j.id),
                    udid,
                });
            }
        }
    } else if answer.status == StatusCode::NOT_FOUND {
        return Err(job::not_attached(client, &udid, "it cannot be backed up").await);
    } else {
        let job = job::job_of(&what, answer)?;
        if events.is_none() {
            write_out(
                out,
                &format!(
                    "{}\n{}\n",
                    text::backup_started(lang, job.id, &job.udid, job.full),
                    text::follow_hint(lang, &job.udid)
                ),
            )?;
            return Ok(exit::OK);
        }
        job
    };
    let Some(events) = events.as_mut() else {
        // Without --wait every path above has returned.
        return Ok(exit::OK);
    };
    let id = started.id;
    let end = {
        let mut progress = Progress::new(lang, terminal, false, err);
        job::follow(client, events, started, &mut progress).await?
    };
    match end {
        End::Finished(job) if job.state == JobState::Succeeded => {
            write_out(
                out,
                &format!(
                    "{}\n",
                    text::backup_done(
                        lang,
                        &job.udid,
                        job.progress.files,
                        job.progress.bytes,
                        job::took(&job),
                        job.verified_files,
                    )
                ),
            )?;
            if let Some(note) = text::verify_note(lang, job.verify_method.as_deref()) {
                write_out(out, &format!("{note}\n"))?;
            }
            if job.password_ok == Some(false) {
                let _ = writeln!(err, "{}", text::backup_password_wrong(lang, &job.udid));
                return Ok(exit::WRONG_PASSWORD);
            }
            Ok(exit::OK)
        }
        End::Finished(job) => Ok(job::report_failure(&job, lang, err)),
        End::Detached => {
            let _ = writeln!(
                err,
                "\n{}",
                text::stopped_waiting(lang, JobKind::Backup, id, &udid)
            );
            Ok(job::INTERRUPTED)
        }
    }
}

/// `backup --cancel [UDID]`: stops the phone's running job and waits a little for it to stop.
async fn cancel(
    client: &Client,
    udid: Option<&str>,
    lang: Lang,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<i32, ExpectedError> {
    let udid = job::pick_phone(client, udid, "backup --cancel").await?;
    let mut events = client.events().await?;
    let Some(running) = job::running_job(client, &udid).await? else {
        return Err(ExpectedError::NoJobRunning { udid });
    };
    let path = format!("{}/{}/cancel", backupd_api::PATH_JOBS, running.id);
    let what = format!("POST {path}");
    let answer = client.send(Method::POST, &path).await?;
    if answer.status == StatusCode::NOT_FOUND {
        return Err(ExpectedError::NoJobRunning { udid });
    }
    // 200: it had already ended and is unchanged; 202: it is being stopped.
    let already_ended = answer.status == StatusCode::OK;
    let job = job::job_of(&what, answer)?;
    let job = if already_ended || job.state != JobState::Running {
        job
    } else {
        let mut sink = std::io::sink();
        let mut quiet = Progress::new(lang, false, true, &mut sink);
        let followed = tokio::time::timeout(
            CANCEL_WAIT,
            job::follow(client, &mut events, job, &mut quiet),
        )
        .await;
        match followed {
            Ok(Ok(End::Finished(job))) => job,
            Ok(Ok(End::Detached)) | Err(_) => {
                write_out(
                    out,
                    &format!("{}\n", text::cancel_pending(lang, running.id)),
                )?;
                return Ok(exit::OK);
            }
            Ok(Err(e)) => return Err(e),
        }
    };
    if job.state == JobState::Cancelled {
        write_out(
            out,
            &format!(
                "{}\n{}\n",
                text::cancelled_now(lang, job.kind, job.id, &job.udid),
                text::previous_intact(lang, job.kind)
            ),
        )?;
        Ok(exit::OK)
    } else {
        let _ = writeln!(
            err,
            "{}",
            text::ended_before_cancel(lang, job.id, job.state)
        );
        Ok(exit::NOT_FOUND)
    }
}

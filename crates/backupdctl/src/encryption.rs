//! `backupdctl encryption on|off|change-password [UDID]`: turns backup encryption on or off, or changes its
//! password, and waits for the phone to confirm.

use std::io::Write;

use hyper::StatusCode;

use backupd_api::{EncryptionAction, EncryptionChange, JobKind, JobState, exit};

use crate::client::Client;
use crate::job::{self, End, Progress};
use crate::password::{self, FromEnv};
use crate::text::{self, Lang};
use crate::{ExpectedError, write_out};

/// `backupdctl encryption ACTION [UDID]`; `prompt` asks for a password without echo.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    client: &Client,
    action: EncryptionAction,
    udid: Option<&str>,
    env: &FromEnv,
    prompt: impl FnMut(&str) -> std::io::Result<String>,
    lang: Lang,
    terminal: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<i32, ExpectedError> {
    let command = match action {
        EncryptionAction::On => "encryption on",
        EncryptionAction::Off => "encryption off",
        EncryptionAction::Change => "encryption change-password",
    };
    let udid = job::pick_phone(client, udid, command).await?;
    let (old_password, new_password) =
        password::gather(action, env, lang, prompt).map_err(ExpectedError::Password)?;
    let change = EncryptionChange {
        action,
        old_password: old_password.map(password::Secret::into_inner),
        new_password: new_password.map(password::Secret::into_inner),
    };
    // Subscribe before starting, so that not even the first event of the job is missed.
    let mut events = client.events().await?;
    let path = format!(
        "{}{udid}/{}",
        backupd_api::PATH_DEVICE_PREFIX,
        backupd_api::DEVICE_ENCRYPTION
    );
    let what = format!("POST {path}");
    let answer = client.post_json(&path, &change).await?;
    drop(change);
    if job::is_busy(answer.status) {
        let running = job::running_job(client, &udid).await?;
        return Err(ExpectedError::Busy {
            kind: running.as_ref().map_or(JobKind::Encryption, |j| j.kind),
            job: running.map(|j| j.id),
            udid,
        });
    }
    if answer.status == StatusCode::NOT_FOUND {
        return Err(
            job::not_attached(client, &udid, "its backup encryption cannot be changed").await,
        );
    }
    let started = job::job_of(&what, answer)?;
    let id = started.id;
    let end = {
        let mut progress = Progress::new(lang, terminal, true, err);
        progress.note(text::passcode_notice(lang));
        job::follow(client, &mut events, started, &mut progress).await?
    };
    match end {
        End::Finished(job) if job.state == JobState::Succeeded => {
            write_out(
                out,
                &format!("{}\n", text::encryption_done(lang, action, &job.udid)),
            )?;
            Ok(exit::OK)
        }
        End::Finished(job) => Ok(job::report_failure(&job, lang, err)),
        End::Detached => {
            let _ = writeln!(
                err,
                "\n{}",
                text::stopped_waiting(lang, JobKind::Encryption, id, &udid)
            );
            Ok(job::INTERRUPTED)
        }
    }
}

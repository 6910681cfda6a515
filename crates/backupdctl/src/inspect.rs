//! `backupdctl backups UDID --inspect`: what the newest local backup holds of WhatsApp's chats, asking the
//! daemon to look inside it now; for an encrypted backup, with its password (from `BACKUPD_BACKUP_PASSWORD` or
//! asked on the terminal), which the daemon uses for that one request and never keeps.

use std::io::Write;

use backupd_api::{InspectRequest, Inspection, WhatsappInBackup, exit};

use crate::client::{self, Client};
use crate::text::{self, Lang};
use crate::{ExpectedError, write_out};

/// Where the password comes from when the backup turns out to be encrypted.
pub(crate) struct Password<'a> {
    /// `BACKUPD_BACKUP_PASSWORD`, when set.
    pub(crate) from_env: Option<String>,
    /// Asks on the terminal (fails without one).
    pub(crate) prompt: &'a mut dyn FnMut(&str) -> std::io::Result<String>,
}

async fn ask(
    client: &Client,
    udid: &str,
    password: Option<String>,
) -> Result<Inspection, ExpectedError> {
    let path = format!(
        "{}{udid}/{}",
        backupd_api::PATH_DEVICE_PREFIX,
        backupd_api::DEVICE_INSPECT
    );
    let what = format!("POST {path}");
    let answer = client
        .post_json(&path, &InspectRequest { password })
        .await?;
    if answer.status == hyper::StatusCode::NOT_FOUND {
        return Err(ExpectedError::DeviceNotFound {
            udid: udid.to_owned(),
        });
    }
    let body = client::success(&what, answer)?;
    client::parse(&what, &body)
}

/// Runs the inspection and prints what was found; exit 0 when the backup could be read (whatever it holds), 4
/// for an unknown phone, 5 when the daemon could not read it, 2 when a password was needed and none was given
/// (with a password the daemon could not use, it says so and the answer stays "encrypted").
pub(crate) async fn run(
    client: &Client,
    udid: &str,
    password: Password<'_>,
    lang: Lang,
    out: &mut impl Write,
) -> Result<i32, ExpectedError> {
    // A password from the environment goes with the first request (the daemon uses it only for an encrypted
    // backup); otherwise it is asked only once the backup turns out to be encrypted.
    let from_env = password.from_env.filter(|p| !p.is_empty());
    let had_env = from_env.is_some();
    let mut found = ask(client, udid, from_env).await?;
    if found.whatsapp == WhatsappInBackup::Encrypted && !had_env {
        let given = (password.prompt)(text::prompt_current(lang)).ok();
        match given.filter(|p| !p.is_empty()) {
            Some(p) => found = ask(client, udid, Some(p)).await?,
            None => {
                write_out(
                    out,
                    &format!("{}\n", text::inspect_needs_password(lang, udid)),
                )?;
                return Ok(exit::USAGE);
            }
        }
    }
    write_out(out, &format!("{}\n", text::inspection(lang, &found)))?;
    Ok(exit::OK)
}

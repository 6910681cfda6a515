//! Backup passwords for `encryption`: from the environment or asked on the terminal without echo, and checked
//! before anything is sent. They are never printed, logged or shown by a debug print.

use std::ffi::OsString;
use std::io;

use backupd_api::EncryptionAction;

use crate::text::{self, Lang};

/// The environment variable holding the current backup password (`off`, `change-password`).
pub(crate) const CURRENT_ENV: &str = "BACKUPD_BACKUP_PASSWORD";
/// The environment variable holding the new backup password (`on`, `change-password`).
pub(crate) const NEW_ENV: &str = "BACKUPD_NEW_BACKUP_PASSWORD";

/// A password. Its debug print hides it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(password: String) -> Self {
        Self(password)
    }

    /// The password itself, to be sent to the daemon and nowhere else.
    pub(crate) fn into_inner(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Which of the two passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The password that protects the backups now.
    Current,
    /// The password to protect them from now on.
    New,
}

impl Which {
    fn var(self) -> &'static str {
        match self {
            Self::Current => CURRENT_ENV,
            Self::New => NEW_ENV,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::New => "new",
        }
    }
}

/// Why a backup password was refused before anything was sent to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The password is empty.
    #[error("the {} backup password is empty", .which.words())]
    Empty {
        /// Which one.
        which: Which,
        /// Whether it came from the environment (set but empty) rather than the prompt.
        from_env: bool,
    },
    /// The new password was typed differently the second time.
    #[error("the two new backup passwords typed differ")]
    Mismatch,
    /// The new password is the current one.
    #[error("the new backup password is the same as the current one")]
    Unchanged,
    /// The environment variable is not valid UTF-8.
    #[error("{} is not valid UTF-8", .which.var())]
    NotUtf8 {
        /// Which one.
        which: Which,
    },
    /// The environment variable is not set and there is no terminal to ask on.
    #[error("no terminal to ask for the {} backup password on ({reason})", .which.words())]
    NoTerminal {
        /// Which one.
        which: Which,
        /// Why the prompt failed.
        reason: String,
    },
}

impl Refusal {
    /// What to do about it, for the error's rendering.
    pub(crate) fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Empty {
                which,
                from_env: true,
            } => format!(
                "{} is set but empty: set it to the password, or unset it to be asked on the terminal.",
                which.var()
            ),
            Self::Empty {
                from_env: false, ..
            } => "A backup password cannot be empty.".to_owned(),
            Self::Mismatch => "Type the same new password twice.".to_owned(),
            Self::Unchanged => {
                "Choose a new password that differs from the current one.".to_owned()
            }
            Self::NotUtf8 { which } | Self::NoTerminal { which, .. } => format!(
                "Set {} to the password, or run backupdctl on a terminal to be asked.",
                which.var()
            ),
        })
    }
}

/// The passwords found in the environment (`None`: not set).
#[derive(Clone, Default)]
pub(crate) struct FromEnv {
    pub(crate) current: Option<OsString>,
    pub(crate) new: Option<OsString>,
}

impl std::fmt::Debug for FromEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FromEnv")
            .field("current", &self.current.as_ref().map(|_| "…"))
            .field("new", &self.new.as_ref().map(|_| "…"))
            .finish()
    }
}

impl FromEnv {
    pub(crate) fn from_process() -> Self {
        Self {
            current: std::env::var_os(CURRENT_ENV),
            new: std::env::var_os(NEW_ENV),
        }
    }
}

/// A password as typed at a prompt that does not echo.
pub(crate) fn prompt_terminal(prompt: &str) -> io::Result<String> {
    rpassword::prompt_password(prompt)
}

/// The passwords `action` needs, `(current, new)`: from the environment when set there, else asked with
/// `prompt` (the new one twice). Refuses an empty password, two different new ones and, for a change, a new one
/// equal to the current one.
pub(crate) fn gather(
    action: EncryptionAction,
    env: &FromEnv,
    lang: Lang,
    mut prompt: impl FnMut(&str) -> io::Result<String>,
) -> Result<(Option<Secret>, Option<Secret>), Refusal> {
    let needs_current = matches!(action, EncryptionAction::Off | EncryptionAction::Change);
    let needs_new = matches!(action, EncryptionAction::On | EncryptionAction::Change);
    let current = if needs_current {
        Some(one(
            Which::Current,
            env.current.as_ref(),
            lang,
            &mut prompt,
        )?)
    } else {
        None
    };
    let new = if needs_new {
        Some(one(Which::New, env.new.as_ref(), lang, &mut prompt)?)
    } else {
        None
    };
    if let (Some(c), Some(n)) = (&current, &new)
        && c == n
    {
        return Err(Refusal::Unchanged);
    }
    Ok((current, new))
}

/// The current backup password, for `backup --password` and `backups --check-password`: from
/// `BACKUPD_BACKUP_PASSWORD` when set, else asked once with `prompt`.
pub(crate) fn current(
    env: &FromEnv,
    lang: Lang,
    mut prompt: impl FnMut(&str) -> io::Result<String>,
) -> Result<Secret, Refusal> {
    one(Which::Current, env.current.as_ref(), lang, &mut prompt)
}

fn one(
    which: Which,
    from_env: Option<&OsString>,
    lang: Lang,
    prompt: &mut impl FnMut(&str) -> io::Result<String>,
) -> Result<Secret, Refusal> {
    if let Some(value) = from_env {
        let value = value
            .clone()
            .into_string()
            .map_err(|_| Refusal::NotUtf8 { which })?;
        return check(which, true, Secret::new(value));
    }
    let ask = |prompt: &mut dyn FnMut(&str) -> io::Result<String>, text: &str| {
        prompt(text).map_err(|e| Refusal::NoTerminal {
            which,
            reason: e.to_string(),
        })
    };
    match which {
        Which::Current => {
            let typed = ask(prompt, text::prompt_current(lang))?;
            check(which, false, Secret::new(typed))
        }
        Which::New => {
            let first = check(
                which,
                false,
                Secret::new(ask(prompt, text::prompt_new(lang))?),
            )?;
            let second = Secret::new(ask(prompt, text::prompt_again(lang))?);
            confirm(first, &second)
        }
    }
}

/// `password` unless it is empty.
pub(crate) fn check(which: Which, from_env: bool, password: Secret) -> Result<Secret, Refusal> {
    if password.0.is_empty() {
        Err(Refusal::Empty { which, from_env })
    } else {
        Ok(password)
    }
}

/// `first` when `second` is the same.
pub(crate) fn confirm(first: Secret, second: &Secret) -> Result<Secret, Refusal> {
    if first == *second {
        Ok(first)
    } else {
        Err(Refusal::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prompt answering `answers` in turn, then failing as without a terminal.
    fn scripted(answers: &[&str]) -> impl FnMut(&str) -> io::Result<String> {
        let mut answers: Vec<String> = answers.iter().rev().map(|a| (*a).to_owned()).collect();
        move |_: &str| {
            answers
                .pop()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no tty"))
        }
    }

    fn env(current: Option<&str>, new: Option<&str>) -> FromEnv {
        FromEnv {
            current: current.map(OsString::from),
            new: new.map(OsString::from),
        }
    }

    fn secret(s: &str) -> Option<Secret> {
        Some(Secret::new(s.to_owned()))
    }

    #[test]
    fn the_environment_is_used_when_set() {
        let prompt = scripted(&[]);
        let got = gather(
            EncryptionAction::Change,
            &env(Some("old pw"), Some("new pw")),
            Lang::En,
            prompt,
        );
        assert_eq!(got, Ok((secret("old pw"), secret("new pw"))));
        let prompt = scripted(&[]);
        let got = gather(
            EncryptionAction::On,
            &env(Some("x"), Some("n")),
            Lang::En,
            prompt,
        );
        assert_eq!(got, Ok((None, secret("n"))));
        let prompt = scripted(&[]);
        let got = gather(
            EncryptionAction::Off,
            &env(Some("c"), None),
            Lang::En,
            prompt,
        );
        assert_eq!(got, Ok((secret("c"), None)));
    }

    #[test]
    fn an_empty_password_is_refused() {
        let prompt = scripted(&[]);
        assert_eq!(
            gather(EncryptionAction::On, &env(None, Some("")), Lang::En, prompt),
            Err(Refusal::Empty {
                which: Which::New,
                from_env: true
            })
        );
        let prompt = scripted(&[""]);
        assert_eq!(
            gather(EncryptionAction::Off, &env(None, None), Lang::En, prompt),
            Err(Refusal::Empty {
                which: Which::Current,
                from_env: false
            })
        );
        let prompt = scripted(&["", ""]);
        assert!(matches!(
            gather(EncryptionAction::On, &env(None, None), Lang::En, prompt),
            Err(Refusal::Empty {
                which: Which::New,
                ..
            })
        ));
    }

    #[test]
    fn the_new_password_is_asked_twice_and_must_match() {
        let prompt = scripted(&["secret-1", "secret-2"]);
        assert_eq!(
            gather(EncryptionAction::On, &env(None, None), Lang::En, prompt),
            Err(Refusal::Mismatch)
        );
        let prompt = scripted(&["secret-1", "secret-1"]);
        assert_eq!(
            gather(EncryptionAction::On, &env(None, None), Lang::En, prompt),
            Ok((None, secret("secret-1")))
        );
        // The current one from the environment, the new one asked.
        let prompt = scripted(&["n", "n"]);
        assert_eq!(
            gather(
                EncryptionAction::Change,
                &env(Some("c"), None),
                Lang::It,
                prompt
            ),
            Ok((secret("c"), secret("n")))
        );
    }

    #[test]
    fn a_change_to_the_same_password_is_refused() {
        let prompt = scripted(&[]);
        assert_eq!(
            gather(
                EncryptionAction::Change,
                &env(Some("same"), Some("same")),
                Lang::En,
                prompt
            ),
            Err(Refusal::Unchanged)
        );
    }

    #[test]
    fn without_a_terminal_the_variable_is_named() {
        let prompt = scripted(&[]);
        let refusal = gather(EncryptionAction::On, &env(None, None), Lang::En, prompt)
            .expect_err("no prompt answer");
        assert!(matches!(
            refusal,
            Refusal::NoTerminal {
                which: Which::New,
                ..
            }
        ));
        assert!(refusal.hint().is_some_and(|h| h.contains(NEW_ENV)));
    }

    #[test]
    fn debug_prints_hide_passwords() {
        let shown = format!(
            "{:?} {:?}",
            Secret::new("hunter2".into()),
            env(Some("hunter2"), Some("hunter3"))
        );
        assert!(!shown.contains("hunter"), "{shown}");
    }
}

//! Desktop notifications for `watch --notify`: `notify-send` on Linux, `osascript` on macOS.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// How long one notification may take before it counts as failed.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// A way to show a desktop notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notifier {
    /// `notify-send` at this path (Linux, with a desktop session).
    NotifySend(PathBuf),
    /// `osascript` at this path (macOS).
    Osascript(PathBuf),
}

impl Notifier {
    /// The notifier of this process's session, if it has one.
    pub(crate) fn from_process() -> Option<Self> {
        Self::detect(std::env::consts::OS, |k| std::env::var_os(k))
    }

    /// The notifier for the operating system `os` (as in [`std::env::consts::OS`]) and the environment `var`.
    ///
    /// On Linux, `notify-send` must be on `PATH` and one of `DISPLAY`, `WAYLAND_DISPLAY` or
    /// `DBUS_SESSION_BUS_ADDRESS` set: without a session bus a notification has nowhere to go.
    pub(crate) fn detect(os: &str, var: impl Fn(&str) -> Option<OsString>) -> Option<Self> {
        let on_path = |name: &str| {
            let path = var("PATH")?;
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|candidate| is_executable(candidate))
        };
        match os {
            "linux" => {
                let session = ["DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS"]
                    .iter()
                    .any(|k| var(k).is_some_and(|v| !v.is_empty()));
                if session {
                    on_path("notify-send").map(Self::NotifySend)
                } else {
                    None
                }
            }
            "macos" => on_path("osascript")
                .or_else(|| {
                    let system = PathBuf::from("/usr/bin/osascript");
                    is_executable(&system).then_some(system)
                })
                .map(Self::Osascript),
            _ => None,
        }
    }

    /// The program and its arguments that show `body` under the title `backupd`.
    fn command(&self, body: &str) -> (&Path, Vec<String>) {
        match self {
            // `--` keeps a body that starts with a dash from being read as an option.
            Self::NotifySend(path) => (
                path,
                vec!["--".to_owned(), "backupd".to_owned(), body.to_owned()],
            ),
            Self::Osascript(path) => (
                path,
                vec![
                    "-e".to_owned(),
                    format!(
                        "display notification {} with title \"backupd\"",
                        applescript_string(body)
                    ),
                ],
            ),
        }
    }

    /// Shows `body`; the error says why it could not.
    pub(crate) async fn send(&self, body: &str) -> Result<(), String> {
        let (program, args) = self.command(body);
        let run = tokio::process::Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status();
        match tokio::time::timeout(NOTIFY_TIMEOUT, run).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("{} {status}", program.display())),
            Ok(Err(e)) => Err(format!("{}: {e}", program.display())),
            Err(_) => Err(format!(
                "{} did not finish within {} s",
                program.display(),
                NOTIFY_TIMEOUT.as_secs()
            )),
        }
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `s` as an AppleScript string literal: quotes and backslashes escaped, line breaks made spaces.
fn applescript_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn bin_with(name: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        dir
    }

    #[test]
    fn linux_needs_notify_send_and_a_session() {
        let dir = bin_with("notify-send");
        let path = dir.path().to_str().expect("utf-8 path");
        let expected = Some(Notifier::NotifySend(dir.path().join("notify-send")));
        for session in ["DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS"] {
            assert_eq!(
                Notifier::detect("linux", env(&[("PATH", path), (session, ":0")])),
                expected
            );
        }
        assert_eq!(Notifier::detect("linux", env(&[("PATH", path)])), None);
        assert_eq!(
            Notifier::detect("linux", env(&[("PATH", path), ("DISPLAY", "")])),
            None
        );
        assert_eq!(
            Notifier::detect("linux", env(&[("PATH", "/nonexistent"), ("DISPLAY", ":0")])),
            None
        );
        assert_eq!(
            Notifier::detect("freebsd", env(&[("PATH", path), ("DISPLAY", ":0")])),
            None
        );
    }

    #[test]
    fn a_file_that_is_not_executable_is_not_a_notifier() {
        let dir = bin_with("notify-send");
        std::fs::set_permissions(
            dir.path().join("notify-send"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        let path = dir.path().to_str().expect("utf-8 path");
        assert_eq!(
            Notifier::detect("linux", env(&[("PATH", path), ("DISPLAY", ":0")])),
            None
        );
    }

    #[test]
    fn macos_uses_osascript_with_an_escaped_string() {
        let dir = bin_with("osascript");
        let path = dir.path().to_str().expect("utf-8 path");
        let n = Notifier::detect("macos", env(&[("PATH", path)])).expect("found");
        let (program, args) = n.command(r#"say "hi" \ bye"#);
        assert_eq!(program, dir.path().join("osascript"));
        assert_eq!(
            args,
            [
                "-e",
                r#"display notification "say \"hi\" \\ bye" with title "backupd""#
            ]
        );
    }

    #[test]
    fn notify_send_gets_title_and_body() {
        let n = Notifier::NotifySend("/usr/bin/notify-send".into());
        let (_, args) = n.command("-x: iPhone connected");
        assert_eq!(args, ["--", "backupd", "-x: iPhone connected"]);
    }
}

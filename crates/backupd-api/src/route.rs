//! The API's paths, parsed and checked before anything acts on them.
//!
//! A path segment naming a phone becomes part of a folder name (`<backup dir>/<UDID>/`), so it is checked
//! here, once, for every route: a UDID is 24 hex digits (with one optional dash after the eighth, as
//! usbmuxd spells a post-2018 phone's) or 40 hex digits (older phones). Anything else, `..` included, is
//! refused with 400 and a message saying what a UDID looks like. Job ids are decimal `u64`s without sign.
//! The path is taken raw, as sent: nothing is percent-decoded, so `%2e%2e` is refused like `..`.

use crate::{
    DEVICE_BACKUP, DEVICE_BACKUPS, DEVICE_CHECK_PASSWORD, DEVICE_ENCRYPTION, DEVICE_INSPECT,
    PATH_DEVICE_PREFIX, PATH_DEVICES, PATH_DIAGNOSE_ALL, PATH_EVENTS, PATH_INFO, PATH_JOBS,
    PATH_METRICS,
};

/// The longest request path (without the query) the daemon reads; the longest valid one is about 70 bytes.
pub const MAX_PATH_LEN: usize = 512;

/// A request of the API, with its ids checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Route {
    /// `GET /v1/devices`.
    Devices,
    /// `GET /v1/info`.
    Info,
    /// `GET /v1/events`.
    Events,
    /// `POST /v1/diagnose`.
    DiagnoseAll,
    /// `GET /v1/jobs`.
    Jobs,
    /// `GET /v1/devices/{udid}`.
    Device(String),
    /// `POST /v1/devices/{udid}/diagnose`.
    DeviceDiagnose(String),
    /// `POST /v1/devices/{udid}/backup`.
    DeviceBackup(String),
    /// `GET /v1/devices/{udid}/backups`.
    DeviceBackups(String),
    /// `POST /v1/devices/{udid}/encryption`.
    DeviceEncryption(String),
    /// `POST /v1/devices/{udid}/inspect`.
    DeviceInspect(String),
    /// `POST /v1/devices/{udid}/backups/check-password`.
    DeviceCheckPassword(String),
    /// `GET /v1/jobs/{id}`.
    Job(u64),
    /// `POST /v1/jobs/{id}/cancel`.
    JobCancel(u64),
    /// `GET /metrics`.
    Metrics,
}

impl Route {
    /// Whether the request changes anything (its caller's credentials are logged).
    pub fn mutates(&self) -> bool {
        matches!(
            self,
            Self::DiagnoseAll
                | Self::DeviceDiagnose(_)
                | Self::DeviceBackup(_)
                | Self::DeviceEncryption(_)
                | Self::DeviceInspect(_)
                | Self::DeviceCheckPassword(_)
                | Self::JobCancel(_)
        )
    }
}

/// Why a path was refused; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// 404: no such path.
    #[error("no such path {0}")]
    NotFound(String),
    /// 405: the path exists, not with this method.
    #[error("method not allowed here")]
    MethodNotAllowed,
    /// 400: a segment naming a phone or a job is malformed.
    #[error("{0}")]
    BadId(String),
    /// 414: the path is longer than [`MAX_PATH_LEN`].
    #[error("the request path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
}

/// Checks a UDID as a path segment: 24 hex digits with at most one dash, after the eighth, or 40 hex digits.
pub fn check_udid(segment: &str) -> Result<(), RouteError> {
    let bytes = segment.as_bytes();
    let hex = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
    let ok = match bytes.len() {
        24 | 40 => hex(bytes),
        25 => bytes[8] == b'-' && hex(&bytes[..8]) && hex(&bytes[9..]),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(RouteError::BadId(format!(
        "{} is not a UDID: a UDID is 24 hex digits (with an optional dash after the eighth) or 40 hex digits",
        shown(segment)
    )))
}

/// Checks a job id as a path segment: a decimal number without sign that fits 64 bits.
pub fn check_job_id(segment: &str) -> Result<u64, RouteError> {
    let digits = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    match segment.parse::<u64>() {
        Ok(id) if digits => Ok(id),
        _ => Err(RouteError::BadId(format!(
            "{} is not a job id: a job id is a decimal number",
            shown(segment)
        ))),
    }
}

/// A segment for a message: quoted, escaped, and cut short, so that a hostile one cannot flood a log line.
fn shown(segment: &str) -> String {
    // Bounded in bytes after escaping: one character can escape to ten bytes (`\u{10ffff}`).
    const MAX: usize = 96;
    let head: String = segment.chars().take(MAX).collect();
    let quoted = format!("{head:?}");
    if quoted.len() <= MAX && head.len() == segment.len() {
        return quoted;
    }
    let mut end = quoted.len().min(MAX);
    while !quoted.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &quoted[..end])
}

/// Parses a request line's method and path (without the query).
pub fn parse(method: &str, path: &str) -> Result<Route, RouteError> {
    if path.len() > MAX_PATH_LEN {
        return Err(RouteError::TooLong);
    }
    let get = method == "GET";
    let post = method == "POST";
    let path = path.trim_end_matches('/');
    let allow = |ok: bool, route: Route| {
        if ok {
            Ok(route)
        } else {
            Err(RouteError::MethodNotAllowed)
        }
    };
    match path {
        PATH_DEVICES => return allow(get, Route::Devices),
        PATH_INFO => return allow(get, Route::Info),
        PATH_EVENTS => return allow(get, Route::Events),
        PATH_DIAGNOSE_ALL => return allow(post, Route::DiagnoseAll),
        PATH_JOBS => return allow(get, Route::Jobs),
        PATH_METRICS => return allow(get, Route::Metrics),
        _ => {}
    }
    let not_found = || RouteError::NotFound(shown(path));
    if let Some(rest) = path.strip_prefix(PATH_DEVICE_PREFIX) {
        let (udid, action) = rest
            .split_once('/')
            .map_or((rest, None), |(u, a)| (u, Some(a)));
        check_udid(udid)?;
        let udid = udid.to_owned();
        return match action {
            None => allow(get, Route::Device(udid)),
            Some("diagnose") => allow(post, Route::DeviceDiagnose(udid)),
            Some(DEVICE_BACKUP) => allow(post, Route::DeviceBackup(udid)),
            Some(DEVICE_BACKUPS) => allow(get, Route::DeviceBackups(udid)),
            Some(DEVICE_ENCRYPTION) => allow(post, Route::DeviceEncryption(udid)),
            Some(DEVICE_INSPECT) => allow(post, Route::DeviceInspect(udid)),
            Some(DEVICE_CHECK_PASSWORD) => allow(post, Route::DeviceCheckPassword(udid)),
            Some(_) => Err(not_found()),
        };
    }
    if let Some(rest) = path
        .strip_prefix(PATH_JOBS)
        .and_then(|r| r.strip_prefix('/'))
    {
        let (id, action) = rest
            .split_once('/')
            .map_or((rest, None), |(i, a)| (i, Some(a)));
        let id = check_job_id(id)?;
        return match action {
            None => allow(get, Route::Job(id)),
            Some("cancel") => allow(post, Route::JobCancel(id)),
            Some(_) => Err(not_found()),
        };
    }
    Err(not_found())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udids_as_usbmuxd_spells_them_pass() {
        for udid in [
            "00008110-001A2B3C4D5E6F01",
            "00008110001A2B3C4D5E6F01",
            "6d1f9a3b2c4e5f60718293a4b5c6d7e8f9012345",
        ] {
            assert_eq!(check_udid(udid), Ok(()), "{udid}");
        }
    }

    #[test]
    fn anything_else_is_not_a_udid() {
        for bad in [
            "",
            "..",
            ".",
            "0000",
            "%2e%2e",
            "00008110-001A2B3C4D5E6F0G",
            "0000811-0001A2B3C4D5E6F01",
            "00008110--01A2B3C4D5E6F01",
            "6d1f9a3b2c4e5f60718293a4b5c6d7e8f901234",
            "6d1f9a3b-2c4e5f60718293a4b5c6d7e8f9012345",
            "00008110-001A2B3C4D5E6F01\0",
            "ＡＡ",
        ] {
            assert!(
                matches!(check_udid(bad), Err(RouteError::BadId(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_parent_folder_is_refused_with_a_message() {
        let err = parse("GET", "/v1/devices/../backups").expect_err("refused");
        assert_eq!(
            err.to_string(),
            "\"..\" is not a UDID: a UDID is 24 hex digits (with an optional dash after the eighth) or 40 hex digits"
        );
    }

    #[test]
    fn every_route_parses() {
        let u = "00008110-001A2B3C4D5E6F01".to_owned();
        let cases = [
            ("GET", "/v1/devices", Route::Devices),
            ("GET", "/v1/devices/", Route::Devices),
            ("GET", "/v1/info", Route::Info),
            ("GET", "/v1/events", Route::Events),
            ("POST", "/v1/diagnose", Route::DiagnoseAll),
            ("GET", "/v1/jobs", Route::Jobs),
            (
                "GET",
                "/v1/devices/00008110-001A2B3C4D5E6F01",
                Route::Device(u.clone()),
            ),
            (
                "POST",
                "/v1/devices/00008110-001A2B3C4D5E6F01/diagnose",
                Route::DeviceDiagnose(u.clone()),
            ),
            (
                "POST",
                "/v1/devices/00008110-001A2B3C4D5E6F01/backup",
                Route::DeviceBackup(u.clone()),
            ),
            (
                "GET",
                "/v1/devices/00008110-001A2B3C4D5E6F01/backups",
                Route::DeviceBackups(u.clone()),
            ),
            (
                "POST",
                "/v1/devices/00008110-001A2B3C4D5E6F01/encryption",
                Route::DeviceEncryption(u.clone()),
            ),
            (
                "POST",
                "/v1/devices/00008110-001A2B3C4D5E6F01/inspect",
                Route::DeviceInspect(u),
            ),
            ("GET", "/v1/jobs/7", Route::Job(7)),
            ("POST", "/v1/jobs/7/cancel", Route::JobCancel(7)),
        ];
        for (method, path, route) in cases {
            assert_eq!(parse(method, path), Ok(route), "{method} {path}");
        }
    }

    #[test]
    fn wrong_methods_unknown_paths_and_bad_job_ids() {
        assert_eq!(
            parse("POST", "/v1/devices"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            parse("GET", "/v1/devices/00008110-001A2B3C4D5E6F01/backup"),
            Err(RouteError::MethodNotAllowed)
        );
        assert!(matches!(
            parse("GET", "/v2/devices"),
            Err(RouteError::NotFound(_))
        ));
        assert!(matches!(
            parse("GET", "/v1/devices/00008110-001A2B3C4D5E6F01/x"),
            Err(RouteError::NotFound(_))
        ));
        for bad in [
            "/v1/jobs/+7",
            "/v1/jobs/-1",
            "/v1/jobs/x",
            "/v1/jobs/99999999999999999999",
        ] {
            assert!(
                matches!(parse("GET", bad), Err(RouteError::BadId(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse("GET", &format!("/v1/{}", "a".repeat(MAX_PATH_LEN))),
            Err(RouteError::TooLong)
        );
    }

    #[test]
    fn a_long_bad_segment_is_cut_short_in_the_message() {
        let long = "z".repeat(10_000);
        let message = check_udid(&long).expect_err("refused").to_string();
        assert!(message.len() < 300, "{}", message.len());
    }
}

//! What the daemon's fuzz targets do with their input: the API's request paths and bodies, the JSON a client
//! reads back, and the config file.
//!
//! Kept apart from `lib.rs` because it needs the daemon's crates: `crates/backupd/tests/fuzz_corpus.rs`
//! includes this file and replays `fuzz/corpus/{api_request,config_file}/` in an ordinary `cargo test`, and
//! the target binaries include it the same way.

use backupd::config::{Environment, FileConfig, Settings};
use backupd_api::route::{self, MAX_PATH_LEN, Route, RouteError};

/// Target `api_request`: the first line is a request line's method and path, the rest a request body.
///
/// A path that parses names its phone by a UDID of hex digits and at most one dash (so it cannot leave
/// the backup folder) and is within the length cap; a refusal's message stays short whatever was sent.
/// The body is read as every request body the daemon accepts, and the input as every answer a client
/// reads.
pub fn api_request(data: &[u8]) {
    let (line, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let line = String::from_utf8_lossy(line);
    let (method, path) = line.split_once(' ').unwrap_or(("GET", &line));
    match route::parse(method, path) {
        Ok(parsed) => {
            assert!(path.len() <= MAX_PATH_LEN);
            let udid = match &parsed {
                Route::Device(u)
                | Route::DeviceDiagnose(u)
                | Route::DeviceBackup(u)
                | Route::DeviceBackups(u)
                | Route::DeviceEncryption(u)
                | Route::DeviceInspect(u) => Some(u),
                _ => None,
            };
            if let Some(u) = udid {
                assert!(matches!(u.len(), 24 | 25 | 40), "{u:?}");
                assert!(u.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
                assert!(u.bytes().filter(|b| *b == b'-').count() <= 1);
            }
            let _ = parsed.mutates();
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.len() < 400, "{} bytes", message.len());
            if let RouteError::NotFound(_) | RouteError::BadId(_) = e {
                assert!(!message.contains('\n'));
            }
        }
    }
    let _ = serde_json::from_slice::<backupd_api::BackupStart>(body);
    if let Ok(change) = serde_json::from_slice::<backupd_api::EncryptionChange>(body) {
        let _ = format!("{change:?}");
    }
    // What a client reads back from the daemon.
    let _ = serde_json::from_slice::<backupd_api::Status>(data);
    let _ = serde_json::from_slice::<backupd_api::Job>(data);
    let _ = serde_json::from_slice::<backupd_api::Jobs>(data);
    let _ = serde_json::from_slice::<backupd_api::Event>(data);
    let _ = serde_json::from_slice::<backupd_api::BackupList>(data);
    let _ = serde_json::from_slice::<backupd_api::ErrorBody>(data);
}

/// Target `config_file`: the input is the daemon's config file.
///
/// Whatever parses settles into settings for a system service (which has a default for everything), and
/// the settings are within their bounds.
pub fn config_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = toml::from_str::<FileConfig>(text) else {
        return;
    };
    let env = Environment {
        root: true,
        ..Environment::default()
    };
    let settings = Settings::resolve(file, &env).expect("a system service has every default");
    assert!(settings.refresh >= std::time::Duration::from_secs(10));
    let _ = format!("{settings:?}");
}

//! The `[backup]` table of a profile: the files the phone backs up and the faults of its backup service.

use std::collections::BTreeSet;

use serde::Deserialize;

/// What the phone holds for a backup, and how its backup service misbehaves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupProfile {
    /// Files listed one by one.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// Bytes of camera-roll files generated on top of `files` (0: none).
    #[serde(default)]
    pub generated_total_bytes: u64,
    /// The smallest generated file.
    #[serde(default = "default_min_file")]
    pub generated_min_file: u64,
    /// The largest generated file.
    #[serde(default = "default_max_file")]
    pub generated_max_file: u64,
    /// Seeds file contents and the generated set; the same seed gives the same bytes.
    #[serde(default)]
    pub seed: u64,
    /// The backup password when `WillEncrypt` is on: `ChangePassword` checks `OldPassword` against it.
    #[serde(default)]
    pub password: Option<String>,
    /// `WasPasscodeSet` in Manifest.plist.
    #[serde(default = "yes")]
    pub passcode_set: bool,
    /// `ITER` of the keybag: PBKDF2-HMAC-SHA1 rounds (10,000 as commonly reported for iOS 10.2 and later).
    #[serde(default = "default_iterations")]
    pub kdf_iterations: u32,
    /// `DPIC` of the keybag: PBKDF2-HMAC-SHA256 rounds (10,000,000 as commonly reported). Tests set small
    /// counts to stay fast; the protocol is the same.
    #[serde(default = "default_dp_iterations")]
    pub kdf_dp_iterations: u32,
    /// Faults of the backup service.
    #[serde(default)]
    pub faults: BackupFaults,
}

impl Default for BackupProfile {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            generated_total_bytes: 0,
            generated_min_file: default_min_file(),
            generated_max_file: default_max_file(),
            seed: 0,
            password: None,
            passcode_set: true,
            kdf_iterations: default_iterations(),
            kdf_dp_iterations: default_dp_iterations(),
            faults: BackupFaults::default(),
        }
    }
}

fn default_min_file() -> u64 {
    16 << 10
}

fn default_max_file() -> u64 {
    1 << 20
}

fn default_iterations() -> u32 {
    10_000
}

fn default_dp_iterations() -> u32 {
    10_000_000
}

fn yes() -> bool {
    true
}

fn default_mode() -> u32 {
    0o644
}

fn default_passcode_timeout() -> u64 {
    180
}

/// One file of the phone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// The backup domain, e.g. `HomeDomain` or `AppDomainGroup-group.net.whatsapp.WhatsApp.shared`.
    pub domain: String,
    /// The path within the domain, e.g. `Library/SMS/sms.db`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (the file type bits are added).
    #[serde(default = "default_mode")]
    pub mode: u32,
    /// Bump it to make the file change between two runs of the simulator.
    #[serde(default)]
    pub generation: u64,
}

/// Faults of the backup service (`[backup.faults]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupFaults {
    /// Drop the connection once this many bytes of file data have been uploaded.
    #[serde(default)]
    pub disconnect_after_bytes: Option<u64>,
    /// Ask for the passcode after `Backup` (and `ChangePassword`): post
    /// `com.apple.LocalAuthentication.ui.presented` and wait for the control command `enter-passcode`.
    #[serde(default)]
    pub passcode_prompt: bool,
    /// How long the passcode prompt waits before answering ErrorCode 208.
    #[serde(default = "default_passcode_timeout")]
    pub passcode_timeout_secs: u64,
    /// Fail every backup with this MBErrorDomain code right after the `Backup` request.
    #[serde(default)]
    pub error_code: Option<u64>,
    /// The `ErrorDescription` for `error_code` (default: the device's text for the code).
    #[serde(default)]
    pub error_description: Option<String>,
    /// Also upload files under hostile host paths (`<UDID>/../../escape`, `/etc/passwd`, …).
    #[serde(default)]
    pub hostile_names: bool,
    /// The sync lock file is held by another client: AFC lock answers `OP_WOULD_BLOCK`.
    #[serde(default)]
    pub lock_sync_held: bool,
    /// Drop the connection at a stage of the commit: `manifest_db` (half way through uploading Manifest.db)
    /// or `moves` (after the first batch of final moves), so that hosts can be tested at those points.
    #[serde(default)]
    pub disconnect_during: Option<DisconnectStage>,
    /// Drop the connection instead of sending the backup's DeviceLink message number `n` (counted from 0
    /// after the `Backup` request), so that hosts can be cut at every message boundary.
    #[serde(default)]
    pub disconnect_before_message: Option<u64>,
}

/// A stage of a backup at which [`BackupFaults::disconnect_during`] unplugs the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectStage {
    /// Half way through uploading Manifest.db.
    ManifestDb,
    /// After the first batch of final moves is answered.
    Moves,
}

impl Default for BackupFaults {
    fn default() -> Self {
        Self {
            disconnect_after_bytes: None,
            passcode_prompt: false,
            passcode_timeout_secs: default_passcode_timeout(),
            error_code: None,
            error_description: None,
            hostile_names: false,
            lock_sync_held: false,
            disconnect_during: None,
            disconnect_before_message: None,
        }
    }
}

impl BackupProfile {
    /// Checks what serde cannot: sizes in order, paths that make sense, no file listed twice.
    pub fn validate(&self) -> Result<(), String> {
        if self.generated_total_bytes > 0
            && (self.generated_min_file == 0 || self.generated_min_file > self.generated_max_file)
        {
            return Err(format!(
                "backup: generated_min_file ({}) must be at least 1 and at most generated_max_file ({})",
                self.generated_min_file, self.generated_max_file
            ));
        }
        let limit = backupd_proto::keybag::MAX_ITERATIONS;
        for (name, n) in [
            ("kdf_iterations", self.kdf_iterations),
            ("kdf_dp_iterations", self.kdf_dp_iterations),
        ] {
            if n == 0 || n > limit {
                return Err(format!("backup: {name} must be from 1 to {limit}"));
            }
        }
        if self.password.as_deref() == Some("") {
            return Err("backup: password must not be empty".into());
        }
        let mut seen = BTreeSet::new();
        for f in &self.files {
            if f.domain.is_empty() || f.domain.contains('/') {
                return Err(format!("backup.files: bad domain {:?}", f.domain));
            }
            let bad_path = f.path.is_empty()
                || f.path.starts_with('/')
                || f.path.contains('\0')
                || f.path
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..");
            if bad_path {
                return Err(format!("backup.files: bad path {:?}", f.path));
            }
            if f.mode > 0o7777 {
                return Err(format!(
                    "backup.files: mode {:o} of {} has more than permission bits",
                    f.mode, f.path
                ));
            }
            if !seen.insert((f.domain.as_str(), f.path.as_str())) {
                return Err(format!(
                    "backup.files: {} {} listed twice",
                    f.domain, f.path
                ));
            }
        }
        Ok(())
    }
}

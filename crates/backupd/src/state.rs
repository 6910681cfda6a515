//! The daemon's state: the latest view of every phone, kept in `state.json` in the state directory so that a
//! restart keeps the last diagnoses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use backupd_api::{Device, Job, Phase};
use backupd_rules::Diagnosis;

use crate::snapshot::Identity;

/// The file name inside the state directory.
pub const STATE_FILE: &str = "state.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    /// Format version of this file.
    version: u32,
    devices: Vec<Device>,
    /// Ended jobs, newest last; older files have none.
    #[serde(default)]
    jobs: Vec<Job>,
}

/// How many ended jobs the state keeps.
const MAX_JOBS: usize = 200;

/// Every phone the daemon has seen, keyed by normalised UDID.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    devices: BTreeMap<String, Device>,
    jobs: Vec<Job>,
}

fn key(udid: &str) -> String {
    backupd_proto::usbmuxd::normalize_udid(udid)
}

impl Store {
    /// Loads the state, or starts empty when there is none or it cannot be read (it is a cache of what the
    /// phones say, so losing it costs only a re-read).
    pub fn load(state_dir: &Path) -> Self {
        let path = state_dir.join(STATE_FILE);
        let on_disk = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<OnDisk>(&bytes).unwrap_or_else(|e| {
                // Kept aside, not overwritten by the next save: it is the evidence of what went wrong.
                let aside = keep_aside(&path);
                tracing::error!(
                    path = %path.display(),
                    kept_as = aside.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                    error = %e,
                    "the state file is unreadable (truncated or not JSON): it is kept aside and the daemon starts from an empty state; local backups are not affected"
                );
                OnDisk::default()
            }),
            Err(_) => OnDisk::default(),
        };
        let devices = on_disk
            .devices
            .into_iter()
            .map(|mut dev| {
                dev.connected = false;
                dev.phase = Phase::Detached;
                (key(&dev.udid), dev)
            })
            .collect();
        Self {
            path,
            devices,
            jobs: on_disk.jobs,
        }
    }

    /// Writes the state atomically: a crash leaves the old file or the new one, never a mix.
    pub fn save(&self) {
        let data = OnDisk {
            version: 1,
            devices: self.devices.values().cloned().collect(),
            jobs: self.jobs.clone(),
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = self.path.with_extension("json.tmp");
            let bytes = serde_json::to_vec_pretty(&data).map_err(std::io::Error::other)?;
            std::fs::write(&tmp, bytes)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        if let Err(e) = write() {
            tracing::warn!(path = %self.path.display(), error = %e, "failed to save state");
        }
    }

    fn entry(&mut self, udid: &str) -> &mut Device {
        self.devices.entry(key(udid)).or_insert_with(|| Device {
            udid: udid.to_owned(),
            name: None,
            product_type: None,
            product_version: None,
            connected: false,
            phase: Phase::Attached,
            diagnosed_at: None,
            diagnosis: None,
            error: None,
        })
    }

    /// Keeps an ended job in the history (past `MAX_JOBS` jobs, the oldest go first).
    pub fn record_job(&mut self, job: Job) {
        self.jobs.retain(|j| j.id != job.id);
        self.jobs.push(job);
        let excess = self.jobs.len().saturating_sub(MAX_JOBS);
        self.jobs.drain(..excess);
    }

    /// The jobs of earlier runs of the daemon, oldest first.
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// A phone was plugged in.
    pub fn attached(&mut self, udid: &str) {
        let d = self.entry(udid);
        d.udid = udid.to_owned();
        d.connected = true;
        d.phase = Phase::Attached;
        d.error = None;
    }

    /// A phone was unplugged; returns its UDID if it was known and connected.
    pub fn detached(&mut self, k: &str) -> Option<String> {
        let d = self.devices.get_mut(k)?;
        let was = d.connected;
        d.connected = false;
        d.phase = Phase::Detached;
        was.then(|| d.udid.clone())
    }

    /// Marks every phone unplugged, at shutdown.
    pub fn mark_all_detached(&mut self) {
        for d in self.devices.values_mut() {
            d.connected = false;
            d.phase = Phase::Detached;
        }
    }

    /// Sets a phone's phase.
    pub fn set_phase(&mut self, udid: &str, phase: Phase, error: Option<String>) {
        let d = self.entry(udid);
        d.phase = phase;
        d.error = error;
    }

    /// Records what was read of a phone's identity.
    pub fn set_identity(&mut self, udid: &str, identity: Identity) {
        let d = self.entry(udid);
        d.name = identity.name.or(d.name.take());
        d.product_type = identity.product_type.or(d.product_type.take());
        d.product_version = identity.product_version.or(d.product_version.take());
    }

    /// Records a diagnosis; returns whether its findings differ from the previous one's.
    pub fn set_diagnosis(&mut self, udid: &str, diagnosis: Diagnosis, at: i64) -> bool {
        let d = self.entry(udid);
        let ids = |x: &Diagnosis| x.findings.iter().map(|f| f.id).collect::<Vec<_>>();
        let changed = d
            .diagnosis
            .as_ref()
            .is_none_or(|old| ids(old) != ids(&diagnosis));
        d.diagnosis = Some(diagnosis);
        d.diagnosed_at = Some(at);
        changed
    }

    /// Every phone, connected ones first.
    pub fn devices(&self) -> Vec<Device> {
        let mut all: Vec<Device> = self.devices.values().cloned().collect();
        all.sort_by_key(|d| (!d.connected, d.udid.clone()));
        all
    }

    /// One phone by UDID in any spelling.
    pub fn device(&self, udid: &str) -> Option<Device> {
        self.devices.get(&key(udid)).cloned()
    }

    /// The UDID as reported, for a normalised key.
    pub fn udid_of(&self, k: &str) -> Option<String> {
        self.devices.get(k).map(|d| d.udid.clone())
    }
}

/// Renames an unreadable state file to `state.json.bad-<seconds since 1970>`; the new name, or `None` when
/// even that failed.
fn keep_aside(path: &Path) -> Option<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = path.with_extension(format!("json.bad-{secs}"));
    let mut n = 1;
    while aside.exists() {
        aside = path.with_extension(format!("json.bad-{secs}-{n}"));
        n += 1;
    }
    std::fs::rename(path, &aside).ok().map(|()| aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_or_foreign_state_file_is_kept_aside_and_the_daemon_starts_empty() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::load(dir.path());
        store.attached("00008110-001A2B3C4D5E6F01");
        store.save();
        let good = std::fs::read(dir.path().join(STATE_FILE)).expect("read");
        for bad in [&good[..good.len() / 2], b"not json at all", b""] {
            std::fs::write(dir.path().join(STATE_FILE), bad).expect("write");
            let again = Store::load(dir.path());
            assert!(again.devices.is_empty());
            assert!(!dir.path().join(STATE_FILE).exists(), "moved aside");
            again.save();
            assert!(Store::load(dir.path()).devices.is_empty());
        }
        let kept: Vec<Vec<u8>> = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("state.json.bad-")
            })
            .map(|e| std::fs::read(e.path()).expect("read"))
            .collect();
        assert_eq!(kept.len(), 3);
        assert!(kept.contains(&b"not json at all".to_vec()));
        assert!(kept.contains(&good[..good.len() / 2].to_vec()));
    }

    #[test]
    fn state_survives_a_restart_as_detached() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::load(dir.path());
        store.attached("00008110-001A2B3C4D5E6F01");
        store.set_identity(
            "00008110-001A2B3C4D5E6F01",
            Identity {
                name: Some("iPhone di Anna".into()),
                ..Identity::default()
            },
        );
        store.record_job(Job {
            id: 7,
            udid: "00008110-001A2B3C4D5E6F01".into(),
            kind: backupd_api::JobKind::Backup,
            state: backupd_api::JobState::Succeeded,
            full: false,
            started_at: 1,
            finished_at: Some(2),
            progress: backupd_api::JobProgress::default(),
            error: None,
            device_error_code: None,
            verified_files: Some(3),
            verify_method: None,
            password_ok: None,
        });
        store.save();
        let again = Store::load(dir.path());
        assert_eq!(again.jobs().iter().map(|j| j.id).collect::<Vec<_>>(), [7]);
        let d = again
            .device("00008110001a2b3c4d5e6f01")
            .expect("found by any spelling");
        assert_eq!(d.name.as_deref(), Some("iPhone di Anna"));
        assert!(!d.connected);
        assert_eq!(d.phase, Phase::Detached);
    }
}

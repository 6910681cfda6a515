//! The phone's files as a backup sees them: listed or generated from the profile, with deterministic content
//! produced on the fly.
//!
//! A file's bytes depend only on the profile's `seed`, its domain, its path and its generation, so two
//! backups of the same profile hold the same bytes, and a host or a test can compute them again with
//! [`BackupFile::content`]. Nothing is kept in memory: a 2 GB set streams in constant memory.

use std::collections::{BTreeMap, BTreeSet};

use backupd_proto::mobilebackup2::{self, MbFile};

use super::profile::{BackupProfile, FileSpec};

/// The domain of generated files (photos and videos of the camera roll).
pub const GENERATED_DOMAIN: &str = "CameraRollDomain";
/// Generated files per camera-roll folder (`100APPLE`, `101APPLE`, …).
const FILES_PER_FOLDER: u64 = 1000;
/// 2026-01-01T00:00:00Z: the simulated files were made during the year after.
const BASE_TIME: i64 = 1_767_225_600;
/// The user and group id of `mobile`.
const MOBILE_ID: u32 = 501;
/// NSFileProtectionCompleteUntilFirstUserAuthentication, the default class of user files.
const PROTECTION_CLASS: u64 = 3;

/// FNV-1a, 64 bits: a stable hash across runs and platforms.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separate the parts so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's finaliser: a good 64-bit mix of its input.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A file or directory of the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFile {
    /// The backup domain.
    pub domain: String,
    /// The path within the domain.
    pub relative_path: String,
    /// Size in bytes (0 for a directory).
    pub size: u64,
    /// Mode with the type bits (`0o100644`, `0o40755`).
    pub mode: u32,
    /// How many times the file changed since the profile's state.
    pub generation: u64,
    /// Whether it is a directory.
    pub directory: bool,
}

impl BackupFile {
    fn file(domain: &str, relative_path: &str, size: u64, mode: u32, generation: u64) -> Self {
        Self {
            domain: domain.to_owned(),
            relative_path: relative_path.to_owned(),
            size,
            mode: 0o100_000 | (mode & 0o7777),
            generation,
            directory: false,
        }
    }

    fn dir(domain: &str, relative_path: &str) -> Self {
        Self {
            domain: domain.to_owned(),
            relative_path: relative_path.to_owned(),
            size: 0,
            mode: 0o40_755,
            generation: 0,
            directory: true,
        }
    }

    /// The fileID: SHA-1 hex of `domain-relativePath`.
    pub fn file_id(&self) -> String {
        mobilebackup2::file_id(&self.domain, &self.relative_path)
    }

    /// `Files.flags`: 1 for a file, 2 for a directory.
    pub fn flags(&self) -> i64 {
        if self.directory {
            mobilebackup2::FLAG_DIRECTORY
        } else {
            mobilebackup2::FLAG_FILE
        }
    }

    fn path_hash(&self) -> u64 {
        fnv1a(&[self.domain.as_bytes(), self.relative_path.as_bytes()])
    }

    /// The `MBFile` record Manifest.db holds for it.
    pub fn record(&self) -> MbFile {
        let h = self.path_hash();
        let birth = BASE_TIME + (h % 31_536_000) as i64;
        // Every change moves the modification time on by an hour, so hosts and the phone see it.
        let modified = birth + (self.generation as i64).saturating_mul(3600);
        MbFile {
            relative_path: self.relative_path.clone(),
            target: None,
            size: self.size,
            mode: self.mode,
            user_id: MOBILE_ID,
            group_id: MOBILE_ID,
            inode: 100_000 + (h >> 40),
            birth,
            last_modified: modified,
            last_status_change: modified,
            flags: 0,
            protection_class: if self.directory { 0 } else { PROTECTION_CLASS },
            encryption_key: None,
        }
    }

    /// Where the file is on the phone, as the upload stream names it (`/.ba/mobile/…`).
    pub fn device_path(&self) -> String {
        let (kind, rest) = self.domain.split_once('-').unwrap_or((&self.domain, ""));
        let root = match kind {
            "HomeDomain" | "CameraRollDomain" | "MediaDomain" => String::new(),
            "AppDomain" => format!("Containers/Data/Application/{rest}/"),
            "AppDomainGroup" => format!("Containers/Shared/AppGroup/{rest}/"),
            "AppDomainPlugin" => format!("Containers/Data/PluginKitPlugin/{rest}/"),
            "SysContainerDomain" => format!("Containers/Data/System/{rest}/"),
            "SysSharedContainerDomain" => format!("Containers/Shared/SystemGroup/{rest}/"),
            _ => format!("{}/", self.domain),
        };
        format!("/.ba/mobile/{root}{}", self.relative_path)
    }

    /// The file's bytes, produced on demand.
    pub fn content(&self, seed: u64) -> Content {
        if super::whatsapp::is_chat_storage(&self.domain, &self.relative_path) {
            return Content::fixed(super::whatsapp::chat_storage(seed, self.generation));
        }
        let key = fnv1a(&[
            &seed.to_le_bytes(),
            self.domain.as_bytes(),
            self.relative_path.as_bytes(),
            &self.generation.to_le_bytes(),
        ]);
        Content {
            key,
            position: 0,
            len: self.size,
            fixed: None,
        }
    }
}

/// The bytes of a file, produced as they are read. Byte `i` depends only on the file's key and `i`.
#[derive(Debug, Clone)]
pub struct Content {
    key: u64,
    position: u64,
    len: u64,
    /// Real bytes instead of generated ones (WhatsApp's chat database).
    fixed: Option<std::sync::Arc<Vec<u8>>>,
}

impl Content {
    fn fixed(bytes: std::sync::Arc<Vec<u8>>) -> Self {
        Self {
            key: 0,
            position: 0,
            len: bytes.len() as u64,
            fixed: Some(bytes),
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> u64 {
        self.len - self.position
    }

    /// Fills `buf` with the next bytes; gives how many (0 at the end).
    pub fn fill(&mut self, buf: &mut [u8]) -> usize {
        let n = usize::try_from(self.remaining())
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if let Some(bytes) = &self.fixed {
            let start = usize::try_from(self.position).unwrap_or(usize::MAX);
            buf[..n].copy_from_slice(&bytes[start..start + n]);
            self.position += n as u64;
            return n;
        }
        let mut i = 0;
        while i < n {
            let pos = self.position + i as u64;
            let word = mix(self.key ^ (pos / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes();
            let offset = (pos % 8) as usize;
            let take = (8 - offset).min(n - i);
            buf[i..i + take].copy_from_slice(&word[offset..offset + take]);
            i += take;
        }
        self.position += n as u64;
        n
    }
}

impl std::io::Read for Content {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Ok(self.fill(buf))
    }
}

/// The generated camera-roll files, one after the other.
#[derive(Debug, Clone)]
struct Generated {
    seed: u64,
    total: u64,
    min: u64,
    max: u64,
    produced: u64,
    index: u64,
}

impl Iterator for Generated {
    type Item = (String, u64);

    fn next(&mut self) -> Option<(String, u64)> {
        let left = self.total - self.produced;
        if left == 0 {
            return None;
        }
        let span = self.max - self.min + 1;
        let size = (self.min
            + mix(self.seed ^ self.index.wrapping_mul(0xa076_1d64_78bd_642f)) % span)
            .min(left);
        let folder = 100 + self.index / FILES_PER_FOLDER;
        let ext = if self.index % 7 == 6 { "MOV" } else { "HEIC" };
        let path = format!(
            "Media/DCIM/{folder}APPLE/IMG_{:04}.{ext}",
            self.index % 10_000
        );
        self.produced += size;
        self.index += 1;
        Some((path, size))
    }
}

/// Everything the phone backs up: the profile's files, the generated ones, and changes made since.
#[derive(Debug, Clone)]
pub struct FileSet {
    seed: u64,
    listed: Vec<FileSpec>,
    generated: Generated,
    touches: BTreeMap<(String, String), u64>,
}

impl FileSet {
    /// The set a profile describes.
    pub fn from_profile(profile: &BackupProfile) -> Self {
        Self {
            seed: profile.seed,
            listed: profile.files.clone(),
            generated: Generated {
                seed: profile.seed,
                total: profile.generated_total_bytes,
                min: profile.generated_min_file.max(1),
                max: profile
                    .generated_max_file
                    .max(profile.generated_min_file.max(1)),
                produced: 0,
                index: 0,
            },
            touches: BTreeMap::new(),
        }
    }

    /// The same set after files changed: each `(domain, path)` moved on by that many generations.
    pub fn with_touches(mut self, touches: &BTreeMap<(String, String), u64>) -> Self {
        self.touches = touches.clone();
        self
    }

    /// The seed of the contents.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn touched(&self, domain: &str, path: &str) -> u64 {
        self.touches
            .get(&(domain.to_owned(), path.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// The regular files, listed ones first.
    pub fn files(&self) -> impl Iterator<Item = BackupFile> + '_ {
        let listed = self.listed.iter().map(|f| {
            let generation = f.generation + self.touched(&f.domain, &f.path);
            // WhatsApp's chat database is a real SQLite file: its size is its own, not the profile's.
            let size = if super::whatsapp::is_chat_storage(&f.domain, &f.path) {
                super::whatsapp::chat_storage(self.seed, generation).len() as u64
            } else {
                f.size
            };
            BackupFile::file(&f.domain, &f.path, size, f.mode, generation)
        });
        let generated = self.generated.clone().map(|(path, size)| {
            let generation = self.touched(GENERATED_DOMAIN, &path);
            BackupFile::file(GENERATED_DOMAIN, &path, size, 0o644, generation)
        });
        listed.chain(generated)
    }

    /// The directories holding the files (each parent folder, the domain roots excluded), sorted.
    pub fn directories(&self) -> Vec<BackupFile> {
        let mut dirs = BTreeSet::new();
        let mut add_parents = |domain: &str, path: &str| {
            let mut end = 0;
            while let Some(i) = path[end..].find('/') {
                end += i;
                dirs.insert((domain.to_owned(), path[..end].to_owned()));
                end += 1;
            }
        };
        for f in &self.listed {
            add_parents(&f.domain, &f.path);
        }
        let generated = self.generated.clone().count() as u64;
        for folder in 0..generated.div_ceil(FILES_PER_FOLDER) {
            add_parents(
                GENERATED_DOMAIN,
                &format!("Media/DCIM/{}APPLE/x", 100 + folder),
            );
        }
        dirs.into_iter()
            .map(|(d, p)| BackupFile::dir(&d, &p))
            .collect()
    }

    /// Bytes of file data in the set.
    pub fn total_bytes(&self) -> u64 {
        self.files().map(|f| f.size).sum()
    }

    /// The file at `domain`/`path`, if the set has it.
    pub fn find(&self, domain: &str, path: &str) -> Option<BackupFile> {
        self.files()
            .find(|f| f.domain == domain && f.relative_path == path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn profile() -> BackupProfile {
        BackupProfile {
            files: vec![FileSpec {
                domain: "HomeDomain".into(),
                path: "Library/SMS/sms.db".into(),
                size: 100_003,
                mode: 0o644,
                generation: 0,
            }],
            generated_total_bytes: 5_000_000,
            generated_min_file: 10_000,
            generated_max_file: 400_000,
            seed: 9,
            ..BackupProfile::default()
        }
    }

    #[test]
    fn content_is_deterministic_and_random_access_agrees_with_streaming() {
        let f = FileSet::from_profile(&profile())
            .files()
            .next()
            .expect("a file");
        let mut whole = Vec::new();
        f.content(9).read_to_end(&mut whole).expect("read");
        assert_eq!(whole.len(), 100_003);
        let mut pieces = Vec::new();
        let mut c = f.content(9);
        let mut buf = [0u8; 13];
        loop {
            let n = c.fill(&mut buf);
            if n == 0 {
                break;
            }
            pieces.extend_from_slice(&buf[..n]);
        }
        assert_eq!(pieces, whole);
        let mut other = Vec::new();
        f.content(10).read_to_end(&mut other).expect("read");
        assert_ne!(other, whole, "another seed gives other bytes");
    }

    #[test]
    fn generated_set_hits_its_total_and_bounds() {
        let set = FileSet::from_profile(&profile());
        let generated: Vec<_> = set
            .files()
            .filter(|f| f.domain == GENERATED_DOMAIN)
            .collect();
        assert_eq!(generated.iter().map(|f| f.size).sum::<u64>(), 5_000_000);
        assert!(
            generated[..generated.len() - 1]
                .iter()
                .all(|f| (10_000..=400_000).contains(&f.size))
        );
        let ids: BTreeSet<String> = set.files().map(|f| f.file_id()).collect();
        assert_eq!(ids.len(), set.files().count(), "file ids are unique");
        assert!(
            set.directories()
                .iter()
                .any(|d| d.relative_path == "Media/DCIM/100APPLE")
        );
    }

    #[test]
    fn a_touch_changes_bytes_and_modification_time() {
        let set = FileSet::from_profile(&profile());
        let before = set.find("HomeDomain", "Library/SMS/sms.db").expect("file");
        let mut touches = BTreeMap::new();
        touches.insert(("HomeDomain".into(), "Library/SMS/sms.db".into()), 1);
        let after = set
            .with_touches(&touches)
            .find("HomeDomain", "Library/SMS/sms.db")
            .expect("file");
        assert_ne!(before.record().last_modified, after.record().last_modified);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        before.content(9).read_to_end(&mut a).expect("read");
        after.content(9).read_to_end(&mut b).expect("read");
        assert_ne!(a, b);
    }

    #[test]
    fn device_paths_follow_the_domain() {
        let f = BackupFile::file(
            "AppDomainGroup-group.net.whatsapp.WhatsApp.shared",
            "ChatStorage.sqlite",
            1,
            0o644,
            0,
        );
        assert_eq!(
            f.device_path(),
            "/.ba/mobile/Containers/Shared/AppGroup/group.net.whatsapp.WhatsApp.shared/ChatStorage.sqlite"
        );
    }
}

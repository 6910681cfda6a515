//! The phone's side of backup encryption: its class keys, the keybag it seals with the backup password, a
//! key per file, and the encrypted Manifest.db (`../shared/protocol-wave2.md` §2).
//!
//! A real phone draws every key at random and remembers it. The simulator keeps no key store: it derives
//! each key from a per-phone secret with HMAC-SHA256, so that a file that did not change keeps its key from
//! one backup to the next (an incremental backup lists it again without sending it) and a restarted
//! simulator still opens the backups it made. What leaves the phone is the same: a fresh-looking key per
//! file, wrapped with its class key; class keys wrapped with the password-derived key.

use std::io::{Read, Write};
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use backupd_proto::backup_cipher::{Decryptor, Encryptor, Padding, manifest_db_padding};
use backupd_proto::keybag::{ClassKeys, KEY_LEN, Keybag, MANIFEST_KEY_CLASS, SealParams};

use super::files::BackupFile;

/// The protection classes of a backup keybag (1 to 11, as iOS has them).
const CLASSES: std::ops::RangeInclusive<u32> = 1..=11;

/// The encryption state of a phone between two changes of its password.
pub(crate) struct PhoneKeys {
    secret: Zeroizing<[u8; KEY_LEN]>,
    class_keys: ClassKeys,
}

impl std::fmt::Debug for PhoneKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneKeys").finish_non_exhaustive()
    }
}

fn hmac(secret: &[u8], parts: &[&[u8]]) -> [u8; KEY_LEN] {
    // HMAC accepts keys of any length: the error arm is unreachable.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return [0; KEY_LEN];
    };
    for p in parts {
        mac.update(&(p.len() as u64).to_le_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

impl PhoneKeys {
    /// The keys of a phone; `epoch` counts how often encryption was turned on, so each time gets new keys.
    pub(crate) fn new(udid: &str, seed: u64, epoch: u64) -> Self {
        let secret = Zeroizing::new(hmac(
            b"backupd-sim phone secret",
            &[udid.as_bytes(), &seed.to_le_bytes(), &epoch.to_le_bytes()],
        ));
        let class_keys = ClassKeys::from_keys(
            CLASSES.map(|c| (c, hmac(secret.as_ref(), &[b"class", &c.to_le_bytes()]))),
        );
        Self { secret, class_keys }
    }

    /// Seals the class keys into a keybag for `password`, with fresh salts. Slow: PBKDF2 with the profile's
    /// iteration counts.
    pub(crate) fn seal(&self, password: &str, iterations: u32, dp_iterations: u32) -> Keybag {
        let mut rng = rand::thread_rng();
        let mut uuid = [0u8; 16];
        let mut hmck = [0u8; 40];
        let mut salt = vec![0u8; 20];
        let mut dp_salt = vec![0u8; 20];
        rng.fill_bytes(&mut uuid);
        rng.fill_bytes(&mut hmck);
        rng.fill_bytes(&mut salt);
        rng.fill_bytes(&mut dp_salt);
        self.class_keys.seal(
            password.as_bytes(),
            &SealParams {
                uuid,
                hmck,
                salt,
                iterations,
                dp_salt: Some(dp_salt),
                dp_iterations: Some(dp_iterations),
            },
        )
    }

    /// The key of one generation of a file.
    pub(crate) fn file_key(&self, file: &BackupFile) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(hmac(
            self.secret.as_ref(),
            &[
                b"file",
                file.file_id().as_bytes(),
                &file.generation.to_le_bytes(),
            ],
        ))
    }

    /// The file's `EncryptionKey` as `MBFile` stores it: its class, then its key wrapped with that class key.
    /// `None` for directories and empty files, which the phone does not encrypt.
    pub(crate) fn encryption_key(&self, file: &BackupFile, class: u32) -> Option<Vec<u8>> {
        if file.directory || file.size == 0 {
            return None;
        }
        self.class_keys
            .wrap_prefixed(class, &self.file_key(file))
            .ok()
    }

    /// A fresh key for one backup's Manifest.db, and its `ManifestKey`.
    pub(crate) fn new_manifest_key(&self) -> (Zeroizing<[u8; KEY_LEN]>, Vec<u8>) {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::thread_rng().fill_bytes(key.as_mut());
        let wrapped = self
            .class_keys
            .wrap_prefixed(MANIFEST_KEY_CLASS, &key)
            .unwrap_or_default();
        (key, wrapped)
    }

    /// The Manifest.db key of a backup this phone made, from its `ManifestKey`; `None` when these keys did
    /// not make it (another phone, or before encryption was turned off and on again).
    pub(crate) fn open_manifest_key(
        &self,
        manifest_key: &[u8],
    ) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        self.class_keys.unwrap_prefixed(manifest_key, None).ok()
    }
}

/// Encrypts or decrypts `from` into `to` (created), as the phone does Manifest.db: AES-256-CBC, zero IV,
/// PKCS#7 padding (iphone_backup_decrypt 0.11 refuses a Manifest.db without it). A Manifest.db that a host
/// re-encrypted without padding (pymobiledevice3 does) is still read: see [`manifest_db_padding`].
pub(crate) fn crypt_file(
    from: &Path,
    to: &Path,
    key: &[u8; KEY_LEN],
    encrypt: bool,
) -> std::io::Result<()> {
    let padding = if encrypt {
        Padding::Pkcs7
    } else {
        manifest_db_padding(std::fs::metadata(from)?.len())
    };
    let mut input = std::fs::File::open(from)?;
    let mut output = std::fs::File::create(to)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(buf.len() + 32);
    let mut enc = encrypt.then(|| Encryptor::new(key, padding));
    let mut dec = (!encrypt).then(|| Decryptor::new(key, padding));
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.clear();
        if let Some(e) = enc.as_mut() {
            e.update(&buf[..n], &mut out);
        }
        if let Some(d) = dec.as_mut() {
            d.update(&buf[..n], &mut out);
        }
        output.write_all(&out)?;
    }
    out.clear();
    let end = match (enc, dec) {
        (Some(e), _) => e.finish(&mut out),
        (_, Some(d)) => d.finish(&mut out),
        _ => Ok(()),
    };
    end.map_err(std::io::Error::other)?;
    output.write_all(&out)?;
    output.sync_all()
}

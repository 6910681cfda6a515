//! Reading an encrypted backup with its password: checking the password against the keybag, decrypting
//! `Manifest.db` to a private temporary file, and decrypting single files, all in bounded memory.
//!
//! The phone encrypted everything (`../shared/protocol-wave2.md` §2): this host only ever reads. Key
//! derivation is slow by design (millions of PBKDF2 rounds): every function here blocks, and the daemon
//! calls them on a blocking thread. The password lives in a [`Password`], zeroed when dropped and never
//! shown by `Debug`; nothing here writes it anywhere.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use backupd_proto::backup_cipher::{self, CipherError, Decryptor, Padding};
use backupd_proto::keybag::{ClassKeys, KEY_LEN, Keybag, KeybagError};
use backupd_proto::mobilebackup2::{MANIFEST_DB, MANIFEST_PLIST, MbFile};
use zeroize::Zeroizing;

/// The largest `Manifest.plist` read (real ones are tens of KiB).
const MAX_MANIFEST_PLIST: u64 = 16 << 20;
/// Bytes read from disk at a time.
const CHUNK: usize = 1 << 20;

/// A backup password. Zeroed on drop; `Debug` shows nothing.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(password: String) -> Self {
        Self(Zeroizing::new(password))
    }

    /// The password as UTF-8 bytes, as the phone's key derivation takes it.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Errors reading an encrypted backup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptedError {
    /// The password does not open the backup's keybag.
    #[error("wrong backup password")]
    WrongPassword,
    /// The backup is not encrypted (no keybag, or `IsEncrypted` false).
    #[error("the backup is not encrypted")]
    NotEncrypted,
    /// `Manifest.plist` is missing, unreadable or lacks what decryption needs.
    #[error("Manifest.plist: {0}")]
    Manifest(String),
    /// The keybag is malformed, or a key does not unwrap.
    #[error("the backup's keys: {0}")]
    Keybag(KeybagError),
    /// A file does not decrypt (damaged, or not the length its record gives).
    #[error("{what}: {why}")]
    Decrypt {
        /// Which file.
        what: String,
        /// Why.
        why: String,
    },
    /// Reading or writing a file failed.
    #[error("{what}: {source}")]
    Io {
        /// Which file.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EncryptedError {
    let what = what.into();
    move |source| EncryptedError::Io { what, source }
}

impl From<KeybagError> for EncryptedError {
    fn from(e: KeybagError) -> Self {
        match e {
            KeybagError::WrongPassword => Self::WrongPassword,
            other => Self::Keybag(other),
        }
    }
}

/// What `Manifest.plist` says about a backup's encryption.
#[derive(Debug, Clone)]
pub struct KeybagInfo {
    /// The parsed keybag.
    pub keybag: Keybag,
    /// `ManifestKey`: the class and wrapped key of `Manifest.db`.
    pub manifest_key: Vec<u8>,
}

impl KeybagInfo {
    /// The keybag's UUID in hex: names which password the backup is sealed with, without saying it.
    pub fn id(&self) -> String {
        self.keybag
            .uuid
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Reads the keybag and `ManifestKey` of the backup in `folder`.
pub fn keybag_info(folder: &Path) -> Result<KeybagInfo, EncryptedError> {
    let path = folder.join(MANIFEST_PLIST);
    let file = std::fs::File::open(&path).map_err(io(MANIFEST_PLIST))?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_PLIST + 1)
        .read_to_end(&mut bytes)
        .map_err(io(MANIFEST_PLIST))?;
    if bytes.len() as u64 > MAX_MANIFEST_PLIST {
        return Err(EncryptedError::Manifest("larger than 16 MiB".into()));
    }
    let d = backupd_proto::plist_util::parse(&bytes)
        .ok()
        .and_then(plist::Value::into_dictionary)
        .ok_or_else(|| EncryptedError::Manifest("not a property list".into()))?;
    if d.get("IsEncrypted").and_then(plist::Value::as_boolean) != Some(true) {
        return Err(EncryptedError::NotEncrypted);
    }
    let bag = d
        .get("BackupKeyBag")
        .and_then(plist::Value::as_data)
        .ok_or_else(|| EncryptedError::Manifest("no BackupKeyBag".into()))?;
    let manifest_key = d
        .get("ManifestKey")
        .and_then(plist::Value::as_data)
        .ok_or_else(|| EncryptedError::Manifest("no ManifestKey".into()))?
        .to_vec();
    Ok(KeybagInfo {
        keybag: Keybag::parse(bag)?,
        manifest_key,
    })
}

/// Checks a password against the backup in `folder` without decrypting any file: one key derivation and
/// the unwrap of the class keys. Slow: call it on a blocking thread.
pub fn check_password(folder: &Path, password: &Password) -> Result<KeybagInfo, EncryptedError> {
    let info = keybag_info(folder)?;
    let keys = info.keybag.unlock(password.as_bytes())?;
    // The keybag opened; ManifestKey must open too, or the backup is damaged rather than the password wrong.
    keys.unwrap_prefixed(&info.manifest_key, None)?;
    Ok(info)
}

/// An encrypted backup opened with its password: the class keys and a private decrypted copy of
/// `Manifest.db`, removed when this is dropped.
#[derive(Debug)]
pub struct EncryptedBackup {
    folder: PathBuf,
    keys: ClassKeys,
    keybag_id: String,
    // Declared last: dropped (and deleted) after everything that might read it.
    plain_db: tempfile::TempDir,
}

impl EncryptedBackup {
    /// Opens the backup in `folder`: checks the password, then decrypts `Manifest.db` in 1 MiB chunks into a
    /// temporary folder only this user can read. Slow: call it on a blocking thread.
    pub fn open(folder: &Path, password: &Password) -> Result<Self, EncryptedError> {
        let info = keybag_info(folder)?;
        let keys = info.keybag.unlock(password.as_bytes())?;
        let db_key = keys.unwrap_prefixed(&info.manifest_key, None)?;
        // tempfile makes the folder with mode 0700: the decrypted inventory is readable by this user only.
        let plain_db = tempfile::Builder::new()
            .prefix("backupd-manifest-")
            .tempdir()
            .map_err(io("a temporary folder"))?;
        let src = folder.join(MANIFEST_DB);
        let len = std::fs::metadata(&src).map_err(io(MANIFEST_DB))?.len();
        let input = std::fs::File::open(&src).map_err(io(MANIFEST_DB))?;
        let out = plain_db.path().join(MANIFEST_DB);
        let output = std::fs::File::create(&out).map_err(io("the decrypted Manifest.db"))?;
        decrypt_stream(
            input,
            output,
            &db_key,
            backup_cipher::manifest_db_padding(len),
        )
        .map_err(|e| match e {
            StreamError::Io(e) => EncryptedError::Io {
                what: MANIFEST_DB.into(),
                source: e,
            },
            StreamError::Cipher(e) => EncryptedError::Decrypt {
                what: MANIFEST_DB.into(),
                why: e.to_string(),
            },
        })?;
        Ok(Self {
            folder: folder.to_owned(),
            keys,
            keybag_id: info.id(),
            plain_db,
        })
    }

    /// The decrypted `Manifest.db` (read it read-only).
    pub fn manifest_db_path(&self) -> PathBuf {
        self.plain_db.path().join(MANIFEST_DB)
    }

    /// The keybag's UUID in hex.
    pub fn keybag_id(&self) -> &str {
        &self.keybag_id
    }

    /// The key of one file, from its record; `None` for a file stored in clear (empty, directory, link).
    pub fn file_key(
        &self,
        record: &MbFile,
    ) -> Result<Option<Zeroizing<[u8; KEY_LEN]>>, EncryptedError> {
        let Some(wrapped) = &record.encryption_key else {
            return Ok(None);
        };
        let class = u32::try_from(record.protection_class).ok();
        Ok(Some(self.keys.unwrap_prefixed(wrapped, class)?))
    }

    /// Decrypts the file `file_id` into `out`, checking that its plain length is the `Size` of `record`;
    /// gives that length. A file with no key is copied as it is.
    pub fn decrypt_file(
        &self,
        file_id: &str,
        record: &MbFile,
        out: &mut dyn Write,
    ) -> Result<u64, EncryptedError> {
        if file_id.len() != 40 || !file_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EncryptedError::Decrypt {
                what: file_id.to_owned(),
                why: "not a fileID".into(),
            });
        }
        let path = self.folder.join(&file_id[..2]).join(file_id);
        let input = std::fs::File::open(&path).map_err(io(file_id))?;
        let written = match self.file_key(record)? {
            Some(key) => decrypt_stream(input, out, &key, Padding::Pkcs7).map_err(|e| match e {
                StreamError::Io(e) => EncryptedError::Io {
                    what: file_id.to_owned(),
                    source: e,
                },
                StreamError::Cipher(e) => EncryptedError::Decrypt {
                    what: file_id.to_owned(),
                    why: e.to_string(),
                },
            })?,
            None => std::io::copy(&mut { input }, out).map_err(io(file_id))?,
        };
        if written != record.size {
            return Err(EncryptedError::Decrypt {
                what: file_id.to_owned(),
                why: format!("{written} bytes decrypted, its record says {}", record.size),
            });
        }
        Ok(written)
    }
}

enum StreamError {
    Io(std::io::Error),
    Cipher(CipherError),
}

/// Decrypts `input` into `out` in 1 MiB chunks; gives the plain length.
fn decrypt_stream(
    mut input: impl Read,
    mut out: impl Write,
    key: &[u8; KEY_LEN],
    padding: Padding,
) -> Result<u64, StreamError> {
    let mut dec = Decryptor::new(key, padding);
    let mut buf = vec![0u8; CHUNK];
    let mut plain = Zeroizing::new(Vec::with_capacity(CHUNK + 32));
    let mut written = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(StreamError::Io)?;
        plain.clear();
        if n == 0 {
            dec.finish(&mut plain).map_err(StreamError::Cipher)?;
            out.write_all(&plain).map_err(StreamError::Io)?;
            written += plain.len() as u64;
            break;
        }
        dec.update(&buf[..n], &mut plain);
        out.write_all(&plain).map_err(StreamError::Io)?;
        written += plain.len() as u64;
    }
    out.flush().map_err(StreamError::Io)?;
    Ok(written)
}

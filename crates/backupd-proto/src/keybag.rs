//! The backup keybag (`Manifest.plist` › `BackupKeyBag`) and the keys it guards.
//!
//! An encrypted backup is encrypted by the phone: every protection class has a 32-byte class key, wrapped
//! (RFC 3394) with a key derived from the backup password; every file has its own key, wrapped with its
//! class key and stored in its `MBFile` record; `Manifest.db` is encrypted with the `ManifestKey`, wrapped the
//! same way. See `../shared/protocol-wave2.md` §2.3–2.6.
//!
//! The keybag is a sequence of `tag[4] | u32 BE length | value` records: a header (`VERS`, `TYPE`, `UUID`,
//! `HMCK`, `WRAP`, `SALT`, `ITER`, `DPWT`, `DPIC`, `DPSL`), then one record per class, each starting with its
//! own `UUID`. As iphone_backup_decrypt does, the first `UUID` and the first `WRAP` belong to the header and
//! every later `UUID` starts a class.
//!
//! The password is turned into the key-encryption key by PBKDF2-HMAC-SHA256 (`DPSL`, `DPIC`) and then
//! PBKDF2-HMAC-SHA1 (`SALT`, `ITER`); a keybag without `DPSL`/`DPIC` (before iOS 10.2) skips the first round.
//! A wrong password shows as a failed RFC 3394 integrity check, so a password is checked without decrypting
//! any file. Key derivation is slow by design: callers run it off any async runtime.

use std::collections::BTreeMap;
use std::fmt;

use aes_kw::KekAes256;
use zeroize::{Zeroize, Zeroizing};

/// The largest keybag this crate reads (real ones are about 2 KiB).
pub const MAX_KEYBAG_LEN: usize = 64 * 1024;
/// The most class records a keybag may hold (iOS has 11 classes).
pub const MAX_CLASSES: usize = 32;
/// The most PBKDF2 iterations accepted from a keybag, per round: far above any real one, low enough that a
/// hostile keybag cannot make a check run for days.
pub const MAX_ITERATIONS: u32 = 100_000_000;
/// Length of an AES-256 key.
pub const KEY_LEN: usize = 32;
/// Length of an RFC 3394-wrapped AES-256 key.
pub const WRAPPED_KEY_LEN: usize = 40;
/// Length of a wrapped key with its 4-byte little-endian class prefix (`ManifestKey`, `EncryptionKey`).
pub const PREFIXED_KEY_LEN: usize = 4 + WRAPPED_KEY_LEN;
/// `WRAP` bit: the class key is wrapped with the password-derived key.
pub const WRAP_PASSCODE: u32 = 2;
/// `TYPE` of a backup keybag.
pub const TYPE_BACKUP: u32 = 1;
/// The protection class of `ManifestKey` (NSFileProtectionNone).
pub const MANIFEST_KEY_CLASS: u32 = 4;

/// Errors reading a keybag or using its keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeybagError {
    /// The keybag is larger than [`MAX_KEYBAG_LEN`].
    #[error("keybag of {0} bytes is larger than the limit")]
    TooLarge(usize),
    /// A record runs past the end or a value has the wrong length.
    #[error("malformed keybag: {0}")]
    Malformed(&'static str),
    /// A required header field is missing.
    #[error("keybag has no {0}")]
    Missing(&'static str),
    /// An iteration count is zero or above [`MAX_ITERATIONS`].
    #[error("keybag asks for {0} iterations")]
    Iterations(u32),
    /// The password does not open the keybag.
    #[error("wrong backup password")]
    WrongPassword,
    /// A wrapped key names a class the keybag has no key for.
    #[error("no key for protection class {0}")]
    NoClassKey(u32),
    /// A wrapped key does not unwrap under its class key: the backup is damaged.
    #[error("a wrapped key does not unwrap with its class key")]
    BadWrappedKey,
}

/// One class record.
#[derive(Clone, PartialEq, Eq)]
pub struct ClassRecord {
    /// `UUID` of the class key.
    pub uuid: Vec<u8>,
    /// `CLAS`: the protection class.
    pub class: u32,
    /// `WRAP`: how the class key is wrapped ([`WRAP_PASSCODE`] for a backup keybag).
    pub wrap: u32,
    /// `KTYP`: the key type.
    pub key_type: Option<u32>,
    /// `WPKY`: the wrapped class key.
    pub wrapped_key: Vec<u8>,
    /// `PBKY`: the public key of an asymmetric class.
    pub public_key: Option<Vec<u8>>,
}

impl fmt::Debug for ClassRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassRecord")
            .field("class", &self.class)
            .field("wrap", &self.wrap)
            .finish_non_exhaustive()
    }
}

/// A parsed backup keybag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keybag {
    /// `VERS`.
    pub version: u32,
    /// `TYPE` ([`TYPE_BACKUP`]).
    pub kind: u32,
    /// `UUID` of the keybag.
    pub uuid: Vec<u8>,
    /// `HMCK`, kept verbatim.
    pub hmck: Option<Vec<u8>>,
    /// `WRAP` of the keybag.
    pub wrap: u32,
    /// `SALT` of the PBKDF2-HMAC-SHA1 round.
    pub salt: Vec<u8>,
    /// `ITER` of the PBKDF2-HMAC-SHA1 round.
    pub iterations: u32,
    /// `DPWT`, kept verbatim.
    pub dpwt: Option<u32>,
    /// `DPIC`: iterations of the PBKDF2-HMAC-SHA256 round (iOS 10.2 and later).
    pub dp_iterations: Option<u32>,
    /// `DPSL`: salt of the PBKDF2-HMAC-SHA256 round.
    pub dp_salt: Option<Vec<u8>>,
    /// The class records, in order.
    pub classes: Vec<ClassRecord>,
}

fn be_u32(v: &[u8]) -> Result<u32, KeybagError> {
    let b: [u8; 4] = v
        .try_into()
        .map_err(|_| KeybagError::Malformed("an integer field is not 4 bytes"))?;
    Ok(u32::from_be_bytes(b))
}

fn check_iterations(n: u32) -> Result<u32, KeybagError> {
    if n == 0 || n > MAX_ITERATIONS {
        Err(KeybagError::Iterations(n))
    } else {
        Ok(n)
    }
}

/// A class record being read.
#[derive(Default)]
struct PartialClass {
    uuid: Vec<u8>,
    class: Option<u32>,
    wrap: Option<u32>,
    key_type: Option<u32>,
    wrapped_key: Option<Vec<u8>>,
    public_key: Option<Vec<u8>>,
}

impl PartialClass {
    fn finish(self) -> Result<ClassRecord, KeybagError> {
        Ok(ClassRecord {
            uuid: self.uuid,
            class: self.class.ok_or(KeybagError::Missing("CLAS in a class"))?,
            wrap: self.wrap.ok_or(KeybagError::Missing("WRAP in a class"))?,
            key_type: self.key_type,
            wrapped_key: self.wrapped_key.ok_or(KeybagError::Missing("WPKY"))?,
            public_key: self.public_key,
        })
    }
}

impl Keybag {
    /// Reads a keybag. Every length is checked before it is used.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeybagError> {
        if bytes.len() > MAX_KEYBAG_LEN {
            return Err(KeybagError::TooLarge(bytes.len()));
        }
        let mut version = None;
        let mut kind = None;
        let mut uuid = None;
        let mut hmck = None;
        let mut wrap = None;
        let mut salt = None;
        let mut iterations = None;
        let mut dpwt = None;
        let mut dp_iterations = None;
        let mut dp_salt = None;
        let mut classes = Vec::new();
        let mut current: Option<PartialClass> = None;
        let mut rest = bytes;
        while !rest.is_empty() {
            if rest.len() < 8 {
                return Err(KeybagError::Malformed("a record header is cut short"));
            }
            let (head, tail) = rest.split_at(8);
            let tag: [u8; 4] = [head[0], head[1], head[2], head[3]];
            let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
            if len > tail.len() {
                return Err(KeybagError::Malformed("a record runs past the end"));
            }
            let (value, tail) = tail.split_at(len);
            rest = tail;
            match &tag {
                b"UUID" if uuid.is_none() => uuid = Some(value.to_vec()),
                b"UUID" => {
                    if let Some(done) = current.take() {
                        classes.push(done.finish()?);
                    }
                    if classes.len() >= MAX_CLASSES {
                        return Err(KeybagError::Malformed("too many classes"));
                    }
                    current = Some(PartialClass {
                        uuid: value.to_vec(),
                        ..PartialClass::default()
                    });
                }
                b"WRAP" if current.is_none() && wrap.is_none() => wrap = Some(be_u32(value)?),
                _ if current.is_some() => {
                    let c = current.as_mut().ok_or(KeybagError::Malformed("no class"))?;
                    match &tag {
                        b"CLAS" => c.class = Some(be_u32(value)?),
                        b"WRAP" => c.wrap = Some(be_u32(value)?),
                        b"KTYP" => c.key_type = Some(be_u32(value)?),
                        b"WPKY" => c.wrapped_key = Some(value.to_vec()),
                        b"PBKY" => c.public_key = Some(value.to_vec()),
                        _ => {}
                    }
                }
                b"VERS" => version = Some(be_u32(value)?),
                b"TYPE" => kind = Some(be_u32(value)?),
                b"HMCK" => hmck = Some(value.to_vec()),
                b"SALT" => salt = Some(value.to_vec()),
                b"ITER" => iterations = Some(check_iterations(be_u32(value)?)?),
                b"DPWT" => dpwt = Some(be_u32(value)?),
                b"DPIC" => dp_iterations = Some(check_iterations(be_u32(value)?)?),
                b"DPSL" => dp_salt = Some(value.to_vec()),
                // Unknown header tags are kept out of the way, as the decryptors do.
                _ => {}
            }
        }
        if let Some(done) = current.take() {
            classes.push(done.finish()?);
        }
        if dp_iterations.is_some() != dp_salt.is_some() {
            return Err(KeybagError::Malformed("DPIC and DPSL go together"));
        }
        Ok(Self {
            version: version.ok_or(KeybagError::Missing("VERS"))?,
            kind: kind.ok_or(KeybagError::Missing("TYPE"))?,
            uuid: uuid.ok_or(KeybagError::Missing("UUID"))?,
            hmck,
            wrap: wrap.unwrap_or(0),
            salt: salt.ok_or(KeybagError::Missing("SALT"))?,
            iterations: iterations.ok_or(KeybagError::Missing("ITER"))?,
            dpwt,
            dp_iterations,
            dp_salt,
            classes,
        })
    }

    /// The keybag's bytes, header first, then the classes, in the order the decryptors expect.
    pub fn to_bytes(&self) -> Vec<u8> {
        fn put(out: &mut Vec<u8>, tag: &[u8; 4], value: &[u8]) {
            out.extend_from_slice(tag);
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value);
        }
        let mut out = Vec::new();
        put(&mut out, b"VERS", &self.version.to_be_bytes());
        put(&mut out, b"TYPE", &self.kind.to_be_bytes());
        put(&mut out, b"UUID", &self.uuid);
        if let Some(h) = &self.hmck {
            put(&mut out, b"HMCK", h);
        }
        put(&mut out, b"WRAP", &self.wrap.to_be_bytes());
        put(&mut out, b"SALT", &self.salt);
        put(&mut out, b"ITER", &self.iterations.to_be_bytes());
        if let Some(d) = self.dpwt {
            put(&mut out, b"DPWT", &d.to_be_bytes());
        }
        if let (Some(n), Some(s)) = (self.dp_iterations, &self.dp_salt) {
            put(&mut out, b"DPIC", &n.to_be_bytes());
            put(&mut out, b"DPSL", s);
        }
        for c in &self.classes {
            put(&mut out, b"UUID", &c.uuid);
            put(&mut out, b"CLAS", &c.class.to_be_bytes());
            put(&mut out, b"WRAP", &c.wrap.to_be_bytes());
            if let Some(k) = c.key_type {
                put(&mut out, b"KTYP", &k.to_be_bytes());
            }
            put(&mut out, b"WPKY", &c.wrapped_key);
            if let Some(p) = &c.public_key {
                put(&mut out, b"PBKY", p);
            }
        }
        out
    }

    /// The key-encryption key for a password: the slow part of opening a backup.
    pub fn derive_key(&self, password: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        derive_key(
            password,
            self.dp_salt.as_deref().zip(self.dp_iterations),
            &self.salt,
            self.iterations,
        )
    }

    /// Opens the keybag with a password: every passcode-wrapped class key, or
    /// [`KeybagError::WrongPassword`].
    pub fn unlock(&self, password: &[u8]) -> Result<ClassKeys, KeybagError> {
        let kek = self.derive_key(password);
        self.unlock_with(&kek)
    }

    /// Opens the keybag with an already derived key-encryption key.
    pub fn unlock_with(&self, kek: &[u8; KEY_LEN]) -> Result<ClassKeys, KeybagError> {
        let kek = KekAes256::from(*kek);
        let mut keys = BTreeMap::new();
        for c in self.classes.iter().filter(|c| c.wrap & WRAP_PASSCODE != 0) {
            if c.wrapped_key.len() != WRAPPED_KEY_LEN {
                return Err(KeybagError::Malformed(
                    "a wrapped class key is not 40 bytes",
                ));
            }
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            // The unwrap's integrity check is the password check: any failure means a wrong password.
            kek.unwrap(&c.wrapped_key, key.as_mut())
                .map_err(|_| KeybagError::WrongPassword)?;
            keys.insert(c.class, key);
        }
        if keys.is_empty() {
            return Err(KeybagError::Missing("a password-wrapped class key"));
        }
        Ok(ClassKeys { keys })
    }
}

/// PBKDF2-HMAC-SHA256 (when the keybag has `DPSL`/`DPIC`), then PBKDF2-HMAC-SHA1.
pub fn derive_key(
    password: &[u8],
    double_protection: Option<(&[u8], u32)>,
    salt: &[u8],
    iterations: u32,
) -> Zeroizing<[u8; KEY_LEN]> {
    let mut first = Zeroizing::new([0u8; KEY_LEN]);
    let input: &[u8] = match double_protection {
        Some((dp_salt, dp_iterations)) => {
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, dp_salt, dp_iterations, first.as_mut());
            first.as_ref()
        }
        None => password,
    };
    let mut kek = Zeroizing::new([0u8; KEY_LEN]);
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(input, salt, iterations, kek.as_mut());
    kek
}

/// The unwrapped class keys of a keybag. `Debug` never shows them; they are zeroed on drop.
#[derive(Clone)]
pub struct ClassKeys {
    keys: BTreeMap<u32, Zeroizing<[u8; KEY_LEN]>>,
}

impl fmt::Debug for ClassKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassKeys")
            .field("classes", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ClassKeys {
    /// Class keys given directly (the phone's side, which holds them).
    pub fn from_keys(keys: impl IntoIterator<Item = (u32, [u8; KEY_LEN])>) -> Self {
        Self {
            keys: keys
                .into_iter()
                .map(|(c, mut k)| {
                    let z = Zeroizing::new(k);
                    k.zeroize();
                    (c, z)
                })
                .collect(),
        }
    }

    /// The protection classes held.
    pub fn classes(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    /// Unwraps a key stored with its class: `ManifestKey` or a file's `EncryptionKey` (4-byte little-endian
    /// class, then 40 bytes). `fallback_class` is used when the prefix names a class the keybag lacks (the
    /// `MBFile`'s `ProtectionClass`).
    pub fn unwrap_prefixed(
        &self,
        prefixed: &[u8],
        fallback_class: Option<u32>,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, KeybagError> {
        if prefixed.len() != PREFIXED_KEY_LEN {
            return Err(KeybagError::Malformed("a wrapped key is not 44 bytes"));
        }
        let class = u32::from_le_bytes([prefixed[0], prefixed[1], prefixed[2], prefixed[3]]);
        let class_key = self
            .keys
            .get(&class)
            .or_else(|| fallback_class.and_then(|c| self.keys.get(&c)))
            .ok_or(KeybagError::NoClassKey(class))?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        KekAes256::from(**class_key)
            .unwrap(&prefixed[4..], key.as_mut())
            .map_err(|_| KeybagError::BadWrappedKey)?;
        Ok(key)
    }

    /// Wraps a key with a class key and prefixes the class, as the phone stores `EncryptionKey` and
    /// `ManifestKey`.
    pub fn wrap_prefixed(&self, class: u32, key: &[u8; KEY_LEN]) -> Result<Vec<u8>, KeybagError> {
        let class_key = self
            .keys
            .get(&class)
            .ok_or(KeybagError::NoClassKey(class))?;
        let mut out = Vec::with_capacity(PREFIXED_KEY_LEN);
        out.extend_from_slice(&class.to_le_bytes());
        out.extend_from_slice(&wrap(class_key, key));
        Ok(out)
    }

    /// A keybag that holds these class keys, each wrapped with the key derived from `password`.
    pub fn seal(&self, password: &[u8], params: &SealParams) -> Keybag {
        let kek = derive_key(
            password,
            params.dp_salt.as_deref().zip(params.dp_iterations),
            &params.salt,
            params.iterations,
        );
        let classes = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, (class, key))| ClassRecord {
                uuid: params.class_uuid(i),
                class: *class,
                wrap: WRAP_PASSCODE,
                key_type: Some(0),
                wrapped_key: wrap(&kek, key).to_vec(),
                public_key: None,
            })
            .collect();
        Keybag {
            version: 3,
            kind: TYPE_BACKUP,
            uuid: params.uuid.to_vec(),
            hmck: Some(params.hmck.to_vec()),
            wrap: 1,
            salt: params.salt.clone(),
            iterations: params.iterations,
            dpwt: params.dp_iterations.map(|_| 1),
            dp_iterations: params.dp_iterations,
            dp_salt: params.dp_salt.clone(),
            classes,
        }
    }
}

/// What a phone chooses when it seals a keybag: salts, iteration counts, identifiers.
#[derive(Debug, Clone)]
pub struct SealParams {
    /// The keybag's UUID.
    pub uuid: [u8; 16],
    /// `HMCK` (wrapped HMAC key; opaque to hosts).
    pub hmck: [u8; 40],
    /// `SALT`.
    pub salt: Vec<u8>,
    /// `ITER`.
    pub iterations: u32,
    /// `DPSL`.
    pub dp_salt: Option<Vec<u8>>,
    /// `DPIC`.
    pub dp_iterations: Option<u32>,
}

impl SealParams {
    fn class_uuid(&self, index: usize) -> Vec<u8> {
        let mut u = self.uuid;
        u[15] ^= (index as u8).wrapping_add(1);
        u.to_vec()
    }
}

/// RFC 3394 wrap of a 32-byte key.
fn wrap(kek: &[u8; KEY_LEN], key: &[u8; KEY_LEN]) -> [u8; WRAPPED_KEY_LEN] {
    let mut out = [0u8; WRAPPED_KEY_LEN];
    // Wrapping 32 bytes into 40 cannot fail: the lengths are fixed and valid.
    if KekAes256::from(*kek).wrap(key, &mut out).is_err() {
        out = [0u8; WRAPPED_KEY_LEN];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SealParams {
        SealParams {
            uuid: [7; 16],
            hmck: [9; 40],
            salt: vec![1; 20],
            iterations: 3,
            dp_salt: Some(vec![2; 20]),
            dp_iterations: Some(5),
        }
    }

    fn keys() -> ClassKeys {
        ClassKeys::from_keys((1..=11).map(|c| (c, [c as u8; KEY_LEN])))
    }

    #[test]
    fn a_sealed_keybag_round_trips_and_opens_with_its_password_only() {
        let bag = keys().seal(b"hunter2", &params());
        let parsed = Keybag::parse(&bag.to_bytes()).expect("parse");
        assert_eq!(parsed, bag);
        assert_eq!(parsed.classes.len(), 11);
        let opened = parsed.unlock(b"hunter2").expect("right password");
        assert_eq!(opened.classes().count(), 11);
        assert_eq!(
            parsed.unlock(b"hunter3").map(|_| ()),
            Err(KeybagError::WrongPassword)
        );
    }

    #[test]
    fn prefixed_keys_carry_a_little_endian_class() {
        let k = keys();
        let wrapped = k.wrap_prefixed(3, &[0x5a; KEY_LEN]).expect("wrap");
        assert_eq!(&wrapped[..4], &[3, 0, 0, 0]);
        assert_eq!(
            *k.unwrap_prefixed(&wrapped, None).expect("unwrap"),
            [0x5a; KEY_LEN]
        );
        let mut damaged = wrapped.clone();
        damaged[10] ^= 1;
        assert_eq!(
            k.unwrap_prefixed(&damaged, None).map(|_| ()),
            Err(KeybagError::BadWrappedKey)
        );
        let mut unknown = wrapped;
        unknown[0] = 40;
        assert_eq!(
            k.unwrap_prefixed(&unknown, None).map(|_| ()),
            Err(KeybagError::NoClassKey(40))
        );
        assert!(k.unwrap_prefixed(&unknown, Some(3)).is_ok());
    }

    #[test]
    fn rfc3394_test_vector_256_bit_kek() {
        // RFC 3394 §4.6: 256 bits of key data wrapped with a 256-bit KEK.
        let kek: [u8; 32] = core::array::from_fn(|i| i as u8);
        let data: [u8; 32] = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
            0x0c, 0x0d, 0x0e, 0x0f,
        ];
        let expected: [u8; 40] = [
            0x28, 0xc9, 0xf4, 0x04, 0xc4, 0xb8, 0x10, 0xf4, 0xcb, 0xcc, 0xb3, 0x5c, 0xfb, 0x87,
            0xf8, 0x26, 0x3f, 0x57, 0x86, 0xe2, 0xd8, 0x0e, 0xd3, 0x26, 0xcb, 0xc7, 0xf0, 0xe7,
            0x1a, 0x99, 0xf4, 0x3b, 0xfb, 0x98, 0x8b, 0x9b, 0x7a, 0x02, 0xdd, 0x21,
        ];
        assert_eq!(wrap(&kek, &data), expected);
    }

    #[test]
    fn hostile_keybags_are_refused_not_trusted() {
        let good = keys().seal(b"pw", &params()).to_bytes();
        for cut in [1, 7, 9, good.len() - 1] {
            assert!(Keybag::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge_len = good.clone();
        huge_len[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Keybag::parse(&huge_len).is_err());
        let mut bag = keys().seal(b"pw", &params());
        bag.iterations = MAX_ITERATIONS + 1;
        assert_eq!(
            Keybag::parse(&bag.to_bytes()),
            Err(KeybagError::Iterations(MAX_ITERATIONS + 1))
        );
        assert!(matches!(
            Keybag::parse(&vec![0u8; MAX_KEYBAG_LEN + 1]),
            Err(KeybagError::TooLarge(_))
        ));
    }

    #[test]
    fn a_keybag_before_ios_10_2_derives_with_sha1_only() {
        let mut p = params();
        p.dp_salt = None;
        p.dp_iterations = None;
        let bag = keys().seal(b"pw", &p);
        let parsed = Keybag::parse(&bag.to_bytes()).expect("parse");
        assert!(parsed.dp_iterations.is_none());
        assert!(parsed.unlock(b"pw").is_ok());
        let mut one_round = [0u8; KEY_LEN];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(b"pw", &p.salt, p.iterations, &mut one_round);
        assert_eq!(*parsed.derive_key(b"pw"), one_round);
    }
}

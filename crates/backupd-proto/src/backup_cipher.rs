//! The ciphers of an encrypted backup, as streams: AES-256-CBC with a zero IV and PKCS#7 padding, as the
//! phone encrypts every file (so the stored file is longer than the recorded `Size`) and `Manifest.db`.
//! iphone_backup_decrypt 0.11 refuses a Manifest.db without valid padding; pymobiledevice3 re-encrypts one
//! without it, which [`manifest_db_padding`] tells apart by length.
//!
//! Both directions take any split of their input and keep at most one block back, so a file of any size is
//! encrypted or decrypted in constant memory.

use aes::Aes256;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, generic_array::GenericArray};
use zeroize::Zeroizing;

use crate::keybag::KEY_LEN;

/// AES block length.
pub const BLOCK: usize = 16;

/// Errors of the backup ciphers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CipherError {
    /// The ciphertext is not a whole number of blocks.
    #[error("encrypted data of {0} bytes is not a whole number of 16-byte blocks")]
    NotBlockAligned(u64),
    /// The last block's PKCS#7 padding is not valid: wrong key or damaged file.
    #[error("the padding of the last block is not valid (wrong key or damaged file)")]
    BadPadding,
}

/// The stored length of a file of `size` plain bytes: PKCS#7 always adds 1 to 16 bytes.
pub fn padded_len(size: u64) -> u64 {
    size + BLOCK as u64 - size % BLOCK as u64
}

/// Whether an encrypted Manifest.db of `len` bytes is padded. A SQLite file is a whole number of pages of at
/// least 512 bytes, so padding shows as 16 bytes past a multiple of 512.
pub fn manifest_db_padding(len: u64) -> Padding {
    if len % 512 == BLOCK as u64 {
        Padding::Pkcs7
    } else {
        Padding::None
    }
}

type Enc = cbc::Encryptor<Aes256>;
type Dec = cbc::Decryptor<Aes256>;

const ZERO_IV: [u8; BLOCK] = [0; BLOCK];

/// Whether the stream is PKCS#7 padded (files) or not (`Manifest.db`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// PKCS#7: 1 to 16 bytes, always present.
    Pkcs7,
    /// None: the input must be a whole number of blocks.
    None,
}

/// Encrypts a stream.
pub struct Encryptor {
    cipher: Enc,
    pending: Vec<u8>,
    padding: Padding,
    total: u64,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor").finish_non_exhaustive()
    }
}

impl Encryptor {
    /// An encryptor with this key and a zero IV.
    pub fn new(key: &[u8; KEY_LEN], padding: Padding) -> Self {
        Self {
            cipher: Enc::new(key.into(), &ZERO_IV.into()),
            pending: Vec::with_capacity(BLOCK),
            padding,
            total: 0,
        }
    }

    /// Encrypts what it can of `input`, appending to `out`.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        self.total += input.len() as u64;
        if !self.pending.is_empty() {
            let take = (BLOCK - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() < BLOCK {
                return;
            }
            let block = std::mem::take(&mut self.pending);
            self.encrypt_into(&block, out);
        }
        let whole = input.len() - input.len() % BLOCK;
        self.encrypt_into(&input[..whole], out);
        self.pending.extend_from_slice(&input[whole..]);
    }

    fn encrypt_into(&mut self, blocks: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(blocks);
        for block in out[start..].chunks_exact_mut(BLOCK) {
            self.cipher
                .encrypt_block_mut(GenericArray::from_mut_slice(block));
        }
    }

    /// Ends the stream: the padded last block, or an error when an unpadded stream was not block-aligned.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CipherError> {
        match self.padding {
            Padding::Pkcs7 => {
                let n = BLOCK - self.pending.len();
                let mut block = std::mem::take(&mut self.pending);
                block.resize(BLOCK, n as u8);
                self.encrypt_into(&block, out);
                Ok(())
            }
            Padding::None if self.pending.is_empty() => Ok(()),
            Padding::None => Err(CipherError::NotBlockAligned(self.total)),
        }
    }
}

/// Decrypts a stream.
pub struct Decryptor {
    cipher: Dec,
    /// Bytes of an incomplete block, then (for padded streams) the last whole block, held back until the end.
    pending: Zeroizing<Vec<u8>>,
    padding: Padding,
    total: u64,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor").finish_non_exhaustive()
    }
}

impl Decryptor {
    /// A decryptor with this key and a zero IV.
    pub fn new(key: &[u8; KEY_LEN], padding: Padding) -> Self {
        Self {
            cipher: Dec::new(key.into(), &ZERO_IV.into()),
            pending: Zeroizing::new(Vec::with_capacity(2 * BLOCK)),
            padding,
            total: 0,
        }
    }

    /// Decrypts what it can of `input`, appending plain bytes to `out`. A padded stream keeps its last block
    /// back until [`Decryptor::finish`], which removes the padding.
    pub fn update(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.total += input.len() as u64;
        let mut input = input;
        // Complete the pending partial block first.
        let partial = self.pending.len() % BLOCK;
        if partial != 0 {
            let take = (BLOCK - partial).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
        }
        let keep = match self.padding {
            Padding::Pkcs7 => BLOCK,
            Padding::None => 0,
        };
        // Every whole pending block but the last `keep` bytes can go now.
        let pending_whole = self.pending.len() - self.pending.len() % BLOCK;
        let mut_blocks_in_input = input.len() - input.len() % BLOCK;
        let available = pending_whole + mut_blocks_in_input;
        let emit = available.saturating_sub(keep);
        let from_pending = emit.min(pending_whole);
        if from_pending > 0 {
            let blocks: Vec<u8> = self.pending.drain(..from_pending).collect();
            self.decrypt_into(&blocks, out);
        }
        let from_input = emit - from_pending;
        self.decrypt_into(&input[..from_input], out);
        self.pending.extend_from_slice(&input[from_input..]);
    }

    fn decrypt_into(&mut self, blocks: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(blocks);
        for block in out[start..].chunks_exact_mut(BLOCK) {
            self.cipher
                .decrypt_block_mut(GenericArray::from_mut_slice(block));
        }
    }

    /// Ends the stream: checks the length and removes the padding of a padded stream.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CipherError> {
        if !self.total.is_multiple_of(BLOCK as u64) {
            return Err(CipherError::NotBlockAligned(self.total));
        }
        match self.padding {
            Padding::None => Ok(()),
            Padding::Pkcs7 => {
                if self.pending.len() != BLOCK {
                    return Err(CipherError::BadPadding);
                }
                let block: Zeroizing<Vec<u8>> = Zeroizing::new(self.pending.drain(..).collect());
                let mut plain = Zeroizing::new(Vec::with_capacity(BLOCK));
                self.decrypt_into(&block, &mut plain);
                let n = usize::from(plain[BLOCK - 1]);
                if n == 0 || n > BLOCK || plain[BLOCK - n..].iter().any(|&b| usize::from(b) != n) {
                    return Err(CipherError::BadPadding);
                }
                out.extend_from_slice(&plain[..BLOCK - n]);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encrypt(key: &[u8; 32], data: &[u8], padding: Padding, split: usize) -> Vec<u8> {
        let mut e = Encryptor::new(key, padding);
        let mut out = Vec::new();
        for chunk in data.chunks(split.max(1)) {
            e.update(chunk, &mut out);
        }
        e.finish(&mut out).expect("finish");
        out
    }

    fn decrypt(
        key: &[u8; 32],
        data: &[u8],
        padding: Padding,
        split: usize,
    ) -> Result<Vec<u8>, CipherError> {
        let mut d = Decryptor::new(key, padding);
        let mut out = Vec::new();
        for chunk in data.chunks(split.max(1)) {
            d.update(chunk, &mut out);
        }
        d.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn nist_sp800_38a_cbc_aes256_first_block_with_zero_iv() {
        // F.2.5 uses IV 000102…0f; with a zero IV the first block is plain ECB: F.1.5's first block.
        let key: [u8; 32] = [
            0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae, 0xf0, 0x85, 0x7d,
            0x77, 0x81, 0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61, 0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3,
            0x09, 0x14, 0xdf, 0xf4,
        ];
        let plain = [
            0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96, 0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93,
            0x17, 0x2a,
        ];
        let expected = [
            0xf3, 0xee, 0xd1, 0xbd, 0xb5, 0xd2, 0xa0, 0x3c, 0x06, 0x4b, 0x5a, 0x7e, 0x3d, 0xb1,
            0x81, 0xf8,
        ];
        assert_eq!(encrypt(&key, &plain, Padding::None, 16), expected);
    }

    #[test]
    fn any_split_round_trips_and_padding_is_always_added() {
        let key = [3u8; 32];
        for size in [0usize, 1, 15, 16, 17, 31, 32, 33, 1000] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + 1) as u8).collect();
            let reference = encrypt(&key, &data, Padding::Pkcs7, size + 1);
            assert_eq!(
                reference.len() as u64,
                padded_len(size as u64),
                "size {size}"
            );
            for split in [1, 5, 16, 17, 64] {
                assert_eq!(encrypt(&key, &data, Padding::Pkcs7, split), reference);
                assert_eq!(
                    decrypt(&key, &reference, Padding::Pkcs7, split),
                    Ok(data.clone())
                );
            }
        }
    }

    #[test]
    fn unpadded_streams_must_be_block_aligned() {
        let key = [4u8; 32];
        let data = vec![9u8; 4096];
        let enc = encrypt(&key, &data, Padding::None, 1000);
        assert_eq!(enc.len(), 4096);
        assert_eq!(decrypt(&key, &enc, Padding::None, 7), Ok(data));
        let mut e = Encryptor::new(&key, Padding::None);
        e.update(&[1; 10], &mut Vec::new());
        assert_eq!(
            e.finish(&mut Vec::new()),
            Err(CipherError::NotBlockAligned(10))
        );
    }

    #[test]
    fn a_wrong_key_or_a_cut_file_is_an_error_not_garbage() {
        let data = b"the chats of a WhatsApp user".to_vec();
        let enc = encrypt(&[5; 32], &data, Padding::Pkcs7, 8);
        // A wrong key gives valid padding only by chance (about 1 in 256: key [6; 32] is such a chance, and
        // decrypts to 31 bytes of garbage, which is why callers also compare the length with `Size`).
        assert_eq!(
            decrypt(&[7; 32], &enc, Padding::Pkcs7, 8),
            Err(CipherError::BadPadding)
        );
        let lucky = decrypt(&[6; 32], &enc, Padding::Pkcs7, 8).expect("valid padding by chance");
        assert_ne!(lucky.len(), data.len());
        assert!(matches!(
            decrypt(&[5; 32], &enc[..enc.len() - 3], Padding::Pkcs7, 8),
            Err(CipherError::NotBlockAligned(_))
        ));
        assert_eq!(
            decrypt(&[5; 32], &[], Padding::Pkcs7, 8),
            Err(CipherError::BadPadding)
        );
    }
}

//! The Noise primitives the ts2021 handshake and records are built from: BLAKE2s hashing,
//! HMAC/HKDF over BLAKE2s, and ChaCha20-Poly1305 with Tailscale's nonce layout.
//!
//! Tailscale's records put the counter big-endian in the last 8 nonce bytes (the Noise spec
//! says little-endian); the handshake only ever uses nonce 0, where both agree, so one
//! nonce function serves both.

use blake2::{Blake2s256, Digest};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce, Tag};

/// Length of a BLAKE2s-256 digest, a chaining key and a cipher key.
pub(crate) const HASH_LEN: usize = 32;
/// Length of the Poly1305 authentication tag.
pub(crate) const TAG_LEN: usize = 16;
/// BLAKE2s block size, which HMAC pads keys to.
const BLOCK_LEN: usize = 64;

/// BLAKE2s-256 of the concatenation of `parts`.
pub(crate) fn hash(parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut h = Blake2s256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// HMAC-BLAKE2s (RFC 2104) with a 32-byte key, which is all Noise's HKDF ever passes.
fn hmac(key: &[u8; HASH_LEN], parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut ipad = [0x36u8; BLOCK_LEN];
    let mut opad = [0x5cu8; BLOCK_LEN];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let mut inner = Blake2s256::new();
    inner.update(ipad);
    for p in parts {
        inner.update(p);
    }
    let inner: [u8; HASH_LEN] = inner.finalize().into();
    hash(&[&opad, &inner])
}

/// Noise `HKDF(chaining_key, input_key_material, 2)`.
pub(crate) fn hkdf2(ck: &[u8; HASH_LEN], ikm: &[u8]) -> ([u8; HASH_LEN], [u8; HASH_LEN]) {
    let temp = hmac(ck, &[ikm]);
    let out1 = hmac(&temp, &[&[1u8]]);
    let out2 = hmac(&temp, &[&out1, &[2u8]]);
    (out1, out2)
}

/// The 12-byte nonce: four zero bytes, then the counter big-endian.
pub(crate) fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// A ChaCha20-Poly1305 key with Tailscale's nonce layout.
#[derive(Clone)]
pub(crate) struct Aead(ChaCha20Poly1305);

impl Aead {
    pub(crate) fn new(key: &[u8; HASH_LEN]) -> Self {
        Self(ChaCha20Poly1305::new(Key::from_slice(key)))
    }

    /// Encrypts `buf` in place and returns its tag.
    pub(crate) fn seal(&self, counter: u64, ad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let n = nonce(counter);
        // ChaCha20-Poly1305 fails only past 2^38 bytes per message; records are ≤ 4077.
        match self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(&n), ad, buf)
        {
            Ok(tag) => tag.into(),
            Err(_) => [0; TAG_LEN],
        }
    }

    /// Decrypts `buf` in place after checking `tag`; false when authentication fails.
    pub(crate) fn open(&self, counter: u64, ad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        if tag.len() != TAG_LEN {
            return false;
        }
        let n = nonce(counter);
        self.0
            .decrypt_in_place_detached(Nonce::from_slice(&n), ad, buf, Tag::from_slice(tag))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231-style sanity: HMAC must differ from a plain keyed hash and depend on the key.
    #[test]
    fn hmac_depends_on_key_and_data() {
        let a = hmac(&[1; 32], &[b"x"]);
        let b = hmac(&[2; 32], &[b"x"]);
        let c = hmac(&[1; 32], &[b"y"]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, hmac(&[1; 32], &[b"", b"x"]));
    }

    #[test]
    fn nonce_is_big_endian_in_last_eight_bytes() {
        assert_eq!(nonce(1), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            nonce(0x0102_0304_0506_0708),
            [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let k = Aead::new(&[7; 32]);
        let mut buf = *b"hello";
        let tag = k.seal(3, b"ad", &mut buf);
        assert_ne!(&buf, b"hello");
        let mut c = buf;
        assert!(!k.open(4, b"ad", &mut c.clone(), &tag));
        assert!(!k.open(3, b"other", &mut c.clone(), &tag));
        assert!(k.open(3, b"ad", &mut c, &tag));
        assert_eq!(&c, b"hello");
    }
}

//! Remembers which key secrets (pre-auth keys at registration, API keys on every admin call)
//! already passed bcrypt, so a reusable key pays bcrypt (cost 10, tens of ms of CPU) once,
//! not on every use. One cache type serves both, each user holding its own table.
//!
//! The cache never decides whether a key is valid: the caller still reads the key's row on
//! every use (so used, expired, revoked and deleted keys are refused at once) and
//! asks the cache only "was this secret already verified against exactly this stored hash?".
//! Entries are keyed by the public prefix and hold the stored hash bytes and a keyed digest
//! of the secret, never the secret itself; the digest key is random per process, so the
//! table is useless outside it. A changed hash (a key deleted and another created under the
//! same prefix) is a miss.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use blake2::{Blake2s256, Digest};
use rand::RngCore as _;

/// Entries kept before the table is cleared; one per distinct key in use.
const MAX_ENTRIES: usize = 4096;

type Digest32 = [u8; 32];

/// Verified (stored hash, secret digest) pairs by key prefix.
#[derive(Debug)]
pub struct SecretCache {
    digest_key: [u8; 32],
    verified: Mutex<HashMap<String, (Vec<u8>, Digest32)>>,
}

impl Default for SecretCache {
    fn default() -> Self {
        let mut digest_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut digest_key);
        Self {
            digest_key,
            verified: Mutex::default(),
        }
    }
}

/// Compares without stopping at the first difference, so timing says nothing about how
/// much of a guessed secret was right.
fn same(a: &Digest32, b: &Digest32) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl SecretCache {
    fn digest(&self, secret: &str) -> Digest32 {
        Blake2s256::new()
            .chain_update(self.digest_key)
            .chain_update(secret.as_bytes())
            .finalize()
            .into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Vec<u8>, Digest32)>> {
        self.verified.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `secret` was already verified against exactly `hash` for `prefix`.
    pub fn hit(&self, prefix: &str, hash: &[u8], secret: &str) -> bool {
        let d = self.digest(secret);
        self.lock()
            .get(prefix)
            .is_some_and(|(h, s)| h.as_slice() == hash && same(s, &d))
    }

    /// Records a successful bcrypt verification.
    pub fn insert(&self, prefix: &str, hash: &[u8], secret: &str) {
        let d = self.digest(secret);
        let mut m = self.lock();
        if m.len() >= MAX_ENTRIES && !m.contains_key(prefix) {
            m.clear();
        }
        m.insert(prefix.to_owned(), (hash.to_vec(), d));
    }

    /// Drops what is known about `prefix` (the key is gone, expired or revoked).
    pub fn forget(&self, prefix: &str) {
        self.lock().remove(prefix);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_needs_the_same_secret_and_the_same_stored_hash() {
        let c = SecretCache::default();
        c.insert("p", b"hash1", "secret");
        assert!(c.hit("p", b"hash1", "secret"));
        assert!(!c.hit("p", b"hash1", "secreT"));
        assert!(!c.hit("p", b"hash2", "secret"));
        assert!(!c.hit("q", b"hash1", "secret"));
        c.forget("p");
        assert!(!c.hit("p", b"hash1", "secret"));
    }

    #[test]
    fn digests_are_keyed_per_cache() {
        let (a, b) = (SecretCache::default(), SecretCache::default());
        assert_ne!(a.digest("secret"), b.digest("secret"));
        assert_eq!(a.digest("secret"), a.digest("secret"));
    }

    #[test]
    fn the_table_stays_bounded() {
        let c = SecretCache::default();
        for i in 0..=MAX_ENTRIES {
            c.insert(&format!("p{i}"), b"h", "s");
        }
        assert!(c.len() <= MAX_ENTRIES);
    }
}

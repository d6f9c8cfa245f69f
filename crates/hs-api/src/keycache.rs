//! Remembers which presented API keys already passed bcrypt, so an authenticated request
//! does not pay ~75 ms of bcrypt every time (measured in `benches/api.rs`).
//!
//! The stored row is still read on every request, so expiring or deleting a key takes effect
//! at once: the cache only answers "this secret matches this stored hash", keyed by a fast
//! digest of the secret and the exact stored hash bytes. A changed hash is a miss.

use std::collections::HashMap;

use blake2::{Blake2s256, Digest};
use tokio::sync::Mutex;

/// Entries kept before the cache is cleared; one per distinct key in use, so this is far
/// above any real installation's number of API keys.
const MAX_ENTRIES: usize = 1024;

/// A stored bcrypt hash and the digest of the secret verified against it.
type Verified = (Vec<u8>, [u8; 32]);

/// Verified (stored hash, secret digest) pairs by key prefix.
#[derive(Default)]
pub(crate) struct KeyCache {
    verified: Mutex<HashMap<String, Verified>>,
}

fn digest(secret: &str) -> [u8; 32] {
    Blake2s256::digest(secret.as_bytes()).into()
}

/// Equal without an early exit, so the time taken does not reveal how many leading bytes of
/// a guessed secret's digest match the verified one.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl KeyCache {
    /// Whether `secret` was already verified against exactly `hash` for `prefix`.
    pub(crate) async fn hit(&self, prefix: &str, hash: &[u8], secret: &str) -> bool {
        let d = digest(secret);
        self.verified
            .lock()
            .await
            .get(prefix)
            .is_some_and(|(h, s)| h.as_slice() == hash && ct_eq(s, &d))
    }

    /// Records a successful bcrypt verification.
    pub(crate) async fn insert(&self, prefix: &str, hash: &[u8], secret: &str) {
        let mut m = self.verified.lock().await;
        if m.len() >= MAX_ENTRIES {
            m.clear();
        }
        m.insert(prefix.to_owned(), (hash.to_vec(), digest(secret)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_compares_every_byte() {
        let a = [7u8; 32];
        assert!(ct_eq(&a, &a));
        for i in [0, 15, 31] {
            let mut b = a;
            b[i] ^= 1;
            assert!(!ct_eq(&a, &b), "byte {i}");
        }
    }

    #[tokio::test]
    async fn hit_needs_same_secret_and_same_stored_hash() {
        let c = KeyCache::default();
        c.insert("p", b"hash1", "secret").await;
        assert!(c.hit("p", b"hash1", "secret").await);
        assert!(!c.hit("p", b"hash1", "other").await);
        assert!(!c.hit("p", b"hash2", "secret").await);
        assert!(!c.hit("q", b"hash1", "secret").await);
    }
}

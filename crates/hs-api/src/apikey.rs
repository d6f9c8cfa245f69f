//! API-key and pre-auth-key text formats, generation and hashing.
//!
//! New keys are `hskey-api-<12 hex prefix>-<64 hex secret>` (`hskey-auth-` for pre-auth
//! keys); only the prefix and a bcrypt hash of the secret are stored, so a database dump does
//! not hand out working keys. Keys from Go Headscale before 0.28 are `<7 char prefix>.<secret>`
//! and still authenticate.

use rand::Rng;

/// Text before the prefix of a current API key.
pub const API_KEY_PREFIX: &str = "hskey-api-";
/// Text before the prefix of a current pre-auth key.
pub const AUTH_KEY_PREFIX: &str = "hskey-auth-";
/// Length of the public prefix (Go Headscale `apiKeyPrefixLength`).
const PREFIX_LEN: usize = 12;
/// Length of the secret (Go Headscale `apiKeyHashLength`).
const SECRET_LEN: usize = 64;
/// Length of a legacy key's prefix (Go Headscale `legacyAPIPrefixLength`).
const LEGACY_PREFIX_LEN: usize = 7;
/// bcrypt work factor; Go's `bcrypt.DefaultCost`, so hashes written by either server verify
/// in the other.
pub const BCRYPT_COST: u32 = 10;

/// A freshly generated key: the text shown once, and what is stored.
#[derive(Clone)]
pub struct GeneratedKey {
    /// The full key text, shown to the operator once.
    pub full: String,
    /// The public prefix stored in clear.
    pub prefix: String,
    /// bcrypt hash of the secret.
    pub hash: Vec<u8>,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Why a key could not be generated or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// The text is not a key of the expected shape.
    #[error("malformed key: {0}")]
    Malformed(&'static str),
    /// bcrypt failed.
    #[error("hashing key: {0}")]
    Hash(String),
}

fn random_hex<R: Rng>(rng: &mut R, len: usize) -> String {
    let mut bytes = vec![0u8; len.div_ceil(2)];
    rng.fill(bytes.as_mut_slice());
    let mut s = hex::encode(bytes);
    s.truncate(len);
    s
}

/// Generates a key with the given type prefix (`API_KEY_PREFIX` or `AUTH_KEY_PREFIX`).
pub fn generate<R: Rng>(rng: &mut R, kind: &str) -> Result<GeneratedKey, KeyFormatError> {
    let prefix = random_hex(rng, PREFIX_LEN);
    let secret = random_hex(rng, SECRET_LEN);
    let hash = bcrypt::hash(&secret, BCRYPT_COST)
        .map_err(|e| KeyFormatError::Hash(e.to_string()))?
        .into_bytes();
    Ok(GeneratedKey {
        full: format!("{kind}{prefix}-{secret}"),
        prefix,
        hash,
    })
}

/// The prefix and secret of a presented API key.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// The public prefix to look the key up by.
    pub prefix: &'a str,
    /// The secret to verify against the stored hash.
    pub secret: &'a str,
}

impl std::fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Splits an API key into prefix and secret, accepting current and legacy forms.
pub fn parse_api_key(text: &str) -> Result<ParsedKey<'_>, KeyFormatError> {
    if let Some(rest) = text.strip_prefix(API_KEY_PREFIX) {
        let (prefix, secret) = rest.split_once('-').ok_or(KeyFormatError::Malformed(
            "missing '-' between prefix and secret",
        ))?;
        if prefix.len() != PREFIX_LEN || !prefix.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeyFormatError::Malformed(
                "prefix must be 12 letters or digits",
            ));
        }
        if secret.len() != SECRET_LEN {
            return Err(KeyFormatError::Malformed("secret must be 64 characters"));
        }
        return Ok(ParsedKey { prefix, secret });
    }
    let (prefix, secret) = text
        .split_once('.')
        .ok_or(KeyFormatError::Malformed("not an hskey-api- key"))?;
    if prefix.len() != LEGACY_PREFIX_LEN || secret.is_empty() {
        return Err(KeyFormatError::Malformed(
            "legacy key prefix must be 7 characters",
        ));
    }
    Ok(ParsedKey { prefix, secret })
}

/// Normalises what an operator passes as a prefix: either the bare prefix or the start of a
/// full `hskey-api-…` key.
pub fn display_prefix(text: &str) -> &str {
    match text.strip_prefix(API_KEY_PREFIX) {
        Some(rest) if rest.len() >= PREFIX_LEN && rest.is_char_boundary(PREFIX_LEN) => {
            &rest[..PREFIX_LEN]
        }
        _ => text,
    }
}

/// Whether `secret` matches a stored bcrypt `hash` (false for a corrupt hash).
pub fn verify(secret: &str, hash: &[u8]) -> bool {
    std::str::from_utf8(hash)
        .ok()
        .and_then(|h| bcrypt::verify(secret, h).ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn generated_key_parses_and_verifies() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let k = generate(&mut rng, API_KEY_PREFIX).unwrap();
        assert!(k.full.starts_with("hskey-api-"));
        assert_eq!(k.full.len(), "hskey-api-".len() + 12 + 1 + 64);
        let p = parse_api_key(&k.full).unwrap();
        assert_eq!(p.prefix, k.prefix);
        assert!(verify(p.secret, &k.hash));
        assert!(!verify("0".repeat(64).as_str(), &k.hash));
        assert!(!format!("{k:?}").contains(p.secret));
    }

    #[test]
    fn parse_rejects_bad_shapes() {
        assert!(parse_api_key("").is_err());
        assert!(parse_api_key("hskey-api-short-abc").is_err());
        assert!(
            parse_api_key(&format!("hskey-api-{}-{}", "a".repeat(12), "b".repeat(10))).is_err()
        );
        assert!(parse_api_key("nodot").is_err());
        let legacy = parse_api_key("abcdefg.secretsecret").unwrap();
        assert_eq!(legacy.prefix, "abcdefg");
    }

    #[test]
    fn display_prefix_accepts_full_key_start() {
        assert_eq!(
            display_prefix("hskey-api-0123456789ab-rest"),
            "0123456789ab"
        );
        assert_eq!(display_prefix("0123456789ab"), "0123456789ab");
    }
}

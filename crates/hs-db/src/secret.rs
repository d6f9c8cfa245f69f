//! Pre-auth key and API key secrets in Go Headscale's formats: the full key is shown once,
//! only a bcrypt hash of its secret part is stored, and lookups go by the public prefix.

use rand::{CryptoRng, RngCore};

use crate::error::{Error, Result};

/// Text before the prefix of a pre-auth key.
pub const PRE_AUTH_KEY_PREFIX: &str = "hskey-auth-";
/// Text before the prefix of an API key.
pub const API_KEY_PREFIX: &str = "hskey-api-";
/// bcrypt cost; Go's `bcrypt.DefaultCost`, so Go Headscale verifies our hashes at the same
/// price and we verify its.
pub const BCRYPT_COST: u32 = 10;

/// Go Headscale's `apiKeyPrefixLength` / `authKeyPrefixLength`.
const PREFIX_LEN: usize = 12;
/// Go Headscale's `apiKeyHashLength` / `authKeyLength`.
const SECRET_LEN: usize = 64;

/// A freshly generated key: the full text to show the operator once, and what is stored.
pub struct NewSecret {
    /// The full key (`hskey-auth-<prefix>-<secret>`). Secret: never log it.
    pub full: String,
    /// The public lookup prefix (12 hex characters).
    pub prefix: String,
    /// bcrypt hash of the secret part.
    pub hash: Vec<u8>,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// How a presented key parsed.
#[derive(PartialEq, Eq)]
pub enum ParsedKey<'a> {
    /// The current format: look up `prefix`, verify `secret` against its hash.
    Hashed {
        /// Public prefix.
        prefix: &'a str,
        /// Secret part.
        secret: &'a str,
    },
    /// Anything else: a legacy key, compared as a whole (pre-auth keys) or split at `.`
    /// (API keys).
    Legacy(&'a str),
}

impl std::fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hashed { prefix, .. } => write!(f, "Hashed {{ prefix: {prefix:?}, .. }}"),
            Self::Legacy(_) => f.write_str("Legacy(..)"),
        }
    }
}

fn generate<R: RngCore + CryptoRng>(rng: &mut R, head: &str) -> Result<NewSecret> {
    // Hex: a subset of what Go's parser accepts, so keys made here work there after a
    // rollback.
    let mut p = [0u8; PREFIX_LEN / 2];
    let mut s = [0u8; SECRET_LEN / 2];
    rng.fill_bytes(&mut p);
    rng.fill_bytes(&mut s);
    let prefix = hex::encode(p);
    let secret = hex::encode(s);
    let hash = hash_secret(&secret)?;
    Ok(NewSecret {
        full: format!("{head}{prefix}-{secret}"),
        prefix,
        hash,
    })
}

/// Generates a pre-auth key (`hskey-auth-<12 hex>-<64 hex>`) and its bcrypt hash.
pub fn generate_pre_auth_key<R: RngCore + CryptoRng>(rng: &mut R) -> Result<NewSecret> {
    generate(rng, PRE_AUTH_KEY_PREFIX)
}

/// Generates an API key (`hskey-api-<12 hex>-<64 hex>`) and its bcrypt hash.
pub fn generate_api_key<R: RngCore + CryptoRng>(rng: &mut R) -> Result<NewSecret> {
    generate(rng, API_KEY_PREFIX)
}

/// bcrypt-hashes a secret at [`BCRYPT_COST`].
pub fn hash_secret(secret: &str) -> Result<Vec<u8>> {
    bcrypt::hash(secret, BCRYPT_COST)
        .map(String::into_bytes)
        .map_err(|e| Error::Hash(e.to_string()))
}

/// Whether `secret` matches a stored bcrypt hash; a malformed hash never matches.
pub fn verify_secret(secret: &str, hash: &[u8]) -> bool {
    std::str::from_utf8(hash)
        .ok()
        .and_then(|h| bcrypt::verify(secret, h).ok())
        .unwrap_or(false)
}

/// Splits a presented key with the given head (`hskey-auth-` / `hskey-api-`). As Go
/// Headscale parses them: a fixed 12-character prefix, `-`, and a 64-character secret, both
/// URL-safe base64 characters (Go 0.27+ generates base64url; the hex this server generated
/// before is a subset). The prefix may itself contain `-`, so the split is by position.
pub fn parse_key<'a>(full: &'a str, head: &str) -> ParsedKey<'a> {
    let url_safe = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if let Some(rest) = full.strip_prefix(head)
        && rest.len() == PREFIX_LEN + 1 + SECRET_LEN
        && rest.as_bytes()[PREFIX_LEN] == b'-'
        && url_safe(rest)
    {
        let (prefix, secret) = (&rest[..PREFIX_LEN], &rest[PREFIX_LEN + 1..]);
        return ParsedKey::Hashed { prefix, secret };
    }
    ParsedKey::Legacy(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_verify() {
        let mut rng = rand::thread_rng();
        let k = generate_pre_auth_key(&mut rng).expect("generate");
        assert!(k.full.starts_with("hskey-auth-"));
        assert_eq!(k.full.len(), "hskey-auth-".len() + 12 + 1 + 64);
        let ParsedKey::Hashed { prefix, secret } = parse_key(&k.full, PRE_AUTH_KEY_PREFIX) else {
            panic!("generated key did not parse as hashed");
        };
        assert_eq!(prefix, k.prefix);
        assert!(verify_secret(secret, &k.hash));
        assert!(!verify_secret(
            &secret.replace('a', "b").replace('0', "1"),
            &k.hash
        ));
        assert!(!format!("{k:?}").contains(secret));
        assert_eq!(
            parse_key(&k.full, API_KEY_PREFIX),
            ParsedKey::Legacy(k.full.as_str())
        );
    }

    /// Keys as Go Headscale 0.27+ makes them (URL-safe base64, a `-` possible inside the
    /// prefix and the secret) split by position, as Go's parser does.
    #[test]
    fn go_base64url_keys_parse() {
        let prefix = "aB3-_x9Zq-Lm";
        let secret = "Zx_9-aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789-_abcdefghijklmnopqrstu";
        assert_eq!(secret.len(), 64);
        for head in [PRE_AUTH_KEY_PREFIX, API_KEY_PREFIX] {
            let full = format!("{head}{prefix}-{secret}");
            assert_eq!(
                parse_key(&full, head),
                ParsedKey::Hashed { prefix, secret },
                "{full}"
            );
            // Wrong lengths, a missing separator or other characters are not this format.
            let short = format!("{head}{prefix}-{}", &secret[1..]);
            assert!(matches!(parse_key(&short, head), ParsedKey::Legacy(_)));
            let no_dash = format!("{head}{prefix}x{secret}");
            assert!(matches!(parse_key(&no_dash, head), ParsedKey::Legacy(_)));
            let bad = format!("{head}{prefix}-{}!", &secret[1..]);
            assert!(matches!(parse_key(&bad, head), ParsedKey::Legacy(_)));
        }
        // A Go-made key's secret is verified against its bcrypt hash like ours.
        let hash = hash_secret(secret).unwrap();
        assert!(verify_secret(secret, &hash));
    }

    #[test]
    fn go_bcrypt_2a_hash_verifies() {
        // Go's bcrypt writes the `$2a$` variant; imported databases hold those.
        let h = bcrypt::hash_with_result("secret", 4)
            .expect("hash")
            .format_for_version(bcrypt::Version::TwoA);
        assert!(h.starts_with("$2a$04$"));
        assert!(verify_secret("secret", h.as_bytes()));
        assert!(!verify_secret("Secret", h.as_bytes()));
        assert!(!verify_secret("secret", b"not a hash"));
    }

    #[test]
    fn malformed_keys_are_legacy() {
        assert_eq!(
            parse_key("hskey-auth-xyz-abc", PRE_AUTH_KEY_PREFIX),
            ParsedKey::Legacy("hskey-auth-xyz-abc")
        );
        assert_eq!(
            parse_key("0123456789abcdef", PRE_AUTH_KEY_PREFIX),
            ParsedKey::Legacy("0123456789abcdef")
        );
    }
}

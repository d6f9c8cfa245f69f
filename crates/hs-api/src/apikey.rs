//! API-key text forms as the admin API sees them: splitting a presented bearer key into its
//! lookup prefix and secret, and normalising what an operator passes as a prefix.
//!
//! Generation and bcrypt hashing live in `hs_db::secret` (the same code that stores them);
//! this module only adds the API-side rules: keys from Go Headscale before 0.28 are
//! `<7 char prefix>.<secret>` and must keep authenticating.

use hs_db::secret::{self, ParsedKey as DbParsed};

pub use hs_db::secret::API_KEY_PREFIX;

/// Length of the public prefix of a current key (Go Headscale `apiKeyPrefixLength`).
const PREFIX_LEN: usize = 12;
/// Length of a legacy key's prefix (Go Headscale `legacyAPIPrefixLength`).
const LEGACY_PREFIX_LEN: usize = 7;

/// Why a presented key is not an API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed API key: {0}")]
pub struct KeyFormatError(&'static str);

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
    match secret::parse_key(text, API_KEY_PREFIX) {
        DbParsed::Hashed { prefix, secret } => Ok(ParsedKey { prefix, secret }),
        DbParsed::Legacy(_) if text.starts_with(API_KEY_PREFIX) => Err(KeyFormatError(
            "expected hskey-api-<12 characters>-<64 characters>",
        )),
        DbParsed::Legacy(full) => match full.split_once('.') {
            Some((prefix, secret)) if prefix.len() == LEGACY_PREFIX_LEN && !secret.is_empty() => {
                Ok(ParsedKey { prefix, secret })
            }
            _ => Err(KeyFormatError("not an hskey-api- key")),
        },
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_parses_and_verifies() {
        let k = secret::generate_api_key(&mut rand::thread_rng()).unwrap();
        let p = parse_api_key(&k.full).unwrap();
        assert_eq!(p.prefix, k.prefix);
        assert!(secret::verify_secret(p.secret, &k.hash));
        assert!(!format!("{p:?}").contains(p.secret));
    }

    #[test]
    fn parse_rejects_bad_shapes_and_accepts_legacy() {
        assert!(parse_api_key("").is_err());
        assert!(parse_api_key("hskey-api-short-abc").is_err());
        assert!(
            parse_api_key(&format!("hskey-api-{}-{}", "a".repeat(12), "b".repeat(10))).is_err()
        );
        assert!(parse_api_key("nodot").is_err());
        assert!(parse_api_key("toolongprefix.secret").is_err());
        let legacy = parse_api_key("abcdefg.secretsecret").unwrap();
        assert_eq!((legacy.prefix, legacy.secret), ("abcdefg", "secretsecret"));
    }

    #[test]
    fn go_made_keys_parse() {
        let full = format!("hskey-api-aB3-_x9Zq-Lm-{}", "Zx_9-".repeat(12) + "abcd");
        let p = parse_api_key(&full).unwrap();
        assert_eq!(p.prefix, "aB3-_x9Zq-Lm");
        assert_eq!(p.secret.len(), 64);
        assert_eq!(display_prefix(&full), "aB3-_x9Zq-Lm");
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

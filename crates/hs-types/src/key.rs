//! Curve25519 keys and their Tailscale text forms (`mkey:`, `nodekey:`, `discokey:`,
//! `privkey:` followed by 64 hex digits).
//!
//! Public keys print their text form in `Display` and a short tag in `Debug`; private keys
//! never print their bytes anywhere, and are wiped from memory when dropped.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// Length in bytes of every raw key here.
pub const KEY_LEN: usize = 32;

/// Why a key's text form was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text does not start with the prefix this key type uses.
    #[error("key must start with {expected:?}")]
    MissingPrefix {
        /// The prefix that was expected, such as `nodekey:`.
        expected: &'static str,
    },
    /// The hex part is not exactly 64 characters.
    #[error("key {prefix}… must have 64 hex digits after the prefix, found {found}")]
    BadLength {
        /// The key type's prefix.
        prefix: &'static str,
        /// How many characters followed the prefix.
        found: usize,
    },
    /// The hex part holds a character that is not a hex digit.
    #[error("key {prefix}… holds a character that is not a hex digit")]
    BadHex {
        /// The key type's prefix.
        prefix: &'static str,
    },
}

fn parse_prefixed(s: &str, prefix: &'static str) -> Result<[u8; KEY_LEN], KeyError> {
    let hex_part = s
        .strip_prefix(prefix)
        .ok_or(KeyError::MissingPrefix { expected: prefix })?;
    parse_untyped_hex(hex_part, prefix)
}

fn parse_untyped_hex(hex_part: &str, prefix: &'static str) -> Result<[u8; KEY_LEN], KeyError> {
    if hex_part.len() != KEY_LEN * 2 {
        return Err(KeyError::BadLength {
            prefix,
            found: hex_part.chars().count(),
        });
    }
    let mut out = [0u8; KEY_LEN];
    hex::decode_to_slice(hex_part, &mut out).map_err(|_| KeyError::BadHex { prefix })?;
    Ok(out)
}

/// Tailscale's `ShortString`: the first five base64 characters of the key in brackets, enough
/// to tell keys apart in logs without printing them whole.
fn short_string(bytes: &[u8; KEY_LEN]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    format!("[{}]", &b64[..5])
}

macro_rules! public_key {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name([u8; KEY_LEN]);

        impl $name {
            /// The text prefix of this key type.
            pub const PREFIX: &'static str = $prefix;

            /// Wraps raw key bytes.
            pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
                Self(bytes)
            }

            /// The raw key bytes.
            pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }

            /// Whether this is the all-zero key Go uses for "not set".
            pub fn is_zero(&self) -> bool {
                self.0 == [0u8; KEY_LEN]
            }

            /// The short form used in logs, e.g. `[AbCdE]`.
            pub fn short_string(&self) -> String {
                short_string(&self.0)
            }

            /// The 64 hex digits without prefix (legacy places such as DERP headers).
            pub fn untyped_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses 64 hex digits without prefix.
            pub fn from_untyped_hex(s: &str) -> Result<Self, KeyError> {
                parse_untyped_hex(s, $prefix).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($prefix)?;
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "{}"), self.short_string())
            }
        }

        impl FromStr for $name {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, KeyError> {
                parse_prefixed(s, $prefix).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

public_key!(
    /// A machine's Noise static public key (`mkey:`); also the control server's Noise key.
    MachinePublic,
    "mkey:"
);
public_key!(
    /// A node's WireGuard public key (`nodekey:`); also its DERP identity.
    NodePublic,
    "nodekey:"
);
public_key!(
    /// A node's disco public key (`discokey:`), used for NAT traversal messages.
    DiscoPublic,
    "discokey:"
);
public_key!(
    /// The node-key challenge sent in the ts2021 early payload (`chalpub:`).
    ChallengePublic,
    "chalpub:"
);

/// Prefix of every private key's text form (machine and node alike, for historic reasons).
pub const PRIVATE_PREFIX: &str = "privkey:";

macro_rules! private_key {
    ($(#[$doc:meta])* $name:ident, $public:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name([u8; KEY_LEN]);

        impl $name {
            /// A fresh clamped Curve25519 private key from `rng`.
            pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
                let mut bytes = [0u8; KEY_LEN];
                rng.fill_bytes(&mut bytes);
                Self::from_bytes(bytes)
            }

            /// Wraps raw bytes, clamping them as Curve25519 requires.
            pub fn from_bytes(mut bytes: [u8; KEY_LEN]) -> Self {
                bytes[0] &= 248;
                bytes[31] = (bytes[31] & 127) | 64;
                Self(bytes)
            }

            /// The raw (clamped) secret bytes. Handle with care: never log them.
            pub fn secret_bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }

            /// The matching public key.
            pub fn public(&self) -> $public {
                let secret = x25519_dalek::StaticSecret::from(self.0);
                $public::from_bytes(*x25519_dalek::PublicKey::from(&secret).as_bytes())
            }

            /// The Diffie-Hellman shared secret with `peer`.
            pub fn shared_secret(&self, peer: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
                let secret = x25519_dalek::StaticSecret::from(self.0);
                *secret.diffie_hellman(&x25519_dalek::PublicKey::from(*peer)).as_bytes()
            }

            /// The on-disk text form, `privkey:` and 64 hex digits. Only for writing key
            /// files: never log it.
            pub fn to_text(&self) -> String {
                format!("{PRIVATE_PREFIX}{}", hex::encode(self.0))
            }
        }

        impl FromStr for $name {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, KeyError> {
                parse_prefixed(s.trim(), PRIVATE_PREFIX).map(Self::from_bytes)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // The public half identifies the key in logs; the secret is never shown.
                write!(f, concat!(stringify!($name), "(public {})"), self.public().short_string())
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }
    };
}

private_key!(
    /// A machine (Noise) private key; the server's Noise key is one of these.
    MachinePrivate,
    MachinePublic
);
private_key!(
    /// A node (WireGuard / DERP) private key; the embedded DERP server's key is one of these.
    NodePrivate,
    NodePublic
);

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn public_keys_round_trip_their_text_form() {
        let k: NodePublic = format!("nodekey:{HEX}").parse().unwrap();
        assert_eq!(k.to_string(), format!("nodekey:{HEX}"));
        assert_eq!(k.as_bytes()[0], 0x01);
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, format!("\"nodekey:{HEX}\""));
        assert_eq!(serde_json::from_str::<NodePublic>(&json).unwrap(), k);
    }

    #[test]
    fn uppercase_hex_is_accepted_and_printed_lowercase() {
        let k: MachinePublic = format!("mkey:{}", HEX.to_uppercase()).parse().unwrap();
        assert_eq!(k.to_string(), format!("mkey:{HEX}"));
    }

    #[test]
    fn bad_text_forms_are_refused_with_the_reason() {
        assert_eq!(
            format!("mkey:{HEX}").parse::<NodePublic>(),
            Err(KeyError::MissingPrefix {
                expected: "nodekey:"
            })
        );
        assert_eq!(
            "discokey:abcd".parse::<DiscoPublic>(),
            Err(KeyError::BadLength {
                prefix: "discokey:",
                found: 4
            })
        );
        let bad = format!("mkey:{}zz", &HEX[..62]);
        let err = bad.parse::<MachinePublic>().unwrap_err();
        assert_eq!(err, KeyError::BadHex { prefix: "mkey:" });
        assert!(err.to_string().contains("hex digit"));
        assert!(serde_json::from_str::<NodePublic>("\"nodekey:12\"").is_err());
    }

    #[test]
    fn zero_key_is_zero_and_still_prints() {
        let z = MachinePublic::default();
        assert!(z.is_zero());
        assert_eq!(z.to_string(), format!("mkey:{}", "0".repeat(64)));
    }

    #[test]
    fn private_keys_never_print_their_secret() {
        let k: MachinePrivate = format!("privkey:{HEX}").parse().unwrap();
        let dbg = format!("{k:?}");
        let secret_hex = hex::encode(k.secret_bytes());
        assert!(!dbg.contains(&secret_hex));
        assert!(!dbg.contains(&HEX[2..20]));
        assert!(dbg.starts_with("MachinePrivate(public ["));
    }

    #[test]
    fn private_keys_are_clamped_and_round_trip_text() {
        let k = NodePrivate::generate(&mut rand::rngs::OsRng);
        let b = k.secret_bytes();
        assert_eq!(b[0] & 7, 0);
        assert_eq!(b[31] & 128, 0);
        assert_eq!(b[31] & 64, 64);
        let back: NodePrivate = k.to_text().parse().unwrap();
        assert_eq!(back, k);
        assert_eq!(back.public(), k.public());
    }

    #[test]
    fn diffie_hellman_agrees_both_ways() {
        let a = MachinePrivate::generate(&mut rand::rngs::OsRng);
        let b = MachinePrivate::generate(&mut rand::rngs::OsRng);
        assert_eq!(
            a.shared_secret(b.public().as_bytes()),
            b.shared_secret(a.public().as_bytes())
        );
    }

    #[test]
    fn short_string_is_five_base64_chars_in_brackets() {
        let k = NodePublic::from_bytes([0xff; 32]);
        assert_eq!(k.short_string(), "[/////]");
    }
}

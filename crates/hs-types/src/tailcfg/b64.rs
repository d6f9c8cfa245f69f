//! Go `[]byte` JSON: a standard-alphabet, padded base64 string; a nil slice is `null`.
//!
//! An empty `Vec` is written as `null` (Go's nil); fields that are `omitempty` in Go skip it
//! instead. `null` reads back as empty.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serializer, de};

pub(crate) fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    if b.is_empty() {
        s.serialize_none()
    } else {
        s.serialize_str(&STANDARD.encode(b))
    }
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(Vec::new()),
        Some(s) => STANDARD
            .decode(s.as_bytes())
            .map_err(|e| de::Error::custom(format_args!("invalid base64 bytes: {e}"))),
    }
}

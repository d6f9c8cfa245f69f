//! Writing JSON byte-for-byte as Go's `encoding/json` does: on top of the field rules of the
//! types, Go escapes `<`, `>` and `&` (HTML-safe output) and U+2028/U+2029 inside strings.
//!
//! Every JSON reader decodes both forms alike, so this only matters when bytes are compared
//! (golden files, caches of encoded messages). `serde_json::to_vec` stays fine for the wire.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};

/// Serializes `value` as compact JSON with Go's string escaping.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(128);
    to_writer(&mut out, value)?;
    Ok(out)
}

/// Serializes `value` into `writer` as compact JSON with Go's string escaping.
pub fn to_writer<W: io::Write, T: Serialize + ?Sized>(
    writer: W,
    value: &T,
) -> Result<(), serde_json::Error> {
    value.serialize(&mut Serializer::with_formatter(writer, GoFormatter))
}

/// The `Formatter` defaults are serde_json's compact output, which is Go's apart from the
/// extra escapes added here.
struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // Byte scan: the escaped characters are ASCII or start with 0xE2 0x80 (U+2028/9), and
        // UTF-8 continuation bytes never look like either.
        let bytes = fragment.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let (esc, len): (&[u8], usize) = match bytes[i] {
                b'<' => (b"\\u003c", 1),
                b'>' => (b"\\u003e", 1),
                b'&' => (b"\\u0026", 1),
                0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA8) => {
                    (b"\\u2028", 3)
                }
                0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA9) => {
                    (b"\\u2029", 3)
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            writer.write_all(&bytes[start..i])?;
            writer.write_all(esc)?;
            i += len;
            start = i;
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let s = "a&b<c>d\u{2028}e\u{2029}f\n\"é\u{1}";
        let out = String::from_utf8(to_vec(s).unwrap()).unwrap();
        assert_eq!(out, r#""a\u0026b\u003cc\u003ed\u2028e\u2029f\n\"é\u0001""#);
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        let out = String::from_utf8(to_vec(&serde_json::json!({"k&": [1, "x>"]})).unwrap());
        assert_eq!(out.unwrap(), r#"{"k\u0026":[1,"x\u003e"]}"#);
    }
}

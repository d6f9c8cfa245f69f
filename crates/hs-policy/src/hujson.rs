//! HuJSON (JSON with comments and trailing commas) turned into standard JSON.
//!
//! The conversion keeps every byte offset and line break in place (comments and trailing commas
//! become spaces), so a JSON parse error on the result names the line and column of the
//! original text.

use crate::error::PolicyError;

/// Rewrites HuJSON into standard JSON with the same line/column layout.
///
/// `//` and `/* */` comments become spaces (newlines kept) and a comma followed only by
/// whitespace/comments before `}` or `]` becomes a space.
///
/// ```
/// let json = hs_policy::hujson::standardize("{\"a\": 1, // c\n}").unwrap();
/// let v: serde_json::Value = serde_json::from_str(&json).unwrap();
/// assert_eq!(v["a"], 1);
/// ```
pub fn standardize(src: &str) -> Result<String, PolicyError> {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                in_str = true;
                i += 1;
            }
            b'/' => {
                let end = comment_end(b, i)?;
                blank(&mut out, i, end);
                i = end;
            }
            b',' => {
                let next = skip_ws_comments(b, i + 1)?;
                if matches!(b.get(next), Some(b'}') | Some(b']')) {
                    out[i] = b' ';
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    // Only ASCII bytes were replaced by ASCII spaces, and only outside multi-byte sequences
    // (comment bodies are replaced whole, newlines kept), so the result is still UTF-8.
    String::from_utf8(out).map_err(|_| PolicyError::Parse {
        line: 1,
        column: 1,
        message: "policy is not valid UTF-8".into(),
    })
}

fn blank(out: &mut [u8], from: usize, to: usize) {
    for byte in &mut out[from..to] {
        if *byte != b'\n' && *byte != b'\r' {
            *byte = b' ';
        }
    }
}

/// Returns the offset just past the comment starting at `i` (which holds a `/`).
fn comment_end(b: &[u8], i: usize) -> Result<usize, PolicyError> {
    match b.get(i + 1) {
        Some(b'/') => Ok(b[i..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| i + p)),
        Some(b'*') => b[i + 2..]
            .windows(2)
            .position(|w| w == b"*/")
            .map(|p| i + 2 + p + 2)
            .ok_or_else(|| err_at(b, i, "unterminated block comment")),
        _ => Err(err_at(b, i, "invalid character '/'")),
    }
}

fn skip_ws_comments(b: &[u8], mut i: usize) -> Result<usize, PolicyError> {
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'/' => i = comment_end(b, i)?,
            _ => break,
        }
    }
    Ok(i)
}

/// A parse error at byte offset `at`, with a 1-based line and column (in characters).
pub(crate) fn err_at(b: &[u8], at: usize, message: &str) -> PolicyError {
    let before = &b[..at.min(b.len())];
    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    PolicyError::Parse {
        line,
        column,
        message: message.to_string(),
    }
}

/// Parses HuJSON text into any deserializable type; errors carry line and column.
pub fn from_str<T: serde::de::DeserializeOwned>(src: &str) -> Result<T, PolicyError> {
    let json = standardize(src)?;
    serde_json::from_str(&json).map_err(|e| PolicyError::Parse {
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })
}

/// Refuses an object that names a key twice, anywhere in the document (`"groups"` holding
/// `"group:a"` twice would otherwise keep the last silently). `json` is standard JSON (the
/// output of [`standardize`]), so the error's line and column are the original's.
pub(crate) fn check_duplicate_keys(json: &str) -> Result<(), PolicyError> {
    serde_json::from_str::<NoDuplicates>(json)
        .map(drop)
        .map_err(|e| PolicyError::Parse {
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        })
}

/// Any JSON value, read only to find an object with a repeated key.
struct NoDuplicates;

impl<'de> serde::Deserialize<'de> for NoDuplicates {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> serde::de::Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(p) => msg[..p].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_trailing_commas() {
        let src = "{\n  // line\n  \"a\": [1, 2, /* x */],\n  \"b\": \"// not a comment\",\n}";
        let v: serde_json::Value = from_str(src).unwrap();
        assert_eq!(v["a"], serde_json::json!([1, 2]));
        assert_eq!(v["b"], "// not a comment");
    }

    #[test]
    fn error_points_at_line_and_column() {
        let src = "{\n  \"a\": 1,\n  \"b\": x\n}";
        match from_str::<serde_json::Value>(src) {
            Err(PolicyError::Parse { line, column, .. }) => {
                assert_eq!(line, 3);
                assert_eq!(column, 8);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unterminated_comment_is_located() {
        match standardize("{\n /* oops") {
            Err(PolicyError::Parse { line, column, .. }) => assert_eq!((line, column), (2, 2)),
            other => panic!("unexpected {other:?}"),
        }
    }
}

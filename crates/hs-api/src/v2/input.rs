//! Request parsing the `/api/v2` resources share ([`Fields`], [`Body`], [`parse_id`],
//! [`path`], [`query`]): handlers parse by hand rather than with axum's extractors so that
//! every malformed input is a `{"message"}` 400 naming the field.

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use serde_json::{Map, Value};

use super::{V2Error, json_body};
use crate::service::validate_tag;

/// The path parameters, or a 400 when they do not decode (bad percent-encoding).
pub(super) fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, V2Error> {
    p.map(|Path(v)| v)
        .map_err(|e| V2Error::bad_request(format!("invalid path: {}", e.body_text())))
}

/// A decimal id from the path; `what` names it in the 400 (`device`, `key`, `user`).
pub(super) fn parse_id(what: &str, text: &str) -> Result<u64, V2Error> {
    if !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = text.parse()
    {
        return Ok(n);
    }
    Err(V2Error::bad_request(format!(
        "invalid {what} id {text:?}: Headscale's {what} ids are decimal numbers"
    )))
}

/// The query string's pairs, decoded.
pub(super) fn query(raw: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One JSON object of a request body, read field by field so each mistake names its field
/// (`capabilities.devices.create.tags[1]`). `null` counts as absent, as Go's encoder sends
/// `null` for an unset list.
#[derive(Debug, Clone)]
pub(super) struct Fields<'a> {
    map: Option<&'a Map<String, Value>>,
    at: String,
}

/// A parsed request body that [`Fields`] borrows from.
#[derive(Debug)]
pub(super) struct Body {
    map: Map<String, Value>,
}

impl Body {
    /// Parses a body that must be one JSON object.
    pub(super) fn parse(bytes: &[u8]) -> Result<Self, V2Error> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(V2Error::bad_request(
                "missing request body: expected a JSON object",
            ));
        }
        match json_body::<Value>(bytes)? {
            Value::Object(map) => Ok(Self { map }),
            other => Err(V2Error::bad_request(format!(
                "request body: expected a JSON object, got {}",
                kind(&other)
            ))),
        }
    }

    /// The top-level fields.
    pub(super) fn fields(&self) -> Fields<'_> {
        Fields {
            map: Some(&self.map),
            at: String::new(),
        }
    }
}

impl<'a> Fields<'a> {
    fn name(&self, key: &str) -> String {
        if self.at.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.at)
        }
    }

    fn value(&self, key: &str) -> Option<&'a Value> {
        self.map?.get(key).filter(|v| !v.is_null())
    }

    fn wrong(&self, key: &str, want: &str, got: &Value) -> V2Error {
        V2Error::bad_request(format!(
            "{}: expected {want}, got {}",
            self.name(key),
            kind(got)
        ))
    }

    /// A nested object (absent: one with no fields).
    pub(super) fn object(&self, key: &str) -> Result<Self, V2Error> {
        let map = match self.value(key) {
            None => None,
            Some(Value::Object(m)) => Some(m),
            Some(v) => return Err(self.wrong(key, "an object", v)),
        };
        Ok(Self {
            map,
            at: self.name(key),
        })
    }

    /// A boolean field.
    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, V2Error> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(key, "true or false", v)),
        }
    }

    /// A string field.
    pub(super) fn string(&self, key: &str) -> Result<Option<String>, V2Error> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    /// A whole number.
    pub(super) fn integer(&self, key: &str) -> Result<Option<i64>, V2Error> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a whole number", v)),
        }
    }

    /// A list of strings.
    pub(super) fn strings(&self, key: &str) -> Result<Option<Vec<String>>, V2Error> {
        let items = match self.value(key) {
            None => return Ok(None),
            Some(Value::Array(a)) => a,
            Some(v) => return Err(self.wrong(key, "a list of strings", v)),
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(V2Error::bad_request(format!(
                    "{}[{i}]: expected a string, got {}",
                    self.name(key),
                    kind(other)
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A field the request must carry.
    pub(super) fn required<T>(&self, key: &str, v: Option<T>, want: &str) -> Result<T, V2Error> {
        v.ok_or_else(|| V2Error::bad_request(format!("{}: required ({want})", self.name(key))))
    }
}

/// Checks each tag's form; a malformed one is a 400 naming its place in `field`.
pub(super) fn check_tag_forms(field: &str, tags: &[String]) -> Result<(), V2Error> {
    for (i, t) in tags.iter().enumerate() {
        validate_tag(t).map_err(|e| V2Error::bad_request(format!("{field}[{i}]: {e}")))?;
    }
    Ok(())
}

//! Go `time.Time` JSON encoding for `chrono::DateTime<Utc>`.
//!
//! Go marshals a `time.Time` as RFC 3339 with nanoseconds whose trailing zeros are trimmed
//! (`2024-01-02T03:04:05.12Z`, no fraction at all when it is zero) and the zero time as
//! `0001-01-01T00:00:00Z`. Fields use one of three shapes, each with its own helper:
//!
//! - a plain `time.Time` that is always emitted: `DateTime<Utc>` with `#[serde(with = "gotime")]`;
//! - a `time.Time` where zero means "unset" (`omitzero`, or a zero Go writes anyway):
//!   `Option<DateTime<Utc>>` with [`zero_is_none`], `None` being Go's zero time;
//! - a `*time.Time` pointer: `Option<DateTime<Utc>>` with [`ptr`], `None` being `null`/absent
//!   and `Some(zero)` staying distinguishable.
//!
//! Parsed values are converted to UTC; the client's offset is not kept, which Go clients never
//! notice because every time the server sends back is compared as an instant.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer, de};

/// Go's zero `time.Time`, `0001-01-01T00:00:00Z`.
pub fn zero_time() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Whether `t` is Go's zero time.
pub fn is_zero_time(t: &DateTime<Utc>) -> bool {
    *t == zero_time()
}

/// Formats `t` exactly as Go's `time.Time.MarshalJSON` does for a UTC time (without quotes).
pub fn format(t: &DateTime<Utc>) -> String {
    // chrono's AutoSi pads fractions to 3/6/9 digits; Go trims every trailing zero.
    let mut s = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    if let Some(dot) = s.rfind('.') {
        let end = s.len() - 1; // the trailing 'Z'
        let frac = s[dot + 1..end].trim_end_matches('0').len();
        let keep = if frac == 0 { dot } else { dot + 1 + frac };
        s.replace_range(keep..end, "");
    }
    s
}

/// Parses an RFC 3339 time as Go's `time.Time.UnmarshalJSON` accepts it.
pub fn parse(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc))
}

/// Serializes a `DateTime<Utc>` as a Go time string.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(t))
}

/// Deserializes a Go time string; `null` is Go's zero time (Go leaves the value untouched).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(zero_time()),
        Some(s) => {
            parse(&s).map_err(|e| de::Error::custom(format_args!("invalid time {s:?}: {e}")))
        }
    }
}

/// `Option<DateTime<Utc>>` where `None` is Go's zero time: the zero time (or `null`) reads as
/// `None`, and `None` is written as `0001-01-01T00:00:00Z`. Pair it with
/// `skip_serializing_if = "Option::is_none"` for `omitzero` fields.
pub mod zero_is_none {
    use super::*;

    /// Writes `None` as the zero time.
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize(t, s),
            None => super::serialize(&zero_time(), s),
        }
    }

    /// Reads the zero time and `null` as `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let t = super::deserialize(d)?;
        Ok((!is_zero_time(&t)).then_some(t))
    }
}

/// `*time.Time`: `None` is `null` (or absent); `Some(t)` is any time, including the zero time.
/// Pair it with `skip_serializing_if = "Option::is_none"` for `omitempty` pointers.
pub mod ptr {
    use super::*;

    /// Writes `None` as `null`.
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    /// Reads `null` as `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => parse(&s)
                .map(Some)
                .map_err(|e| de::Error::custom(format_args!("invalid time {s:?}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(format(&zero_time()), "0001-01-01T00:00:00Z");
        let t = parse("2024-01-02T03:04:05.120000000Z").unwrap();
        assert_eq!(format(&t), "2024-01-02T03:04:05.12Z");
        let t = parse("2024-01-02T03:04:05Z").unwrap();
        assert_eq!(format(&t), "2024-01-02T03:04:05Z");
        let t = parse("2024-01-02T03:04:05.000000001Z").unwrap();
        assert_eq!(format(&t), "2024-01-02T03:04:05.000000001Z");
        let t = parse("1970-01-01T00:02:03Z").unwrap();
        assert_eq!(t.timestamp(), 123);
    }

    #[test]
    fn offsets_convert_to_utc() {
        let t = parse("2024-01-02T05:04:05+02:00").unwrap();
        assert_eq!(format(&t), "2024-01-02T03:04:05Z");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("yesterday").is_err());
        assert!(parse("2024-13-02T03:04:05Z").is_err());
    }
}

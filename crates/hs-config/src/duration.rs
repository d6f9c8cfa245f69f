//! Go's duration syntax (`"30m"`, `"1h30m"`, `"0s"`, `"500ms"`), as Headscale's config file and
//! CLI flags use it, parsed to and printed from [`std::time::Duration`].
//!
//! Headscale reads most durations with Go's `time.ParseDuration`; a few (`node.expiry`, API key
//! expiry) go through Prometheus' parser, which also knows days, weeks and years. Both are
//! offered here: [`parse_duration`] for Go's units and [`parse_duration_long`] adding `d`, `w`
//! and `y`. Negative durations are refused: nothing in the config means "negative".

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration")]
    Empty,
    /// A number was not followed by a unit (`"10"` instead of `"10s"`).
    #[error("missing unit in duration {0:?} (use e.g. \"10s\", \"5m\", \"1h\")")]
    MissingUnit(String),
    /// A unit this parser does not know.
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit that was not recognised.
        unit: String,
    },
    /// Not a duration at all, or negative.
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// Too large to represent.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses Go's `time.ParseDuration` syntax: a sequence of decimal numbers with optional
/// fraction and a unit each, `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`. `"0"` alone is zero.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    parse(s, false)
}

/// Like [`parse_duration`] but also accepts `d` (24h), `w` (7d) and `y` (365d), as Prometheus'
/// duration parser does for `node.expiry` and key expiry flags.
pub fn parse_duration_long(s: &str) -> Result<Duration, DurationError> {
    parse(s, true)
}

fn unit_nanos(unit: &str, long: bool) -> Option<u128> {
    const S: u128 = 1_000_000_000;
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => S,
        "m" => 60 * S,
        "h" => 3_600 * S,
        "d" if long => 86_400 * S,
        "w" if long => 7 * 86_400 * S,
        "y" if long => 365 * 86_400 * S,
        _ => return None,
    })
}

fn parse(input: &str, long: bool) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(DurationError::Invalid(input.to_owned()));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_end);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(DurationError::Invalid(input.to_owned()));
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        let Some(scale) = unit_nanos(unit, long) else {
            return Err(DurationError::UnknownUnit {
                input: input.to_owned(),
                unit: unit.to_owned(),
            });
        };
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        let overflow = || DurationError::Overflow(input.to_owned());
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| overflow())?
        };
        let mut nanos = int.checked_mul(scale).ok_or_else(overflow)?;
        // Only the first 18 fraction digits can matter at nanosecond resolution.
        let frac = &frac_part[..frac_part.len().min(18)];
        if !frac.is_empty() {
            let digits: u128 = frac.parse().map_err(|_| overflow())?;
            let denom = 10u128.pow(u32::try_from(frac.len()).map_err(|_| overflow())?);
            nanos = nanos
                .checked_add(digits * scale / denom)
                .ok_or_else(overflow)?;
        }
        total = total.checked_add(nanos).ok_or_else(overflow)?;
        rest = next;
    }
    // Go's Duration is an int64 of nanoseconds; keep the same ceiling.
    if total > i64::MAX as u128 {
        return Err(DurationError::Overflow(input.to_owned()));
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| DurationError::Overflow(input.to_owned()))?;
    let sub = u32::try_from(total % 1_000_000_000)
        .map_err(|_| DurationError::Overflow(input.to_owned()))?;
    Ok(Duration::new(secs, sub))
}

/// Prints a duration the way Go's `Duration.String` does (`"1h30m0s"`, `"500ms"`, `"0s"`), so
/// messages quote values in the operator's own syntax.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        let (unit, scale) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", frac_str(nanos, scale));
    }
    let total_secs = d.as_secs();
    let h = total_secs / 3600;
    let m = (total_secs % 3600) / 60;
    let s_nanos = u128::from(total_secs % 60) * 1_000_000_000 + u128::from(d.subsec_nanos());
    let secs = format!("{}s", frac_str(s_nanos, 1_000_000_000));
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else {
        secs
    }
}

fn frac_str(value: u128, scale: u128) -> String {
    let int = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return int.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_units_and_compounds() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2us").unwrap(), Duration::from_micros(2));
        assert_eq!(parse_duration("3h").unwrap(), Duration::from_secs(3 * 3600));
    }

    #[test]
    fn refuses_bad_input_with_reason() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("10"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_duration("10d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("-5s"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("abc"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("99999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn long_units_only_in_long_parser() {
        assert_eq!(
            parse_duration_long("90d").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(
            parse_duration_long("1w").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            parse_duration_long("1y").unwrap(),
            Duration::from_secs(365 * 86_400)
        );
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(format_duration(Duration::from_secs(65)), "1m5s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m0s");
    }
}

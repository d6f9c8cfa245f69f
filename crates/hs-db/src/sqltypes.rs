//! The one SQL type the two backends store differently: timestamps. Go Headscale's SQLite
//! files hold them as text (`2006-01-02 15:04:05.999999999-07:00`), PostgreSQL as
//! `timestamptz`. [`HsTime`] names that column type once so row structs and binds are shared.

use chrono::{DateTime, FixedOffset, NaiveDateTime, SecondsFormat, Utc};
use diesel::deserialize::{self, FromSql};
use diesel::pg::Pg;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Timestamptz;
use diesel::sqlite::Sqlite;

/// A timestamp column: `datetime` text on SQLite, `timestamptz` on PostgreSQL.
#[derive(
    Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Text"))]
pub(crate) struct HsTime;

/// A UTC time as stored in an [`HsTime`] column.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = HsTime)]
pub(crate) struct DbTime(pub(crate) DateTime<Utc>);

/// Formats a time the way Go's SQLite driver writes it, so text comparisons in SQL (and
/// Go Headscale reading the file back) keep working.
pub(crate) fn format_sqlite(t: DateTime<Utc>) -> String {
    let s = t.to_rfc3339_opts(SecondsFormat::AutoSi, false);
    // RFC 3339 uses `T`; Go's driver writes a space. The offset is always +00:00.
    s.replacen('T', " ", 1)
}

/// Parses the time formats found in SQLite files written by Go Headscale and by us.
pub(crate) fn parse_sqlite(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f %z",
    ] {
        if let Ok(t) = DateTime::<FixedOffset>::parse_from_str(s, fmt) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    // Go's `time.Time.String()` form: `2006-01-02 15:04:05.999 +0000 UTC`.
    if let Some(head) = s.strip_suffix(" UTC")
        && let Ok(t) = DateTime::<FixedOffset>::parse_from_str(head, "%Y-%m-%d %H:%M:%S%.f %z")
    {
        return Ok(t.with_timezone(&Utc));
    }
    if s.ends_with('Z')
        && let Ok(t) = DateTime::parse_from_rfc3339(s)
    {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc());
        }
    }
    Err(format!("unrecognised timestamp {s:?}"))
}

impl FromSql<HsTime, Sqlite> for DbTime {
    fn from_sql(bytes: diesel::sqlite::SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let s = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(bytes)?;
        parse_sqlite(&s).map(DbTime).map_err(Into::into)
    }
}

impl ToSql<HsTime, Sqlite> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(format_sqlite(self.0));
        Ok(IsNull::No)
    }
}

impl FromSql<HsTime, Pg> for DbTime {
    fn from_sql(bytes: diesel::pg::PgValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<Timestamptz, Pg>>::from_sql(bytes).map(DbTime)
    }
}

impl ToSql<HsTime, Pg> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<Timestamptz, Pg>>::to_sql(&self.0, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_go_sqlite_forms() {
        let want = Utc
            .with_ymd_and_hms(2023, 4, 9, 22, 34, 28)
            .single()
            .expect("valid")
            + chrono::Duration::nanoseconds(624_250_346);
        assert_eq!(
            parse_sqlite("2023-04-09 22:34:28.624250346+00:00"),
            Ok(want)
        );
        assert_eq!(
            parse_sqlite("2023-04-10 00:34:28.624250346+02:00"),
            Ok(want)
        );
        assert_eq!(parse_sqlite("2023-04-09T22:34:28.624250346Z"), Ok(want));
        assert_eq!(
            parse_sqlite("2023-04-09 22:34:28.624250346 +0000 UTC"),
            Ok(want)
        );
        let zero = parse_sqlite("0001-01-01 00:00:00+00:00").expect("zero time");
        assert_eq!(zero.format("%Y").to_string(), "0001");
        assert!(parse_sqlite("yesterday").is_err());
    }

    #[test]
    fn format_round_trips_and_sorts_as_text() {
        let t = Utc
            .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
            .single()
            .expect("valid")
            + chrono::Duration::microseconds(120);
        let s = format_sqlite(t);
        assert_eq!(s, "2024-01-02 03:04:05.000120+00:00");
        assert_eq!(parse_sqlite(&s), Ok(t));
        assert!(format_sqlite(t).as_str() > "1900-01-01");
    }
}

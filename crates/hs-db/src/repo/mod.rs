//! Typed repository functions, as methods of [`crate::Conn`], grouped by table. Shared here:
//! conversions between stored values (nullable text, JSON lists, Go zero times) and the model.

mod keys;
mod nodes;
mod policy;
mod users;

pub use keys::{NewApiKey, NewPreAuthKey};
pub use nodes::ClientState;
pub use policy::PolicyRow;
pub use users::NewUser;

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::sqltypes::DbTime;

/// A stored time, treating Go's zero time (year 1) as absent.
fn opt_time(t: Option<DbTime>) -> Option<DateTime<Utc>> {
    t.map(|t| t.0).filter(|t| t.timestamp() > ZERO_CUTOFF)
}

/// A stored time read exactly: Go's zero time stays year 1. For `api_keys.expiration` and
/// `pre_auth_keys.expiration`, where Headscale treats a zero expiration as already expired
/// (its gRPC create stores `time.Time{}` when no expiration is given), so mapping it to
/// "never" would turn such a key into one that never expires.
fn exact_time(t: Option<DbTime>) -> Option<DateTime<Utc>> {
    t.map(|t| t.0)
}

/// A required time; absent or zero becomes the Unix epoch rather than failing the row.
fn req_time(t: Option<DbTime>) -> DateTime<Utc> {
    opt_time(t).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// 1900-01-01: anything earlier is Go's zero `time.Time`, not a real date.
const ZERO_CUTOFF: i64 = -2_208_988_800;

/// A JSON string list (`tags`), where NULL, `''` and `null` all mean empty.
fn json_strings(
    table: &'static str,
    column: &'static str,
    id: i64,
    v: Option<&str>,
) -> Result<Vec<String>, Error> {
    match v.map(str::trim) {
        None | Some("") | Some("null") => Ok(Vec::new()),
        Some(s) => serde_json::from_str::<Option<Vec<String>>>(s)
            .map(Option::unwrap_or_default)
            .map_err(|e| Error::Corrupt {
                table,
                column,
                id,
                message: format!("{e}"),
            }),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serialising plain lists of strings cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

fn id_u64(id: i64) -> u64 {
    u64::try_from(id).unwrap_or_default()
}

fn id_i64(table: &'static str, id: u64) -> Result<i64, Error> {
    i64::try_from(id).map_err(|_| Error::NotFound(format!("{table} id {id} is out of range")))
}

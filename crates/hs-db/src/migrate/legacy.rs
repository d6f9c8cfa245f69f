//! Databases written by headscale-rs before its schema became Go Headscale 0.29.3's: they
//! tracked our migrations in a diesel table beside Go's, carried three columns from Go's
//! unreleased 0.30 schema (`api_keys.user_id`, `pre_auth_keys.description`,
//! `pre_auth_keys.revoked`) and listed those 0.30 migration ids. Go 0.29.3 refuses such a
//! file, so the first open by this build converts it: same rows, Go 0.29.3's shape.

use diesel::RunQueryDsl;

use super::NameRow;
use crate::db::{Conn, dispatch};
use crate::error::{Error, Result};

/// Where those builds recorded their schema version.
pub(super) const TABLE: &str = "__diesel_schema_migrations";

/// The only schema version those builds ever had.
const VERSIONS: &[&str] = &["20261121000000"];

/// Go 0.30 migration ids those builds recorded although Go 0.29.3 never ran them.
pub(super) const IDS: &[&str] = &[
    "202606191500-api-key-user-id",
    "202606191501-pre-auth-key-description",
    "202606201200-pre-auth-key-revoked",
];

/// Refuses a diesel version this build never wrote: a later build changed the schema in a
/// way this one cannot undo.
pub(super) fn check_versions(conn: &mut Conn<'_>) -> Result<()> {
    let rows: Vec<NameRow> = dispatch!(conn, |c| diesel::sql_query(
        "SELECT version AS name FROM __diesel_schema_migrations"
    )
    .load(c))?;
    let unknown: Vec<String> = rows
        .into_iter()
        .map(|r| r.name)
        .filter(|v| !VERSIONS.contains(&v.as_str()))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Error::NewerOurs {
            versions: unknown.join(", "),
        })
    }
}

/// Drops what Go 0.29.3 does not have. A revoked key cannot stay revoked without its column,
/// so it becomes a key that expired when it was created: refused just the same, here and on
/// Go. Descriptions and API-key owners were never set by those builds' API, so dropping the
/// columns loses nothing an operator entered.
pub(super) fn convert(conn: &mut Conn<'_>) -> Result<()> {
    if conn.columns("pre_auth_keys")?.contains("revoked") {
        conn.batch(
            "UPDATE pre_auth_keys SET expiration = created_at \
             WHERE revoked AND (expiration IS NULL OR expiration > created_at)",
        )?;
    }
    if conn.is_sqlite() {
        // Go validates the SQLite table definitions, so the tables are rebuilt from the
        // schema rather than altered.
        super::import::rebuild_sqlite_tables(conn)?;
    } else {
        conn.batch(
            "ALTER TABLE api_keys DROP COLUMN IF EXISTS user_id; \
             ALTER TABLE pre_auth_keys DROP COLUMN IF EXISTS description; \
             ALTER TABLE pre_auth_keys DROP COLUMN IF EXISTS revoked;",
        )?;
    }
    for id in IDS {
        dispatch!(conn, |c| diesel::sql_query(
            "DELETE FROM migrations WHERE id = $1"
        )
        .bind::<diesel::sql_types::Text, _>(*id)
        .execute(c))?;
    }
    conn.batch(&format!("DROP TABLE {TABLE}"))
}

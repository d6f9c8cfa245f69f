//! The steps of Go Headscale's own migrations from the 0.25 baseline to 0.29.3, for a Go
//! database that has not had them all. Each step checks the current shape first or is
//! idempotent, so it does no harm on a database that had it already.

use std::collections::{BTreeMap, BTreeSet};

use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Nullable, Text};
use ipnet::IpNet;

use super::NameRow;
use crate::db::{Conn, dispatch};
use crate::error::{Error, Result};

/// Tables Go Headscale dropped over the years; present in some old databases.
const GO_OLD_TABLES: &[&str] = &[
    "namespaces",
    "machines",
    "shared_machines",
    "kvs",
    "pre_auth_key_acl_tags",
];

#[derive(diesel::QueryableByName)]
struct RouteRow {
    #[diesel(sql_type = BigInt)]
    node_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    prefix: Option<String>,
}

#[derive(diesel::QueryableByName)]
struct IdentRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    provider_identifier: Option<String>,
}

impl Conn<'_> {
    /// A column type in this backend's dialect, for `ALTER TABLE ... ADD COLUMN`.
    fn ty(&self, kind: &str) -> &'static str {
        match (self.is_sqlite(), kind) {
            (true, "text") => "text",
            (true, "blob") => "blob",
            (true, "time") => "datetime",
            (true, _) => "integer",
            (false, "text") => "text",
            (false, "blob") => "bytea",
            (false, "time") => "timestamptz",
            (false, _) => "bigint",
        }
    }

    fn add_column_if_missing(&mut self, table: &str, column: &str, kind: &str) -> Result<bool> {
        if self.columns(table)?.contains(column) {
            return Ok(false);
        }
        let sql = format!("ALTER TABLE {table} ADD COLUMN {column} {}", self.ty(kind));
        self.batch(&sql)?;
        Ok(true)
    }
}

#[derive(diesel::QueryableByName)]
struct FkRow {
    #[diesel(sql_type = Text)]
    table: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    rowid: Option<i64>,
    #[diesel(sql_type = Text)]
    parent: String,
}

pub(super) fn check_foreign_keys(conn: &mut Conn<'_>) -> Result<()> {
    let rows: Vec<FkRow> = dispatch!(conn, |c| diesel::sql_query(
        "SELECT \"table\", rowid, parent FROM pragma_foreign_key_check"
    )
    .load(c))?;
    if let Some(r) = rows.first() {
        return Err(Error::Migration(format!(
            "after import, {} row {} refers to a missing {} row ({} violation(s) in total); \
             fix or delete those rows and start again",
            r.table,
            r.rowid.unwrap_or_default(),
            r.parent,
            rows.len()
        )));
    }
    Ok(())
}

/// Brings a Go database (or one [`super::legacy`] just converted) to 0.29.3's schema.
pub(super) fn steps(conn: &mut Conn<'_>, ids: &BTreeSet<String>, rebuilt: bool) -> Result<()> {
    let tables = conn.tables()?;
    let has = |id: &str| ids.contains(id);

    // 0.26: enabled routes become nodes.approved_routes; the routes table goes.
    conn.add_column_if_missing("nodes", "approved_routes", "text")?;
    if tables.contains("routes") {
        migrate_routes(conn)?;
        conn.batch("DROP TABLE routes")?;
    }
    // 0.25: nodes must not point at deleted pre-auth keys.
    conn.batch(
        "UPDATE nodes SET auth_key_id = NULL WHERE auth_key_id IS NOT NULL \
         AND auth_key_id NOT IN (SELECT id FROM pre_auth_keys)",
    )?;
    // Some 0.26 betas dropped last_seen.
    conn.add_column_if_missing("nodes", "last_seen", "time")?;
    if !has("202505141324") {
        clean_provider_identifiers(conn)?;
    }
    for t in GO_OLD_TABLES {
        if tables.contains(*t) {
            conn.batch(&format!("DROP TABLE {t}"))?;
        }
    }
    // Pre-auth keys gained prefix + bcrypt hash.
    conn.add_column_if_missing("pre_auth_keys", "prefix", "text")?;
    conn.add_column_if_missing("pre_auth_keys", "hash", "blob")?;
    // forced_tags became tags.
    let node_cols = conn.columns("nodes")?;
    if node_cols.contains("forced_tags") && !node_cols.contains("tags") {
        conn.batch("ALTER TABLE nodes RENAME COLUMN forced_tags TO tags")?;
    } else if !node_cols.contains("tags") {
        conn.add_column_if_missing("nodes", "tags", "text")?;
    }
    // Tagged nodes are owned by their tags, not a user. A nil tag list was stored as the
    // JSON literal `null`, which is *not* tagged (Go's first version of this step got that
    // wrong; the recovery below repairs databases it already ran on).
    if !has("202602201200-clear-tagged-node-user-id") {
        conn.batch(
            "UPDATE nodes SET user_id = NULL WHERE tags IS NOT NULL \
             AND tags NOT IN ('[]', '', 'null')",
        )?;
    } else if !has("202606181200-recover-null-tags-node-user-id") {
        conn.batch(
            "UPDATE nodes SET user_id = (SELECT p.user_id FROM pre_auth_keys p WHERE p.id = nodes.auth_key_id) \
             WHERE user_id IS NULL AND auth_key_id IS NOT NULL \
             AND (tags IS NULL OR tags IN ('[]', '', 'null'))",
        )?;
    }
    // Go before 0.28 wrote "no expiry" as the zero time.
    conn.batch(
        "UPDATE nodes SET expiry = NULL WHERE expiry IS NOT NULL AND expiry < '1900-01-01'",
    )?;
    // A tagged node is owned by its tags and never expires; an old logout bug stamped an
    // expiry on some.
    if !has("202607241200-clear-tagged-node-expiry") {
        conn.batch(
            "UPDATE nodes SET expiry = NULL WHERE tags IS NOT NULL \
             AND tags NOT IN ('[]', '', 'null') AND expiry IS NOT NULL",
        )?;
    }
    if conn.is_sqlite() && !rebuilt && !has("202507021200") {
        rebuild_sqlite_tables(conn)?;
    }
    Ok(())
}

/// Tables gorm created in SQLite before 0.27 carry old constraints (e.g. `users.name
/// UNIQUE`, which blocks an OIDC user named like a local one). As Go's 0.27 migration did,
/// recreate the five tables with the baseline DDL and copy every row across.
pub(super) fn rebuild_sqlite_tables(conn: &mut Conn<'_>) -> Result<()> {
    const TABLES: [&str; 5] = ["users", "pre_auth_keys", "api_keys", "nodes", "policies"];
    const INDEXES: [&str; 7] = [
        "idx_users_deleted_at",
        "idx_provider_identifier",
        "idx_name_provider_identifier",
        "idx_name_no_provider_identifier",
        "idx_api_keys_prefix",
        "idx_policies_deleted_at",
        "idx_pre_auth_keys_prefix",
    ];
    let mut old_cols = BTreeMap::new();
    for t in TABLES {
        old_cols.insert(t, conn.columns(t)?);
    }
    // Indexes follow a renamed table, so they go first or the new ones could not be made.
    let existing: Vec<NameRow> = dispatch!(conn, |c| diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
         AND tbl_name IN ('users', 'pre_auth_keys', 'api_keys', 'nodes', 'policies')"
    )
    .load(c))?;
    for idx in existing.iter().map(|r| r.name.as_str()).chain(INDEXES) {
        conn.batch(&format!(
            "DROP INDEX IF EXISTS \"{}\"",
            idx.replace('"', "")
        ))?;
    }
    for t in TABLES {
        conn.batch(&format!(
            "DROP TABLE IF EXISTS {t}_old; ALTER TABLE {t} RENAME TO {t}_old"
        ))?;
    }
    conn.batch(super::SQLITE_SCHEMA)?;
    for t in TABLES {
        let new_cols = conn.columns(t)?;
        let common: Vec<&str> = old_cols[t]
            .iter()
            .filter(|c| new_cols.contains(*c))
            .map(String::as_str)
            .collect();
        let list = common.join(", ");
        conn.batch(&format!(
            "INSERT INTO {t} ({list}) SELECT {list} FROM {t}_old"
        ))?;
    }
    for t in ["nodes", "api_keys", "pre_auth_keys", "policies", "users"] {
        conn.batch(&format!("DROP TABLE {t}_old"))?;
    }
    Ok(())
}

fn migrate_routes(conn: &mut Conn<'_>) -> Result<()> {
    let cols = conn.columns("routes")?;
    if !["node_id", "prefix", "enabled"]
        .iter()
        .all(|c| cols.contains(*c))
    {
        // A leftover stub of the table (seen in 0.26 databases): nothing to carry over.
        return Ok(());
    }
    let deleted = if cols.contains("deleted_at") {
        " AND deleted_at IS NULL"
    } else {
        ""
    };
    let q = format!("SELECT node_id, prefix FROM routes WHERE enabled{deleted}");
    let rows: Vec<RouteRow> = dispatch!(conn, |c| diesel::sql_query(&q).load(c))?;
    let mut per_node: BTreeMap<i64, BTreeSet<IpNet>> = BTreeMap::new();
    for r in rows {
        let Some(p) = r.prefix else { continue };
        match p.parse::<IpNet>() {
            Ok(net) => {
                per_node.entry(r.node_id).or_default().insert(net);
            }
            Err(e) => {
                return Err(Error::Corrupt {
                    table: "routes",
                    column: "prefix",
                    id: r.node_id,
                    message: format!("{p:?}: {e}"),
                });
            }
        }
    }
    for (node, nets) in per_node {
        let json = serde_json::to_string(&nets.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .map_err(|e| Error::Migration(e.to_string()))?;
        dispatch!(conn, |c| diesel::sql_query(
            "UPDATE nodes SET approved_routes = $1 WHERE id = $2"
        )
        .bind::<Text, _>(&json)
        .bind::<BigInt, _>(node)
        .execute(c))?;
    }
    Ok(())
}

/// Collapses repeated slashes after the scheme of OIDC provider identifiers
/// (`https://idp//sub` → `https://idp/sub`), as Go Headscale 0.26 did.
fn clean_provider_identifiers(conn: &mut Conn<'_>) -> Result<()> {
    let rows: Vec<IdentRow> = dispatch!(conn, |c| diesel::sql_query(
        "SELECT id, provider_identifier FROM users WHERE provider_identifier LIKE '%//%//%'"
    )
    .load(c))?;
    for r in rows {
        let Some(pi) = r.provider_identifier else {
            continue;
        };
        let cleaned = clean_identifier(&pi);
        if cleaned != pi {
            dispatch!(conn, |c| diesel::sql_query(
                "UPDATE users SET provider_identifier = $1 WHERE id = $2"
            )
            .bind::<Text, _>(&cleaned)
            .bind::<BigInt, _>(r.id)
            .execute(c))?;
        }
    }
    Ok(())
}

fn clean_identifier(s: &str) -> String {
    let (scheme, rest) = match s.find("://") {
        Some(i) => (&s[..i + 3], &s[i + 3..]),
        None => ("", s),
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(scheme);
    let mut prev_slash = false;
    for ch in rest.chars() {
        if ch == '/' && prev_slash {
            continue;
        }
        prev_slash = ch == '/';
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_lose_doubled_slashes_only_after_scheme() {
        assert_eq!(
            clean_identifier("https://idp.example.com//abc"),
            "https://idp.example.com/abc"
        );
        assert_eq!(clean_identifier("https://idp/x"), "https://idp/x");
        assert_eq!(clean_identifier("a//b"), "a/b");
    }
}

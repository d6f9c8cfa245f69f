//! Opening a database: recognising what it is (empty, ours, Go Headscale's, something else),
//! bringing a Go Headscale database (0.25 baseline and later) to our baseline in place, and
//! running the embedded diesel migrations.
//!
//! Our baseline schema *is* Go Headscale's schema as of migration
//! `202606201200-pre-auth-key-revoked`, and the Go `migrations` table is kept up to date, so a
//! Go Headscale pointed back at the database still opens it.

use std::collections::{BTreeMap, BTreeSet};

use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use ipnet::IpNet;

use crate::db::{Conn, dispatch};
use crate::error::{Error, Result};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Go migration ids from before the 0.25 baseline, which a 0.25+ database still lists.
const GO_LEGACY_IDS: &[&str] = &[
    "202312101416",
    "202312101430",
    "202402151347",
    "2024041121742",
    "202406021630",
    "202407191627",
    "202408181235",
    "202409271400",
];

/// What gormigrate records when Go Headscale creates a database from its full schema (it
/// lists every migration id of that release beside it).
const GO_SCHEMA_INIT: &str = "SCHEMA_INIT";

/// The oldest Go migration we can import from (Go Headscale 0.25.0).
const GO_BASELINE: &str = "202501221827";

/// Go's migration ids from the baseline on, in order. Those up to and including
/// `202606201200-pre-auth-key-revoked` are applied by the import; the later ones are known (a database that
/// has them is accepted) but not run by us, so Go runs them if it is pointed back here.
const GO_IDS: &[&str] = &[
    "202501221827",
    "202501311657",
    "202502070949",
    "202502131714",
    "202502171819",
    "202505091439",
    "202505141324",
    "202507021200",
    "202510311551",
    "202511101554-drop-old-idx",
    "202511011637-preauthkey-bcrypt",
    "202511122344-remove-newline-index",
    "202511131445-node-forced-tags-to-tags",
    "202601121700-migrate-hostinfo-request-tags",
    "202602201200-clear-tagged-node-user-id",
    "202605221435-clear-zero-time-node-expiry",
    "202606181200-recover-null-tags-node-user-id",
    "202606191500-api-key-user-id",
    "202606191501-pre-auth-key-description",
    "202606201200-pre-auth-key-revoked",
    "202606211200-oauth-clients-and-tokens",
    "202607241200-clear-tagged-node-expiry",
];

/// The last Go migration our baseline schema is equivalent to.
#[cfg(test)]
const GO_LAST_APPLIED: &str = "202606201200-pre-auth-key-revoked";

/// Tables Go Headscale dropped over the years; present in some old databases.
const GO_OLD_TABLES: &[&str] = &[
    "namespaces",
    "machines",
    "shared_machines",
    "kvs",
    "pre_auth_key_acl_tags",
];

#[derive(diesel::QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

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

/// What [`detect`] found.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Empty,
    Ours,
    Go(BTreeSet<String>),
}

impl Conn<'_> {
    pub(crate) fn tables(&mut self) -> Result<BTreeSet<String>> {
        let q = if self.is_sqlite() {
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        } else {
            "SELECT table_name::text AS name FROM information_schema.tables WHERE table_schema = current_schema()"
        };
        let rows: Vec<NameRow> = dispatch!(self, |c| diesel::sql_query(q).load(c))?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }

    pub(crate) fn columns(&mut self, table: &str) -> Result<BTreeSet<String>> {
        let q = if self.is_sqlite() {
            "SELECT name FROM pragma_table_info($1)"
        } else {
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1"
        };
        let rows: Vec<NameRow> = dispatch!(self, |c| diesel::sql_query(q)
            .bind::<Text, _>(table)
            .load(c))?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }

    fn go_migration_ids(&mut self) -> Result<BTreeSet<String>> {
        let rows: Vec<NameRow> = dispatch!(self, |c| diesel::sql_query(
            "SELECT id AS name FROM migrations WHERE id IS NOT NULL"
        )
        .load(c))?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }

    /// A column type in this backend's dialect, for `ALTER TABLE ... ADD COLUMN`.
    fn ty(&self, kind: &str) -> &'static str {
        match (self.is_sqlite(), kind) {
            (true, "text") => "text",
            (true, "blob") => "blob",
            (true, "bool") => "numeric DEFAULT false",
            (true, "time") => "datetime",
            (true, _) => "integer",
            (false, "text") => "text",
            (false, "blob") => "bytea",
            (false, "bool") => "boolean DEFAULT false",
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

/// Recognises the database and brings it to the current schema. Runs outside a
/// transaction; each step opens its own.
pub(crate) fn run(conn: &mut Conn<'_>) -> Result<()> {
    match detect(conn)? {
        Found::Empty => tracing::info!("empty database, creating the schema"),
        Found::Ours => {}
        Found::Go(ids) => {
            tracing::info!(
                migrations = ids.len(),
                "Go Headscale database found, importing it in place"
            );
            import_go(conn, &ids)?;
        }
    }
    run_embedded(conn)
}

fn detect(conn: &mut Conn<'_>) -> Result<Found> {
    let tables = conn.tables()?;
    let ours = tables.contains("__diesel_schema_migrations");
    if ours {
        check_our_versions(conn)?;
    }
    if tables.contains("migrations") {
        let ids = conn.go_migration_ids()?;
        let unknown: Vec<&String> = ids
            .iter()
            .filter(|id| {
                !GO_IDS.contains(&id.as_str())
                    && !GO_LEGACY_IDS.contains(&id.as_str())
                    && id.as_str() != GO_SCHEMA_INIT
            })
            .collect();
        if !unknown.is_empty() {
            return Err(Error::NewerGo {
                ids: join(unknown.iter().map(|s| s.as_str())),
            });
        }
        if ours {
            return Ok(Found::Ours);
        }
        if !ids.contains(GO_BASELINE) {
            return Err(Error::TooOld {
                missing: GO_BASELINE.into(),
            });
        }
        return Ok(Found::Go(ids));
    }
    if ours {
        return Ok(Found::Ours);
    }
    let foreign: Vec<&String> = tables
        .iter()
        .filter(|t| !t.starts_with("sqlite_") && !t.starts_with("_litestream"))
        .collect();
    if foreign.is_empty() {
        Ok(Found::Empty)
    } else {
        Err(Error::Unrecognised {
            tables: join(foreign.iter().take(5).map(|s| s.as_str())),
        })
    }
}

fn join<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}

fn check_our_versions(conn: &mut Conn<'_>) -> Result<()> {
    let applied: Vec<String> = dispatch!(conn, |c| c.applied_migrations())
        .map_err(|e| Error::Migration(e.to_string()))?
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    let known = known_versions(conn)?;
    let unknown: Vec<&str> = applied
        .iter()
        .filter(|v| !known.contains(*v))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Error::NewerOurs {
            versions: unknown.join(", "),
        })
    }
}

fn known_versions(conn: &Conn<'_>) -> Result<BTreeSet<String>> {
    use diesel::migration::MigrationSource;
    let names: Vec<String> = if conn.is_sqlite() {
        MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
            .map_err(|e| Error::Migration(e.to_string()))?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect()
    } else {
        MigrationSource::<diesel::pg::Pg>::migrations(&PG_MIGRATIONS)
            .map_err(|e| Error::Migration(e.to_string()))?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect()
    };
    Ok(names.into_iter().collect())
}

fn run_embedded(conn: &mut Conn<'_>) -> Result<()> {
    let applied = match &mut conn.inner {
        crate::db::ConnRef::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
        crate::db::ConnRef::Pg(c) => c.run_pending_migrations(PG_MIGRATIONS),
    }
    .map_err(|e| Error::Migration(e.to_string()))?;
    for v in applied {
        tracing::info!(version = %v, "applied schema migration");
    }
    Ok(())
}

/// Brings a Go Headscale database (0.25 baseline or later) to our baseline, in one
/// transaction. Every step checks the current shape first, so a half-finished earlier attempt
/// (which the transaction rules out anyway) or an already-current database is harmless.
fn import_go(conn: &mut Conn<'_>, ids: &BTreeSet<String>) -> Result<()> {
    let sqlite = conn.is_sqlite();
    if sqlite {
        // Go's own early migrations rebuilt tables with foreign keys off; existing dangling
        // references must not abort the import before the step that repairs them.
        conn.batch("PRAGMA foreign_keys = OFF")?;
    }
    let res = match &mut conn.inner {
        crate::db::ConnRef::Sqlite(c) => c.immediate_transaction(|c| {
            import_steps(
                &mut Conn {
                    inner: crate::db::ConnRef::Sqlite(c),
                },
                ids,
            )
        }),
        crate::db::ConnRef::Pg(c) => {
            diesel::Connection::transaction(&mut **c, |c: &mut diesel::pg::PgConnection| {
                import_steps(
                    &mut Conn {
                        inner: crate::db::ConnRef::Pg(c),
                    },
                    ids,
                )
            })
        }
    };
    if sqlite {
        conn.batch("PRAGMA foreign_keys = ON")?;
    }
    res?;
    if sqlite {
        check_foreign_keys(conn)?;
    }
    Ok(())
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

fn check_foreign_keys(conn: &mut Conn<'_>) -> Result<()> {
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

fn import_steps(conn: &mut Conn<'_>, ids: &BTreeSet<String>) -> Result<()> {
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
    conn.add_column_if_missing("api_keys", "user_id", "int")?;
    conn.add_column_if_missing("pre_auth_keys", "description", "text")?;
    conn.add_column_if_missing("pre_auth_keys", "revoked", "bool")?;
    if conn.is_sqlite() && !has("202507021200") {
        rebuild_sqlite_tables(conn)?;
    }
    Ok(())
}

/// The baseline DDL, also run by the embedded migration; every statement is idempotent.
const SQLITE_BASELINE: &str =
    include_str!("../migrations/sqlite/2026-11-21-000000_baseline/up.sql");

/// Tables gorm created in SQLite before 0.27 carry old constraints (e.g. `users.name
/// UNIQUE`, which blocks an OIDC user named like a local one). As Go's 0.27 migration did,
/// recreate the five tables with the baseline DDL and copy every row across.
fn rebuild_sqlite_tables(conn: &mut Conn<'_>) -> Result<()> {
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
    conn.batch(SQLITE_BASELINE)?;
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

    #[test]
    fn last_applied_is_in_the_known_list() {
        let pos = GO_IDS.iter().position(|i| *i == GO_LAST_APPLIED);
        assert_eq!(pos, Some(19));
        assert_eq!(GO_IDS[0], GO_BASELINE);
    }
}

//! Opening a database: recognising what it is (empty, Go Headscale's, one an earlier
//! headscale-rs wrote, something else) and bringing it to Go Headscale 0.29.3's schema.
//!
//! The schema *is* Go Headscale 0.29.3's, and migrations are tracked the way Go tracks them:
//! in its `migrations` table, one row per Go migration id (plus `SCHEMA_INIT` when the schema
//! was created whole). So the file can be handed back to Go 0.29.3 at any time: Go finds
//! every migration it knows applied and a schema its validator accepts.
//!
//! - [`import`]: the steps of Go's own migrations from the 0.25 baseline on.
//! - [`legacy`]: converts databases written by headscale-rs before it followed this rule.

mod import;
mod legacy;

use std::collections::BTreeSet;

use diesel::RunQueryDsl;
use diesel::sql_types::Text;

use crate::db::{Conn, ConnRef, dispatch};
use crate::error::{Error, Result};

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

/// What gormigrate records when Go Headscale creates a database from its full schema.
const GO_SCHEMA_INIT: &str = "SCHEMA_INIT";

/// The oldest Go migration we can import from (Go Headscale 0.25.0).
const GO_BASELINE: &str = "202501221827";

/// Go Headscale 0.29.3's migration ids, in order. A database this server has opened lists
/// all of them, and its schema is what they produce.
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
    "202607241200-clear-tagged-node-expiry",
];

/// The schema, created whole on an empty database.
const SQLITE_SCHEMA: &str = include_str!("../schema/sqlite.sql");
const PG_SCHEMA: &str = include_str!("../schema/postgres.sql");

#[derive(diesel::QueryableByName)]
pub(super) struct NameRow {
    #[diesel(sql_type = Text)]
    pub(super) name: String,
}

/// What [`detect`] found.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Empty,
    Go {
        ids: BTreeSet<String>,
        /// Written by headscale-rs before its schema became Go 0.29.3's.
        legacy: bool,
    },
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

    fn names(&mut self, q: &str) -> Result<BTreeSet<String>> {
        let rows: Vec<NameRow> = dispatch!(self, |c| diesel::sql_query(q).load(c))?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }

    fn schema_ddl(&self) -> &'static str {
        if self.is_sqlite() {
            SQLITE_SCHEMA
        } else {
            PG_SCHEMA
        }
    }

    /// Records Go migration ids as applied.
    fn record_ids<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) -> Result<()> {
        for id in ids {
            dispatch!(self, |c| diesel::sql_query(
                "INSERT INTO migrations(id) VALUES ($1) ON CONFLICT(id) DO NOTHING"
            )
            .bind::<Text, _>(id)
            .execute(c))?;
        }
        Ok(())
    }
}

/// Recognises the database and brings it to the current schema. Runs outside a
/// transaction; the change itself is one transaction, so a failure leaves the file as it was.
pub(crate) fn run(conn: &mut Conn<'_>) -> Result<()> {
    match detect(conn)? {
        Found::Empty => {
            tracing::info!("empty database, creating the schema");
            in_tx(conn, |c| {
                c.batch(c.schema_ddl())?;
                c.record_ids(std::iter::once(GO_SCHEMA_INIT).chain(GO_IDS.iter().copied()))
            })
        }
        Found::Go { ids, legacy } => {
            let missing: Vec<&str> = GO_IDS
                .iter()
                .copied()
                .filter(|id| !ids.contains(*id))
                .collect();
            if missing.is_empty() && !legacy {
                return Ok(());
            }
            if legacy {
                tracing::info!(
                    "database written by an earlier headscale-rs, converting it to Go Headscale 0.29.3's schema"
                );
            } else {
                tracing::info!(
                    missing = missing.len(),
                    "Go Headscale database found, applying its missing migrations in place"
                );
            }
            in_tx(conn, |c| {
                if legacy {
                    legacy::convert(c)?;
                }
                import::steps(c, &ids, legacy)?;
                c.record_ids(GO_IDS.iter().copied())
            })?;
            if conn.is_sqlite() {
                import::check_foreign_keys(conn)?;
            }
            Ok(())
        }
    }
}

/// Runs `f` in one transaction. On SQLite foreign keys are off meanwhile: rebuilding a table
/// (as Go's own migrations did) must not trip over references that the same transaction
/// repairs, and the caller checks them afterwards.
fn in_tx(conn: &mut Conn<'_>, f: impl FnOnce(&mut Conn<'_>) -> Result<()>) -> Result<()> {
    let sqlite = conn.is_sqlite();
    if sqlite {
        conn.batch("PRAGMA foreign_keys = OFF")?;
    }
    let res = match &mut conn.inner {
        ConnRef::Sqlite(c) => c.immediate_transaction(|c| {
            f(&mut Conn {
                inner: ConnRef::Sqlite(c),
            })
        }),
        ConnRef::Pg(c) => {
            diesel::Connection::transaction(&mut **c, |c: &mut diesel::pg::PgConnection| {
                f(&mut Conn {
                    inner: ConnRef::Pg(c),
                })
            })
        }
    };
    if sqlite {
        conn.batch("PRAGMA foreign_keys = ON")?;
    }
    res
}

fn detect(conn: &mut Conn<'_>) -> Result<Found> {
    let tables = conn.tables()?;
    let legacy = tables.contains(legacy::TABLE);
    if legacy {
        legacy::check_versions(conn)?;
    }
    if tables.contains("migrations") {
        let ids = conn.names("SELECT id AS name FROM migrations WHERE id IS NOT NULL")?;
        let unknown: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| {
                let known = GO_IDS.contains(id)
                    || GO_LEGACY_IDS.contains(id)
                    || *id == GO_SCHEMA_INIT
                    || (legacy && legacy::IDS.contains(id));
                !known
            })
            .collect();
        if !unknown.is_empty() {
            return Err(Error::NewerGo {
                ids: unknown.join(", "),
            });
        }
        if !ids.contains(GO_BASELINE) {
            return Err(Error::TooOld {
                missing: GO_BASELINE.into(),
            });
        }
        return Ok(Found::Go { ids, legacy });
    }
    let foreign: Vec<&str> = tables
        .iter()
        .map(String::as_str)
        .filter(|t| !t.starts_with("sqlite_") && !t.starts_with("_litestream"))
        .collect();
    if foreign.is_empty() {
        Ok(Found::Empty)
    } else {
        Err(Error::Unrecognised {
            tables: foreign
                .iter()
                .take(5)
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_start_at_the_baseline_and_are_distinct() {
        assert_eq!(GO_IDS[0], GO_BASELINE);
        let set: BTreeSet<&str> = GO_IDS.iter().copied().collect();
        assert_eq!(set.len(), GO_IDS.len());
        assert!(legacy::IDS.iter().all(|id| !set.contains(id)));
    }

    #[test]
    fn schema_has_no_column_go_0_29_3_lacks() {
        for ddl in [SQLITE_SCHEMA, PG_SCHEMA] {
            for col in ["description", "revoked"] {
                assert!(!ddl.contains(col), "{col} in schema");
            }
        }
    }
}

//! Persistence: the database schema, migrations and typed repository functions on SQLite and
//! PostgreSQL, compatible with Go Headscale's databases so an existing installation can be
//! opened and migrated in place.
//!
//! Architecture invariant: this is the only crate that knows SQL. It holds no business rules;
//! database errors leave it as [`hs_db::Error`](crate) values.

//! Persistence: the database schema, migrations and typed repository functions on SQLite and
//! PostgreSQL, compatible with Go Headscale's databases so an existing installation can be
//! opened and migrated in place.
//!
//! Architecture invariant: this is the only crate that knows SQL. It holds no business rules;
//! database errors leave it as [`Error`] values.
//!
//! Entry point: [`Db::open`] with a [`DbConfig`], then [`Db::tx`] to run repository methods
//! of [`Conn`] in one transaction.

mod config;
mod db;
mod error;
mod ip;
mod migrate;
mod repo;
pub mod secret;
mod sqltypes;

pub use config::{DbConfig, PostgresConfig, SqliteConfig};
pub use db::{Conn, Db};
pub use error::{Error, Result};
pub use ip::{AllocationStrategy, IpAllocator};
pub use repo::{NewApiKey, NewPreAuthKey, NewUser, PolicyRow};

//! Persistence: the database schema, migrations and typed repository functions on SQLite and
//! PostgreSQL, compatible with Go Headscale's databases so an existing installation can be
//! opened and migrated in place.
//!
//! Architecture invariant: this is the only crate that knows SQL. It holds no business rules;
//! database errors leave it as [`Error`] values.
//!
//! Entry point: [`Db::open`] with a [`DbConfig`], then [`Db::tx`] to run repository methods
//! of [`Conn`] in one transaction (`db.tx(|c| c.list_nodes())`; several calls in one closure
//! commit together or not at all). Diesel is blocking: async code calls it from
//! `spawn_blocking`. Key creation and lookup ([`Db::create_pre_auth_key`],
//! [`Db::find_pre_auth_key`], [`Db::create_api_key`], [`Db::find_api_key`]) are `Db` methods
//! so bcrypt runs outside the write lock. Addresses come from an [`IpAllocator`] seeded with
//! [`Conn::used_ips`].
//!
//! Storage notes: PostgreSQL keeps times to the microsecond; Go's zero time (year 1) reads
//! as "none"; JSON columns are written as Go Headscale writes them, so Go can read them back.

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
pub use repo::{ClientState, NewApiKey, NewPreAuthKey, NewUser, PolicyRow};

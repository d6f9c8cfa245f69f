//! Integration tests of the NodeStore: indexes, names, routes, patches and the incremental
//! writer against a from-scratch rebuild.

// Helpers outside #[test] fns are test code too; a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod fixtures;
mod health;
mod props;
mod store;

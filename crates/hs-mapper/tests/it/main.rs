//! Integration tests of the mapper: full maps, each change kind, nil-vs-empty rules, and a
//! simulated client that applies the delta stream exactly as Tailscale's client does.

// Helpers outside #[test] fns are test code too; a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod changes;
mod client;
mod fixtures;
mod model;
mod routes;

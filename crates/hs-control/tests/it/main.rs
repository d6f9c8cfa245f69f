//! hs-control integration tests: the server shell on a real loopback socket, and the control
//! protocol driven by Tailscale's Rust client against an in-process server.

// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]
// The server under test reads the wall clock; so do the tests that create keys and check expiry.
#![allow(clippy::disallowed_methods)]

mod batching;
mod flow;
mod gokeys;
mod ha;
mod harness;
mod interactive;
mod keycache;
mod lifecycle;
mod limits;
mod metrics;
mod policy;
mod policy_incremental;
mod policy_writes;
mod refusals;
mod routes;
mod server;
mod ssh_check;
mod stream;
mod stress;
mod tags;
mod users;
mod view;

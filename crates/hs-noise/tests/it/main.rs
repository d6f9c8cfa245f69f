//! hs-noise integration tests: the sans-IO core against an initiator written from the
//! spec, the tokio adapter over real sockets, and the HTTP glue against Tailscale's own
//! Rust client.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod core;
mod initiator;
mod server;
mod stream;
mod support;
mod websocket;

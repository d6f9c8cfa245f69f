//! hs-control integration tests: the server shell on a real loopback socket.

// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod server;

//! hs-testkit's integration tests: the test support itself, exercised as a test uses it.

// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod oidc;

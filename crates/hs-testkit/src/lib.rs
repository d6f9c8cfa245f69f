//! Dev-only test support shared by the workspace's tests: fixture builders, an in-process
//! server and tracing set-up for tests.

//! Integration tests for hs-api on real SQLite files (the goldens also on PostgreSQL): the REST goldens from Go Headscale,
//! every gRPC method through the generated client on 127.0.0.1, API-key authentication,
//! bad input, and `/api/v2`'s devices, keys and users.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly by design")]

mod auth;
mod bad_input;
mod golden;
mod grpc;
mod preauth;
mod support;
mod v2_openapi;
mod v2_resources;

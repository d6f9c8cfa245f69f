//! The `headscale.v1` protobuf messages and the tonic client and server for
//! `HeadscaleService`, generated from `proto/headscale/v1/*.proto` by `cargo xtask codegen`
//! and checked in so building needs no `protoc`.

#![allow(
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    elided_lifetimes_in_paths,
    clippy::all,
    reason = "generated code"
)]

include!("generated/headscale.v1.rs");

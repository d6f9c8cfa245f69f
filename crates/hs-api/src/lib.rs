//! The admin surface: gRPC `headscale.v1`, REST `/api/v1`, API-key authentication, and the
//! client the CLI uses to reach a running server.
//!
//! One [`Admin`] service holds the operations; [`rest`] and [`grpc`] are thin front ends
//! over it. Reads and key writes go through the [`Store`] trait (implemented on hs-db's
//! `Db`, in `db_store`); every change to users, nodes and the policy is a command of
//! hs-control's `ControlState`, the one writer of the tailnet. [`serve`] puts the API on the
//! gRPC TCP listener (with API-key auth) and on the unix socket (without).
//!
//! Wiring, for `headscale serve` (done by `hs-server`):
//! 1. `Admin::new(Arc::new(db.clone()), control_state, system_clock(), policy_mode)`;
//! 2. the main listener merges [`serve::http_router`] (bearer auth, public OpenAPI);
//! 3. `grpc_listen_addr`: [`serve::serve_grpc`] with [`serve::grpc_security`]`(tls_cert_path,
//!    tls_key_path, grpc_allow_insecure)` (`None`: no
//!    remote gRPC listener, as in Headscale 0.29);
//! 4. `unix_socket`: [`serve::serve_unix`] on [`serve::bind_unix`]`(path, unix_socket_permission)`.
//!
//! The CLI connects with [`client::connect_unix`] or [`client::connect_remote`] (with
//! [`client::RemoteTls::for_address`]) and prints with [`output::render`] / [`output::table`].
//!
//! Architecture invariant: this crate turns domain errors into HTTP/gRPC status codes in one
//! place, [`ApiError`]; it knows no SQL.

pub mod apikey;
pub mod auth;
pub mod client;
mod db_store;
mod error;
pub mod grpc;
pub mod json;
pub mod output;
pub mod policy_check;
pub mod proto;
pub mod rest;
pub mod serve;
mod service;
mod socket_authority;
mod store;
pub mod v2;

pub use error::{ApiError, Error};
pub use service::{
    AUTH_ID_PREFIX, Admin, ApiKeyRef, Clock, NodeView, PolicyMode, PreAuthKeyView, UserFilter,
    system_clock, zero_instant,
};
pub use store::{NewApiKey, NewPreAuthKey, NewUser, Store, StoreError, StoreResult, StoredPolicy};

//! The admin surface: gRPC `headscale.v1`, REST `/api/v1`, API-key authentication, and the
//! client the CLI uses to reach a running server.
//!
//! One [`Admin`] service holds the operations; [`rest`] and [`grpc`] are thin front ends
//! over it. Persistence comes in through the [`Store`] trait (implemented on hs-db by the
//! crate for hs-db's `Db`, in `db_store`) and control-plane side effects go out through [`ControlHooks`]. [`serve`] puts
//! the API on the gRPC TCP listener (with API-key auth) and on the unix socket (without).
//!
//! Architecture invariant: this crate turns domain errors into HTTP/gRPC status codes in one
//! place, [`ApiError`]; it knows no SQL.

pub mod apikey;
pub mod auth;
pub mod client;
mod db_store;
mod error;
pub mod grpc;
pub mod hooks;
pub mod json;
mod keycache;
pub mod output;
pub mod policy_check;
pub mod proto;
pub mod rest;
pub mod serve;
mod service;
mod store;

pub use error::{ApiError, Error};
pub use hooks::{ControlHooks, DbOnly};
pub use service::{
    Admin, ApiKeyRef, Clock, NodeView, PolicyMode, PreAuthKeyView, UserFilter, system_clock,
    zero_instant,
};
pub use store::{NewApiKey, NewPreAuthKey, NewUser, Store, StoreError, StoreResult, StoredPolicy};

//! The HTTP side of the control plane: the main listener and its built-in routes, the
//! Noise upgrade, and the handlers of the client protocol. Handlers parse and check what a
//! client sent and answer it; every change they cause is a command of `crate::state`.

pub(crate) mod guard;
pub(crate) mod interactive;
pub(crate) mod limits;
pub(crate) mod page;
pub(crate) mod pages;
pub(crate) mod poll;
pub(crate) mod register;
pub(crate) mod routes;
pub(crate) mod server;
pub(crate) mod ssh_action;
pub(crate) mod web;

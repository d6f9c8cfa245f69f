//! The in-memory tailnet: one `ArcSwap` snapshot holding everything that is read together
//! (nodes, indexes by id, node key, machine key and user, primary routes, peer visibility),
//! read without locks and written by a single writer that applies batches in time
//! proportional to what they touch.
//!
//! No tokio, no database, no clock.

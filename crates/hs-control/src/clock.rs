//! The control plane's clock: the one place that reads the wall clock, so everything below
//! it (NodeStore, mapper, policy) takes time as a parameter.

use chrono::{DateTime, Utc};

/// The current time.
#[allow(
    clippy::disallowed_methods,
    reason = "the control plane's single wall-clock read; pure crates take time as a parameter"
)]
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now()
}

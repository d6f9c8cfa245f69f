//! The wall clock, read in this one place: certificates expire by the calendar, so the
//! renewal loop and the expiry checks need the time of day. Everything else in the crate
//! takes time as a parameter ([`crate::certs::renew_at`]).

use std::time::SystemTime;

/// The time of day.
#[allow(
    clippy::disallowed_methods,
    reason = "certificate validity is wall-clock time; hs-tls is an I/O crate, not a pure one"
)]
pub(crate) fn now() -> SystemTime {
    SystemTime::now()
}

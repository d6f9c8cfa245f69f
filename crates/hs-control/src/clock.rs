//! The control plane's clock: the one place that reads the wall clock, so everything below
//! it (NodeStore, mapper, policy) takes time as a parameter.
//!
//! It follows tokio's clock as well: under tokio's paused test clock
//! (`tokio::time::pause`/`advance`, `start_paused`), tokio time moves apart from the
//! process's monotonic clock, and `now` moves with it. That lets tests drive expiry and
//! timeouts in virtual time. In a normal runtime both are the same clock and the wall clock
//! is returned unchanged.

use chrono::{DateTime, Utc};

/// Skews below this are the nanoseconds between two reads of the same clock, not a paused
/// test clock.
const SKEW_NOISE: std::time::Duration = std::time::Duration::from_millis(1);

/// The current time.
#[allow(
    clippy::disallowed_methods,
    reason = "the control plane's single wall-clock read; pure crates take time as a parameter"
)]
pub(crate) fn now() -> DateTime<Utc> {
    let wall = Utc::now();
    let virt = tokio::time::Instant::now().into_std();
    let real = std::time::Instant::now();
    let skew = match virt.checked_duration_since(real) {
        Some(ahead) if ahead >= SKEW_NOISE => chrono::Duration::from_std(ahead).ok(),
        Some(_) => None,
        None => real
            .checked_duration_since(virt)
            .filter(|behind| *behind >= SKEW_NOISE)
            .and_then(|behind| chrono::Duration::from_std(behind).ok())
            .map(|d| -d),
    };
    skew.and_then(|s| wall.checked_add_signed(s))
        .unwrap_or(wall)
}

/// A monotonic start point for measuring durations (metrics), never for time of day.
#[allow(
    clippy::disallowed_methods,
    reason = "durations for metrics; the control plane's clock module is the one place that reads clocks"
)]
pub(crate) fn stopwatch() -> std::time::Instant {
    std::time::Instant::now()
}

/// The monotonic time the per-client limits count with. It follows tokio's clock, so a
/// paused test runtime moves it; in a normal runtime it is the process's monotonic clock.
pub(crate) fn monotonic() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

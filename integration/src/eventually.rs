//! Polling assertions: one observation per helper, retried until it holds or the time is up,
//! failing with the description and the last thing observed. Scenarios use these instead of
//! sleeps. A run-wide deadline (the `--timeout` flag) cuts every wait short.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static RUN_DEADLINE: OnceLock<Instant> = OnceLock::new();

/// Sets the deadline of the whole run; waits past it fail at once.
pub(crate) fn set_run_deadline(at: Instant) {
    let _ = RUN_DEADLINE.set(at);
}

/// Whether the run's deadline has passed.
pub(crate) fn run_timed_out() -> bool {
    RUN_DEADLINE.get().is_some_and(|d| Instant::now() >= *d)
}

/// An observation error that retrying cannot fix (a dead server): `eventually` gives up at
/// once instead of waiting out its timeout.
#[derive(Debug)]
pub(crate) struct Fatal(pub(crate) String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fatal {}

/// Calls `observe` every `interval` until it returns `Ok`, for at most `timeout`. The error
/// names `what` and carries the last observation's error.
pub(crate) fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut observe: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    let mut until = start + timeout;
    if let Some(d) = RUN_DEADLINE.get() {
        until = until.min(*d);
    }
    let mut interval = Duration::from_millis(200);
    loop {
        match observe() {
            Ok(v) => return Ok(v),
            Err(e) => {
                if e.downcast_ref::<Fatal>().is_some() {
                    anyhow::bail!("{what}: gave up after {:.0?}: {e:#}", start.elapsed());
                }
                if Instant::now() >= until {
                    let why = if run_timed_out() {
                        " (the run's --timeout expired)"
                    } else {
                        ""
                    };
                    anyhow::bail!(
                        "{what}: still not true after {:.0?}{why}; last observation: {e:#}",
                        start.elapsed()
                    );
                }
            }
        }
        std::thread::sleep(interval);
        interval = (interval * 2).min(Duration::from_secs(2));
    }
}

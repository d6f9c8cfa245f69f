//! A token bucket for the relay's per-client byte limit and its `NotHere` replies, with the
//! relay's single clock read.

use std::time::Duration;

use tokio::time::Instant;

/// The one clock read of the relay: rate limiting needs elapsed time.
#[allow(
    clippy::disallowed_methods,
    reason = "the relay's rate limiters need the current time"
)]
fn now() -> Instant {
    Instant::now()
}

pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last: now(),
        }
    }

    fn refill(&mut self) {
        let t = now();
        let dt = t.duration_since(self.last).as_secs_f64();
        self.last = t;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
    }

    /// Takes one token if available.
    pub(crate) fn try_take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes `n` tokens, going into debt; returns how long to wait to pay it back.
    pub(crate) fn take(&mut self, n: f64) -> Duration {
        self.refill();
        self.tokens -= n;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_refill_at_the_rate() {
        let mut b = TokenBucket::new(1.0, 3.0);
        assert!(b.try_take() && b.try_take() && b.try_take());
        assert!(!b.try_take());
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert!(b.try_take());
        assert!(!b.try_take());
    }

    #[tokio::test(start_paused = true)]
    async fn byte_debt_is_paid_back_at_the_rate() {
        let mut b = TokenBucket::new(1000.0, 500.0);
        assert_eq!(b.take(500.0), Duration::ZERO);
        assert_eq!(b.take(2000.0), Duration::from_secs(2));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(b.take(0.0), Duration::ZERO);
    }
}

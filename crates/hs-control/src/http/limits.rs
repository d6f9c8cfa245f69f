//! Per-client limits as plain state: token buckets, the table of client addresses with their
//! open connections and buckets, and a log throttle. Nothing here reads a clock or locks:
//! every call takes `now`, and [`super::guard`] holds the table behind its lock and applies
//! it to connections and requests.
//!
//! The table's memory is bounded: an entry that has no connection and full buckets answers
//! exactly as a missing one would, so it is dropped whenever the table fills up; if the
//! table is still crowded (many addresses active within the last few seconds), entries
//! without connections are dropped too. Entries with connections always stay, so the
//! per-address counts stay right; the process's descriptor limit bounds how many there are.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// A token bucket's shape: at most `burst` tokens, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    /// Tokens added per second; positive.
    pub(crate) per_second: f64,
    /// The most tokens the bucket holds, what a client may spend at once; at least one.
    pub(crate) burst: f64,
}

/// A token bucket, refilled lazily from the time of its last use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A bucket holding its whole burst: a client never seen before may send that much.
    pub(crate) fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        // `now` can lag `at` when another thread read the clock later but took the lock
        // first; that adds nothing rather than moving time backwards.
        if let Some(elapsed) = now.checked_duration_since(self.at) {
            self.tokens = (self.tokens + elapsed.as_secs_f64() * rate.per_second).min(rate.burst);
            self.at = now;
        }
    }

    /// How long until a whole token is there.
    fn wait(&self, rate: Rate) -> Duration {
        let secs = (1.0 - self.tokens).max(0.0) / rate.per_second;
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }

    /// Takes a token, or says how long until one is there.
    pub(crate) fn try_take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.check(rate, now)?;
        self.tokens -= 1.0;
        Ok(())
    }

    /// Whether a token is there, without taking it.
    pub(crate) fn check(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(self.wait(rate))
        }
    }

    /// Takes a token for something already done; an empty bucket stays empty.
    pub(crate) fn charge(&mut self, rate: Rate, now: Instant) {
        self.refill(rate, now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }

    /// Whether the bucket has refilled completely, so forgetting it changes nothing.
    fn is_full(&mut self, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        self.tokens >= rate.burst
    }
}

/// Whom a limit counts against: an IPv4 address, or an IPv6 /64, the block one subscriber
/// usually gets (a host can pick any address in it, so counting single addresses would let
/// it multiply its limits by 2^64). IPv4-mapped IPv6 addresses (a dual-stack listener)
/// count as the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ClientKey {
    /// One IPv4 address.
    V4(Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6Net(u64),
}

impl ClientKey {
    /// The key `ip` counts against.
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4),
                None => Self::V6Net((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(v4) => v4.fmt(f),
            Self::V6Net(net) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*net) << 64)),
        }
    }
}

/// The limits a [`ClientTable`] enforces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    /// Open connections per client; `None` counts none.
    pub(crate) max_connections: Option<u32>,
    /// Unauthenticated requests (and TLS handshakes); `None` turns rate limiting off.
    pub(crate) requests: Option<Rate>,
    /// Failed authentications (401 answers to requests carrying credentials).
    pub(crate) auth_failures: Option<Rate>,
    /// Entries kept before idle ones are dropped.
    pub(crate) max_entries: usize,
}

#[derive(Debug, Default)]
struct Entry {
    conns: u32,
    // `None` is a full bucket: most clients never need one allocated twice.
    requests: Option<TokenBucket>,
    auth_failures: Option<TokenBucket>,
}

impl Entry {
    fn is_idle(&mut self, s: &Settings, now: Instant) -> bool {
        fn full(b: Option<&mut TokenBucket>, rate: Option<Rate>, now: Instant) -> bool {
            match (b, rate) {
                (Some(b), Some(rate)) => b.is_full(rate, now),
                _ => true,
            }
        }
        self.conns == 0
            && full(self.requests.as_mut(), s.requests, now)
            && full(self.auth_failures.as_mut(), s.auth_failures, now)
    }
}

/// Open connections and token buckets per client, bounded in size (see the module docs).
#[derive(Debug)]
pub(crate) struct ClientTable {
    settings: Settings,
    entries: HashMap<ClientKey, Entry>,
}

impl ClientTable {
    /// An empty table enforcing `settings`.
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            settings,
            entries: HashMap::new(),
        }
    }

    /// How many clients the table holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn entry(&mut self, key: ClientKey, now: Instant) -> &mut Entry {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.settings.max_entries {
            self.evict(now);
        }
        self.entries.entry(key).or_default()
    }

    fn evict(&mut self, now: Instant) {
        let s = self.settings;
        self.entries.retain(|_, e| !e.is_idle(&s, now));
        // Pruning to half keeps the scans amortised: the next one is at least
        // max_entries / 2 new clients away.
        if self.entries.len() >= s.max_entries / 2 {
            // Many clients active within a burst's refill time: forget those without a
            // connection as well. They start again with a full bucket, which gives someone
            // spreading requests over this many addresses no more than each address
            // already had.
            self.entries.retain(|_, e| e.conns > 0);
        }
    }

    /// Counts a new connection from `key`, unless it already holds the most allowed.
    pub(crate) fn open(&mut self, key: ClientKey, now: Instant) -> bool {
        let max = self.settings.max_connections;
        let e = self.entry(key, now);
        if max.is_some_and(|max| e.conns >= max) {
            return false;
        }
        e.conns = e.conns.saturating_add(1);
        true
    }

    /// Counts a connection from `key` as closed.
    pub(crate) fn close(&mut self, key: ClientKey) {
        if let Some(e) = self.entries.get_mut(&key) {
            e.conns = e.conns.saturating_sub(1);
            if e.conns == 0 && e.requests.is_none() && e.auth_failures.is_none() {
                self.entries.remove(&key);
            }
        }
    }

    /// Takes a request token from `key`'s bucket, or says how long until there is one.
    pub(crate) fn take_request(&mut self, key: ClientKey, now: Instant) -> Result<(), Duration> {
        let Some(rate) = self.settings.requests else {
            return Ok(());
        };
        let e = self.entry(key, now);
        e.requests
            .get_or_insert_with(|| TokenBucket::full(rate, now))
            .try_take(rate, now)
    }

    /// Whether `key` may try to authenticate now (it has not failed too often lately).
    pub(crate) fn check_auth(&mut self, key: ClientKey, now: Instant) -> Result<(), Duration> {
        let Some(rate) = self.settings.auth_failures else {
            return Ok(());
        };
        match self
            .entries
            .get_mut(&key)
            .and_then(|e| e.auth_failures.as_mut())
        {
            Some(b) => b.check(rate, now),
            None => Ok(()),
        }
    }

    /// Records a failed authentication from `key`.
    pub(crate) fn auth_failed(&mut self, key: ClientKey, now: Instant) {
        let Some(rate) = self.settings.auth_failures else {
            return;
        };
        let e = self.entry(key, now);
        e.auth_failures
            .get_or_insert_with(|| TokenBucket::full(rate, now))
            .charge(rate, now);
    }
}

/// Lets one log line through per `every`, counting the events in between, so a flood of
/// refusals costs the log a line per interval rather than a line per refusal.
#[derive(Debug, Default)]
pub(crate) struct LogThrottle {
    last: Option<Instant>,
    events: u64,
}

impl LogThrottle {
    /// Counts an event; returns how many events the line to log now stands for, or `None`
    /// while the last line is more recent than `every`.
    pub(crate) fn note(&mut self, now: Instant, every: Duration) -> Option<u64> {
        self.events += 1;
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < every)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.events))
    }
}

#[cfg(test)]
mod tests;

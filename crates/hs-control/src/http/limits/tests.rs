//! The token bucket, client keys, the table's limits and its bound, all with time as a
//! parameter.

use super::*;

const RATE: Rate = Rate {
    per_second: 2.0,
    burst: 3.0,
};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn settings(max_entries: usize) -> Settings {
    Settings {
        max_connections: Some(2),
        requests: Some(RATE),
        auth_failures: Some(Rate {
            per_second: 1.0,
            burst: 2.0,
        }),
        max_entries,
    }
}

fn v4(n: u32) -> ClientKey {
    ClientKey::of(IpAddr::V4(Ipv4Addr::from(n)))
}

#[test]
fn bucket_spends_its_burst_then_refills_at_its_rate() {
    let t0 = crate::clock::monotonic();
    let mut b = TokenBucket::full(RATE, t0);
    for _ in 0..3 {
        assert_eq!(b.try_take(RATE, t0), Ok(()));
    }
    // Empty: one token takes 1 / 2 s.
    assert_eq!(b.try_take(RATE, t0), Err(secs(0.5)));
    // A quarter of a second later half a token is back: still refused, the wait shrinks.
    assert_eq!(b.try_take(RATE, t0 + secs(0.25)), Err(secs(0.25)));
    assert_eq!(b.try_take(RATE, t0 + secs(0.5)), Ok(()));
    // A long pause refills only up to the burst.
    let later = t0 + secs(3600.0);
    for _ in 0..3 {
        assert_eq!(b.try_take(RATE, later), Ok(()));
    }
    assert!(b.try_take(RATE, later).is_err());
}

#[test]
fn bucket_check_does_not_spend_and_charge_stops_at_empty() {
    let t0 = crate::clock::monotonic();
    let mut b = TokenBucket::full(RATE, t0);
    for _ in 0..10 {
        assert_eq!(b.check(RATE, t0), Ok(()));
    }
    for _ in 0..10 {
        b.charge(RATE, t0);
    }
    assert_eq!(b.check(RATE, t0), Err(secs(0.5)));
    // Charging an empty bucket does not push the refill further out.
    assert_eq!(b.check(RATE, t0 + secs(0.5)), Ok(()));
}

#[test]
fn bucket_ignores_a_clock_read_older_than_its_last_use() {
    let t0 = crate::clock::monotonic() + secs(10.0);
    let mut b = TokenBucket::full(RATE, t0);
    b.charge(RATE, t0);
    assert_eq!(b.try_take(RATE, t0 - secs(5.0)), Ok(()));
    assert_eq!(b.try_take(RATE, t0 - secs(5.0)), Ok(()));
    assert!(b.try_take(RATE, t0).is_err());
}

#[test]
fn ipv6_counts_per_slash_64_and_mapped_ipv4_as_ipv4() {
    let key = |s: &str| ClientKey::of(s.parse().unwrap());
    assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
    assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
    assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    assert_eq!(key("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
    assert_eq!(key("192.0.2.7").to_string(), "192.0.2.7");
}

#[test]
fn connections_are_capped_per_client_and_freed_on_close() {
    let t0 = crate::clock::monotonic();
    let mut t = ClientTable::new(settings(100));
    assert!(t.open(v4(1), t0));
    assert!(t.open(v4(1), t0));
    assert!(!t.open(v4(1), t0), "a third connection over the cap of 2");
    assert!(t.open(v4(2), t0), "another client is not affected");
    t.close(v4(1));
    assert!(t.open(v4(1), t0));
    // Closing everything forgets the client: nothing else was recorded for it.
    t.close(v4(1));
    t.close(v4(1));
    t.close(v4(2));
    assert_eq!(t.len(), 0);
    // A close without an open (never happens) does not underflow.
    t.close(v4(3));
    assert_eq!(t.len(), 0);
}

#[test]
fn requests_and_auth_failures_have_their_own_buckets() {
    let t0 = crate::clock::monotonic();
    let mut t = ClientTable::new(settings(100));
    for _ in 0..3 {
        assert_eq!(t.take_request(v4(1), t0), Ok(()));
    }
    assert_eq!(t.take_request(v4(1), t0), Err(secs(0.5)));
    assert_eq!(t.take_request(v4(2), t0), Ok(()));
    // An empty request bucket does not stop authentication attempts...
    assert_eq!(t.check_auth(v4(1), t0), Ok(()));
    // ...failures do.
    t.auth_failed(v4(1), t0);
    assert_eq!(t.check_auth(v4(1), t0), Ok(()));
    t.auth_failed(v4(1), t0);
    assert_eq!(t.check_auth(v4(1), t0), Err(secs(1.0)));
    assert_eq!(t.check_auth(v4(1), t0 + secs(1.0)), Ok(()));
    assert_eq!(t.check_auth(v4(2), t0), Ok(()));
}

#[test]
fn no_settings_no_limits() {
    let t0 = crate::clock::monotonic();
    let mut t = ClientTable::new(Settings {
        max_connections: None,
        requests: None,
        auth_failures: None,
        max_entries: 10,
    });
    for _ in 0..1000 {
        assert!(t.open(v4(1), t0));
        assert_eq!(t.take_request(v4(1), t0), Ok(()));
        t.auth_failed(v4(1), t0);
        assert_eq!(t.check_auth(v4(1), t0), Ok(()));
    }
}

#[test]
fn table_stays_bounded_over_many_distinct_clients() {
    let t0 = crate::clock::monotonic();
    let mut t = ClientTable::new(settings(64));
    let mut most = 0;
    for n in 0..100_000 {
        // All within the same instant: no bucket has refilled, nothing is idle.
        assert_eq!(t.take_request(v4(n), t0), Ok(()));
        t.auth_failed(v4(n), t0);
        most = most.max(t.len());
    }
    assert!(most <= 64, "table grew to {most}");
    // IPv6 clients each from their own /64: the same bound.
    for n in 0..10_000u128 {
        let ip = Ipv6Addr::from((0x2001_0db8_u128 << 96) | (n << 64) | 1);
        assert_eq!(t.take_request(ClientKey::of(IpAddr::V6(ip)), t0), Ok(()));
        assert!(t.len() <= 64);
    }
}

#[test]
fn crowded_table_keeps_connected_clients_and_their_counts() {
    let t0 = crate::clock::monotonic();
    let mut t = ClientTable::new(settings(8));
    assert!(t.open(v4(1), t0));
    assert!(t.open(v4(1), t0));
    for n in 100..10_000 {
        assert_eq!(t.take_request(v4(n), t0), Ok(()));
    }
    assert!(t.len() <= 8);
    assert!(
        !t.open(v4(1), t0),
        "the connection count survived the eviction"
    );
}

#[test]
fn eviction_drops_refilled_clients_first_and_keeps_a_throttled_one() {
    let t0 = crate::clock::monotonic();
    let mut t = ClientTable::new(settings(10));
    for n in 2..11 {
        assert_eq!(t.take_request(v4(n), t0), Ok(()));
    }
    // Client 1 spends its burst 100 s later, when the others have refilled.
    let t1 = t0 + secs(100.0);
    for _ in 0..3 {
        assert_eq!(t.take_request(v4(1), t1), Ok(()));
    }
    assert_eq!(t.len(), 10);
    // A new client makes room: the nine refilled entries go, client 1 stays throttled.
    assert_eq!(t.take_request(v4(99), t1), Ok(()));
    assert_eq!(t.len(), 2);
    assert!(t.take_request(v4(1), t1).is_err());
}

#[test]
fn log_throttle_lets_one_line_through_per_interval_with_the_count() {
    let t0 = crate::clock::monotonic();
    let every = secs(10.0);
    let mut l = LogThrottle::default();
    assert_eq!(l.note(t0, every), Some(1));
    for i in 1..=5 {
        assert_eq!(l.note(t0 + secs(f64::from(i)), every), None);
    }
    assert_eq!(l.note(t0 + secs(10.0), every), Some(6));
    assert_eq!(l.note(t0 + secs(30.0), every), Some(1));
}

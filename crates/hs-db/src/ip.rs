//! The IP allocator: hands each node one address per configured prefix (`prefixes.v4`,
//! `prefixes.v6`), `sequential` or `random`, skipping the addresses Tailscale reserves, and
//! never giving one address to two nodes: allocation and marking happen under one lock.
//!
//! It is seeded from the addresses nodes hold in the database ([`crate::Conn::used_ips`]);
//! deleting a node gives its addresses back ([`IpAllocator::release`]).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::RngCore;

use crate::error::{Error, Result};

/// `prefixes.allocation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AllocationStrategy {
    /// The next free address after the last one handed out, wrapping around.
    #[default]
    Sequential,
    /// A free address found from a random starting point.
    Random,
}

/// Thread-safe allocator of tailnet addresses.
#[derive(Debug)]
pub struct IpAllocator {
    v4: Option<Ipv4Net>,
    v6: Option<Ipv6Net>,
    strategy: AllocationStrategy,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    used: HashSet<IpAddr>,
    last4: Option<u128>,
    last6: Option<u128>,
}

/// Tailscale's MagicDNS resolver address (`100.100.100.100`).
const QUAD100: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 100);
/// Its IPv6 twin (`fd7a:115c:a1e0::53`).
const QUAD100_V6: Ipv6Addr = Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 0x53);

fn is_reserved(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            // ChromeOS VM range 100.115.92.0/23.
            a == QUAD100 || (o[0] == 100 && o[1] == 115 && (o[2] == 92 || o[2] == 93))
        }
        IpAddr::V6(a) => a == QUAD100_V6,
    }
}

impl IpAllocator {
    /// An allocator for the given prefixes (at least one), with the addresses already held.
    pub fn new(
        v4: Option<Ipv4Net>,
        v6: Option<Ipv6Net>,
        strategy: AllocationStrategy,
        used: impl IntoIterator<Item = IpAddr>,
    ) -> Result<Self> {
        // Neither family is allowed here (nodes then get no address), as in Go Headscale's
        // allocator; the config loader is what requires an operator to set one.
        if v4.is_some_and(|p| p.prefix_len() > 30) || v6.is_some_and(|p| p.prefix_len() > 126) {
            return Err(Error::Config(
                "prefixes: v4 must be /30 or larger and v6 /126 or larger".into(),
            ));
        }
        Ok(Self {
            v4: v4.map(|p| p.trunc()),
            v6: v6.map(|p| p.trunc()),
            strategy,
            state: Mutex::new(State {
                used: used.into_iter().collect(),
                ..State::default()
            }),
        })
    }

    /// Allocates one address per configured family and marks them used. Nothing is marked
    /// if either family is exhausted.
    pub fn allocate<R: RngCore>(
        &self,
        rng: &mut R,
    ) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>)> {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let v4 = match self.v4 {
            Some(p) => {
                let base = u128::from(u32::from(p.network()));
                let size = 1u128 << (32 - p.prefix_len());
                let start = self.start(rng, st.last4, size);
                let off = scan(size, start, |o| {
                    let ip = IpAddr::V4(Ipv4Addr::from(u32::try_from(base + o).unwrap_or(0)));
                    !st.used.contains(&ip) && !is_reserved(ip)
                })
                .ok_or(Error::PrefixExhausted(IpNet::V4(p)))?;
                Some((off, Ipv4Addr::from(u32::try_from(base + off).unwrap_or(0))))
            }
            None => None,
        };
        let v6 = match self.v6 {
            Some(p) => {
                let base = u128::from(p.network());
                let size = 1u128
                    .checked_shl(128 - u32::from(p.prefix_len()))
                    .unwrap_or(u128::MAX);
                let start = self.start(rng, st.last6, size);
                let off = scan(size, start, |o| {
                    let ip = IpAddr::V6(Ipv6Addr::from(base + o));
                    !st.used.contains(&ip) && !is_reserved(ip)
                })
                .ok_or(Error::PrefixExhausted(IpNet::V6(p)))?;
                Some((off, Ipv6Addr::from(base + off)))
            }
            None => None,
        };
        if let Some((off, a)) = v4 {
            st.last4 = Some(off);
            st.used.insert(IpAddr::V4(a));
        }
        if let Some((off, a)) = v6 {
            st.last6 = Some(off);
            st.used.insert(IpAddr::V6(a));
        }
        Ok((v4.map(|x| x.1), v6.map(|x| x.1)))
    }

    fn start<R: RngCore>(&self, rng: &mut R, last: Option<u128>, size: u128) -> u128 {
        match self.strategy {
            AllocationStrategy::Sequential => last.map_or(1, |l| l + 1),
            AllocationStrategy::Random => {
                let r = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
                r % size
            }
        }
    }

    /// Gives addresses back (their node was deleted).
    pub fn release(&self, ips: impl IntoIterator<Item = IpAddr>) {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ip in ips {
            st.used.remove(&ip);
        }
    }

    /// Marks an address used; false if it already was.
    pub fn reserve(&self, ip: IpAddr) -> bool {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.used.insert(ip)
    }

    /// The configured IPv4 prefix.
    pub fn v4_prefix(&self) -> Option<Ipv4Net> {
        self.v4
    }

    /// The configured IPv6 prefix.
    pub fn v6_prefix(&self) -> Option<Ipv6Net> {
        self.v6
    }
}

/// Finds the first offset in `[start, size-1)` then `[1, start)` that is `free`, skipping
/// offset 0 (the network address) and `size-1` (the broadcast address).
fn scan(size: u128, start: u128, free: impl Fn(u128) -> bool) -> Option<u128> {
    let last = size.saturating_sub(1);
    let start = if start == 0 || start >= last {
        1
    } else {
        start
    };
    (start..last).chain(1..start).find(|o| free(*o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Option<Ipv4Net> {
        Some(s.parse().expect("prefix"))
    }

    #[test]
    fn sequential_skips_network_reserved_and_used() {
        let a = IpAllocator::new(
            v4("100.64.0.0/10"),
            Some("fd7a:115c:a1e0::/48".parse().expect("v6")),
            AllocationStrategy::Sequential,
            ["100.64.0.2".parse().expect("ip")],
        )
        .expect("allocator");
        let mut rng = rand::thread_rng();
        let (a4, a6) = a.allocate(&mut rng).expect("first");
        assert_eq!(a4, Some("100.64.0.1".parse().expect("ip")));
        assert_eq!(a6, Some("fd7a:115c:a1e0::1".parse().expect("ip")));
        let (b4, _) = a.allocate(&mut rng).expect("second");
        assert_eq!(b4, Some("100.64.0.3".parse().expect("ip")));
    }

    #[test]
    fn chromeos_range_and_quad100_are_never_handed_out() {
        let a = IpAllocator::new(
            v4("100.115.92.0/22"),
            None,
            AllocationStrategy::Sequential,
            [],
        )
        .expect("allocator");
        let mut rng = rand::thread_rng();
        let first = a.allocate(&mut rng).expect("alloc").0.expect("v4");
        assert_eq!(first, "100.115.94.0".parse::<Ipv4Addr>().expect("ip"));
        let q = IpAllocator::new(
            v4("100.100.100.96/29"),
            None,
            AllocationStrategy::Sequential,
            [],
        )
        .expect("allocator");
        let got: Vec<Ipv4Addr> = (0..5)
            .map(|_| q.allocate(&mut rng).expect("alloc").0.expect("v4"))
            .collect();
        assert!(!got.contains(&QUAD100));
        assert_eq!(got.len(), 5);
        assert!(matches!(
            q.allocate(&mut rng),
            Err(Error::PrefixExhausted(_))
        ));
    }

    #[test]
    fn released_addresses_are_reused_after_wrapping() {
        let a = IpAllocator::new(v4("10.0.0.0/29"), None, AllocationStrategy::Sequential, [])
            .expect("allocator");
        let mut rng = rand::thread_rng();
        let all: Vec<Ipv4Addr> = (0..6)
            .map(|_| a.allocate(&mut rng).expect("alloc").0.expect("v4"))
            .collect();
        assert_eq!(all.first(), Some(&"10.0.0.1".parse().expect("ip")));
        assert_eq!(all.last(), Some(&"10.0.0.6".parse().expect("ip")));
        assert!(a.allocate(&mut rng).is_err());
        a.release([IpAddr::V4("10.0.0.3".parse().expect("ip"))]);
        assert_eq!(
            a.allocate(&mut rng).expect("reuse").0,
            Some("10.0.0.3".parse().expect("ip"))
        );
    }

    #[test]
    fn random_allocations_are_distinct_under_concurrency() {
        let a = std::sync::Arc::new(
            IpAllocator::new(v4("10.0.0.0/22"), None, AllocationStrategy::Random, [])
                .expect("allocator"),
        );
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let a = a.clone();
                std::thread::spawn(move || {
                    let mut rng = rand::thread_rng();
                    (0..120)
                        .map(|_| a.allocate(&mut rng).expect("alloc").0.expect("v4"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for h in handles {
            for ip in h.join().expect("thread") {
                assert!(seen.insert(ip), "{ip} handed out twice");
                let o = ip.octets();
                assert!(!((o[2] == 0 && o[3] == 0) || (o[2] == 3 && o[3] == 255)));
            }
        }
        assert_eq!(seen.len(), 960);
    }
}

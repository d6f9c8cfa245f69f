//! A set of IP addresses kept as merged, sorted ranges, printed the way the hosted control plane
//! spells address sets: a single address bare, a range that is exactly a prefix as `a/len`,
//! anything else as `first-last`.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A set of IPv4 and IPv6 addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpSet {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
}

fn merge(r: &mut Vec<(u128, u128)>) {
    r.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(r.len());
    for &(a, b) in r.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *r = out;
}

fn net_range(n: &IpNet) -> (bool, u128, u128) {
    match n {
        IpNet::V4(n) => (
            true,
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (false, u128::from(n.network()), u128::from(n.broadcast())),
    }
}

fn ip_val(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (true, u128::from(u32::from(a))),
        IpAddr::V6(a) => (false, u128::from(a)),
    }
}

impl IpSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn side(&mut self, v4: bool) -> &mut Vec<(u128, u128)> {
        if v4 { &mut self.v4 } else { &mut self.v6 }
    }

    /// Adds one address.
    pub fn add_ip(&mut self, ip: IpAddr) {
        let (v4, x) = ip_val(ip);
        self.add_raw(v4, x, x);
    }

    /// Adds a prefix.
    pub fn add_net(&mut self, n: &IpNet) {
        let (v4, a, b) = net_range(n);
        self.add_raw(v4, a, b);
    }

    /// Adds an inclusive range; both ends must be the same family.
    pub fn add_range(&mut self, a: IpAddr, b: IpAddr) {
        let (v4, x) = ip_val(a);
        let (_, y) = ip_val(b);
        self.add_raw(v4, x.min(y), x.max(y));
    }

    fn add_raw(&mut self, v4: bool, a: u128, b: u128) {
        let side = self.side(v4);
        // Fast path: appending in order keeps the vector sorted without a re-sort.
        match side.last_mut() {
            None => side.push((a, b)),
            Some(last) if a > last.1.saturating_add(1) => side.push((a, b)),
            Some(last) if a >= last.0 => last.1 = last.1.max(b),
            // Out of order: insert in place and coalesce with the neighbours (a re-sort
            // per address made a set built from scattered addresses quadratic).
            _ => {
                let mut i = side.partition_point(|r| r.0 <= a);
                side.insert(i, (a, b));
                if i > 0 && side[i].0 <= side[i - 1].1.saturating_add(1) {
                    side[i - 1].1 = side[i - 1].1.max(side[i].1);
                    side.remove(i);
                    i -= 1;
                }
                while i + 1 < side.len() && side[i + 1].0 <= side[i].1.saturating_add(1) {
                    side[i].1 = side[i].1.max(side[i + 1].1);
                    side.remove(i + 1);
                }
            }
        }
    }

    /// The set of these addresses, sorted once (for many addresses in any order).
    pub fn from_ips(ips: impl IntoIterator<Item = IpAddr>) -> Self {
        let mut set = Self::new();
        for ip in ips {
            let (v4, x) = ip_val(ip);
            set.side(v4).push((x, x));
        }
        merge(&mut set.v4);
        merge(&mut set.v6);
        set
    }

    /// Adds every address of `other`.
    pub fn extend(&mut self, other: &IpSet) {
        if other.is_empty() {
            return;
        }
        self.v4.extend_from_slice(&other.v4);
        self.v6.extend_from_slice(&other.v6);
        merge(&mut self.v4);
        merge(&mut self.v6);
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    fn contains_raw(side: &[(u128, u128)], x: u128) -> bool {
        let i = side.partition_point(|r| r.1 < x);
        side.get(i).is_some_and(|r| r.0 <= x)
    }

    fn overlaps_raw(side: &[(u128, u128)], a: u128, b: u128) -> bool {
        let i = side.partition_point(|r| r.1 < a);
        side.get(i).is_some_and(|r| r.0 <= b)
    }

    /// True when `ip` is in the set.
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        let (v4, x) = ip_val(ip);
        Self::contains_raw(if v4 { &self.v4 } else { &self.v6 }, x)
    }

    /// True when the set contains every address of `n`.
    pub fn contains_net(&self, n: &IpNet) -> bool {
        let (v4, a, b) = net_range(n);
        let side = if v4 { &self.v4 } else { &self.v6 };
        let i = side.partition_point(|r| r.1 < a);
        side.get(i).is_some_and(|r| r.0 <= a && r.1 >= b)
    }

    /// True when the set and `n` share an address.
    pub fn overlaps_net(&self, n: &IpNet) -> bool {
        let (v4, a, b) = net_range(n);
        Self::overlaps_raw(if v4 { &self.v4 } else { &self.v6 }, a, b)
    }

    /// True when the two sets share an address.
    pub fn overlaps(&self, other: &IpSet) -> bool {
        other
            .v4
            .iter()
            .any(|&(a, b)| Self::overlaps_raw(&self.v4, a, b))
            || other
                .v6
                .iter()
                .any(|&(a, b)| Self::overlaps_raw(&self.v6, a, b))
    }

    /// Removes every address of `other`.
    pub fn subtract(&mut self, other: &IpSet) {
        self.v4 = sub(&self.v4, &other.v4);
        self.v6 = sub(&self.v6, &other.v6);
    }

    /// The hosted service's spelling of each range, IPv4 first, each family sorted.
    pub fn to_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for &(a, b) in &self.v4 {
            out.push(fmt_range(true, a, b));
        }
        for &(a, b) in &self.v6 {
            out.push(fmt_range(false, a, b));
        }
        out
    }

    /// Every range spelled `first-last`, even when it is a prefix (how the hosted service
    /// spells `autogroup:internet`).
    pub fn to_range_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (v4, side) in [(true, &self.v4), (false, &self.v6)] {
            for &(a, b) in side {
                out.push(format!("{}-{}", to_ip(v4, a), to_ip(v4, b)));
            }
        }
        out
    }

    /// The set as prefixes (each range split into the fewest aligned prefixes).
    pub fn to_prefixes(&self) -> Vec<IpNet> {
        let mut out = Vec::new();
        for (v4, side) in [(true, &self.v4), (false, &self.v6)] {
            for &(a, b) in side {
                let bits: u32 = if v4 { 32 } else { 128 };
                let mut cur = a;
                loop {
                    let mut len = bits;
                    while len > 0 {
                        let host = bits - (len - 1);
                        let mask = if host >= 128 {
                            u128::MAX
                        } else {
                            (1u128 << host) - 1
                        };
                        if cur & mask != 0 || cur | mask > b {
                            break;
                        }
                        len -= 1;
                    }
                    out.push(make_net(v4, cur, len));
                    let host = bits - len;
                    let size_m1 = if host >= 128 {
                        u128::MAX
                    } else {
                        (1u128 << host) - 1
                    };
                    let last = cur | size_m1;
                    if last >= b {
                        break;
                    }
                    cur = last + 1;
                }
            }
        }
        out
    }
}

fn sub(a: &[(u128, u128)], b: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    for &(mut x, y) in a {
        let mut alive = true;
        for &(p, q) in b {
            if q < x || p > y {
                continue;
            }
            if p > x {
                out.push((x, p - 1));
            }
            if q >= y {
                alive = false;
                break;
            }
            x = q + 1;
        }
        if alive {
            out.push((x, y));
        }
    }
    out
}

fn make_net(v4: bool, a: u128, len: u32) -> IpNet {
    // Lengths come from the family width, so construction cannot fail; fall back to a host
    // prefix rather than panic.
    if v4 {
        let ip = Ipv4Addr::from(a as u32);
        IpNet::V4(Ipv4Net::new(ip, len as u8).unwrap_or_else(|_| Ipv4Net::from(ip)))
    } else {
        let ip = Ipv6Addr::from(a);
        IpNet::V6(Ipv6Net::new(ip, len as u8).unwrap_or_else(|_| Ipv6Net::from(ip)))
    }
}

fn to_ip(v4: bool, x: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(x as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(x))
    }
}

fn fmt_range(v4: bool, a: u128, b: u128) -> String {
    if a == b {
        return to_ip(v4, a).to_string();
    }
    let span = b - a;
    let bits: u32 = if v4 { 32 } else { 128 };
    if span.wrapping_add(1) & span == 0 && a & span == 0 {
        let host = if span == u128::MAX {
            128
        } else {
            (span + 1).trailing_zeros()
        };
        return format!("{}/{}", to_ip(v4, a), bits - host);
    }
    format!("{}-{}", to_ip(v4, a), to_ip(v4, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn spelling_matches_hosted_service() {
        let mut s = IpSet::new();
        s.add_net(&net("100.64.0.0/10"));
        s.add_net(&net("fd7a:115c:a1e0::/48"));
        let mut hole = IpSet::new();
        hole.add_net(&net("100.115.92.0/23"));
        s.subtract(&hole);
        s.add_ip("100.64.0.1".parse().unwrap());
        assert_eq!(
            s.to_strings(),
            [
                "100.64.0.0-100.115.91.255",
                "100.115.94.0-100.127.255.255",
                "fd7a:115c:a1e0::/48"
            ]
        );
    }

    #[test]
    fn out_of_order_additions_coalesce_like_a_sorted_build() {
        // A scrambled walk over 100.64.0.0..+300 with gaps, plus ranges bridging them.
        let ips: Vec<IpAddr> = (0..300u32)
            .map(|i| (i * 7919) % 300)
            .filter(|i| i % 5 != 0)
            .map(|i| IpAddr::from(Ipv4Addr::from(0x6440_0000 + i)))
            .collect();
        let mut one_by_one = IpSet::new();
        for ip in &ips {
            one_by_one.add_ip(*ip);
        }
        let sorted = IpSet::from_ips(ips.iter().copied());
        assert_eq!(one_by_one, sorted);
        assert_eq!(sorted.v4.len(), 60, "{:?}", sorted.v4);
        one_by_one.add_range(
            "100.64.0.4".parse().unwrap(),
            "100.64.0.21".parse().unwrap(),
        );
        one_by_one.add_ip("100.64.0.0".parse().unwrap());
        assert_eq!(one_by_one.to_strings()[0], "100.64.0.0-100.64.0.24");
    }

    #[test]
    fn prefixes_cover_range_exactly() {
        let mut s = IpSet::new();
        s.add_range("10.0.0.1".parse().unwrap(), "10.0.0.6".parse().unwrap());
        let p: Vec<String> = s.to_prefixes().iter().map(|n| n.to_string()).collect();
        assert_eq!(
            p,
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        let mut all = IpSet::new();
        all.add_net(&net("0.0.0.0/0"));
        assert_eq!(all.to_prefixes(), vec![net("0.0.0.0/0")]);
        assert_eq!(all.to_strings(), ["0.0.0.0/0"]);
    }

    #[test]
    fn contains_and_overlaps() {
        let mut s = IpSet::new();
        s.add_net(&net("10.33.0.0/16"));
        assert!(s.contains_net(&net("10.33.1.0/24")));
        assert!(!s.contains_net(&net("10.0.0.0/8")));
        assert!(s.overlaps_net(&net("10.0.0.0/8")));
        assert!(!s.overlaps_net(&net("10.34.0.0/16")));
        assert!(s.contains_ip("10.33.9.9".parse().unwrap()));
    }
}

//! Aliases (the words a policy uses for sets of nodes and addresses) parsed from their text
//! forms, and ports / protocols.

use crate::ipset::IpSet;
use ipnet::IpNet;
use std::net::IpAddr;

/// One parsed alias.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Alias {
    /// `*`: every address.
    Wildcard,
    /// A user, by email (`odin@example.com`) or login (`odin@`).
    User(String),
    /// Every user whose email is in a domain (`user:*@example.com`).
    UserDomain(String),
    /// `group:name`.
    Group(String),
    /// `tag:name`.
    Tag(String),
    /// A name from `hosts`.
    Host(String),
    /// An address, prefix or range written literally.
    Addr(IpSet),
    /// `autogroup:member`: nodes owned by users.
    Member,
    /// `autogroup:tagged`: tagged nodes.
    Tagged,
    /// `autogroup:self`: the destination's own user's nodes.
    SelfNodes,
    /// `autogroup:internet`: the public internet through exit nodes.
    Internet,
    /// `autogroup:danger-all`: every address, including outside the tailnet.
    DangerAll,
    /// `autogroup:nonroot` (SSH users only).
    NonRoot,
}

/// Parses an alias (no port part). `hosts` lets a bare word resolve to a host name.
pub fn parse_alias(s: &str, is_host: impl Fn(&str) -> bool) -> Result<Alias, String> {
    if s == "*" {
        return Ok(Alias::Wildcard);
    }
    if let Some(ag) = s.strip_prefix("autogroup:") {
        return match ag {
            "member" => Ok(Alias::Member),
            "tagged" => Ok(Alias::Tagged),
            "self" => Ok(Alias::SelfNodes),
            "internet" => Ok(Alias::Internet),
            "danger-all" => Ok(Alias::DangerAll),
            "nonroot" => Ok(Alias::NonRoot),
            _ => Err(format!("unknown autogroup {s:?}")),
        };
    }
    if let Some(g) = s.strip_prefix("group:") {
        let _ = g;
        return Ok(Alias::Group(s.to_string()));
    }
    if s.starts_with("tag:") {
        return Ok(Alias::Tag(s.to_string()));
    }
    if let Some(domain) = s.strip_prefix("user:*@") {
        return Ok(Alias::UserDomain(domain.to_string()));
    }
    if s.contains('@') {
        return Ok(Alias::User(s.to_string()));
    }
    if is_host(s) {
        return Ok(Alias::Host(s.to_string()));
    }
    if let Some(set) = parse_ip_or_prefix(s) {
        return Ok(Alias::Addr(set));
    }
    Err(format!("{s:?}: invalid address"))
}

/// Parses what a policy may write for addresses: one IP address or a prefix
/// (`10.0.0.0/8`). Ranges (`a-b`) are how the hosted service *prints* address sets, not
/// something a policy names.
pub fn parse_ip_or_prefix(s: &str) -> Option<IpSet> {
    if s.contains('-') {
        return None;
    }
    parse_addr(s)
}

/// Parses an address, prefix (`10.0.0.0/8`) or range (`a-b`) into a set.
pub fn parse_addr(s: &str) -> Option<IpSet> {
    let mut set = IpSet::new();
    if let Ok(ip) = s.parse::<IpAddr>() {
        set.add_ip(ip);
        return Some(set);
    }
    if let Ok(n) = s.parse::<IpNet>() {
        set.add_net(&n.trunc());
        return Some(set);
    }
    if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (a.parse::<IpAddr>().ok()?, b.parse::<IpAddr>().ok()?);
        // A range runs from its low end to its high end, within one address family.
        if a.is_ipv4() != b.is_ipv4() || a > b {
            return None;
        }
        set.add_range(a, b);
        return Some(set);
    }
    None
}

/// Splits `alias:ports` at the last colon (IPv6 may be bracketed: `[fd7a::1]:22`).
pub fn split_alias_ports(s: &str) -> Result<(&str, &str), String> {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((addr, ports)) = rest.split_once("]:")
    {
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "dst={s:?}: square brackets are only valid around IPv6 addresses"
            ));
        }
        return Ok((addr, ports));
    }
    // Tailscale's `tailcfg.ParseHostPortRange` wording.
    let (host, ports) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("dst={s:?}: hostport must contain a colon (\":\")"))?;
    if host.contains(',') {
        return Err(format!("dst={s:?}: host cannot contain a comma (\",\")"));
    }
    Ok((host, ports))
}

/// An inclusive port range.
pub type Ports = (u16, u16);

/// Parses `*`, `22`, `80-443` or a comma list of numbers and ranges (`*` stands alone: it
/// is every port, never one item of a list), as an ACL destination writes its ports. Each
/// item is read by [`parse_port_range`].
pub fn parse_ports(s: &str) -> Result<Vec<Ports>, String> {
    if s == "*" {
        return Ok(vec![(0, 65535)]);
    }
    if s.is_empty() {
        return Err("invalid port list: \"\"".to_owned());
    }
    s.split(',').map(parse_port_range).collect()
}

/// One port or range (`22`, `80-443`), read as Tailscale's `tailcfg.ParseHostPortRange`
/// reads it, with its wording: decimal digits only (no sign, no list), at most one dash, a
/// first port above 0 and not above the last.
pub fn parse_port_range(part: &str) -> Result<Ports, String> {
    let number = |t: &str| -> Option<u16> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    if part.matches('-').count() > 1 {
        return Err(format!("port range {part:?}: too many dashes(-)"));
    }
    let (a, b) = match part.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (part, None),
    };
    let first = number(a).ok_or_else(|| format!("port range {part:?}: invalid first integer"))?;
    let last = match b {
        Some(b) => number(b).ok_or_else(|| format!("port range {part:?}: invalid last integer"))?,
        None => first,
    };
    // Port 0 is no port; "every port" is written `*`.
    if first == 0 {
        return Err(format!(
            "port range {part:?}: first port must be >0, or use '*' for wildcard"
        ));
    }
    if first > last {
        return Err(format!(
            "port range {part:?}: first port must be >= last port"
        ));
    }
    Ok((first, last))
}

/// IP protocol numbers for a protocol name or number. Empty means "the default set".
///
/// As Tailscale reads `proto`: a name from its list (any case), or an IANA protocol number
/// 0–255 written without leading zeros (so not `0` either); 99 is Tailscale's own (TSMP).
/// The errors are Tailscale's wording.
pub fn parse_proto(s: &str) -> Result<Vec<u8>, String> {
    if s.is_empty() {
        return Ok(vec![]);
    }
    if s.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = s.parse::<u8>()
    {
        if n == 99 {
            return Err("IP protocol 99 is reserved for use by Tailscale".into());
        }
        if s.starts_with('0') {
            return Err(format!("leading 0 not permitted in protocol number {s:?}"));
        }
        return Ok(vec![n]);
    }
    let v = match s.to_ascii_lowercase().as_str() {
        "tcp" => vec![6],
        "udp" => vec![17],
        // `icmp` is ICMPv4 only, as Tailscale's protocol names read it; ICMPv6 is
        // `ipv6-icmp` (or 58).
        "icmp" => vec![1],
        "ipv6-icmp" => vec![58],
        "igmp" => vec![2],
        "ipv4" | "ip-in-ip" => vec![4],
        "egp" => vec![8],
        "igp" => vec![9],
        "gre" => vec![47],
        "esp" => vec![50],
        "ah" => vec![51],
        "sctp" => vec![132],
        _ => {
            return Err(format!(
                "proto name {s:?} not known; use protocol number 0-255"
            ));
        }
    };
    Ok(v)
}

/// The address set `*` stands for in sources: the tailnet's CGNAT and ULA ranges (minus the
/// range Tailscale reserves for its own services) plus every served subnet route.
pub fn tailnet_wildcard(routes: impl Iterator<Item = IpNet>) -> IpSet {
    let mut s = IpSet::new();
    for n in ["100.64.0.0/10", "fd7a:115c:a1e0::/48"] {
        if let Ok(n) = n.parse::<IpNet>() {
            s.add_net(&n);
        }
    }
    let mut hole = IpSet::new();
    if let Ok(n) = "100.115.92.0/23".parse::<IpNet>() {
        hole.add_net(&n);
    }
    s.subtract(&hole);
    for r in routes {
        s.add_net(&r);
    }
    s
}

/// The public internet as the hosted service spells `autogroup:internet`: everything except
/// private, shared, link-local, multicast-free tailnet ranges.
pub fn internet() -> IpSet {
    let mut s = IpSet::new();
    for n in ["0.0.0.0/0", "2000::/3"] {
        if let Ok(n) = n.parse::<IpNet>() {
            s.add_net(&n);
        }
    }
    let mut hole = IpSet::new();
    for n in [
        "10.0.0.0/8",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
    ] {
        if let Ok(n) = n.parse::<IpNet>() {
            hole.add_net(&n);
        }
    }
    s.subtract(&hole);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(parse_ports("*").unwrap(), vec![(0, 65535)]);
        assert_eq!(parse_ports("22,80-443").unwrap(), vec![(22, 22), (80, 443)]);
        assert_eq!(
            parse_ports("self").unwrap_err(),
            "port range \"self\": invalid first integer"
        );
    }

    #[test]
    fn aliases() {
        let no_hosts = |_: &str| false;
        assert_eq!(parse_alias("*", no_hosts).unwrap(), Alias::Wildcard);
        assert_eq!(
            parse_alias("odin@", no_hosts).unwrap(),
            Alias::User("odin@".into())
        );
        assert!(matches!(
            parse_alias("10.0.0.0/8", no_hosts).unwrap(),
            Alias::Addr(_)
        ));
        assert!(parse_alias("%bogus%", no_hosts).is_err());
        assert_eq!(split_alias_ports("tag:a:22").unwrap(), ("tag:a", "22"));
        assert_eq!(
            split_alias_ports("[fd7a::1]:22").unwrap(),
            ("fd7a::1", "22")
        );
    }

    #[test]
    fn protocol_names_are_one_protocol_each() {
        // Every name stands for exactly one IANA number (the differential against Go
        // Headscale found `icmp` sent as [1, 58]; Tailscale reads it as ICMPv4).
        for (name, want) in [
            ("icmp", 1),
            ("ICMP", 1),
            ("ipv6-icmp", 58),
            ("tcp", 6),
            ("udp", 17),
            ("igmp", 2),
            ("ipv4", 4),
            ("ip-in-ip", 4),
            ("egp", 8),
            ("igp", 9),
            ("gre", 47),
            ("esp", 50),
            ("ah", 51),
            ("sctp", 132),
            ("58", 58),
        ] {
            assert_eq!(parse_proto(name).unwrap(), vec![want], "{name}");
        }
    }

    #[test]
    fn internet_matches_hosted_spelling() {
        let s = internet().to_range_strings();
        assert_eq!(s[0], "0.0.0.0-9.255.255.255");
        assert!(s.contains(&"2000::-3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".to_string()));
        assert!(s.contains(&"192.169.0.0-255.255.255.255".to_string()));
    }
}

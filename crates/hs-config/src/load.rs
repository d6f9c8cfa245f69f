//! Building a [`Config`] from the YAML tree and the environment (defaults as Go Headscale's
//! `LoadConfig`), then checking it (Go Headscale's `validateServerConfig` and
//! `LoadServerConfig`). Both steps report every problem they find, each with its key path.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::duration::format_duration;
use super::error::{Problem, Warning};
use super::sections;
use super::source::Source;
use super::types::*;

/// Go Headscale's default for `tuning.node_store_batch_size`.
pub(crate) const DEFAULT_NODE_STORE_BATCH_SIZE: i64 = 100;

pub(crate) fn path_or_none(s: String) -> Option<PathBuf> {
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// Reads every key, applying defaults; type errors go to `src.problems`.
pub(crate) fn build(src: &mut Source<'_>, warnings: &mut Vec<Warning>) -> Config {
    let secs = Duration::from_secs;
    let trusted_proxies = sections::trusted_proxies(src);
    let prefixes = build_prefixes(src, warnings);
    let allocation = sections::allocation(src);
    let derp = sections::derp(src);
    let node = sections::node(src);
    let database = sections::database(src);
    let tls = sections::tls(src);
    let log = sections::log(src);
    let mode = sections::policy_mode(src);
    let dns = sections::dns(src);
    let unix_socket_permission = sections::unix_socket_permission(src);
    let oidc = sections::oidc(src);

    Config {
        server_url: src.string("server_url", ""),
        listen_addr: src.string("listen_addr", ""),
        metrics_listen_addr: src.string("metrics_listen_addr", ""),
        grpc_listen_addr: src.string("grpc_listen_addr", ":50443"),
        grpc_allow_insecure: src.bool("grpc_allow_insecure", false),
        trusted_proxies,
        noise_private_key_path: PathBuf::from(src.string("noise.private_key_path", "")),
        prefixes: PrefixesConfig {
            v4: prefixes.0,
            v6: prefixes.1,
            allocation,
        },
        derp,
        disable_check_updates: src.bool("disable_check_updates", false),
        node,
        preauth_keys_revoked_retention: src
            .duration("preauth_keys.revoked_retention", secs(168 * 3600)),
        database,
        tls,
        log,
        policy: PolicyConfig {
            mode,
            path: src.string("policy.path", ""),
        },
        dns,
        unix_socket: PathBuf::from(src.string("unix_socket", "/var/run/headscale/headscale.sock")),
        unix_socket_permission,
        oidc,
        logtail_enabled: src.bool("logtail.enabled", false),
        randomize_client_port: src.bool("randomize_client_port", false),
        taildrop_enabled: src.bool("taildrop.enabled", true),
        cli: sections::cli(src),
        tuning: sections::tuning(src),
        limits: sections::limits(src),
    }
}

/// Why `addr` (`host:port`, `:port` or `[v6]:port`; empty means "off") cannot be bound.
fn bad_listen_addr(addr: &str) -> Option<String> {
    if addr.is_empty() {
        return None;
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Some(format!("{addr:?} has no port (e.g. \"127.0.0.1:8080\")"));
    };
    if port.parse::<u16>().is_err() {
        return Some(format!(
            "{addr:?}: {port:?} is not a TCP/UDP port (0-65535)"
        ));
    }
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_err() => {
            Some(format!("{addr:?}: {v6:?} is not an IPv6 address"))
        }
        None if host.contains(':') => Some(format!(
            "{addr:?}: too many colons; an IPv6 address goes in brackets, [::1]:8080"
        )),
        _ => None,
    }
}

pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// `"0770"`, `"0o770"` or `"770"`, all octal, as Go Headscale's `GetFileMode` reads them.
pub(crate) fn parse_mode(s: &str) -> Option<u32> {
    let t = s.trim();
    let t = t
        .strip_prefix("0o")
        .or_else(|| t.strip_prefix("0O"))
        .unwrap_or(t);
    u32::from_str_radix(t, 8).ok().filter(|m| *m <= 0o7777)
}

fn build_prefixes(
    src: &mut Source<'_>,
    warnings: &mut Vec<Warning>,
) -> (Option<Ipv4Net>, Option<Ipv6Net>) {
    // Tailscale clients only work inside the CGNAT and ULA ranges (Go: tsaddr.CGNATRange and
    // tsaddr.TailscaleULARange).
    let cgnat: Ipv4Net = "100.64.0.0/10".parse().unwrap_or_default();
    let ula: Ipv6Net = "fd7a:115c:a1e0::/48".parse().unwrap_or_default();
    let v4 = match src.string("prefixes.v4", "") {
        s if s.is_empty() => None,
        s => match s.parse::<Ipv4Net>() {
            Ok(n) => {
                if !cgnat.contains(&n) {
                    warnings.push(Warning {
                        key: "prefixes.v4".into(),
                        message: format!(
                            "{n} is outside 100.64.0.0/10; Tailscale clients are not designed for other ranges"
                        ),
                    });
                }
                Some(n)
            }
            Err(_) => {
                src.problems.push(Problem::new(
                    "prefixes.v4",
                    format!("{s:?} is not an IPv4 prefix like 100.64.0.0/10"),
                ));
                None
            }
        },
    };
    let v6 = match src.string("prefixes.v6", "") {
        s if s.is_empty() => None,
        s => match s.parse::<Ipv6Net>() {
            Ok(n) => {
                if !ula.contains(&n) {
                    warnings.push(Warning {
                        key: "prefixes.v6".into(),
                        message: format!(
                            "{n} is outside fd7a:115c:a1e0::/48; Tailscale clients are not designed for other ranges"
                        ),
                    });
                }
                Some(n)
            }
            Err(_) => {
                src.problems.push(Problem::new(
                    "prefixes.v6",
                    format!("{s:?} is not an IPv6 prefix like fd7a:115c:a1e0::/48"),
                ));
                None
            }
        },
    };
    (v4, v6)
}

/// What validation needs to know about the input that the typed config no longer shows.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct InputFacts {
    /// Both `dns.extra_records` and `dns.extra_records_path` appear.
    pub(crate) extra_records_both: bool,
    /// `database.type` has a value.
    pub(crate) database_type_set: bool,
}

/// Cross-field rules and required keys.
pub(crate) fn validate(c: &Config, facts: InputFacts, problems: &mut Vec<Problem>) {
    let mut p = |key: &str, reason: String| problems.push(Problem::new(key, reason));
    if !facts.database_type_set {
        p(
            "database.type",
            "is required: one of sqlite, sqlite3, postgres".into(),
        );
    }

    if !(c.server_url.starts_with("http://") || c.server_url.starts_with("https://")) {
        p(
            "server_url",
            format!(
                "must start with http:// or https:// (found {:?})",
                c.server_url
            ),
        );
    } else if url_host(&c.server_url).is_empty() {
        p("server_url", format!("{:?} has no host name", c.server_url));
    } else if let Some(reason) = server_url_conflict(&c.server_url, &c.dns.base_domain) {
        p("server_url", reason);
    }
    if c.listen_addr.is_empty() {
        p(
            "listen_addr",
            "is required (e.g. \"127.0.0.1:8080\")".into(),
        );
    }
    // What `serve` would refuse when it binds, configtest refuses now.
    for (key, addr) in [
        ("listen_addr", &c.listen_addr),
        ("metrics_listen_addr", &c.metrics_listen_addr),
        ("grpc_listen_addr", &c.grpc_listen_addr),
        (
            "derp.server.stun_listen_addr",
            &c.derp.server.stun_listen_addr,
        ),
    ] {
        if let Some(why) = bad_listen_addr(addr) {
            p(key, why);
        }
    }
    if c.noise_private_key_path.as_os_str().is_empty() {
        p(
            "noise.private_key_path",
            "is required (e.g. /var/lib/headscale/noise_private.key)".into(),
        );
    }
    if c.prefixes.v4.is_none() && c.prefixes.v6.is_none() {
        p(
            "prefixes",
            "at least one of prefixes.v4 and prefixes.v6 must be set".into(),
        );
    }
    if !c.tls.letsencrypt_hostname.is_empty()
        && (c.tls.cert_path.is_some() || c.tls.key_path.is_some())
    {
        p(
            "tls_letsencrypt_hostname",
            "cannot be combined with tls_cert_path/tls_key_path; choose one TLS strategy".into(),
        );
    }
    if c.tls.cert_path.is_some() != c.tls.key_path.is_some() {
        let missing = if c.tls.cert_path.is_some() {
            "tls_key_path"
        } else {
            "tls_cert_path"
        };
        p(
            missing,
            "tls_cert_path and tls_key_path must be set together".into(),
        );
    }
    // Keep-alives are sent every 60s; the timeout must leave a margin above that.
    let min_ephemeral = Duration::from_secs(65);
    if c.node.ephemeral_inactivity_timeout <= min_ephemeral {
        p(
            "node.ephemeral.inactivity_timeout",
            format!(
                "{} is too low, must be more than {}",
                format_duration(c.node.ephemeral_inactivity_timeout),
                format_duration(min_ephemeral)
            ),
        );
    }
    if c.dns.override_local_dns && c.dns.nameservers_global.is_empty() {
        p(
            "dns.nameservers.global",
            "is required when dns.override_local_dns is true (list at least one nameserver, or set dns.override_local_dns: false)".into(),
        );
    }
    if c.dns.magic_dns && c.dns.base_domain.is_empty() {
        p(
            "dns.base_domain",
            "is required when dns.magic_dns is true".into(),
        );
    }
    if facts.extra_records_both {
        p(
            "dns.extra_records_path",
            "dns.extra_records and dns.extra_records_path are mutually exclusive; keep one".into(),
        );
    }
    for (i, ns) in c.dns.nameservers_global.iter().enumerate() {
        if ns.parse::<IpAddr>().is_err()
            && !ns.starts_with("https://")
            && !ns.starts_with("http://")
        {
            p(
                &format!("dns.nameservers.global[{i}]"),
                format!("{ns:?} is neither an IP address nor a DNS-over-HTTPS URL"),
            );
        }
    }
    let ha = &c.node;
    if !ha.routes_ha_probe_interval.is_zero() {
        if ha.routes_ha_probe_interval < Duration::from_secs(2) {
            p(
                "node.routes.ha.probe_interval",
                format!(
                    "{} is below the minimum of 2s",
                    format_duration(ha.routes_ha_probe_interval)
                ),
            );
        }
        if ha.routes_ha_probe_timeout < Duration::from_secs(1) {
            p(
                "node.routes.ha.probe_timeout",
                format!(
                    "{} is below the minimum of 1s",
                    format_duration(ha.routes_ha_probe_timeout)
                ),
            );
        }
        if ha.routes_ha_probe_timeout >= ha.routes_ha_probe_interval {
            p(
                "node.routes.ha.probe_timeout",
                "must be less than node.routes.ha.probe_interval".into(),
            );
        }
    }
    if c.tuning.node_store_batch_size <= 0 {
        p("tuning.node_store_batch_size", "must be positive".into());
    }
    if c.tuning.node_store_batch_timeout.is_zero() {
        p("tuning.node_store_batch_timeout", "must be positive".into());
    }
    if c.derp.server.enabled {
        if c.derp.server.stun_listen_addr.is_empty() {
            p(
                "derp.server.stun_listen_addr",
                "is required when derp.server.enabled is true (e.g. \"0.0.0.0:3478\")".into(),
            );
        }
        if !c.derp.server.automatically_add_embedded_derp_region && c.derp.paths.is_empty() {
            p(
                "derp.paths",
                "is required when derp.server.automatically_add_embedded_derp_region is false"
                    .into(),
            );
        }
        if c.derp.server.private_key_path.as_os_str().is_empty() {
            p(
                "derp.server.private_key_path",
                "is required when derp.server.enabled is true".into(),
            );
        }
    }
    for (i, u) in c.derp.urls.iter().enumerate() {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            p(
                &format!("derp.urls[{i}]"),
                format!("{u:?} is not an http(s) URL"),
            );
        }
    }
    if !c.oidc.client_secret.is_empty() && c.oidc.client_secret_path.is_some() {
        p(
            "oidc.client_secret_path",
            "oidc.client_secret and oidc.client_secret_path are mutually exclusive".into(),
        );
    }
    if c.oidc.pkce.enabled && !matches!(c.oidc.pkce.method.as_str(), "plain" | "S256") {
        p(
            "oidc.pkce.method",
            format!("{:?} is not one of: plain, S256", c.oidc.pkce.method),
        );
    }
}

/// The host part of an `http(s)://` URL, with the port if any.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// MagicDNS takes over `base_domain` on every client, so a server inside it becomes
/// unreachable. Same rule as Go Headscale's `isSafeServerURL`, including its use of the host
/// with the port for the suffix comparison.
fn server_url_conflict(server_url: &str, base_domain: &str) -> Option<String> {
    if base_domain.is_empty() {
        return None;
    }
    let host = url_host(server_url);
    if strip_port(host) == base_domain {
        return Some(format!(
            "cannot use the same domain as dns.base_domain ({base_domain:?}): clients would no longer reach the server"
        ));
    }
    let server_parts: Vec<&str> = host.split('.').collect();
    let base_parts: Vec<&str> = base_domain.split('.').collect();
    if server_parts.len() <= base_parts.len() {
        return None;
    }
    let inside = base_parts
        .iter()
        .rev()
        .zip(server_parts.iter().rev())
        .all(|(b, s)| b == s);
    inside.then(|| {
        format!(
            "cannot be part of dns.base_domain ({base_domain:?}): MagicDNS would make the server and DERP unreachable"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_url_conflict_follows_go_rules() {
        let bad = |u: &str, b: &str| server_url_conflict(u, b).is_some();
        assert!(!bad("https://example.com", "example.org"));
        assert!(bad("https://headscale.com", "headscale.com"));
        assert!(!bad("https://headscale.com", "clients.headscale.com"));
        assert!(!bad(
            "https://headscale.com",
            "clients.subdomain.headscale.com"
        ));
        assert!(!bad("https://headscale.kristoffer.com", "mybase"));
        assert!(bad("https://server.headscale.com", "headscale.com"));
        assert!(bad(
            "https://server.subdomain.headscale.com",
            "headscale.com"
        ));
    }

    #[test]
    fn listen_addresses_must_be_bindable() {
        assert_eq!(bad_listen_addr(""), None);
        assert_eq!(bad_listen_addr("127.0.0.1:8080"), None);
        assert_eq!(bad_listen_addr(":50443"), None);
        assert_eq!(bad_listen_addr("[::1]:0"), None);
        assert_eq!(
            bad_listen_addr("localhost:http"),
            Some("\"localhost:http\": \"http\" is not a TCP/UDP port (0-65535)".into())
        );
        assert!(
            bad_listen_addr("127.0.0.1:99999")
                .unwrap()
                .contains("99999")
        );
        assert!(bad_listen_addr("127.0.0.1").unwrap().contains("no port"));
        assert!(bad_listen_addr("::1:8080").unwrap().contains("brackets"));
    }

    #[test]
    fn file_modes_are_octal() {
        assert_eq!(parse_mode("0770"), Some(0o770));
        assert_eq!(parse_mode("0o770"), Some(0o770));
        assert_eq!(parse_mode("770"), Some(0o770));
        assert_eq!(parse_mode("0980"), None);
    }
}

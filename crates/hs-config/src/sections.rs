//! One builder per config section: each reads its keys from the [`Source`] (defaults as in
//! Go Headscale, type problems recorded there) and returns the section's struct. `load::build`
//! calls them in the order the keys were always read, so problems keep their order.

use std::path::PathBuf;
use std::time::Duration;

use super::error::Problem;
use super::load::{DEFAULT_NODE_STORE_BATCH_SIZE, parse_mode, parse_net, path_or_none};
use super::source::Source;
use super::types::*;

/// `trusted_proxies`: CIDR prefixes, none of them `/0`.
pub(crate) fn trusted_proxies(src: &mut Source<'_>) -> Vec<ipnet::IpNet> {
    let mut trusted_proxies = Vec::new();
    for (i, s) in src.string_list("trusted_proxies").into_iter().enumerate() {
        match parse_net(&s) {
            Some(net) if net.prefix_len() == 0 => src.problems.push(Problem::new(
                format!("trusted_proxies[{i}]"),
                format!("{s:?} would trust every address; list the proxies' own ranges"),
            )),
            Some(net) => trusted_proxies.push(net),
            None => src.problems.push(Problem::new(
                format!("trusted_proxies[{i}]"),
                format!("{s:?} is not an IP address or CIDR prefix"),
            )),
        }
    }
    trusted_proxies
}

/// `prefixes.allocation`.
pub(crate) fn allocation(src: &mut Source<'_>) -> IpAllocation {
    match src.string("prefixes.allocation", "sequential").as_str() {
        "sequential" => IpAllocation::Sequential,
        "random" => IpAllocation::Random,
        other => {
            src.problems.push(Problem::new(
                "prefixes.allocation",
                format!("{other:?} is not one of: sequential, random"),
            ));
            IpAllocation::Sequential
        }
    }
}

/// `derp.*`.
pub(crate) fn derp(src: &mut Source<'_>) -> DerpConfig {
    let secs = Duration::from_secs;
    let derp = DerpConfig {
        server: DerpServerConfig {
            enabled: src.bool("derp.server.enabled", false),
            region_id: src.int("derp.server.region_id", 0),
            region_code: src.string("derp.server.region_code", ""),
            region_name: src.string("derp.server.region_name", ""),
            verify_clients: src.bool("derp.server.verify_clients", true),
            stun_listen_addr: src.string("derp.server.stun_listen_addr", ""),
            private_key_path: PathBuf::from(src.string("derp.server.private_key_path", "")),
            automatically_add_embedded_derp_region: src
                .bool("derp.server.automatically_add_embedded_derp_region", true),
            ipv4: src.string("derp.server.ipv4", ""),
            ipv6: src.string("derp.server.ipv6", ""),
        },
        urls: src.string_list("derp.urls"),
        paths: src
            .string_list("derp.paths")
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        auto_update_enabled: src.bool("derp.auto_update_enabled", false),
        update_frequency: src.duration("derp.update_frequency", secs(3 * 3600)),
    };
    // Read for its type check only: Go Headscale sets it but never consults it.
    let _ = src.bool("derp.server.stun.enabled", true);
    let _ = src.bool("auto_update.enabled", false);
    derp
}

/// `node.*` (and the old `ephemeral_node_inactivity_timeout`).
pub(crate) fn node(src: &mut Source<'_>) -> NodeConfig {
    let secs = Duration::from_secs;
    // The new key wins when set; the old one is the fallback (Go: resolveEphemeralInactivityTimeout).
    let ephemeral = if src.is_set("node.ephemeral.inactivity_timeout") {
        src.duration("node.ephemeral.inactivity_timeout", secs(120))
    } else {
        src.duration("ephemeral_node_inactivity_timeout", secs(120))
    };
    NodeConfig {
        expiry: src.duration_long("node.expiry", Duration::ZERO),
        ephemeral_inactivity_timeout: ephemeral,
        routes_ha_probe_interval: src.duration("node.routes.ha.probe_interval", secs(10)),
        routes_ha_probe_timeout: src.duration("node.routes.ha.probe_timeout", secs(5)),
    }
}

/// `database.*`.
pub(crate) fn database(src: &mut Source<'_>) -> DatabaseConfig {
    let db_type = src.string("database.type", "");
    let kind = match db_type.as_str() {
        // Not set is a validation error (a server needs a database), not a type error.
        "sqlite" | "sqlite3" | "" => DatabaseKind::Sqlite,
        "postgres" => DatabaseKind::Postgres,
        other => {
            src.problems.push(Problem::new(
                "database.type",
                format!("{other:?} is not one of: sqlite, sqlite3, postgres"),
            ));
            DatabaseKind::Sqlite
        }
    };
    let port = match src.int("database.postgres.port", 0) {
        0 => None,
        p => match u16::try_from(p) {
            Ok(p) => Some(p),
            Err(_) => {
                src.problems.push(Problem::new(
                    "database.postgres.port",
                    format!("{p} is not a TCP port (1-65535)"),
                ));
                None
            }
        },
    };
    let slow_ms = src.int("database.gorm.slow_threshold", 0);
    DatabaseConfig {
        kind,
        debug: src.bool("database.debug", false),
        gorm: GormConfig {
            prepare_stmt: src.bool("database.gorm.prepare_stmt", false),
            parameterized_queries: src.bool("database.gorm.parameterized_queries", false),
            skip_err_record_not_found: src.bool("database.gorm.skip_err_record_not_found", false),
            slow_threshold: Duration::from_millis(u64::try_from(slow_ms).unwrap_or(0)),
        },
        sqlite: SqliteConfig {
            path: PathBuf::from(src.string("database.sqlite.path", "")),
            write_ahead_log: src.bool("database.sqlite.write_ahead_log", true),
            wal_autocheckpoint: src.int("database.sqlite.wal_autocheckpoint", 1000),
        },
        postgres: PostgresConfig {
            host: src.string("database.postgres.host", ""),
            port,
            name: src.string("database.postgres.name", ""),
            user: src.string("database.postgres.user", ""),
            pass: Secret::new(src.string("database.postgres.pass", "")),
            max_open_conns: src.int("database.postgres.max_open_conns", 10),
            max_idle_conns: src.int("database.postgres.max_idle_conns", 10),
            conn_max_idle_time_secs: src.int("database.postgres.conn_max_idle_time_secs", 3600),
            ssl: src.string("database.postgres.ssl", "false"),
        },
    }
}

/// `tls_*` and `acme_*`.
pub(crate) fn tls(src: &mut Source<'_>) -> TlsConfig {
    let challenge = match src
        .string("tls_letsencrypt_challenge_type", "HTTP-01")
        .as_str()
    {
        "HTTP-01" => AcmeChallenge::Http01,
        "TLS-ALPN-01" => AcmeChallenge::TlsAlpn01,
        other => {
            src.problems.push(Problem::new(
                "tls_letsencrypt_challenge_type",
                format!("{other:?} is not one of: HTTP-01, TLS-ALPN-01"),
            ));
            AcmeChallenge::Http01
        }
    };
    TlsConfig {
        acme_url: src.string("acme_url", ""),
        acme_email: src.string("acme_email", ""),
        letsencrypt_hostname: src.string("tls_letsencrypt_hostname", ""),
        letsencrypt_cache_dir: PathBuf::from(
            src.string("tls_letsencrypt_cache_dir", "/var/www/.cache"),
        ),
        letsencrypt_challenge_type: challenge,
        letsencrypt_listen: src.string("tls_letsencrypt_listen", ":http"),
        cert_path: path_or_none(src.string("tls_cert_path", "")),
        key_path: path_or_none(src.string("tls_key_path", "")),
    }
}

/// `log.*`.
pub(crate) fn log(src: &mut Source<'_>) -> LogConfig {
    let level = src.string("log.level", "info").to_ascii_lowercase();
    const LEVELS: &[&str] = &[
        "trace", "debug", "info", "warn", "error", "fatal", "panic", "disabled",
    ];
    if !LEVELS.contains(&level.as_str()) {
        src.problems.push(Problem::new(
            "log.level",
            format!("{level:?} is not one of: {}", LEVELS.join(", ")),
        ));
    }
    let format = match src.string("log.format", "text").as_str() {
        "text" | "" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            src.problems.push(Problem::new(
                "log.format",
                format!("{other:?} is not one of: text, json"),
            ));
            LogFormat::Text
        }
    };
    LogConfig { level, format }
}

/// `policy.mode`.
pub(crate) fn policy_mode(src: &mut Source<'_>) -> PolicyMode {
    match src.string("policy.mode", "file").as_str() {
        "file" => PolicyMode::File,
        "database" => PolicyMode::Database,
        other => {
            src.problems.push(Problem::new(
                "policy.mode",
                format!("{other:?} is not one of: file, database"),
            ));
            PolicyMode::File
        }
    }
}

/// `dns.*`.
pub(crate) fn dns(src: &mut Source<'_>) -> DnsConfig {
    let extra_records = src
        .records("dns.extra_records", &["name", "type", "value"])
        .into_iter()
        .map(|mut r| ExtraRecord {
            value: r.pop().unwrap_or_default(),
            record_type: r.pop().unwrap_or_default(),
            name: r.pop().unwrap_or_default(),
        })
        .collect();
    DnsConfig {
        magic_dns: src.bool("dns.magic_dns", true),
        base_domain: src.string("dns.base_domain", ""),
        override_local_dns: src.bool("dns.override_local_dns", true),
        nameservers_global: src.string_list("dns.nameservers.global"),
        nameservers_split: src.string_list_map("dns.nameservers.split"),
        search_domains: src.string_list("dns.search_domains"),
        extra_records,
        extra_records_path: path_or_none(src.string("dns.extra_records_path", "")),
    }
}

/// `unix_socket_permission`, an octal mode.
pub(crate) fn unix_socket_permission(src: &mut Source<'_>) -> u32 {
    let perm_text = src.string("unix_socket_permission", "0o770");
    parse_mode(&perm_text).unwrap_or_else(|| {
        src.problems.push(Problem::new(
            "unix_socket_permission",
            format!("{perm_text:?} is not an octal file mode like \"0770\""),
        ));
        0o770
    })
}

/// `oidc.*`.
pub(crate) fn oidc(src: &mut Source<'_>) -> OidcConfig {
    OidcConfig {
        only_start_if_oidc_is_available: src.bool("oidc.only_start_if_oidc_is_available", true),
        issuer: src.string("oidc.issuer", ""),
        client_id: src.string("oidc.client_id", ""),
        client_secret: Secret::new(src.string("oidc.client_secret", "")),
        client_secret_path: path_or_none(src.string("oidc.client_secret_path", "")),
        scope: if src.is_set("oidc.scope") {
            src.string_list("oidc.scope")
        } else {
            vec!["openid".into(), "profile".into(), "email".into()]
        },
        extra_params: src.string_map("oidc.extra_params"),
        allowed_domains: src.string_list("oidc.allowed_domains"),
        allowed_users: src.string_list("oidc.allowed_users"),
        allowed_groups: src.string_list("oidc.allowed_groups"),
        email_verified_required: src.bool("oidc.email_verified_required", true),
        use_expiry_from_token: src.bool("oidc.use_expiry_from_token", false),
        pkce: PkceConfig {
            enabled: src.bool("oidc.pkce.enabled", false),
            method: src.string("oidc.pkce.method", "S256"),
        },
    }
}

/// `cli.*`.
pub(crate) fn cli(src: &mut Source<'_>) -> CliConfig {
    let secs = Duration::from_secs;
    CliConfig {
        address: src.string("cli.address", ""),
        api_key: Secret::new(src.string("cli.api_key", "")),
        timeout: src.duration("cli.timeout", secs(5)),
        insecure: src.bool("cli.insecure", false),
    }
}

/// `tuning.*`.
pub(crate) fn tuning(src: &mut Source<'_>) -> TuningConfig {
    let secs = Duration::from_secs;
    TuningConfig {
        notifier_send_timeout: src
            .duration("tuning.notifier_send_timeout", Duration::from_millis(800)),
        batch_change_delay: src.duration("tuning.batch_change_delay", Duration::from_millis(800)),
        node_mapsession_buffered_chan_size: src
            .int("tuning.node_mapsession_buffered_chan_size", 30),
        batcher_workers: src.int("tuning.batcher_workers", 0),
        register_cache_expiration: src.duration("tuning.register_cache_expiration", secs(15 * 60)),
        register_cache_max_entries: src.int("tuning.register_cache_max_entries", 1024),
        node_store_batch_size: src.int(
            "tuning.node_store_batch_size",
            DEFAULT_NODE_STORE_BATCH_SIZE,
        ),
        node_store_batch_timeout: src.duration(
            "tuning.node_store_batch_timeout",
            Duration::from_millis(500),
        ),
    }
}

/// `limits.*` (headscale-rs only): each count must fit 0..=u32::MAX, and a rate limit needs a
/// burst of at least one request.
pub(crate) fn limits(src: &mut Source<'_>) -> LimitsConfig {
    fn count(src: &mut Source<'_>, key: &str, default: u32) -> u32 {
        let n = src.int(key, i64::from(default));
        u32::try_from(n).unwrap_or_else(|_| {
            src.problems.push(Problem::new(
                key,
                format!("{n} is out of range (0 to {})", u32::MAX),
            ));
            default
        })
    }
    let d = LimitsConfig::default();
    let max_connections_per_ip = count(
        src,
        "limits.max_connections_per_ip",
        d.max_connections_per_ip,
    );
    let requests_per_second = count(src, "limits.requests_per_second", d.requests_per_second);
    let request_burst = count(src, "limits.request_burst", d.request_burst);
    if requests_per_second > 0 && request_burst == 0 {
        src.problems.push(Problem::new(
            "limits.request_burst",
            "must be at least 1 when limits.requests_per_second is set (0 there turns the rate limit off)",
        ));
    }
    let mut exempt = Vec::new();
    for (i, s) in src.string_list("limits.exempt").into_iter().enumerate() {
        match parse_net(&s) {
            Some(net) => exempt.push(net),
            None => src.problems.push(Problem::new(
                format!("limits.exempt[{i}]"),
                format!("{s:?} is not an IP address or CIDR prefix"),
            )),
        }
    }
    LimitsConfig {
        max_connections_per_ip,
        requests_per_second,
        request_burst,
        exempt_loopback: src.bool("limits.exempt_loopback", d.exempt_loopback),
        exempt,
    }
}

//! The key paths Headscale's config file knows, so that anything else is reported as unknown,
//! and the keys Headscale removed or renamed, with what became of them.

use serde_yaml_ng::Value;

use super::error::{Problem, Warning};
use super::source::{Source, key_text};

/// Every scalar or list key the loader reads.
const LEAVES: &[&str] = &[
    "server_url",
    "listen_addr",
    "metrics_listen_addr",
    "grpc_listen_addr",
    "grpc_allow_insecure",
    "trusted_proxies",
    "noise.private_key_path",
    "prefixes.v4",
    "prefixes.v6",
    "prefixes.allocation",
    "derp.server.enabled",
    "derp.server.region_id",
    "derp.server.region_code",
    "derp.server.region_name",
    "derp.server.verify_clients",
    "derp.server.stun_listen_addr",
    "derp.server.private_key_path",
    "derp.server.automatically_add_embedded_derp_region",
    "derp.server.ipv4",
    "derp.server.ipv6",
    // Set as a default by Go Headscale but never read: STUN runs whenever DERP does.
    "derp.server.stun.enabled",
    "derp.urls",
    "derp.paths",
    "derp.auto_update_enabled",
    "derp.update_frequency",
    "disable_check_updates",
    "node.expiry",
    "node.ephemeral.inactivity_timeout",
    "node.routes.ha.probe_interval",
    "node.routes.ha.probe_timeout",
    "preauth_keys.revoked_retention",
    "database.type",
    "database.debug",
    "database.gorm.prepare_stmt",
    "database.gorm.parameterized_queries",
    "database.gorm.skip_err_record_not_found",
    "database.gorm.slow_threshold",
    "database.sqlite.path",
    "database.sqlite.write_ahead_log",
    "database.sqlite.wal_autocheckpoint",
    "database.postgres.host",
    "database.postgres.port",
    "database.postgres.name",
    "database.postgres.user",
    "database.postgres.pass",
    "database.postgres.max_open_conns",
    "database.postgres.max_idle_conns",
    "database.postgres.conn_max_idle_time_secs",
    "database.postgres.ssl",
    "acme_url",
    "acme_email",
    "tls_letsencrypt_hostname",
    "tls_letsencrypt_cache_dir",
    "tls_letsencrypt_challenge_type",
    "tls_letsencrypt_listen",
    "tls_cert_path",
    "tls_key_path",
    "log.level",
    "log.format",
    "policy.mode",
    "policy.path",
    "dns.magic_dns",
    "dns.base_domain",
    "dns.override_local_dns",
    "dns.nameservers.global",
    "dns.search_domains",
    "dns.extra_records_path",
    "unix_socket",
    "unix_socket_permission",
    "oidc.only_start_if_oidc_is_available",
    "oidc.issuer",
    "oidc.client_id",
    "oidc.client_secret",
    "oidc.client_secret_path",
    "oidc.scope",
    "oidc.allowed_domains",
    "oidc.allowed_users",
    "oidc.allowed_groups",
    "oidc.email_verified_required",
    "oidc.use_expiry_from_token",
    "oidc.pkce.enabled",
    "oidc.pkce.method",
    "logtail.enabled",
    "randomize_client_port",
    "taildrop.enabled",
    "auto_update.enabled",
    "cli.address",
    "cli.api_key",
    "cli.timeout",
    "cli.insecure",
    "tuning.notifier_send_timeout",
    "tuning.batch_change_delay",
    "tuning.node_mapsession_buffered_chan_size",
    "tuning.batcher_workers",
    "tuning.register_cache_expiration",
    "tuning.register_cache_max_entries",
    "tuning.node_store_batch_size",
    "tuning.node_store_batch_timeout",
    // headscale-rs only (Go Headscale has no limits and ignores the section).
    "limits.max_connections_per_ip",
    "limits.requests_per_second",
    "limits.request_burst",
    "limits.exempt_loopback",
    "limits.exempt",
];

/// Keys whose value is a free-form mapping or a list of mappings: not walked into.
const OPAQUE: &[&str] = &[
    "dns.nameservers.split",
    "dns.extra_records",
    "oidc.extra_params",
];

/// Renamed keys: refused unless the new key is also set, in which case the old one is
/// ignored with a warning (Go Headscale's `fatalIfNewKeyIsNotUsed`).
const RENAMED: &[(&str, &str)] = &[
    ("acl_policy_path", "policy.path"),
    ("dns_config.magic_dns", "dns.magic_dns"),
    ("dns_config.base_domain", "dns.base_domain"),
    ("dns_config.override_local_dns", "dns.override_local_dns"),
    ("dns_config.nameservers", "dns.nameservers.global"),
    ("dns_config.restricted_nameservers", "dns.nameservers.split"),
    ("dns_config.domains", "dns.search_domains"),
    ("dns_config.extra_records", "dns.extra_records"),
];

/// Removed keys: setting them is an error. The second field says what to do instead.
const REMOVED: &[(&str, &str)] = &[
    ("dns.use_username_in_magic_dns", "see Headscale's changelog"),
    (
        "dns_config.use_username_in_magic_dns",
        "see Headscale's changelog",
    ),
    ("oidc.strip_email_domain", "removed in Headscale 0.26"),
    ("oidc.map_legacy_users", "removed in Headscale 0.26"),
    ("oidc.expiry", "use node.expiry instead"),
];

/// Deprecated keys that still work, with their replacement.
const DEPRECATED: &[(&str, &str)] = &[(
    "ephemeral_node_inactivity_timeout",
    "node.ephemeral.inactivity_timeout",
)];

/// Checks renamed, removed and deprecated keys.
pub(crate) fn check_legacy(
    src: &Source<'_>,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Warning>,
) {
    for (old, new) in RENAMED {
        if !src.is_set(old) {
            continue;
        }
        if src.is_set(new) {
            warnings.push(Warning {
                key: (*old).to_owned(),
                message: format!("deprecated and ignored; {new} is used instead"),
            });
        } else {
            problems.push(Problem::new(
                *old,
                format!("this key has been removed; use {new} instead"),
            ));
        }
    }
    for (old, what) in REMOVED {
        if src.is_set(old) {
            problems.push(Problem::new(
                *old,
                format!("this key has been removed ({what})"),
            ));
        }
    }
    for (old, new) in DEPRECATED {
        if src.is_set(old) {
            warnings.push(Warning {
                key: (*old).to_owned(),
                message: format!("deprecated; use {new} instead"),
            });
        }
    }
}

fn is_handled(path: &str) -> bool {
    LEAVES.contains(&path)
        || OPAQUE.contains(&path)
        || RENAMED.iter().any(|(old, _)| *old == path)
        || REMOVED.iter().any(|(old, _)| *old == path)
        || DEPRECATED.iter().any(|(old, _)| *old == path)
}

fn is_section(path: &str) -> bool {
    let prefix = format!("{path}.");
    LEAVES
        .iter()
        .chain(OPAQUE)
        .chain(RENAMED.iter().map(|(o, _)| o))
        .chain(REMOVED.iter().map(|(o, _)| o))
        .any(|k| k.starts_with(&prefix))
}

/// Warns about every key in the file the loader does not know.
pub(crate) fn unknown_keys(root: &Value, warnings: &mut Vec<Warning>) {
    walk(root, "", warnings);
}

fn walk(v: &Value, prefix: &str, warnings: &mut Vec<Warning>) {
    let Value::Mapping(map) = v else {
        return;
    };
    for (k, child) in map {
        let Some(name) = key_text(k) else {
            continue;
        };
        let path = if prefix.is_empty() {
            name.to_ascii_lowercase()
        } else {
            format!("{prefix}.{}", name.to_ascii_lowercase())
        };
        if is_handled(&path) {
            continue;
        }
        if is_section(&path) {
            walk(child, &path, warnings);
            continue;
        }
        warnings.push(Warning {
            key: path,
            message: "unknown key, ignored".to_owned(),
        });
    }
}

//! Fixture tests: Headscale's own example config and the small fixtures published with it,
//! each checked for what its name says.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;

/// This crate's directory, read when the test runs: `cargo test` sets it, and the
/// compile-time value may name another checkout that built this binary into the shared
/// target directory.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn fixture(name: &str) -> String {
    let path = manifest_dir().join("../../../shared/headscale-compat/config/");
    std::fs::read_to_string(path.join(name)).unwrap()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(name: &str) -> Result<Loaded, ConfigError> {
    Config::from_yaml_str(&fixture(name), &no_env)
}

#[test]
fn example_config_loads_unchanged() {
    let (c, warnings) = load("config-example.yaml").unwrap();
    assert!(warnings.is_empty(), "unexpected warnings: {warnings:?}");
    assert_eq!(c.server_url, "http://127.0.0.1:8080");
    assert_eq!(c.listen_addr, "127.0.0.1:8080");
    assert_eq!(c.metrics_listen_addr, "127.0.0.1:9090");
    // The example leaves grpc_listen_addr commented out: Go's default applies.
    assert_eq!(c.grpc_listen_addr, ":50443");
    assert_eq!(
        c.noise_private_key_path,
        Path::new("/var/lib/headscale/noise_private.key")
    );
    assert_eq!(c.prefixes.v4.unwrap().to_string(), "100.64.0.0/10");
    assert_eq!(c.prefixes.v6.unwrap().to_string(), "fd7a:115c:a1e0::/48");
    assert_eq!(c.prefixes.allocation, IpAllocation::Sequential);
    assert!(!c.derp.server.enabled);
    assert_eq!(c.derp.server.region_id, 999);
    assert_eq!(c.derp.server.region_name, "Headscale Embedded DERP");
    assert_eq!(c.derp.server.ipv6, "2001:db8::1");
    assert_eq!(
        c.derp.urls,
        ["https://controlplane.tailscale.com/derpmap/default"]
    );
    assert_eq!(c.derp.update_frequency, Duration::from_secs(3 * 3600));
    assert_eq!(c.node.expiry, Duration::ZERO);
    assert_eq!(
        c.node.ephemeral_inactivity_timeout,
        Duration::from_secs(1800)
    );
    assert_eq!(c.node.routes_ha_probe_interval, Duration::from_secs(10));
    assert_eq!(c.database.kind, DatabaseKind::Sqlite);
    assert_eq!(c.database.gorm.slow_threshold, Duration::from_millis(1000));
    assert_eq!(c.database.sqlite.wal_autocheckpoint, 1000);
    assert_eq!(c.tls.letsencrypt_challenge_type, AcmeChallenge::Http01);
    assert_eq!(c.tls.cert_path, None);
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.policy.mode, PolicyMode::File);
    assert_eq!(c.dns.base_domain, "example.com");
    assert_eq!(c.dns.nameservers_global.len(), 4);
    assert_eq!(c.unix_socket_permission, 0o770);
    assert!(c.taildrop_enabled);
    // The example sets `dns.extra_records: []` and leaves extra_records_path commented out.
    assert!(c.dns.extra_records.is_empty());
}

#[test]
fn minimal_parses_and_names_what_a_server_still_needs() {
    let (c, _) = Config::parse(&fixture("minimal.yaml"), &no_env).unwrap();
    assert_eq!(c.server_url, "https://derp.no");
    assert_eq!(c.noise_private_key_path, Path::new("private_key.pem"));
    // Go Headscale's defaults: MagicDNS on and local DNS overridden, so a server also needs a
    // base domain, nameservers and prefixes; the full load says exactly that.
    let err = load("minimal.yaml").unwrap_err();
    let mut keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "database.type",
            "dns.base_domain",
            "dns.nameservers.global",
            "listen_addr",
            "prefixes"
        ]
    );
}

#[test]
fn minimal_with_env_overrides_loads() {
    // The variables Go Headscale's own env test sets, plus what a server needs.
    let env: HashMap<&str, &str> = HashMap::from([
        ("HEADSCALE_LOG_LEVEL", "trace"),
        ("HEADSCALE_DATABASE_SQLITE_WRITE_AHEAD_LOG", "false"),
        ("HEADSCALE_PREFIXES_V4", "100.64.0.0/10"),
        ("HEADSCALE_DNS_MAGIC_DNS", "true"),
        ("HEADSCALE_DNS_BASE_DOMAIN", "example.com"),
        ("HEADSCALE_DNS_NAMESERVERS_GLOBAL", "1.1.1.1 8.8.8.8"),
        ("HEADSCALE_DNS_SEARCH_DOMAINS", "test.com bar.com"),
        ("HEADSCALE_DATABASE_TYPE", "sqlite3"),
        ("HEADSCALE_LISTEN_ADDR", "127.0.0.1:0"),
    ]);
    let lookup = |k: &str| env.get(k).map(|v| (*v).to_owned());
    let (c, _) = Config::from_yaml_str(&fixture("minimal.yaml"), &lookup).unwrap();
    assert_eq!(c.log.level, "trace");
    assert!(!c.database.sqlite.write_ahead_log);
    assert_eq!(c.prefixes.v4.unwrap().to_string(), "100.64.0.0/10");
    assert!(c.dns.magic_dns);
    assert_eq!(c.dns.base_domain, "example.com");
    assert_eq!(c.dns.nameservers_global, ["1.1.1.1", "8.8.8.8"]);
    assert_eq!(c.dns.search_domains, ["test.com", "bar.com"]);
    assert!(c.dns.nameservers_split.is_empty());
}

#[test]
fn env_beats_file_and_bad_env_names_the_variable() {
    let text = fixture("config-example.yaml");
    let env = |k: &str| (k == "HEADSCALE_SERVER_URL").then(|| "https://hs.example.net".to_owned());
    let (c, _) = Config::from_yaml_str(&text, &env).unwrap();
    assert_eq!(c.server_url, "https://hs.example.net");

    // An empty variable is ignored rather than read as an empty value.
    let env = |k: &str| (k == "HEADSCALE_SERVER_URL").then(String::new);
    let (c, _) = Config::from_yaml_str(&text, &env).unwrap();
    assert_eq!(c.server_url, "http://127.0.0.1:8080");

    let env = |k: &str| (k == "HEADSCALE_DERP_SERVER_ENABLED").then(|| "maybe".to_owned());
    let err = Config::from_yaml_str(&text, &env).unwrap_err();
    assert!(err.mentions("derp.server.enabled"));
    assert!(
        err.to_string().contains("HEADSCALE_DERP_SERVER_ENABLED"),
        "{err}"
    );
}

fn dns_full_expectations(c: &Config) {
    assert_eq!(c.dns.base_domain, "example.com");
    assert!(!c.dns.override_local_dns);
    assert_eq!(
        c.dns.nameservers_global,
        [
            "1.1.1.1",
            "1.0.0.1",
            "2606:4700:4700::1111",
            "2606:4700:4700::1001",
            "https://dns.nextdns.io/abc123"
        ]
    );
    assert_eq!(c.dns.nameservers_split["foo.bar.com"], ["1.1.1.1"]);
    assert_eq!(
        c.dns.nameservers_split["darp.headscale.net"],
        ["1.1.1.1", "8.8.8.8"]
    );
    assert_eq!(c.dns.search_domains, ["test.com", "bar.com"]);
    assert_eq!(
        c.dns.extra_records,
        [
            ExtraRecord {
                name: "grafana.myvpn.example.com".into(),
                record_type: "A".into(),
                value: "100.64.0.3".into()
            },
            ExtraRecord {
                name: "prometheus.myvpn.example.com".into(),
                record_type: "A".into(),
                value: "100.64.0.4".into()
            },
        ]
    );
}

#[test]
fn dns_full_reads_every_dns_field() {
    let (c, warnings) = Config::parse(&fixture("dns_full.yaml"), &no_env).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(c.dns.magic_dns);
    dns_full_expectations(&c);
}

#[test]
fn dns_full_no_magic_reads_every_dns_field_with_magic_off() {
    let (c, _) = Config::parse(&fixture("dns_full_no_magic.yaml"), &no_env).unwrap();
    assert!(!c.dns.magic_dns);
    dns_full_expectations(&c);
}

#[test]
fn base_domain_in_server_url_is_refused() {
    let err = load("base-domain-in-server-url.yaml").unwrap_err();
    let p = err
        .problems()
        .iter()
        .find(|p| p.key == "server_url")
        .unwrap();
    assert!(p.reason.contains("dns.base_domain"), "{p}");
    assert!(p.reason.contains("derp.no"), "{p}");
}

#[test]
fn base_domain_not_in_server_url_is_accepted() {
    // The fixture has no listen_addr; that is the only thing a full load asks for.
    let (c, _) = Config::parse(&fixture("base-domain-not-in-server-url.yaml"), &no_env).unwrap();
    assert_eq!(c.server_url, "https://derp.no");
    assert_eq!(c.dns.base_domain, "clients.derp.no");
    let err = load("base-domain-not-in-server-url.yaml").unwrap_err();
    assert!(!err.mentions("server_url"), "{err}");
    let env = |k: &str| (k == "HEADSCALE_LISTEN_ADDR").then(|| "127.0.0.1:0".to_owned());
    Config::from_yaml_str(&fixture("base-domain-not-in-server-url.yaml"), &env).unwrap();
}

#[test]
fn dns_override_true_without_nameservers_is_refused() {
    let err = load("dns-override-true-error.yaml").unwrap_err();
    assert!(err.mentions("dns.nameservers.global"), "{err}");
    let p = err
        .problems()
        .iter()
        .find(|p| p.key == "dns.nameservers.global")
        .unwrap();
    assert!(p.reason.contains("dns.override_local_dns"));
}

#[test]
fn dns_override_true_with_nameservers_is_accepted() {
    let env = |k: &str| (k == "HEADSCALE_LISTEN_ADDR").then(|| "127.0.0.1:0".to_owned());
    let (c, _) = Config::from_yaml_str(&fixture("dns-override-true.yaml"), &env).unwrap();
    assert!(c.dns.override_local_dns);
    assert_eq!(c.dns.nameservers_global, ["1.1.1.1", "1.0.0.1"]);
    assert_eq!(c.dns.base_domain, "derp2.no");
    assert_eq!(c.database.kind, DatabaseKind::Sqlite);
}

#[test]
fn policy_path_is_loaded_and_old_key_warned() {
    let (c, warnings) = Config::parse(&fixture("policy-path-is-loaded.yaml"), &no_env).unwrap();
    assert_eq!(c.policy.mode, PolicyMode::File);
    assert_eq!(c.policy.path, "/etc/policy.hujson");
    let keys: Vec<&str> = warnings.iter().map(|w| w.key.as_str()).collect();
    assert!(keys.contains(&"acl_policy_path"), "{warnings:?}");
    // `policy.type` is not a Headscale key (the mode key is `policy.mode`).
    assert!(keys.contains(&"policy.type"), "{warnings:?}");
}

#[test]
fn acl_policy_path_alone_is_refused() {
    let text = "acl_policy_path: /etc/acl.hujson\n";
    let err = Config::parse(text, &no_env).unwrap_err();
    assert!(err.mentions("acl_policy_path"));
    assert!(err.to_string().contains("policy.path"));
}

#[test]
fn derp_example_is_not_a_config_file_but_does_not_crash() {
    // A DERP map fed to the config loader by mistake: every top-level key is unknown.
    let (_, warnings) = Config::parse(&fixture("derp-example.yaml"), &no_env).unwrap();
    assert!(warnings.iter().any(|w| w.key == "regions"), "{warnings:?}");
}

#[test]
fn bad_values_name_key_and_reason() {
    let base = fixture("config-example.yaml");
    let cases: &[(&str, &str, &str)] = &[
        (
            "server_url: http://127.0.0.1:8080",
            "server_url: \"ftp://x\"",
            "server_url",
        ),
        (
            "allocation: sequential",
            "allocation: diagonal",
            "prefixes.allocation",
        ),
        (
            "\n  v4: 100.64.0.0/10",
            "\n  v4: 100.64.0.0/99",
            "prefixes.v4",
        ),
        (
            "update_frequency: 3h",
            "update_frequency: 3 hours",
            "derp.update_frequency",
        ),
        ("type: sqlite", "type: mongodb", "database.type"),
        ("format: text", "format: xml", "log.format"),
        ("level: info", "level: loud", "log.level"),
        ("mode: file", "mode: cloud", "policy.mode"),
        (
            "probe_timeout: 5s",
            "probe_timeout: 15s",
            "node.routes.ha.probe_timeout",
        ),
        (
            "inactivity_timeout: 30m",
            "inactivity_timeout: 30s",
            "node.ephemeral.inactivity_timeout",
        ),
        (
            "unix_socket_permission: \"0770\"",
            "unix_socket_permission: \"rwx\"",
            "unix_socket_permission",
        ),
        (
            "in place\n    enabled: false",
            "in place\n    enabled: [1]",
            "derp.server.enabled",
        ),
        (
            "wal_autocheckpoint: 1000",
            "wal_autocheckpoint: many",
            "database.sqlite.wal_autocheckpoint",
        ),
        (
            "tls_letsencrypt_challenge_type: HTTP-01",
            "tls_letsencrypt_challenge_type: DNS-01",
            "tls_letsencrypt_challenge_type",
        ),
    ];
    for (from, to, key) in cases {
        assert!(base.contains(from), "fixture lacks {from:?}");
        let text = base.replacen(from, to, 1);
        let Err(err) = Config::from_yaml_str(&text, &no_env) else {
            panic!("{to:?} was accepted");
        };
        assert!(err.mentions(key), "{key}: {err}");
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn unknown_keys_warn_and_deprecated_keys_still_work() {
    let mut text = fixture("config-example.yaml");
    text.push_str("\nnot_a_key: 1\nephemeral_node_inactivity_timeout: 10m\n");
    text = text.replace("    inactivity_timeout: 30m\n", "");
    let (c, warnings) = Config::from_yaml_str(&text, &no_env).unwrap();
    assert_eq!(
        c.node.ephemeral_inactivity_timeout,
        Duration::from_secs(600)
    );
    let keys: Vec<&str> = warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, ["ephemeral_node_inactivity_timeout", "not_a_key"]);
}

#[test]
fn removed_keys_are_refused() {
    let text = fixture("config-example.yaml") + "\noidc:\n  strip_email_domain: true\n";
    let err = Config::from_yaml_str(&text, &no_env).unwrap_err();
    assert!(err.mentions("oidc.strip_email_domain"));
}

#[test]
fn yaml_syntax_errors_are_reported() {
    let err = Config::parse("server_url: [unclosed", &no_env).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax(_)));
    let err = Config::parse("- just\n- a list\n", &no_env).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax(_)));
    // A hostile nesting is refused before the parser spends minutes on it.
    let deep = format!(
        "server_url: x\nacl: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let err = Config::parse(&deep, &no_env).unwrap_err();
    assert!(
        err.to_string()
            .contains("line 2: brackets nest deeper than 64 levels"),
        "{err}"
    );
}

#[test]
fn embedded_default_is_valid_and_lives_in_data_dir() {
    let dir = Path::new("/tmp/hs data \"quoted\"");
    let (c, warnings) = Config::embedded_default(dir, &no_env).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.server_url, "http://127.0.0.1:8080");
    assert_eq!(c.listen_addr, "127.0.0.1:8080");
    assert_eq!(c.database.kind, DatabaseKind::Sqlite);
    assert_eq!(c.database.sqlite.path, dir.join("db.sqlite"));
    assert_eq!(c.noise_private_key_path, dir.join("noise_private.key"));
    assert_eq!(
        c.derp.server.private_key_path,
        dir.join("derp_server_private.key")
    );
    assert!(c.derp.server.enabled);
    assert_eq!(c.unix_socket, dir.join("headscale.sock"));
}

#[test]
fn embedded_default_takes_env_overrides() {
    let env = |k: &str| (k == "HEADSCALE_LISTEN_ADDR").then(|| "127.0.0.1:0".to_owned());
    let (c, _) = Config::embedded_default(Path::new("/tmp/x"), &env).unwrap();
    assert_eq!(c.listen_addr, "127.0.0.1:0");
}

#[test]
fn relative_paths_follow_the_config_file() {
    let (mut c, _) = Config::parse(&fixture("minimal.yaml"), &no_env).unwrap();
    c.resolve_relative_paths(Path::new("/etc/headscale"));
    assert_eq!(
        c.noise_private_key_path,
        Path::new("/etc/headscale/private_key.pem")
    );
}

#[test]
fn secrets_are_redacted_in_debug() {
    let text = fixture("config-example.yaml") + "\ncli:\n  api_key: hskey-api-SECRETSECRET\n";
    let (c, _) = Config::from_yaml_str(&text, &no_env).unwrap();
    assert_eq!(c.cli.api_key.expose(), "hskey-api-SECRETSECRET");
    assert!(!format!("{c:?}").contains("SECRETSECRET"));
}

#[test]
fn limits_default_when_absent_and_read_when_set() {
    // Go's example has no `limits` section: the defaults apply, with no warning.
    let (c, warnings) = load("config-example.yaml").unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.limits, LimitsConfig::default());
    assert_eq!(c.limits.max_connections_per_ip, 1024);
    assert_eq!(c.limits.requests_per_second, 20);
    assert_eq!(c.limits.request_burst, 200);
    assert!(c.limits.exempt_loopback);

    let text = fixture("config-example.yaml")
        + "\nlimits:\n  max_connections_per_ip: 0\n  requests_per_second: 5\n  \
           request_burst: 10\n  exempt_loopback: false\n  exempt: [192.0.2.0/24, 2001:db8::1]\n";
    let env: HashMap<&str, &str> = [("HEADSCALE_LIMITS_REQUEST_BURST", "50")].into();
    let (c, warnings) =
        Config::from_yaml_str(&text, &|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.limits.max_connections_per_ip, 0);
    assert_eq!(c.limits.requests_per_second, 5);
    assert_eq!(c.limits.request_burst, 50);
    assert!(!c.limits.exempt_loopback);
    let exempt: Vec<String> = c.limits.exempt.iter().map(ToString::to_string).collect();
    assert_eq!(exempt, ["192.0.2.0/24", "2001:db8::1/128"]);

    for (bad, key) in [
        ("requests_per_second: -1", "limits.requests_per_second"),
        (
            "max_connections_per_ip: 99999999999",
            "limits.max_connections_per_ip",
        ),
        ("request_burst: 0", "limits.request_burst"),
        ("exempt: [nonsense]", "limits.exempt[0]"),
    ] {
        let text = fixture("config-example.yaml") + "\nlimits:\n  " + bad + "\n";
        let err = Config::from_yaml_str(&text, &no_env).unwrap_err();
        assert!(err.mentions(key), "{bad}: {err}");
    }
}

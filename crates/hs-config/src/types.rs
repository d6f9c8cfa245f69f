//! The typed configuration: one struct per YAML section, field names as in Headscale's
//! `config.yaml`. Values here are already defaulted and validated; secrets (database password,
//! OIDC client secret, CLI API key) are kept out of `Debug`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};

/// A secret string from the config (database password, OIDC client secret, API key): usable
/// through [`Secret::expose`], printed as `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether no secret was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("<redacted>")
        }
    }
}

/// The whole server configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `server_url`: the URL clients use to reach this server (`http://` or `https://`).
    pub server_url: String,
    /// `listen_addr`: the main HTTP listener.
    pub listen_addr: String,
    /// `metrics_listen_addr`: metrics and debug listener; empty disables it.
    pub metrics_listen_addr: String,
    /// `grpc_listen_addr`: the gRPC admin API listener.
    pub grpc_listen_addr: String,
    /// `grpc_allow_insecure`: serve gRPC without TLS on a non-local address.
    pub grpc_allow_insecure: bool,
    /// `trusted_proxies`: proxies whose forwarded-for headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `noise.private_key_path`: the ts2021 Noise private key (created if missing).
    pub noise_private_key_path: PathBuf,
    /// `prefixes.*`: the tailnet address ranges.
    pub prefixes: PrefixesConfig,
    /// `derp.*`: DERP relay maps and the embedded DERP server.
    pub derp: DerpConfig,
    /// `disable_check_updates`.
    pub disable_check_updates: bool,
    /// `node.*`: node lifecycle timings.
    pub node: NodeConfig,
    /// `preauth_keys.revoked_retention`: how long revoked keys are kept.
    pub preauth_keys_revoked_retention: Duration,
    /// `database.*`.
    pub database: DatabaseConfig,
    /// ACME and TLS keys (`acme_url`, `tls_*`).
    pub tls: TlsConfig,
    /// `log.*`.
    pub log: LogConfig,
    /// `policy.*`.
    pub policy: PolicyConfig,
    /// `dns.*`.
    pub dns: DnsConfig,
    /// `unix_socket`: the admin API socket.
    pub unix_socket: PathBuf,
    /// `unix_socket_permission`, as a mode (`0o770`).
    pub unix_socket_permission: u32,
    /// `oidc.*` (parsed and kept; OIDC login comes later).
    pub oidc: OidcConfig,
    /// `logtail.enabled`.
    pub logtail_enabled: bool,
    /// `randomize_client_port`.
    pub randomize_client_port: bool,
    /// `taildrop.enabled`.
    pub taildrop_enabled: bool,
    /// `cli.*`: how the CLI reaches a remote server.
    pub cli: CliConfig,
    /// `tuning.*`: internal batching and buffer sizes.
    pub tuning: TuningConfig,
    /// `limits.*`: per-client limits on the main listener (headscale-rs only; Go Headscale
    /// has no such keys and ignores them).
    pub limits: LimitsConfig,
}

/// How node addresses are picked from the prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpAllocation {
    /// The next free address.
    Sequential,
    /// A random free address.
    Random,
}

/// `prefixes.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixesConfig {
    /// `prefixes.v4`.
    pub v4: Option<Ipv4Net>,
    /// `prefixes.v6`.
    pub v6: Option<Ipv6Net>,
    /// `prefixes.allocation`.
    pub allocation: IpAllocation,
}

/// `derp.server.*`: the embedded DERP relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerpServerConfig {
    /// `derp.server.enabled`.
    pub enabled: bool,
    /// `derp.server.region_id`.
    pub region_id: i64,
    /// `derp.server.region_code`.
    pub region_code: String,
    /// `derp.server.region_name`.
    pub region_name: String,
    /// `derp.server.verify_clients`: only relay for nodes of this tailnet.
    pub verify_clients: bool,
    /// `derp.server.stun_listen_addr`.
    pub stun_listen_addr: String,
    /// `derp.server.private_key_path`.
    pub private_key_path: PathBuf,
    /// `derp.server.automatically_add_embedded_derp_region`.
    pub automatically_add_embedded_derp_region: bool,
    /// `derp.server.ipv4`: public address put into the region's node.
    pub ipv4: String,
    /// `derp.server.ipv6`.
    pub ipv6: String,
}

/// `derp.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerpConfig {
    /// `derp.server.*`.
    pub server: DerpServerConfig,
    /// `derp.urls`: JSON DERP maps fetched over HTTP(S).
    pub urls: Vec<String>,
    /// `derp.paths`: YAML DERP map files.
    pub paths: Vec<PathBuf>,
    /// `derp.auto_update_enabled`.
    pub auto_update_enabled: bool,
    /// `derp.update_frequency`.
    pub update_frequency: Duration,
}

/// `node.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// `node.expiry`: default key expiry for new registrations; zero means never.
    pub expiry: Duration,
    /// `node.ephemeral.inactivity_timeout` (or the older `ephemeral_node_inactivity_timeout`).
    pub ephemeral_inactivity_timeout: Duration,
    /// `node.routes.ha.probe_interval`; zero disables HA probing.
    pub routes_ha_probe_interval: Duration,
    /// `node.routes.ha.probe_timeout`.
    pub routes_ha_probe_timeout: Duration,
}

/// Which database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite` or `sqlite3`.
    Sqlite,
    /// `postgres`.
    Postgres,
}

/// `database.gorm.*`: kept for compatibility; only `slow_threshold` has a meaning here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GormConfig {
    /// `database.gorm.prepare_stmt`.
    pub prepare_stmt: bool,
    /// `database.gorm.parameterized_queries`.
    pub parameterized_queries: bool,
    /// `database.gorm.skip_err_record_not_found`.
    pub skip_err_record_not_found: bool,
    /// `database.gorm.slow_threshold` (milliseconds in the file).
    pub slow_threshold: Duration,
}

/// `database.sqlite.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// `database.sqlite.path`.
    pub path: PathBuf,
    /// `database.sqlite.write_ahead_log`.
    pub write_ahead_log: bool,
    /// `database.sqlite.wal_autocheckpoint` (pages).
    pub wal_autocheckpoint: i64,
}

/// `database.postgres.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `database.postgres.host` (a host name, address or socket directory).
    pub host: String,
    /// `database.postgres.port`; `None` when not set.
    pub port: Option<u16>,
    /// `database.postgres.name`.
    pub name: String,
    /// `database.postgres.user`.
    pub user: String,
    /// `database.postgres.pass`.
    pub pass: Secret,
    /// `database.postgres.max_open_conns`.
    pub max_open_conns: i64,
    /// `database.postgres.max_idle_conns`.
    pub max_idle_conns: i64,
    /// `database.postgres.conn_max_idle_time_secs`.
    pub conn_max_idle_time_secs: i64,
    /// `database.postgres.ssl`: `false`, `true` or a libpq `sslmode` value.
    pub ssl: String,
}

/// `database.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `database.type`.
    pub kind: DatabaseKind,
    /// `database.debug`: log every statement.
    pub debug: bool,
    /// `database.gorm.*`.
    pub gorm: GormConfig,
    /// `database.sqlite.*`.
    pub sqlite: SqliteConfig,
    /// `database.postgres.*`.
    pub postgres: PostgresConfig,
}

/// The ACME challenge Let's Encrypt uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// `HTTP-01`.
    Http01,
    /// `TLS-ALPN-01`.
    TlsAlpn01,
}

/// ACME and TLS keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `acme_url`.
    pub acme_url: String,
    /// `acme_email`.
    pub acme_email: String,
    /// `tls_letsencrypt_hostname`; empty disables Let's Encrypt.
    pub letsencrypt_hostname: String,
    /// `tls_letsencrypt_cache_dir`.
    pub letsencrypt_cache_dir: PathBuf,
    /// `tls_letsencrypt_challenge_type`.
    pub letsencrypt_challenge_type: AcmeChallenge,
    /// `tls_letsencrypt_listen`.
    pub letsencrypt_listen: String,
    /// `tls_cert_path`; empty when not set.
    pub cert_path: Option<PathBuf>,
    /// `tls_key_path`; empty when not set.
    pub key_path: Option<PathBuf>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `log.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `log.level`: `trace`, `debug`, `info`, `warn`, `error`, `fatal`, `panic` or `disabled`.
    pub level: String,
    /// `log.format`.
    pub format: LogFormat,
}

/// Where the policy lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyMode {
    /// Read from `policy.path`.
    File,
    /// Stored in the database, managed through the API.
    Database,
}

/// `policy.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// `policy.mode`.
    pub mode: PolicyMode,
    /// `policy.path`; empty means no policy file (allow all).
    pub path: String,
}

/// One `dns.extra_records` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraRecord {
    /// Record name (`grafana.myvpn.example.com`).
    pub name: String,
    /// Record type (`A`, `AAAA`).
    pub record_type: String,
    /// Record value (an address).
    pub value: String,
}

/// `dns.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// `dns.magic_dns`.
    pub magic_dns: bool,
    /// `dns.base_domain`.
    pub base_domain: String,
    /// `dns.override_local_dns`.
    pub override_local_dns: bool,
    /// `dns.nameservers.global`: addresses or DoH URLs.
    pub nameservers_global: Vec<String>,
    /// `dns.nameservers.split`: domain → nameservers.
    pub nameservers_split: BTreeMap<String, Vec<String>>,
    /// `dns.search_domains`.
    pub search_domains: Vec<String>,
    /// `dns.extra_records`.
    pub extra_records: Vec<ExtraRecord>,
    /// `dns.extra_records_path`: a JSON file of records, watched for changes.
    pub extra_records_path: Option<PathBuf>,
}

/// `oidc.pkce.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkceConfig {
    /// `oidc.pkce.enabled`.
    pub enabled: bool,
    /// `oidc.pkce.method`: `plain` or `S256`.
    pub method: String,
}

/// `oidc.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// `oidc.only_start_if_oidc_is_available`.
    pub only_start_if_oidc_is_available: bool,
    /// `oidc.issuer`; empty disables OIDC.
    pub issuer: String,
    /// `oidc.client_id`.
    pub client_id: String,
    /// `oidc.client_secret`.
    pub client_secret: Secret,
    /// `oidc.client_secret_path`: read by the server at start-up (no I/O here).
    pub client_secret_path: Option<PathBuf>,
    /// `oidc.scope`.
    pub scope: Vec<String>,
    /// `oidc.extra_params`.
    pub extra_params: BTreeMap<String, String>,
    /// `oidc.allowed_domains`.
    pub allowed_domains: Vec<String>,
    /// `oidc.allowed_users`.
    pub allowed_users: Vec<String>,
    /// `oidc.allowed_groups`.
    pub allowed_groups: Vec<String>,
    /// `oidc.email_verified_required`.
    pub email_verified_required: bool,
    /// `oidc.use_expiry_from_token`.
    pub use_expiry_from_token: bool,
    /// `oidc.pkce.*`.
    pub pkce: PkceConfig,
}

/// `cli.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliConfig {
    /// `cli.address`: a remote gRPC server; empty means the local unix socket.
    pub address: String,
    /// `cli.api_key`.
    pub api_key: Secret,
    /// `cli.timeout`.
    pub timeout: Duration,
    /// `cli.insecure`: skip TLS verification.
    pub insecure: bool,
}

/// `tuning.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuningConfig {
    /// `tuning.notifier_send_timeout`.
    pub notifier_send_timeout: Duration,
    /// `tuning.batch_change_delay`.
    pub batch_change_delay: Duration,
    /// `tuning.node_mapsession_buffered_chan_size`.
    pub node_mapsession_buffered_chan_size: i64,
    /// `tuning.batcher_workers`; zero means "pick from the CPU count".
    pub batcher_workers: i64,
    /// `tuning.register_cache_expiration`.
    pub register_cache_expiration: Duration,
    /// `tuning.register_cache_max_entries`.
    pub register_cache_max_entries: i64,
    /// `tuning.node_store_batch_size`.
    pub node_store_batch_size: i64,
    /// `tuning.node_store_batch_timeout`.
    pub node_store_batch_timeout: Duration,
}

/// `limits.*`: what one client address may hold and ask of the main listener. Not a Go
/// Headscale section: Go has no such limits, and an absent section means these defaults, so a
/// Go config file loads unchanged and a file with the section still loads on Go (it ignores
/// unknown keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// `limits.max_connections_per_ip`: open connections one client address may hold; zero
    /// means no cap. IPv6 addresses count per /64.
    pub max_connections_per_ip: u32,
    /// `limits.requests_per_second`: the refill rate of each client address's token bucket
    /// for unauthenticated requests (Noise and DERP upgrades, `/key`, pages); zero turns the
    /// rate limit off.
    pub requests_per_second: u32,
    /// `limits.request_burst`: the bucket's size, what a client may send at once.
    pub request_burst: u32,
    /// `limits.exempt_loopback`: loopback clients (a reverse proxy on the same host, load
    /// tests) are not limited.
    pub exempt_loopback: bool,
    /// `limits.exempt`: addresses or prefixes that are not limited, on top of
    /// `trusted_proxies`.
    pub exempt: Vec<ipnet::IpNet>,
}

impl LimitsConfig {
    /// A tailnet behind one NAT holds a Noise and a DERP connection per node: 1024 lets about
    /// 500 nodes share an address, while one address can no longer take every descriptor.
    pub const DEFAULT_MAX_CONNECTIONS_PER_IP: u32 = 1024;
    /// A node (re)connecting makes about three metered requests (`/key`, `/ts2021`, `/derp`);
    /// 20 per second brings 1,000 nodes behind one NAT back within three minutes, while a
    /// flood costs a few milliseconds of handshake CPU per second per address.
    pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 20;
    /// About 60 nodes behind one address reconnecting at once are not slowed at all.
    pub const DEFAULT_REQUEST_BURST: u32 = 200;
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections_per_ip: Self::DEFAULT_MAX_CONNECTIONS_PER_IP,
            requests_per_second: Self::DEFAULT_REQUESTS_PER_SECOND,
            request_burst: Self::DEFAULT_REQUEST_BURST,
            exempt_loopback: true,
            exempt: Vec::new(),
        }
    }
}

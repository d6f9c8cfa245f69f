//! The state coordinator: the database, the NodeStore and the map streams kept in step.
//!
//! One source of truth at a time: the database is written first (in `spawn_blocking`, diesel
//! is synchronous), and only a durable write is applied to the NodeStore, whose single writer
//! lives in the coordinator task ([`actor`]) that also fans every batch out to the connected
//! streams. Readers take lock-free snapshots from [`ControlState::store`].

mod actor;
mod addresses;
mod dns;
mod idp_groups;
mod nodes;
pub(crate) mod pending;
mod policy;
pub(crate) mod queue;
pub(crate) mod registration;
pub(crate) mod ssh_check;
pub(crate) mod tags;
mod users;
mod write;

pub use dns::DnsOverrides;
pub use policy::PolicyLoad;
pub use users::{USER_HAS_NODES, check_user_name};

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hs_config::{Config, DnsConfig, IpAllocation};
use hs_db::{AllocationStrategy, Db, IpAllocator};
use hs_mapper::{Mapper, MapperConfig};
use hs_nodestore::{AllowAll, Applied, NodePatch, NodeStore, Op};
use hs_types::NodeId;
use hs_types::model::Node;
use hs_types::tailcfg::DERPMap;
use tokio::sync::{mpsc, oneshot};

use crate::clock::now;
use crate::error::Error;
use crate::metrics::Metrics;
use pending::PendingAuths;

pub use actor::StreamInfo;
use actor::{Actor, Cmd};
pub(crate) use actor::{Subscription, plain_frame};
#[cfg(test)]
pub(crate) use queue::STREAM_BUFFER;

/// What the coordinator needs from the configuration.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// `server_url`, used to build `AuthURL`s.
    pub server_url: String,
    /// `node.expiry`: key expiry given to newly registered user nodes; `None` = never.
    pub node_expiry: Option<Duration>,
    /// `node.ephemeral.inactivity_timeout`: how long an ephemeral node may stay offline.
    pub ephemeral_inactivity_timeout: Duration,
    /// How long a node without a stream is still shown online (reconnects are quick).
    pub offline_grace: Duration,
    /// `tuning.register_cache_expiration`: how long a pending interactive registration or
    /// SSH check waits for its decision before it lapses.
    pub register_cache_expiration: Duration,
}

/// Go Headscale's register cache lifetime, used when the configured one is zero (as Go does).
pub(crate) const DEFAULT_REGISTER_CACHE_EXPIRATION: Duration = Duration::from_secs(15 * 60);

impl StateConfig {
    /// From the server configuration, with Headscale's 10 s offline grace.
    pub fn from_config(c: &Config) -> Self {
        Self {
            server_url: c.server_url.trim_end_matches('/').to_owned(),
            node_expiry: (!c.node.expiry.is_zero()).then_some(c.node.expiry),
            ephemeral_inactivity_timeout: c.node.ephemeral_inactivity_timeout,
            offline_grace: Duration::from_secs(10),
            register_cache_expiration: if c.tuning.register_cache_expiration.is_zero() {
                DEFAULT_REGISTER_CACHE_EXPIRATION
            } else {
                c.tuning.register_cache_expiration
            },
        }
    }
}

struct Inner {
    db: Db,
    store: NodeStore,
    cmd: mpsc::UnboundedSender<Cmd>,
    ips: IpAllocator,
    cfg: StateConfig,
    /// Ids of pre-auth keys that register ephemeral nodes: a node is ephemeral when its key is.
    ephemeral_keys: Mutex<HashSet<u64>>,
    metrics: Arc<Metrics>,
    pending: PendingAuths,
    /// Pre-auth key secrets already verified with bcrypt (keyed digests, see `keycache`).
    /// bcrypt costs tens of milliseconds, which would cap registrations with a reusable key
    /// at a few dozen per second; the row is still read on every use so revocation, expiry
    /// and deletion act at once.
    verified_keys: crate::keycache::SecretCache,
    /// HA health probes waiting for their answer.
    probes: crate::ha::Pending,
    /// SSH `check` sessions waiting for approval, and the last approval per pair.
    ssh_checks: ssh_check::SshChecks,
    /// Held while one command commits and queues its ops (see [`write`]): the database and
    /// the NodeStore see writes in the same order.
    write_lock: Mutex<()>,
    /// The config file's DNS settings and the API's edits over them.
    dns: Mutex<dns::DnsState>,
    /// OIDC users' identity-provider groups.
    idp_groups: idp_groups::IdpGroups,
}

/// The control plane's shared state; clone it freely.
#[derive(Clone)]
pub struct ControlState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ControlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlState")
            .field("nodes", &self.inner.store.load().len())
            .finish_non_exhaustive()
    }
}

impl ControlState {
    /// Loads users, nodes and keys from `db` and starts the coordinator, configured from the
    /// server configuration and the DERP map clients should get.
    pub async fn load(db: Db, config: &Config, derp_map: &DERPMap) -> Result<Self, Error> {
        let records = read_extra_records(&config.dns).await?;
        let dns = hs_mapper::dns_config(&config.dns, records.as_deref());
        let mapper = MapperConfig::new(
            &config.dns.base_domain,
            derp_map,
            Some(&dns),
            config.taildrop_enabled,
            false,
            config.logtail_enabled,
        )?;
        let strategy = match config.prefixes.allocation {
            IpAllocation::Sequential => AllocationStrategy::Sequential,
            IpAllocation::Random => AllocationStrategy::Random,
        };
        let state = Self::start(
            db,
            StateConfig::from_config(config),
            mapper,
            (config.prefixes.v4, config.prefixes.v6, strategy),
        )
        .await?;
        state.reload_dns(&config.dns).await?;
        state.open_idp_groups(&idp_groups_path(config)).await?;
        // A configured policy that does not load stops the server, as in Go Headscale: serving
        // allow-all instead would silently open the tailnet.
        state.load_policy(&config.policy, PolicyLoad::Boot).await?;
        state.start_ha_probes(
            config.node.routes_ha_probe_interval,
            config.node.routes_ha_probe_timeout,
        );
        Ok(state)
    }

    /// Loads everything from `db` and starts the coordinator with explicit settings.
    pub async fn start(
        db: Db,
        cfg: StateConfig,
        mapper: MapperConfig,
        prefixes: (
            Option<ipnet::Ipv4Net>,
            Option<ipnet::Ipv6Net>,
            AllocationStrategy,
        ),
    ) -> Result<Self, Error> {
        let db2 = db.clone();
        let (users, nodes, keys) = tokio::task::spawn_blocking(move || {
            db2.tx(|c| {
                Ok((
                    c.list_users()?,
                    c.list_nodes()?,
                    c.list_pre_auth_keys(None)?,
                ))
            })
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        let used = nodes.iter().flat_map(Node::ips);
        let ips = IpAllocator::new(prefixes.0, prefixes.1, prefixes.2, used)?;
        let ephemeral_keys = keys.iter().filter(|k| k.ephemeral).map(|k| k.id).collect();
        let (store, mut writer) = NodeStore::new(Arc::new(AllowAll::new()));
        let n_nodes = nodes.len();
        let ops = users
            .into_iter()
            .map(|u| Op::UpsertUser(Box::new(u)))
            .chain(nodes.into_iter().map(|n| Op::Upsert(Box::new(n))));
        let applied = writer.apply(ops);
        for r in applied.results.iter().filter_map(|r| r.as_ref().err()) {
            tracing::warn!(error = %r, "a stored node or user could not be loaded");
        }
        let t = now();
        let logged_out: Vec<Op> = applied
            .next
            .nodes()
            .filter(|e| crate::lifecycle::stored_as_logged_out(&e.node, t))
            .map(|e| {
                let patch = NodePatch {
                    logged_out: Some(true),
                    ..NodePatch::default()
                };
                Op::Patch(e.node.id, patch)
            })
            .collect();
        let applied = if logged_out.is_empty() {
            applied
        } else {
            writer.apply(logged_out)
        };
        tracing::info!(nodes = n_nodes, "state loaded");
        let metrics = Arc::new(Metrics::default());
        metrics
            .nodestore_nodes
            .store(applied.next.len(), std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = Actor::new(writer, Mapper::new(mapper), Arc::clone(&metrics));
        tokio::spawn(actor.run(rx));
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                store,
                cmd: tx,
                ips,
                cfg,
                ephemeral_keys: Mutex::new(ephemeral_keys),
                metrics,
                pending: PendingAuths::default(),
                verified_keys: crate::keycache::SecretCache::default(),
                probes: crate::ha::Pending::default(),
                ssh_checks: ssh_check::SshChecks::default(),
                write_lock: Mutex::default(),
                dns: Mutex::default(),
                idp_groups: idp_groups::IdpGroups::default(),
            }),
        })
    }

    /// Lock-free snapshots of the tailnet.
    pub fn store(&self) -> &NodeStore {
        &self.inner.store
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The settings.
    pub fn config(&self) -> &StateConfig {
        &self.inner.cfg
    }

    pub(crate) fn ips(&self) -> &IpAllocator {
        &self.inner.ips
    }

    /// The address allocator, for operator tools that assign addresses outside a
    /// registration (`headscale nodes backfillips`); it is shared, so nothing is handed out
    /// twice.
    pub fn ip_allocator(&self) -> &IpAllocator {
        &self.inner.ips
    }

    pub(crate) fn pending(&self) -> &PendingAuths {
        &self.inner.pending
    }

    /// Runs a blocking database closure off the async workers.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> hs_db::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let db = self.inner.db.clone();
        Ok(tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| Error::Task(e.to_string()))??)
    }

    /// Applies a batch of runtime-only ops (online, health) that no database column holds,
    /// and fans it out. Anything durable goes through [`Self::write`] instead.
    pub(crate) async fn apply(&self, ops: Vec<Op>) -> Result<Arc<Applied>, Error> {
        let (kinds, rx) = self.enqueue(Cmd::apply(ops))?;
        self.finish(kinds, rx).await
    }

    pub(crate) async fn subscribe(&self, node: NodeId, zstd: bool) -> Result<Subscription, Error> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .cmd
            .send(Cmd::Subscribe { node, zstd, reply })
            .map_err(|_| Error::Stopped)?;
        Ok(rx.await.map_err(|_| Error::Stopped)??)
    }

    /// A framed full map for a one-shot poll.
    pub(crate) async fn one_shot(&self, node: NodeId, zstd: bool) -> Result<bytes::Bytes, Error> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .cmd
            .send(Cmd::OneShot { node, zstd, reply })
            .map_err(|_| Error::Stopped)?;
        Ok(rx.await.map_err(|_| Error::Stopped)??)
    }

    /// Forgets a stream; true when it was the node's current one.
    pub(crate) async fn unsubscribe(&self, node: NodeId, conn: u64) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .inner
            .cmd
            .send(Cmd::Unsubscribe { node, conn, reply })
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Every open map stream, by node.
    pub async fn streams(&self) -> Vec<StreamInfo> {
        let (reply, rx) = oneshot::channel();
        if self.inner.cmd.send(Cmd::Streams { reply }).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Whether a node holds a map stream.
    pub async fn is_connected(&self, node: NodeId) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .inner
            .cmd
            .send(Cmd::IsConnected { node, reply })
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Sends a `PingRequest` down `node`'s map stream; false when it has none.
    pub(crate) async fn send_ping(
        &self,
        node: NodeId,
        request: hs_types::tailcfg::PingRequest,
    ) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .inner
            .cmd
            .send(Cmd::Ping {
                node,
                request,
                reply,
            })
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    pub(crate) fn probes(&self) -> &crate::ha::Pending {
        &self.inner.probes
    }

    /// Puts a new DERP map in force and sends it to every connected node if it changed
    /// (what a `derp.urls` / `derp.paths` refresh does); answers whether it changed.
    pub async fn set_derp_map(&self, map: &DERPMap) -> Result<bool, Error> {
        let text = serde_json::to_string(map)
            .map_err(|e| Error::Config(format!("encoding the DERP map: {e}")))?;
        let (reply, rx) = oneshot::channel();
        self.inner
            .cmd
            .send(Cmd::SetDerp {
                derp: Arc::from(text),
                reply,
            })
            .map_err(|_| Error::Stopped)?;
        Ok(rx.await.map_err(|_| Error::Stopped)??)
    }

    /// The DERP map in force, as the nodes are sent it (JSON).
    pub async fn derp_map(&self) -> Result<Arc<str>, Error> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .cmd
            .send(Cmd::Derp { reply })
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Ends every map stream cleanly (their bodies finish), for graceful shutdown.
    pub fn close_all_streams(&self) {
        let _ = self.inner.cmd.send(Cmd::CloseAll);
    }

    /// Finds the pre-auth key a client presented. Its row is read every time (the caller
    /// checks used/expired/revoked on it); bcrypt runs only when this secret was not yet
    /// verified against exactly that row's hash.
    pub(crate) async fn find_pre_auth_key(
        &self,
        presented: String,
    ) -> Result<Option<hs_types::model::PreAuthKey>, Error> {
        use hs_db::secret::{PRE_AUTH_KEY_PREFIX, ParsedKey, parse_key, verify_secret};
        let ParsedKey::Hashed { prefix, secret } = parse_key(&presented, PRE_AUTH_KEY_PREFIX)
        else {
            // Legacy plaintext keys are compared in the database; no bcrypt to save.
            return self
                .blocking(move |db| db.find_pre_auth_key(&presented))
                .await;
        };
        let (prefix, secret) = (prefix.to_owned(), secret.to_owned());
        let p = prefix.clone();
        let row = self
            .blocking(move |db| db.tx(|c| c.pre_auth_key_by_prefix(&p)))
            .await?;
        let cache = &self.inner.verified_keys;
        let Some(row) = row else {
            cache.forget(&prefix);
            return Ok(None);
        };
        if cache.hit(&prefix, &row.hash, &secret) {
            return Ok(Some(row));
        }
        let (s, h) = (secret.clone(), row.hash.clone());
        let ok = tokio::task::spawn_blocking(move || verify_secret(&s, &h))
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
        if !ok {
            return Ok(None);
        }
        cache.insert(&prefix, &row.hash, &secret);
        Ok(Some(row))
    }

    /// Forgets a pre-auth key's verified secret (the key was refused as expired, revoked or
    /// used up; its row is what decides, this only keeps the table small).
    pub(crate) fn forget_pre_auth_key(&self, prefix: &str) {
        self.inner.verified_keys.forget(prefix);
    }

    pub(crate) fn note_ephemeral_key(&self, key_id: u64) {
        self.inner
            .ephemeral_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key_id);
    }

    /// Whether a node was registered with an ephemeral pre-auth key.
    pub fn is_ephemeral(&self, n: &Node) -> bool {
        n.auth_key_id.is_some_and(|k| {
            self.inner
                .ephemeral_keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&k)
        })
    }
}

/// Where OIDC users' identity-provider groups are kept: `oidc_groups.json` in the directory
/// of `noise.private_key_path`.
pub fn idp_groups_path(config: &Config) -> std::path::PathBuf {
    config
        .noise_private_key_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| std::path::Path::new("."))
        .join("oidc_groups.json")
}

/// The records in `dns.extra_records_path`, if configured.
pub(crate) async fn read_extra_records(
    dns: &DnsConfig,
) -> Result<Option<Vec<hs_types::tailcfg::DNSRecord>>, Error> {
    let Some(path) = &dns.extra_records_path else {
        return Ok(None);
    };
    let text = tokio::fs::read_to_string(path).await.map_err(|e| {
        Error::Config(format!(
            "dns.extra_records_path: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let records = hs_mapper::parse_extra_records(&text)
        .map_err(|e| Error::Config(format!("dns.extra_records_path: {}: {e}", path.display())))?;
    Ok(Some(records))
}

/// The outcome of a one-op batch.
pub(crate) fn first_result(a: &Applied) -> Result<(), Error> {
    match a.results.first() {
        Some(Err(e)) => Err(e.clone().into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    fn state_config(tuning: &str) -> StateConfig {
        let (c, _) = Config::parse(&format!("server_url: http://h:8080\n{tuning}"), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        StateConfig::from_config(&c)
    }

    #[test]
    fn register_cache_expiration_comes_from_tuning_and_zero_means_go_default() {
        assert_eq!(
            state_config("").register_cache_expiration,
            DEFAULT_REGISTER_CACHE_EXPIRATION
        );
        assert_eq!(
            state_config("tuning:\n  register_cache_expiration: 90s\n").register_cache_expiration,
            Duration::from_secs(90)
        );
        assert_eq!(
            state_config("tuning:\n  register_cache_expiration: 0s\n").register_cache_expiration,
            DEFAULT_REGISTER_CACHE_EXPIRATION
        );
    }
}

//! Node lifecycle: the offline grace period after a map stream ends (a quick reconnect does
//! not flap the node offline), last-seen persisted, ephemeral nodes deleted once they stayed
//! away for `node.ephemeral.inactivity_timeout` (their addresses go back to the pool), and
//! client logout, which hides the node from every peer until it logs in again.
//!
//! A logout is stored without a schema change: expiry and last-seen are both set to the
//! logout instant, and a node whose expiry equals its last-seen is taken as logged out when
//! the state is loaded (an admin expiry never writes last-seen, and a logged-out node's
//! last-seen is left alone until it logs in again). See `docs/lifecycle.md`.

use chrono::{DateTime, Utc};
use hs_types::NodeId;
use hs_types::model::Node;

use crate::error::Error;
use crate::state::ControlState;

/// Returns the addresses of the nodes a batch removed to the allocator. Called after the
/// removal is published, so an address is never free while a snapshot still gives it to a
/// node.
pub(crate) fn release_removed(ips: &hs_db::IpAllocator, applied: &hs_nodestore::Applied) {
    for c in &applied.changes {
        if let hs_nodestore::Change::NodeRemoved(id) = c
            && applied.next.node(*id).is_none()
            && let Some(gone) = applied.prev.node(*id)
        {
            ips.release(gone.node.ips());
        }
    }
}

/// Whether a stored node is logged out (see the module doc).
pub(crate) fn stored_as_logged_out(n: &Node, now: DateTime<Utc>) -> bool {
    n.expiry.is_some_and(|e| e <= now) && n.expiry == n.last_seen
}

impl ControlState {
    /// Whether the node is logged out right now.
    pub fn is_logged_out(&self, id: NodeId) -> bool {
        self.store().load().node(id).is_some_and(|e| e.logged_out)
    }
}

/// Called when a stream's body is dropped (client gone, stream replaced or closed).
pub(crate) async fn stream_ended(st: ControlState, node: NodeId, conn: u64) {
    st.metrics().stream_ended();
    if !st.unsubscribe(node, conn).await {
        // A newer stream of the same node took over; it owns the online state now.
        return;
    }
    tracing::info!(node = node.get(), "map stream closed");
    tokio::time::sleep(st.config().offline_grace).await;
    if st.is_connected(node).await {
        return;
    }
    if st.store().load().node(node).is_none() {
        return;
    }
    if let Err(e) = st.mark_offline(node).await {
        tracing::warn!(node = node.get(), error = %e, "marking the node offline failed");
    }
    ephemeral_gc(st, node).await;
}

/// Deletes an ephemeral node that is still disconnected after the inactivity timeout.
pub(crate) async fn ephemeral_gc(st: ControlState, node: NodeId) {
    let ephemeral = st
        .store()
        .load()
        .node(node)
        .is_some_and(|e| st.is_ephemeral(&e.node));
    if !ephemeral {
        return;
    }
    tokio::time::sleep(st.config().ephemeral_inactivity_timeout).await;
    if st.is_connected(node).await || st.store().load().node(node).is_none() {
        return;
    }
    match st.delete_node(node).await {
        Ok(()) => tracing::info!(node = node.get(), "ephemeral node removed after inactivity"),
        Err(e) => {
            tracing::warn!(node = node.get(), error = %e, "removing an ephemeral node failed")
        }
    }
}

impl ControlState {
    /// Schedules removal of the ephemeral nodes that are offline at start-up (their
    /// inactivity timer restarts with the server).
    pub fn schedule_startup_gc(&self) {
        let ids: Vec<NodeId> = self
            .store()
            .load()
            .nodes()
            .filter(|e| !e.online && self.is_ephemeral(&e.node))
            .map(|e| e.node.id)
            .collect();
        for id in ids {
            tokio::spawn(ephemeral_gc(self.clone(), id));
        }
    }
}

/// How often Headscale looks for keys that expired (`ExpireExpiredNodes`, `updateInterval`).
pub const EXPIRY_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

impl ControlState {
    /// Starts the periodic expiry sweep (Headscale's `ExpireExpiredNodes`): every `every`,
    /// nodes whose key expired since the previous sweep are pushed again, so their peers
    /// render them `Expired` and the node itself gets its expired self node, without anyone
    /// calling the API. Ends when the coordinator stops.
    pub fn spawn_expiry_sweep(&self, every: std::time::Duration) {
        let st = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut since = crate::clock::now();
            loop {
                tick.tick().await;
                let t = crate::clock::now();
                match st.sweep_expired(since, t).await {
                    Ok(n) if n > 0 => tracing::info!(nodes = n, "node keys expired"),
                    Ok(_) => {}
                    Err(Error::Stopped) => return,
                    Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
                }
                since = t;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use hs_db::{AllocationStrategy, Db, DbConfig, NewUser, SqliteConfig};
    use hs_mapper::MapperConfig;
    use hs_types::model::RegisterMethod;
    use hs_types::{DiscoPublic, MachinePrivate, NodePrivate};

    use super::*;
    use crate::clock::now;
    use crate::state::StateConfig;

    fn node(user: hs_types::UserId, n: u8, expiry: Option<DateTime<Utc>>) -> Node {
        let t = now();
        let mut rng = rand::thread_rng();
        Node {
            id: NodeId(0),
            machine_key: MachinePrivate::generate(&mut rng).public(),
            node_key: NodePrivate::generate(&mut rng).public(),
            disco_key: DiscoPublic::default(),
            endpoints: Vec::new(),
            hostinfo: None,
            ipv4: Some(std::net::Ipv4Addr::new(100, 64, 0, n)),
            ipv6: None,
            hostname: format!("n{n}"),
            given_name: String::new(),
            user_id: Some(user),
            register_method: RegisterMethod::AuthKey,
            tags: Vec::new(),
            auth_key_id: None,
            expiry,
            last_seen: None,
            approved_routes: Vec::new(),
            created_at: t,
            updated_at: t,
        }
    }

    async fn state_with(db: &Db, v4: &str) -> ControlState {
        let derp = serde_json::from_str(r#"{"Regions":{}}"#).unwrap();
        let mapper = MapperConfig::new("example.com", &derp, None, false, false, false).unwrap();
        let cfg = StateConfig {
            server_url: "http://127.0.0.1".into(),
            node_expiry: None,
            ephemeral_inactivity_timeout: Duration::from_secs(60),
            offline_grace: Duration::from_secs(1),
            register_cache_expiration: Duration::from_secs(15 * 60),
        };
        ControlState::start(
            db.clone(),
            cfg,
            mapper,
            (
                Some(v4.parse().unwrap()),
                None,
                AllocationStrategy::Sequential,
            ),
        )
        .await
        .unwrap()
    }

    fn db_with_user(dir: &tempfile::TempDir) -> (Db, hs_types::UserId) {
        let db = Db::open(&DbConfig::Sqlite(SqliteConfig::new(dir.path().join("db")))).unwrap();
        let user = db
            .tx(|c| {
                c.create_user(
                    &NewUser {
                        name: "u".into(),
                        ..NewUser::default()
                    },
                    now(),
                )
            })
            .unwrap()
            .id;
        (db, user)
    }

    // What the admin API's delete hook does: the database row is gone, then a bare
    // `Op::Remove` through `apply`. The address must be free at once, not after a restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_removed_node_frees_its_addresses_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (db, user) = db_with_user(&dir);
        let held = std::net::Ipv4Addr::new(100, 64, 0, 1);
        let stored = db.tx(|c| c.create_node(&node(user, 1, None))).unwrap();
        assert_eq!(stored.ipv4, Some(held));
        let st = state_with(&db, "100.64.0.0/29").await;
        let mut rng = rand::thread_rng();
        let mut others = Vec::new();
        while let Ok((Some(ip), _)) = st.ips().allocate(&mut rng) {
            others.push(ip);
        }
        assert!(!others.is_empty() && !others.contains(&held));
        st.delete_node(stored.id).await.unwrap();
        let (again, _) = st.ips().allocate(&mut rng).expect("the freed address");
        assert_eq!(again, Some(held));

        // `delete_node` frees them too, exactly once (the second allocation finds nothing).
        let n = node(user, 2, None);
        let n = Node {
            ipv4: others.first().copied(),
            ..n
        };
        let n = st
            .reload_node(db.tx(|c| c.create_node(&n)).unwrap().id)
            .await
            .unwrap();
        st.delete_node(n.id).await.unwrap();
        assert_eq!(
            st.ips().allocate(&mut rng).unwrap().0,
            others.first().copied()
        );
        assert!(
            st.ips().allocate(&mut rng).is_err(),
            "nothing else was freed"
        );
    }

    /// The JSON of the next frame on a plain (uncompressed) stream.
    async fn next_json(rx: &mut crate::state::queue::QueueRx) -> serde_json::Value {
        // A hang guard in virtual time (a missing push fails instead of waiting forever).
        let f = tokio::time::timeout(Duration::from_secs(3600), rx.recv())
            .await
            .expect("a frame within the hour")
            .expect("stream open");
        serde_json::from_slice(&f[4..]).unwrap()
    }

    // Paused tokio time: the sweep's interval and the control plane's clock both run on
    // virtual time, so a key that expires a minute from now expires without waiting.
    #[tokio::test(start_paused = true)]
    async fn a_key_expiring_while_connected_is_pushed_to_peers_and_to_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let (db, user) = db_with_user(&dir);
        let st = state_with(&db, "100.64.0.0/10").await;
        // Off the sweep's 5 s grid, so the push is the first tick after the expiry.
        let expires = now() + chrono::Duration::milliseconds(62_500);
        let mut ids = Vec::new();
        for (i, exp) in [(1, None), (2, Some(expires))] {
            let n = node(user, i, exp);
            let stored = db.tx(|c| c.create_node(&n)).unwrap();
            ids.push(st.reload_node(stored.id).await.unwrap().id);
        }
        let (a, b) = (ids[0], ids[1]);
        let mut sa = st.subscribe(a, false).await.unwrap();
        let mut sb = st.subscribe(b, false).await.unwrap();
        let first: serde_json::Value = serde_json::from_slice(&sa.first[4..]).unwrap();
        assert_eq!(first["Peers"][0]["Expired"], serde_json::Value::Null);

        st.spawn_expiry_sweep(EXPIRY_SWEEP_INTERVAL);
        let at_a = next_json(&mut sa.rx).await;
        assert!(
            now() >= expires,
            "pushed only once the key expired: {at_a} at {}",
            now()
        );
        let peer = &at_a["PeersChanged"][0];
        assert_eq!(peer["ID"], b.get());
        assert_eq!(peer["Expired"], true, "{at_a}");
        let at_b = next_json(&mut sb.rx).await;
        assert_eq!(at_b["Node"]["ID"], b.get());
        assert_eq!(at_b["Node"]["Expired"], true, "{at_b}");
        // Nothing else expired: later sweeps stay quiet (the next frame would be a bug).
        tokio::time::sleep(EXPIRY_SWEEP_INTERVAL * 3).await;
        assert!(sa.rx.try_recv().is_err());
    }

    // A client that stops reading: once its buffer is full the next frame closes the stream
    // (it reconnects for a fresh full map) instead of queueing without bound. Paused time
    // lets the fan-out interval pass without waiting.
    #[tokio::test(start_paused = true)]
    async fn a_stream_that_is_not_read_is_closed_when_its_buffer_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let (db, user) = db_with_user(&dir);
        let st = state_with(&db, "100.64.0.0/10").await;
        let mut ids = Vec::new();
        for i in [1, 2] {
            let stored = db.tx(|c| c.create_node(&node(user, i, None))).unwrap();
            ids.push(st.reload_node(stored.id).await.unwrap().id);
        }
        let (a, b) = (ids[0], ids[1]);
        let mut sa = st.subscribe(a, false).await.unwrap();
        let bytes_sent = || -> u64 {
            let text = st.metrics().render();
            text.lines()
                .find_map(|l| l.strip_prefix("headscale_mapresponse_bytes_sent_total "))
                .unwrap()
                .parse()
                .unwrap()
        };
        let sent_before = bytes_sent();
        let renames = crate::state::STREAM_BUFFER + 10;
        for i in 0..renames {
            st.rename_node(b, &format!("b{i}")).await.unwrap();
        }
        let (mut queued, mut queued_bytes) = (0, 0);
        loop {
            match sa.rx.try_recv() {
                Ok(f) => {
                    queued += 1;
                    queued_bytes += f.len() as u64;
                }
                Err(e) => {
                    assert_eq!(e, tokio::sync::mpsc::error::TryRecvError::Disconnected);
                    break;
                }
            }
        }
        assert_eq!(
            queued,
            crate::state::STREAM_BUFFER,
            "a full buffer, then closed"
        );
        assert!(bytes_sent() - sent_before >= queued_bytes);
        let text = st.metrics().render();
        assert!(
            text.contains("headscale_mapresponse_streams_closed_behind_total 1\n"),
            "{text}"
        );
        assert_eq!(
            st.metrics().stream_queued_bytes(),
            0,
            "all read or released"
        );
    }
}

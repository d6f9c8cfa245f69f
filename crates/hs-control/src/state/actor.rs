//! The coordinator task: the only owner of the NodeStore [`Writer`], the [`Mapper`] and the
//! table of connected map streams. Every write goes through it, so a batch is applied and
//! fanned out to exactly the sessions that were in step with the snapshot it started from,
//! and a new stream's first map and its registration happen at one snapshot version.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use hs_mapper::{Mapper, Outgoing, Session};
use hs_nodestore::{Applied, Change, DenyAll, Op, PolicyView, Writer};
use hs_policy::Policy;
use hs_types::NodeId;
use tokio::sync::{mpsc, oneshot};

use super::queue::{QueueRx, QueueTx, Refused, STREAM_BUFFER, STREAM_BUFFER_BYTES, queue};
use crate::clock::now;
use crate::metrics::Metrics;
use crate::policy::{CompiledView, policy_node};

/// At most this many queued writers share one batch, so one fan-out stays short.
const MAX_COALESCED: usize = 64;

/// While streams are connected, batches are applied (and fanned out) at most once per this
/// interval; writes arriving in between wait for the next one and share its fan-out. A write
/// after a quiet interval is applied at once. Every fan-out sends a frame to every stream,
/// so under a registration storm this bounds the frames per stream (Headscale batches
/// NodeStore writes on a 500 ms ticker and peer updates on an 800 ms one).
const FANOUT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// A write waiting for the next batch.
type Queued = (Vec<Op>, oneshot::Sender<Arc<Applied>>);

/// A connected stream as the coordinator sees it.
struct Conn {
    id: u64,
    session: Session,
    /// Whether the client asked for zstd (`Compress: "zstd"`); otherwise frames carry plain
    /// JSON, which is what Tailscale's Rust client reads.
    zstd: bool,
    tx: QueueTx,
}

/// One open map stream, as `/debug/batcher` shows it.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// The node.
    pub node: NodeId,
    /// The stream's id among the node's successive streams.
    pub conn: u64,
    /// Whether its frames are zstd-compressed.
    pub zstd: bool,
    /// The snapshot version the client has been brought to.
    pub version: u64,
    /// Bytes queued for the client and not yet taken by its connection.
    pub queued_bytes: usize,
}

/// A new stream: its id, its first (full) map, framed for the client, and the channel later
/// frames arrive on.
pub(crate) struct Subscription {
    /// Identifies this stream among the node's successive streams.
    pub(crate) conn: u64,
    /// The framed full map.
    pub(crate) first: Bytes,
    /// Incremental frames.
    pub(crate) rx: QueueRx,
}

/// What the coordinator can be asked to do.
pub(crate) enum Cmd {
    /// Apply a batch and fan it out.
    Apply {
        ops: Vec<Op>,
        reply: oneshot::Sender<Arc<Applied>>,
    },
    /// Open a stream for a node (replacing any older stream of that node).
    Subscribe {
        node: NodeId,
        zstd: bool,
        reply: oneshot::Sender<Result<Subscription, hs_mapper::Error>>,
    },
    /// A full map for a one-shot poll, without touching the node's stream.
    OneShot {
        node: NodeId,
        zstd: bool,
        reply: oneshot::Sender<Result<Bytes, hs_mapper::Error>>,
    },
    /// A stream ended; answers whether it was the node's current stream.
    Unsubscribe {
        node: NodeId,
        conn: u64,
        reply: oneshot::Sender<bool>,
    },
    /// Whether the node has a stream now.
    IsConnected {
        node: NodeId,
        reply: oneshot::Sender<bool>,
    },
    /// Every open stream, for `/debug/batcher`.
    Streams {
        reply: oneshot::Sender<Vec<StreamInfo>>,
    },
    /// Close every stream (graceful shutdown).
    CloseAll,
    /// Put a policy in force (`None`: no policy, allow all), compiled into `view` by the
    /// caller against the synced snapshot, together with the durable writes it caused (its
    /// auto-approvals): one batch, one fan-out.
    SetPolicy {
        policy: Option<Arc<Policy>>,
        view: Arc<dyn PolicyView>,
        ops: Vec<Op>,
        reply: oneshot::Sender<Arc<Applied>>,
    },
    /// The policy in force.
    Policy {
        reply: oneshot::Sender<Option<Arc<Policy>>>,
    },
    /// The DERP map in force (JSON), for `/debug/derp`.
    Derp { reply: oneshot::Sender<Arc<str>> },
    /// Apply every held write now and answer with the snapshot then published.
    Sync {
        reply: oneshot::Sender<Arc<hs_nodestore::Snapshot>>,
    },
    /// Send a `PingRequest` down a node's map stream (HA health probe); answers whether
    /// the node had a stream to send it on.
    Ping {
        node: NodeId,
        request: hs_types::tailcfg::PingRequest,
        reply: oneshot::Sender<bool>,
    },
    /// Replace the DNS config every node gets (SIGHUP reload of extra records).
    SetDns {
        dns: Option<Arc<str>>,
        reply: oneshot::Sender<Result<(), hs_mapper::Error>>,
    },
    /// Replace the DERP map every node gets (`derp.urls` / `derp.paths` refresh); answers
    /// whether it changed.
    SetDerp {
        derp: Arc<str>,
        reply: oneshot::Sender<Result<bool, hs_mapper::Error>>,
    },
}

/// Frames a message for a client that did not ask for compression: u32 LE length + JSON.
pub(crate) fn plain_frame(json: &[u8]) -> Bytes {
    let len = u32::try_from(json.len()).unwrap_or(u32::MAX);
    let mut v = Vec::with_capacity(4 + json.len());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(json);
    Bytes::from(v)
}

/// Whether `in_force` is `compiled` (the same allocation, seen through the trait).
fn same_view(compiled: &Arc<CompiledView>, in_force: &Arc<dyn PolicyView>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(compiled), Arc::as_ptr(in_force))
}

pub(crate) struct Actor {
    writer: Writer,
    mapper: Mapper,
    conns: HashMap<NodeId, Conn>,
    next_conn: u64,
    metrics: Arc<Metrics>,
    /// The configured policy, recompiled on every identity change; `None` = allow all.
    policy: Option<Arc<Policy>>,
    /// The last view this actor compiled, while it is the one in force: the next identity
    /// change that touches only a few nodes is compiled onto it.
    compiled: Option<Arc<CompiledView>>,
}

impl Actor {
    pub(crate) fn new(writer: Writer, mapper: Mapper, metrics: Arc<Metrics>) -> Self {
        Self {
            writer,
            mapper,
            conns: HashMap::new(),
            next_conn: 1,
            metrics,
            policy: None,
            compiled: None,
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        // Writes held for the next batch and when that batch is due. Held writes are not in
        // any snapshot yet and their callers have no answer, so every other command (a new
        // stream's full map, a policy change) is handled meanwhile against the published
        // snapshot, which the held writes then change like any later write.
        let mut held: Vec<Queued> = Vec::new();
        let mut due: Option<tokio::time::Instant> = None;
        let mut last_batch: Option<tokio::time::Instant> = None;
        loop {
            let cmd = match due {
                Some(at) => tokio::select! {
                    c = rx.recv() => c,
                    () = tokio::time::sleep_until(at) => {
                        due = None;
                        last_batch = Some(tokio::time::Instant::now());
                        self.apply_batches(std::mem::take(&mut held));
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(cmd) = cmd else { break };
            match cmd {
                Cmd::Apply { ops, reply } => {
                    held.push((ops, reply));
                    let t = tokio::time::Instant::now();
                    let next = last_batch.map(|l| l + FANOUT_INTERVAL);
                    if held.len() >= MAX_COALESCED
                        || self.conns.is_empty()
                        || next.is_none_or(|n| n <= t)
                    {
                        due = None;
                        last_batch = Some(t);
                        self.apply_batches(std::mem::take(&mut held));
                    } else {
                        due = next;
                    }
                }
                Cmd::Sync { reply } => {
                    due = None;
                    self.apply_batches(std::mem::take(&mut held));
                    let _ = reply.send(Arc::clone(self.writer.current()));
                }
                other => self.handle(other),
            }
            self.metrics
                .connected
                .store(self.conns.len(), Ordering::Relaxed);
        }
        if !held.is_empty() {
            self.apply_batches(held);
        }
        tracing::debug!("state coordinator stopped");
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Apply { ops, reply } => self.apply_batches(vec![(ops, reply)]),
            Cmd::Subscribe { node, zstd, reply } => {
                let _ = reply.send(self.subscribe(node, zstd));
            }
            Cmd::OneShot { node, zstd, reply } => {
                let _ = reply.send(self.one_shot(node, zstd));
            }
            Cmd::Unsubscribe { node, conn, reply } => {
                let current = self.conns.get(&node).is_some_and(|c| c.id == conn);
                if current {
                    self.conns.remove(&node);
                }
                let _ = reply.send(current);
            }
            Cmd::IsConnected { node, reply } => {
                let _ = reply.send(self.conns.contains_key(&node));
            }
            Cmd::Streams { reply } => {
                let mut v: Vec<StreamInfo> = self
                    .conns
                    .iter()
                    .map(|(node, c)| StreamInfo {
                        node: *node,
                        conn: c.id,
                        zstd: c.zstd,
                        version: c.session.version(),
                        queued_bytes: c.tx.queued(),
                    })
                    .collect();
                v.sort_by_key(|s| s.node);
                let _ = reply.send(v);
            }
            Cmd::CloseAll => self.conns.clear(),
            Cmd::SetPolicy {
                policy,
                view,
                ops,
                reply,
            } => {
                self.policy = policy;
                self.compiled = None;
                let mut all = ops;
                all.push(Op::SetPolicy(view));
                self.apply_batches(vec![(all, reply)]);
            }
            Cmd::Policy { reply } => {
                let _ = reply.send(self.policy.clone());
            }
            Cmd::Derp { reply } => {
                let _ = reply.send(Arc::clone(&self.mapper.config().derp_map));
            }
            Cmd::Sync { reply } => {
                let _ = reply.send(Arc::clone(self.writer.current()));
            }
            Cmd::Ping {
                node,
                request,
                reply,
            } => {
                let _ = reply.send(self.ping(node, request));
            }
            Cmd::SetDns { dns, reply } => {
                let _ = reply.send(self.set_dns(dns));
            }
            Cmd::SetDerp { derp, reply } => {
                let _ = reply.send(self.set_derp(derp));
            }
        }
    }

    /// Applies the callers' ops as one batch (one snapshot, one fan-out: durable rows
    /// announced together, each was durable before it was queued) and answers each caller
    /// with its own results. The
    /// first caller's answer carries every change (so removed nodes' addresses are released
    /// once); the others carry none.
    fn apply_batches(&mut self, batches: Vec<Queued>) {
        if batches.is_empty() {
            return;
        }
        self.metrics
            .queue_depth
            .fetch_sub(batches.len(), Ordering::Relaxed);
        let mut lens = Vec::with_capacity(batches.len());
        let mut replies = Vec::with_capacity(batches.len());
        let mut ops = Vec::new();
        for (o, r) in batches {
            lens.push(o.len());
            replies.push(r);
            ops.extend(o);
        }
        #[allow(clippy::cast_precision_loss, reason = "a batch holds few ops")]
        self.metrics.batch_size.observe(ops.len() as f64);
        let batch = crate::clock::stopwatch();
        let applied = self.apply_and_recompile(ops);
        self.metrics
            .snapshot_build
            .observe_duration(batch.elapsed());
        self.metrics
            .nodestore_nodes
            .store(applied.next.len(), Ordering::Relaxed);
        let peers = crate::clock::stopwatch();
        self.fan_out(&applied);
        self.metrics
            .peers_calculation
            .observe_duration(peers.elapsed());
        self.metrics
            .batch_duration
            .observe_duration(batch.elapsed());
        if replies.len() == 1 {
            if let Some(r) = replies.pop() {
                let _ = r.send(Arc::new(applied));
            }
            return;
        }
        let Applied {
            prev,
            next,
            mut changes,
            results,
        } = applied;
        let mut results = results.into_iter();
        for (reply, n) in replies.into_iter().zip(lens) {
            let _ = reply.send(Arc::new(Applied {
                prev: Arc::clone(&prev),
                next: Arc::clone(&next),
                changes: std::mem::take(&mut changes),
                results: results.by_ref().take(n).collect(),
            }));
        }
    }

    /// Applies `ops`, then, when they changed who is who (nodes, tags, owners, addresses,
    /// users) under a configured policy, recompiles it against the new snapshot in the same
    /// step, so no map is ever built from a policy that does not know a node.
    fn apply_and_recompile(&mut self, ops: Vec<Op>) -> Applied {
        let applied = self.writer.apply(ops);
        let Some(policy) = &self.policy else {
            return applied;
        };
        let mut changed = Vec::new();
        let mut others = false;
        for c in &applied.changes {
            match c {
                Change::NodeChanged(id) => changed.push(*id),
                Change::NodeRemoved(_) | Change::UserChanged(_) | Change::UserRemoved(_) => {
                    others = true;
                }
                Change::NodePatched { .. } | Change::PolicyChanged => {}
            }
        }
        if changed.is_empty() && !others {
            return applied;
        }
        changed.sort_unstable();
        changed.dedup();
        let incremental = match &self.compiled {
            Some(cv) if !others && same_view(cv, applied.next.policy()) => changed
                .iter()
                .map(|id| applied.next.node(*id).map(|e| policy_node(e)))
                .collect::<Option<Vec<_>>>()
                .and_then(|nodes| cv.updated(nodes).ok().flatten()),
            _ => None,
        };
        let compiled = match incremental {
            Some(v) => Ok(v),
            None => CompiledView::compile(policy, &applied.next),
        };
        let view: Arc<dyn PolicyView> = match compiled {
            Ok(v) => {
                let v = Arc::new(v);
                self.compiled = Some(Arc::clone(&v));
                v
            }
            Err(e) => {
                self.compiled = None;
                // The tailnet changed under the policy (e.g. a user it names is gone): deny
                // rather than keep rules compiled for a tailnet that no longer exists.
                tracing::error!(error = %e, "the policy no longer compiles against the tailnet; denying all traffic until it is fixed");
                Arc::new(DenyAll::new())
            }
        };
        let second = self.writer.apply([Op::SetPolicy(view)]);
        let mut changes = applied.changes;
        changes.extend(second.changes);
        Applied {
            prev: applied.prev,
            next: second.next,
            changes,
            results: applied.results,
        }
    }

    fn set_dns(&mut self, dns: Option<Arc<str>>) -> Result<(), hs_mapper::Error> {
        if self.mapper.config().dns == dns {
            return Ok(());
        }
        let mut cfg = self.mapper.config().clone();
        cfg.dns = dns;
        self.reconfigure(cfg)
    }

    /// Swaps in a changed mapper config; what that changes for each connected stream is sent
    /// to it, as for any other change.
    fn reconfigure(&mut self, cfg: hs_mapper::MapperConfig) -> Result<(), hs_mapper::Error> {
        let snap = Arc::clone(self.writer.current());
        let out = self.mapper.reconfigure(
            cfg,
            &snap,
            self.conns.values_mut().map(|c| &mut c.session),
            now(),
        )?;
        self.route(out);
        Ok(())
    }

    fn set_derp(&mut self, derp: Arc<str>) -> Result<bool, hs_mapper::Error> {
        if self.mapper.config().derp_map == derp {
            return Ok(false);
        }
        let mut cfg = self.mapper.config().clone();
        cfg.derp_map = derp;
        self.reconfigure(cfg)?;
        Ok(true)
    }

    fn framed_full_map(
        &mut self,
        node: NodeId,
        zstd: bool,
    ) -> Result<(Session, Bytes), hs_mapper::Error> {
        let snap = Arc::clone(self.writer.current());
        let (session, frame) = if zstd {
            let (session, frame) = self.mapper.full_map_frame(&snap, node, now())?;
            (session, Bytes::from(frame))
        } else {
            let (session, json) = self.mapper.full_map(&snap, node, now())?;
            (session, plain_frame(&json))
        };
        self.metrics.count_generated("full");
        Ok((session, frame))
    }

    fn one_shot(&mut self, node: NodeId, zstd: bool) -> Result<Bytes, hs_mapper::Error> {
        self.framed_full_map(node, zstd).map(|(_, f)| f)
    }

    fn subscribe(&mut self, node: NodeId, zstd: bool) -> Result<Subscription, hs_mapper::Error> {
        let (session, first) = self.framed_full_map(node, zstd)?;
        let id = self.next_conn;
        self.next_conn += 1;
        // A client that falls behind (frames or bytes) is closed and redials for one fresh
        // full map, which is cheaper than buffering without bound.
        let (tx, rx) = queue(
            STREAM_BUFFER,
            STREAM_BUFFER_BYTES,
            self.metrics.stream_queued_bytes.clone(),
        );
        // Dropping the old sender ends the old stream: a node has one stream at a time.
        if self
            .conns
            .insert(
                node,
                Conn {
                    id,
                    session,
                    zstd,
                    tx,
                },
            )
            .is_some()
        {
            tracing::debug!(node = node.get(), "new map stream replaces the old one");
        }
        Ok(Subscription {
            conn: id,
            first,
            rx,
        })
    }

    fn fan_out(&mut self, applied: &Applied) {
        if self.conns.is_empty() {
            return;
        }
        // Called even for an empty change list: it moves every session to the new version.
        let out = self.mapper.fanout(
            &applied.prev,
            &applied.next,
            &applied.changes,
            self.conns.values_mut().map(|c| &mut c.session),
            now(),
        );
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "building incremental maps failed; closing streams so clients resync");
                self.conns.clear();
                return;
            }
        };
        self.route(out);
    }

    fn route(&mut self, out: Vec<Outgoing>) {
        // The mapper hands many sessions the same frame (same bytes); plain-JSON clients get
        // it decompressed once per batch rather than once per session. Every frame in `out`
        // existed before the loop, so an address and length identify one frame.
        let mut plain: HashMap<(usize, usize), Bytes> = HashMap::new();
        for o in out {
            match o {
                Outgoing::Frame { node, frame } => self.deliver(node, frame, &mut plain),
                Outgoing::Close { node, reason } => {
                    tracing::debug!(node = node.get(), ?reason, "closing map stream");
                    self.conns.remove(&node);
                }
            }
        }
    }

    /// A message carrying only a `PingRequest`, outside the session's versioned state (the
    /// client acts on it and keeps its netmap).
    fn ping(&mut self, node: NodeId, request: hs_types::tailcfg::PingRequest) -> bool {
        let Some(c) = self.conns.get(&node) else {
            return false;
        };
        let msg = hs_types::tailcfg::MapResponse {
            ping_request: Some(request),
            ..Default::default()
        };
        let json = match serde_json::to_vec(&msg) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a ping request");
                return false;
            }
        };
        let frame = if c.zstd {
            match hs_mapper::encode_frame(&json) {
                Ok(f) => Bytes::from(f),
                Err(e) => {
                    tracing::error!(error = %e, "cannot frame a ping request");
                    return false;
                }
            }
        } else {
            plain_frame(&json)
        };
        self.send(node, frame)
    }

    fn deliver(&mut self, node: NodeId, frame: Bytes, plain: &mut HashMap<(usize, usize), Bytes>) {
        let Some(c) = self.conns.get(&node) else {
            return;
        };
        let frame = if c.zstd {
            frame
        } else {
            let id = (frame.as_ptr() as usize, frame.len());
            if let Some(p) = plain.get(&id) {
                p.clone()
            } else {
                match hs_mapper::decode_frame(&frame) {
                    Ok((json, _)) => {
                        let p = plain_frame(&json);
                        plain.insert(id, p.clone());
                        p
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot re-frame a map message");
                        return;
                    }
                }
            }
        };
        self.metrics.count_generated("change");
        self.send(node, frame);
    }

    /// Queues `frame` on `node`'s stream. A stream that is full (the client is not keeping
    /// up) or gone is closed, and false returned.
    fn send(&mut self, node: NodeId, frame: Bytes) -> bool {
        let Some(c) = self.conns.get(&node) else {
            return false;
        };
        self.metrics.add_bytes(frame.len());
        match c.tx.push(frame) {
            Ok(()) => true,
            Err(why) => {
                if why == Refused::Behind {
                    self.metrics.stream_closed_behind();
                    tracing::info!(
                        node = node.get(),
                        "map stream is not keeping up; closing it (the client redials)"
                    );
                }
                self.conns.remove(&node);
                false
            }
        }
    }
}

//! The DERP relay: accepts upgraded connections, runs the handshake (with optional client
//! verification), keeps a registry of connected clients keyed by node key, relays packets
//! through bounded per-client queues that drop instead of blocking, and tells senders and mesh
//! watchers when a peer leaves.
//!
//! Each connection is one task running its reader and writer concurrently; the registry is a
//! `std::sync::Mutex` never held across an `.await`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hs_types::{NodePrivate, NodePublic};
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, WriteHalf};
use tokio::sync::{Notify, mpsc};

use crate::error::Error;
use crate::frame::{
    Frame, PEER_PRESENT_IS_MESH_PEER, PEER_PRESENT_IS_PROBER, PEER_PRESENT_IS_REGULAR,
    PeerGoneReason, is_disco,
};
use crate::handshake::{self, ClientInfo, ServerInfo};
use crate::io::{FrameReader, write_frame};
pub use crate::options::{ClientVerifier, RateLimit, ServerOptions, Stats};
use crate::ratelimit::TokenBucket;

#[derive(Default)]
struct Counters {
    relayed: AtomicU64,
    bytes: AtomicU64,
    full: AtomicU64,
    unknown: AtomicU64,
    refused: AtomicU64,
}

struct Conn {
    id: u64,
    key: NodePublic,
    remote: Option<SocketAddr>,
    can_mesh: bool,
    is_prober: bool,
    packets: mpsc::Sender<(NodePublic, Bytes)>,
    control: mpsc::Sender<Frame>,
    close: Notify,
    preferred: AtomicBool,
}

impl Conn {
    fn present_frame(&self) -> Frame {
        let mut flags = PEER_PRESENT_IS_REGULAR;
        if self.can_mesh {
            flags |= PEER_PRESENT_IS_MESH_PEER;
        }
        if self.is_prober {
            flags |= PEER_PRESENT_IS_PROBER;
        }
        let addr = self
            .remote
            .unwrap_or_else(|| SocketAddr::from(([0u8; 16], 0)));
        Frame::PeerPresent {
            peer: self.key,
            addr,
            flags,
        }
    }
}

#[derive(Default)]
struct State {
    /// Every connection per key; the last one is the active one (newest connection wins).
    clients: HashMap<NodePublic, Vec<Arc<Conn>>>,
    /// For each destination, the keys that sent it packets, told when it leaves.
    sent_to: HashMap<NodePublic, HashSet<NodePublic>>,
    watchers: HashMap<u64, Arc<Conn>>,
}

/// The relay. Share it as `Arc<DerpServer>`.
pub struct DerpServer {
    private: NodePrivate,
    public: NodePublic,
    opts: ServerOptions,
    state: Mutex<State>,
    health: Mutex<String>,
    bootstrap_hosts: Mutex<Arc<Vec<String>>>,
    next_id: AtomicU64,
    counters: Counters,
}

impl std::fmt::Debug for DerpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DerpServer")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl DerpServer {
    /// A relay identified by `private` (the DERP key, distinct from the Noise key).
    pub fn new(private: NodePrivate, opts: ServerOptions) -> Arc<Self> {
        let public = private.public();
        Arc::new(Self {
            private,
            public,
            opts,
            state: Mutex::new(State::default()),
            health: Mutex::new(String::new()),
            bootstrap_hosts: Mutex::new(Arc::new(Vec::new())),
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
        })
    }

    /// The relay's public key.
    pub fn public_key(&self) -> NodePublic {
        self.public
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind; keep serving.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a client with this key is connected.
    pub fn is_connected(&self, key: &NodePublic) -> bool {
        self.state().clients.contains_key(key)
    }

    /// Whether the active connection for `key` said this is its home region.
    pub fn is_preferred(&self, key: &NodePublic) -> bool {
        self.state()
            .clients
            .get(key)
            .and_then(|v| v.last())
            .is_some_and(|c| c.preferred.load(Ordering::Relaxed))
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let clients = self.state().clients.values().map(Vec::len).sum();
        let c = &self.counters;
        Stats {
            clients,
            packets_relayed: c.relayed.load(Ordering::Relaxed),
            bytes_relayed: c.bytes.load(Ordering::Relaxed),
            packets_dropped_queue_full: c.full.load(Ordering::Relaxed),
            packets_dropped_unknown_dest: c.unknown.load(Ordering::Relaxed),
            clients_refused: c.refused.load(Ordering::Relaxed),
        }
    }

    fn all_conns(&self) -> Vec<Arc<Conn>> {
        self.state().clients.values().flatten().cloned().collect()
    }

    /// Sets the host names `/bootstrap-dns` resolves: every DERP node's `HostName` in the
    /// current map (see [`crate::derpmap::host_names`]), refreshed when the map changes.
    pub fn set_bootstrap_hosts(&self, hosts: Vec<String>) {
        *self
            .bootstrap_hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(hosts);
    }

    /// The host names `/bootstrap-dns` resolves.
    pub fn bootstrap_hosts(&self) -> Arc<Vec<String>> {
        self.bootstrap_hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sets (non-empty) or clears (empty) the health problem shown to every client.
    pub fn set_health(&self, problem: &str) {
        *self
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = problem.to_owned();
        for c in self.all_conns() {
            let _ = c.control.try_send(Frame::Health {
                problem: problem.to_owned(),
            });
        }
    }

    /// Tells every client the server is restarting and when to come back.
    pub fn announce_restart(&self, reconnect_in: Duration, try_for: Duration) {
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let f = Frame::Restarting {
            reconnect_in_ms: ms(reconnect_in),
            try_for_ms: ms(try_for),
        };
        for c in self.all_conns() {
            let _ = c.control.try_send(f.clone());
        }
    }

    /// Closes every connection of `key` (e.g. when its node is deleted).
    pub fn close_peer(&self, key: &NodePublic) {
        let conns = self.state().clients.get(key).cloned().unwrap_or_default();
        for c in conns {
            c.close.notify_one();
        }
    }

    /// Runs one client connection, already upgraded, to its end. `remote` is reported to mesh
    /// watchers. Errors describe why this client was dropped; other clients are unaffected.
    pub async fn accept<S>(
        self: &Arc<Self>,
        stream: S,
        leftover: BytesMut,
        remote: Option<SocketAddr>,
    ) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (r, w) = tokio::io::split(stream);
        let mut reader = FrameReader::new(r, leftover);
        let mut writer = BufWriter::with_capacity(64 * 1024, w);
        let mut scratch = BytesMut::with_capacity(1024);

        write_frame(
            &mut writer,
            &Frame::ServerKey { key: self.public },
            &mut scratch,
        )
        .await?;
        writer.flush().await?;
        let first = tokio::time::timeout(self.opts.handshake_timeout, reader.read_frame())
            .await
            .map_err(|_| Error::Timeout("waiting for ClientInfo"))??;
        let (key, sealed) = match first {
            Some(Frame::ClientInfo { key, sealed }) => (key, sealed),
            Some(other) => {
                return Err(Error::Protocol(format!(
                    "expected ClientInfo, got frame type {:#04x}",
                    other.type_byte()
                )));
            }
            None => return Err(Error::Protocol("closed before ClientInfo".into())),
        };
        let json = handshake::open(&self.private, &key, &sealed, "ClientInfo")?;
        let info = ClientInfo::from_json(&json)?;
        let can_mesh = match (&self.opts.mesh_key, &info.mesh_key) {
            (Some(ours), Some(theirs)) => ours.eq_ignore_ascii_case(theirs),
            _ => false,
        };
        if !can_mesh
            && let Some(verify) = &self.opts.verify_clients
            && !verify(&key)
        {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Error::Protocol(format!(
                "client {} is not a node of this tailnet",
                key.short_string()
            )));
        }
        let (ptx, prx) = mpsc::channel(self.opts.queue_depth.max(1));
        let (ctx, crx) = mpsc::channel(256);
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            key,
            remote,
            can_mesh,
            is_prober: info.is_prober,
            packets: ptx,
            control: ctx,
            close: Notify::new(),
            preferred: AtomicBool::new(false),
        });
        // Registered before ServerInfo goes out so that a client that has finished its
        // handshake can already be reached.
        self.register(&conn);
        tracing::debug!(client = %key.short_string(), ?remote, can_mesh, "DERP client connected");
        let result = match self.send_server_info(&key, &mut writer, &mut scratch).await {
            Err(e) => Err(e),
            Ok(()) => tokio::select! {
                r = self.read_loop(&conn, &mut reader) => r,
                r = self.write_loop(writer, prx, crx) => r,
                () = conn.close.notified() => Ok(()),
            },
        };
        self.unregister(&conn);
        tracing::debug!(client = %key.short_string(), "DERP client disconnected");
        result
    }

    async fn send_server_info<W: AsyncWrite + Unpin>(
        &self,
        key: &NodePublic,
        writer: &mut W,
        scratch: &mut BytesMut,
    ) -> Result<(), Error> {
        let mut server_info = ServerInfo::current();
        if let Some(rl) = self.opts.rate_limit {
            server_info.token_bucket_bytes_per_second = rl.bytes_per_second;
            server_info.token_bucket_bytes_burst = rl.burst;
        }
        let json = serde_json::to_vec(&server_info).unwrap_or_default();
        let sealed = handshake::seal(&self.private, key, &json, &mut rand::rngs::OsRng);
        let sealed = Bytes::from(sealed);
        write_frame(writer, &Frame::ServerInfo { sealed }, scratch).await?;
        writer.flush().await?;
        Ok(())
    }

    fn register(&self, conn: &Arc<Conn>) {
        let health = self
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if !health.is_empty() {
            let _ = conn.control.try_send(Frame::Health { problem: health });
        }
        let mut st = self.state();
        st.clients.entry(conn.key).or_default().push(conn.clone());
        let present = conn.present_frame();
        for w in st.watchers.values() {
            let _ = w.control.try_send(present.clone());
        }
    }

    fn unregister(&self, conn: &Arc<Conn>) {
        let mut st = self.state();
        st.watchers.remove(&conn.id);
        let Some(set) = st.clients.get_mut(&conn.key) else {
            return;
        };
        set.retain(|c| c.id != conn.id);
        if !set.is_empty() {
            return;
        }
        st.clients.remove(&conn.key);
        let gone = Frame::PeerGone {
            peer: conn.key,
            reason: PeerGoneReason::Disconnected,
        };
        if let Some(senders) = st.sent_to.remove(&conn.key) {
            for s in senders {
                if let Some(c) = st.clients.get(&s).and_then(|v| v.last()) {
                    let _ = c.control.try_send(gone.clone());
                }
            }
        }
        // Forget this key as a sender too, so the maps only hold live pairs.
        st.sent_to.retain(|_, senders| {
            senders.remove(&conn.key);
            !senders.is_empty()
        });
        for w in st.watchers.values() {
            let _ = w.control.try_send(gone.clone());
        }
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        &self,
        conn: &Arc<Conn>,
        reader: &mut FrameReader<R>,
    ) -> Result<(), Error> {
        let mut not_here = TokenBucket::new(1.0, 3.0);
        let mut bytes_limit = self
            .opts
            .rate_limit
            .map(|r| TokenBucket::new(r.bytes_per_second as f64, r.burst as f64));
        loop {
            let Some(frame) = reader.read_frame().await? else {
                return Ok(());
            };
            if let Some(bucket) = &mut bytes_limit {
                let wait = bucket.take(frame.payload_len() as f64);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            match frame {
                Frame::SendPacket { dst, packet } => {
                    self.relay(conn, conn.key, dst, packet, true, &mut not_here);
                }
                Frame::ForwardPacket { src, dst, packet } => {
                    self.require_mesh(conn, "ForwardPacket")?;
                    self.relay(conn, src, dst, packet, false, &mut not_here);
                }
                Frame::NotePreferred { preferred } => {
                    conn.preferred.store(preferred, Ordering::Relaxed);
                }
                Frame::Ping(data) => {
                    let _ = conn.control.try_send(Frame::Pong(data));
                }
                Frame::WatchConns => {
                    self.require_mesh(conn, "WatchConns")?;
                    let mut st = self.state();
                    st.watchers.insert(conn.id, conn.clone());
                    for c in st.clients.values().filter_map(|v| v.last()) {
                        if c.id != conn.id {
                            let _ = conn.control.try_send(c.present_frame());
                        }
                    }
                }
                Frame::ClosePeer { peer } => {
                    self.require_mesh(conn, "ClosePeer")?;
                    self.close_peer(&peer);
                }
                // Keep-alives, pongs, server-bound frames and unknown types are skipped, as
                // the Go server does.
                _ => {}
            }
        }
    }

    fn require_mesh(&self, conn: &Conn, what: &str) -> Result<(), Error> {
        if conn.can_mesh {
            Ok(())
        } else {
            Err(Error::Protocol(format!(
                "{what} from {} without a valid mesh key",
                conn.key.short_string()
            )))
        }
    }

    fn relay(
        &self,
        from: &Conn,
        src: NodePublic,
        dst: NodePublic,
        packet: Bytes,
        track: bool,
        not_here: &mut TokenBucket,
    ) {
        let target = {
            let mut st = self.state();
            let target = st.clients.get(&dst).and_then(|v| v.last()).cloned();
            if target.is_some() && track {
                st.sent_to.entry(dst).or_default().insert(src);
            }
            target
        };
        match target {
            Some(t) => {
                let len = packet.len() as u64;
                match t.packets.try_send((src, packet)) {
                    Ok(()) => {
                        self.counters.relayed.fetch_add(1, Ordering::Relaxed);
                        self.counters.bytes.fetch_add(len, Ordering::Relaxed);
                    }
                    Err(_) => {
                        self.counters.full.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            None => {
                self.counters.unknown.fetch_add(1, Ordering::Relaxed);
                if is_disco(&packet) && not_here.try_take() {
                    let _ = from.control.try_send(Frame::PeerGone {
                        peer: dst,
                        reason: PeerGoneReason::NotHere,
                    });
                }
            }
        }
    }

    async fn write_loop<W: AsyncWrite + Unpin>(
        &self,
        mut w: BufWriter<WriteHalf<W>>,
        mut packets: mpsc::Receiver<(NodePublic, Bytes)>,
        mut control: mpsc::Receiver<Frame>,
    ) -> Result<(), Error> {
        let mut scratch = BytesMut::with_capacity(128);
        let keep_alive = self.opts.keep_alive;
        // Go adds 0-5 s so clients do not wake in lockstep; short test intervals get a
        // proportionally short jitter.
        let max_jitter = keep_alive.min(Duration::from_secs(5)).as_millis().max(1) as u64;
        let jitter = || Duration::from_millis(rand::thread_rng().gen_range(0..max_jitter));
        let ka = tokio::time::sleep(keep_alive + jitter());
        tokio::pin!(ka);
        loop {
            let first = tokio::select! {
                biased;
                Some(f) = control.recv() => f,
                Some((src, packet)) = packets.recv() => Frame::RecvPacket { src, packet },
                () = &mut ka => {
                    ka.set(tokio::time::sleep(keep_alive + jitter()));
                    Frame::KeepAlive
                }
                else => return Ok(()),
            };
            let batch = async {
                write_frame(&mut w, &first, &mut scratch).await?;
                // Batch whatever else is already queued into the same flush.
                for _ in 0..64 {
                    let next = match control.try_recv() {
                        Ok(f) => f,
                        Err(_) => match packets.try_recv() {
                            Ok((src, packet)) => Frame::RecvPacket { src, packet },
                            Err(_) => break,
                        },
                    };
                    write_frame(&mut w, &next, &mut scratch).await?;
                }
                w.flush().await?;
                Ok::<(), Error>(())
            };
            tokio::time::timeout(self.opts.write_timeout, batch)
                .await
                .map_err(|_| Error::Timeout("writing to a slow client"))??;
        }
    }
}

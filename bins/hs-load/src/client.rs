//! One simulated node: registers with a pre-auth key over its own Noise session, holds a
//! zstd map stream on the same session, follows its peer set, sends endpoint changes when
//! told to, and redials (after 250–500 ms) whenever the stream ends or a step fails, as a
//! Tailscale client does after a server restart.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::BytesMut;
use hs_types::{DiscoPublic, MachinePrivate, MachinePublic, NodePrivate};
use rand::Rng as _;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use crate::conn::{self, CAPABILITY_VERSION, H2};
use crate::netmap::{Message, NetMap, take_frames};

/// What the driver sees of one client.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// Peers in the client's current map.
    pub(crate) peers: AtomicU32,
    /// Streams that delivered their first (full) map.
    pub(crate) maps: AtomicU32,
    /// The client's node ID, once its first map named it.
    pub(crate) node_id: AtomicU64,
    /// Whether a stream is open now.
    pub(crate) connected: AtomicBool,
    /// The last change round this client saw.
    seen_round: AtomicU32,
}

/// One change being timed: `node` announced the endpoint `marker(round)` at `start`.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    pub(crate) node: AtomicU64,
    pub(crate) round: AtomicU32,
    pub(crate) start: Mutex<Option<Instant>>,
    /// (round, milliseconds from the change to this viewer's frame).
    pub(crate) deliveries: Mutex<Vec<(u32, f64)>>,
}

/// The endpoint that marks change `round`.
pub(crate) fn marker(round: u32) -> String {
    format!("127.0.0.1:{}", 20_000 + round)
}

/// A command to a client.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Announce these endpoints (a lite map request).
    Endpoints(Vec<String>),
    /// Drop the session and dial again at once.
    Redial,
}

/// Everything the clients and the driver share.
pub(crate) struct Shared {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) server_key: MachinePublic,
    pub(crate) slots: Vec<Slot>,
    pub(crate) stop: AtomicBool,
    pub(crate) errors: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
    /// Milliseconds from dial to registered, per registration.
    pub(crate) registrations: Mutex<Vec<f64>>,
    /// Milliseconds from dial to the first map, per stream.
    pub(crate) first_maps: Mutex<Vec<f64>>,
    pub(crate) watch: Watch,
}

fn push(v: &Mutex<Vec<f64>>, since: Instant) {
    v.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(since.elapsed().as_secs_f64() * 1000.0);
}

/// Keys and identity of one simulated node.
struct Identity {
    machine: MachinePrivate,
    node: NodePrivate,
    disco: DiscoPublic,
    hostname: String,
}

impl Identity {
    fn hostinfo(&self) -> serde_json::Value {
        json!({"Hostname": self.hostname, "OS": "linux", "GoArch": "amd64", "IPNVersion": "1.102.3-hs-load"})
    }

    fn map_request(&self, endpoints: &[String], stream: bool) -> Vec<u8> {
        json!({
            "Version": CAPABILITY_VERSION,
            "NodeKey": self.node.public().to_string(),
            "DiscoKey": self.disco.to_string(),
            "Stream": stream,
            "OmitPeers": !stream,
            "KeepAlive": stream,
            "Compress": if stream { "zstd" } else { "" },
            "Hostinfo": self.hostinfo(),
            "Endpoints": endpoints,
        })
        .to_string()
        .into_bytes()
    }
}

/// Runs client `i` until the driver stops it.
pub(crate) async fn run(
    sh: Arc<Shared>,
    i: usize,
    key: String,
    gate: Arc<Semaphore>,
    mut cmds: mpsc::Receiver<Cmd>,
) {
    let mut rng = rand::rngs::OsRng;
    let id = Identity {
        machine: MachinePrivate::generate(&mut rng),
        node: NodePrivate::generate(&mut rng),
        // Only its public half is ever sent; no disco traffic is simulated.
        disco: DiscoPublic::from_bytes(rng.r#gen()),
        hostname: format!("load-{i}"),
    };
    let mut endpoints = vec![format!("127.0.0.1:{}", 40_000 + i % 20_000)];
    let mut registered = false;
    while !sh.stop.load(Ordering::Relaxed) {
        // Only the first registration waits its turn; a redial storm is not throttled.
        let permit = if registered {
            None
        } else {
            gate.clone().acquire_owned().await.ok()
        };
        let r = session(
            &sh,
            i,
            &id,
            &key,
            &mut registered,
            permit,
            &mut endpoints,
            &mut cmds,
        )
        .await;
        sh.slots[i].connected.store(false, Ordering::Relaxed);
        let redial_now = match r {
            Ok(now) => now,
            Err(e) => {
                if sh.stop.load(Ordering::Relaxed) {
                    break;
                }
                sh.errors.fetch_add(1, Ordering::Relaxed);
                *sh.last_error.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(format!("{e:#}"));
                false
            }
        };
        if !redial_now {
            let ms = rand::thread_rng().gen_range(250..500);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

/// One Noise session: dial, register if needed, then the map stream until it ends.
/// `Ok(true)` when told to redial at once.
#[allow(
    clippy::too_many_arguments,
    reason = "one client's state, passed down once"
)]
async fn session(
    sh: &Shared,
    i: usize,
    id: &Identity,
    key: &str,
    registered: &mut bool,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    endpoints: &mut Vec<String>,
    cmds: &mut mpsc::Receiver<Cmd>,
) -> anyhow::Result<bool> {
    let t0 = Instant::now();
    let h2 = tokio::time::timeout(
        Duration::from_secs(60),
        conn::dial(sh.addr, &sh.server_key, &id.machine),
    )
    .await
    .context("dial timed out")??;
    if !*registered {
        register(&h2, id, key).await?;
        *registered = true;
        push(&sh.registrations, t0);
    }
    drop(permit);
    let (status, mut rx) = conn::post(&h2, "/machine/map", id.map_request(endpoints, true)).await?;
    if status != http::StatusCode::OK {
        let body = conn::read_all(rx).await.unwrap_or_default();
        bail!("map: {status}: {}", String::from_utf8_lossy(&body));
    }
    let slot = &sh.slots[i];
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut map = NetMap::default();
    let mut first = true;
    loop {
        tokio::select! {
            chunk = rx.data() => {
                let Some(chunk) = chunk else { return Ok(false) };
                let chunk = chunk?;
                let _ = rx.flow_control().release_capacity(chunk.len());
                buf.extend_from_slice(&chunk);
                take_frames(&mut buf, &mut frames)?;
                for f in frames.drain(..) {
                    let m = Message::parse(&f)?;
                    map.apply(&m, first);
                    slot.peers.store(map.peers.len(), Ordering::Relaxed);
                    if first {
                        first = false;
                        push(&sh.first_maps, t0);
                        slot.node_id.store(map.self_id, Ordering::Relaxed);
                        slot.connected.store(true, Ordering::Relaxed);
                        slot.maps.fetch_add(1, Ordering::Release);
                    }
                    observe(sh, slot, &m);
                }
            }
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Endpoints(e)) => {
                    *endpoints = e;
                    let h2 = h2.clone();
                    let body = id.map_request(endpoints, false);
                    // Sent beside the stream, on the same session, as tailscaled does.
                    tokio::spawn(async move {
                        if let Ok((_, b)) = conn::post(&h2, "/machine/map", body).await {
                            let _ = conn::read_all(b).await;
                        }
                    });
                }
                Some(Cmd::Redial) => return Ok(true),
                None => return Ok(false),
            },
        }
    }
}

/// Records this viewer's delivery of the change being timed, once per round.
fn observe(sh: &Shared, slot: &Slot, m: &Message) {
    let node = sh.watch.node.load(Ordering::Acquire);
    if node == 0 {
        return;
    }
    let round = sh.watch.round.load(Ordering::Acquire);
    if slot.seen_round.load(Ordering::Relaxed) == round || !m.mentions(node, &marker(round)) {
        return;
    }
    slot.seen_round.store(round, Ordering::Relaxed);
    let start = *sh
        .watch
        .start
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(start) = start {
        sh.watch
            .deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((round, start.elapsed().as_secs_f64() * 1000.0));
    }
}

async fn register(h2: &H2, id: &Identity, key: &str) -> anyhow::Result<()> {
    let body = json!({
        "Version": CAPABILITY_VERSION,
        "NodeKey": id.node.public().to_string(),
        "Auth": {"AuthKey": key},
        "Hostinfo": id.hostinfo(),
        "Followup": "",
    })
    .to_string()
    .into_bytes();
    let (status, rx) = conn::post(h2, "/machine/register", body).await?;
    let body = conn::read_all(rx).await?;
    if status != http::StatusCode::OK {
        bail!("register: {status}: {}", String::from_utf8_lossy(&body));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).context("register response")?;
    if v["MachineAuthorized"] != json!(true) {
        bail!("register: not authorized: {v}");
    }
    Ok(())
}

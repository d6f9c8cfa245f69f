//! HA health probes for subnet routers (`node.routes.ha.probe_interval`,
//! `node.routes.ha.probe_timeout`): a router that holds its map stream but no longer
//! answers (wedged, half-broken network) would otherwise keep its prefixes forever.
//!
//! Every interval, each online router of a prefix with at least two online routers gets a
//! `PingRequest` in its map stream whose URL is `<server_url>/machine/ping-response?id=…`
//! with an unguessable, single-use id (the id is the authentication, as in Headscale; the
//! client answers with a plain-HTTP `HEAD`, or over Noise when asked). A router that does
//! not answer within the timeout is marked unhealthy and the NodeStore's election moves
//! its prefixes to a healthy router; one that answers again is marked healthy but does not
//! take them back. Disconnects are handled by the online state, not here.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Query, State};
use hs_nodestore::{NodePatch, Op};
use hs_types::NodeId;
use hs_types::tailcfg::PingRequest;
use http::StatusCode;
use rand::Rng as _;
use tokio::sync::oneshot;

use crate::state::ControlState;

/// The path clients answer probes on (main listener and inside Noise).
pub(crate) const PING_RESPONSE_PATH: &str = "/machine/ping-response";

/// Probes waiting for their answer, by id.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    waiting: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

impl Pending {
    fn add(&self) -> (String, oneshot::Receiver<()>) {
        let id: String = rand::thread_rng()
            .r#gen::<[u8; 16]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id.clone(), tx);
        (id, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<()>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves a probe; false when the id is unknown (expired, answered, or made up).
    fn answer(&self, id: &str) -> bool {
        match self.lock().remove(id) {
            Some(tx) => {
                let _ = tx.send(());
                true
            }
            None => false,
        }
    }

    fn forget(&self, id: &str) {
        self.lock().remove(id);
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct PingQuery {
    #[serde(default)]
    id: String,
}

/// `HEAD|GET|POST /machine/ping-response?id=…`: a client answering a `PingRequest`.
pub(crate) async fn ping_response(
    State(st): State<ControlState>,
    Query(q): Query<PingQuery>,
) -> StatusCode {
    if !q.id.is_empty() && st.probes().answer(&q.id) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

impl ControlState {
    /// Starts the prober; an interval of zero disables it (Headscale's `0`).
    pub fn start_ha_probes(&self, interval: Duration, timeout: Duration) {
        if interval.is_zero() {
            tracing::info!("HA subnet-router health probes disabled");
            return;
        }
        let st = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(crate::Error::Stopped) = st.probe_routers(timeout).await {
                    return;
                }
            }
        });
    }

    /// One probe round: ping every online router of a prefix served by two or more, wait
    /// up to `timeout`, then record who answered. Returns the routers found unhealthy.
    pub async fn probe_routers(&self, timeout: Duration) -> Result<Vec<NodeId>, crate::Error> {
        let routers: BTreeSet<NodeId> = self
            .store()
            .load()
            .routes()
            .filter(|(_, r)| r.candidates.len() >= 2)
            .flat_map(|(_, r)| r.candidates.iter().copied())
            .collect();
        if routers.is_empty() {
            return Ok(Vec::new());
        }
        let base = self.config().server_url.trim_end_matches('/').to_owned();
        let mut waiting = Vec::new();
        for node in routers {
            let (id, rx) = self.probes().add();
            let request = PingRequest {
                url: format!("{base}{PING_RESPONSE_PATH}?id={id}"),
                ..PingRequest::default()
            };
            tracing::debug!(node = node.get(), "HA probe sent");
            if self.send_ping(node, request).await {
                waiting.push((node, id, rx));
            } else {
                // No stream: the online state, not the prober, deals with it.
                self.probes().forget(&id);
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut ops = Vec::new();
        let mut failed = Vec::new();
        for (node, id, rx) in waiting {
            let answered = matches!(tokio::time::timeout_at(deadline, rx).await, Ok(Ok(())));
            self.probes().forget(&id);
            let snap = self.store().load();
            let Some(e) = snap.node(node) else {
                continue;
            };
            if answered {
                tracing::debug!(node = node.get(), "HA probe answered");
            } else {
                failed.push(node);
            }
            if e.unhealthy == answered {
                if answered {
                    tracing::info!(node = node.get(), "subnet router answers HA probes again");
                } else {
                    tracing::warn!(
                        node = node.get(),
                        "subnet router did not answer an HA probe; marked unhealthy"
                    );
                }
                ops.push(Op::Patch(
                    node,
                    NodePatch {
                        unhealthy: Some(!answered),
                        ..NodePatch::default()
                    },
                ));
            }
        }
        if !ops.is_empty() {
            self.apply(ops).await?;
        }
        Ok(failed)
    }
}

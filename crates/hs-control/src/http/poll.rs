//! `POST /machine/map` inside the Noise session: streaming polls (full map, then increments
//! from the coordinator, keep-alives), lite updates (`Stream:false, OmitPeers:true`: apply
//! Hostinfo/endpoints/disco key, answer 200 with an empty body) and one-shot polls.
//!
//! The node key must belong to the Noise session's machine key (404 otherwise, as Headscale).
//! Frames are zstd-compressed when the client asks (`Compress: "zstd"`), plain JSON
//! otherwise; both are u32 little-endian length-prefixed.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hs_nodestore::{NodePatch, Op};
use hs_noise::NoiseSession;
use hs_types::NodeId;
use hs_types::model::Node;
use hs_types::tailcfg::MapRequest;
use http::StatusCode;
use hyper::body::Frame;
use rand::Rng as _;

use crate::error::Error;
use crate::state::{ControlState, plain_frame};

/// The handler.
pub(crate) async fn handle(
    State(st): State<ControlState>,
    Extension(session): Extension<NoiseSession>,
    body: Bytes,
) -> Response {
    let req: MapRequest = match hs_types::tailcfg::godecode::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid MapRequest body: {e}"),
            )
                .into_response();
        }
    };
    if req.node_key.is_zero() {
        return (StatusCode::BAD_REQUEST, "MapRequest.NodeKey is missing").into_response();
    }
    let node = st
        .store()
        .load()
        .node_by_node_key(&req.node_key)
        .map(|e| e.node.clone());
    let Some(node) = node.filter(|n| n.machine_key == session.machine_key) else {
        tracing::info!(machine = %session.machine_key.short_string(), "map request for a node key this machine does not hold");
        return (StatusCode::NOT_FOUND, "node not found").into_response();
    };
    let id = node.id;
    let lite = !req.stream && req.omit_peers;
    if let Err(e) = update_from_request(&st, node, &req).await {
        tracing::warn!(node = id.get(), error = %e, "applying a map request's updates failed");
        if lite {
            st.metrics().endpoint_update(false);
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    } else if lite {
        st.metrics().endpoint_update(true);
    }
    // A first map request after registration, a new announcement or a reconnect under a
    // newer policy: approve what autoApprovers cover before the map is built.
    if let Err(e) = st.auto_approve_routes(id).await {
        tracing::warn!(node = id.get(), error = %e, "auto-approving routes failed");
    }
    if lite {
        return StatusCode::OK.into_response();
    }
    let zstd = req.compress == "zstd";
    if !req.stream {
        return one_shot(&st, id, zstd).await;
    }
    stream(st, id, zstd).await
}

/// Applies what a map request reports about the client: Hostinfo, endpoints and disco key,
/// only where they changed, and only those columns.
async fn update_from_request(st: &ControlState, node: Node, req: &MapRequest) -> Result<(), Error> {
    let hostinfo = req
        .hostinfo
        .as_ref()
        .and_then(|h| serde_json::to_value(h).ok())
        .filter(|h| node.hostinfo.as_ref() != Some(h));
    let hostname = hostinfo
        .as_ref()
        .and_then(|h| h.get("Hostname").and_then(|v| v.as_str()))
        .filter(|name| *name != node.hostname)
        .map(str::to_owned);
    let update = hs_db::ClientState {
        hostinfo,
        hostname,
        endpoints: (!req.endpoints.is_empty() && req.endpoints != node.endpoints)
            .then(|| req.endpoints.clone()),
        disco_key: (!req.disco_key.is_zero() && req.disco_key != node.disco_key)
            .then_some(req.disco_key),
    };
    st.update_client_state(node.id, update).await
}

async fn one_shot(st: &ControlState, id: NodeId, zstd: bool) -> Response {
    // Built beside any open stream of the node, which it must not replace.
    match st.one_shot(id, zstd).await {
        Ok(frame) => {
            st.metrics().add_bytes(frame.len());
            frame.into_response()
        }
        Err(e) => {
            tracing::error!(node = id.get(), error = %e, "building a map failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

async fn stream(st: ControlState, id: NodeId, zstd: bool) -> Response {
    let sub = match st.subscribe(id, zstd).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(node = id.get(), error = %e, "starting a map stream failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    st.metrics().add_bytes(sub.first.len());
    let conn = sub.conn;
    let online = st
        .apply(vec![Op::Patch(
            id,
            NodePatch {
                online: Some(true),
                ..NodePatch::default()
            },
        )])
        .await;
    if let Err(e) = online {
        tracing::warn!(node = id.get(), error = %e, "marking the node online failed");
    }
    tracing::info!(node = id.get(), "map stream opened");
    let keepalive = if zstd {
        hs_mapper::keepalive_frame()
            .map(Bytes::from)
            .unwrap_or_default()
    } else {
        plain_frame(hs_mapper::KEEPALIVE_JSON)
    };
    let body = MapBody {
        first: Some(sub.first),
        rx: sub.rx,
        keepalive,
        sleep: Box::pin(tokio::time::sleep(next_keepalive())),
        guard: Some(StreamGuard { st, node: id, conn }),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )
        .body(Body::new(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn next_keepalive() -> Duration {
    hs_mapper::keepalive_interval(rand::thread_rng().r#gen())
}

/// The streaming body: the first map, then whatever the coordinator sends, with a
/// keep-alive whenever nothing was sent for the interval. It ends when the coordinator drops
/// the stream (replaced, node deleted, shutdown); dropping it (client gone) starts the
/// offline grace period.
struct MapBody {
    first: Option<Bytes>,
    rx: crate::state::queue::QueueRx,
    keepalive: Bytes,
    sleep: Pin<Box<tokio::time::Sleep>>,
    guard: Option<StreamGuard>,
}

impl hyper::body::Body for MapBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(f) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(f))));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(f)) => {
                let at = tokio::time::Instant::now() + next_keepalive();
                self.sleep.as_mut().reset(at);
                return Poll::Ready(Some(Ok(Frame::data(f))));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            let at = tokio::time::Instant::now() + next_keepalive();
            self.sleep.as_mut().reset(at);
            if let Some(g) = &self.guard {
                g.st.metrics().keepalive();
            }
            let k = self.keepalive.clone();
            return Poll::Ready(Some(Ok(Frame::data(k))));
        }
        Poll::Pending
    }
}

/// Runs the end-of-stream bookkeeping when the body goes away.
struct StreamGuard {
    st: ControlState,
    node: NodeId,
    conn: u64,
}

impl Drop for MapBody {
    fn drop(&mut self) {
        let Some(g) = self.guard.take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(crate::lifecycle::stream_ended(g.st, g.node, g.conn));
    }
}

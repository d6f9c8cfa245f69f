//! A client's picture of the tailnet folded from the `ts_control` updates it receives, shared
//! by the tests that watch peers come, change and go.

use std::collections::BTreeMap;
use std::pin::Pin;

use ts_control::{Node, NodeId, PeerUpdate, StateUpdate};

use crate::harness::{Client, Harness, next_update};

/// A client's picture of the tailnet, built from the updates it receives.
#[derive(Default)]
pub(crate) struct View {
    pub(crate) me: Option<Node>,
    pub(crate) peers: BTreeMap<NodeId, Node>,
}

impl View {
    pub(crate) fn apply(&mut self, u: StateUpdate) {
        if let Some(n) = u.node {
            self.me = Some(n);
        }
        match u.peer_update {
            Some(PeerUpdate::Full(v)) => self.peers = v.into_iter().map(|n| (n.id, n)).collect(),
            Some(PeerUpdate::Delta {
                patch,
                upsert,
                remove,
            }) => {
                for id in remove {
                    self.peers.remove(&id);
                }
                for n in upsert {
                    self.peers.insert(n.id, n);
                }
                for p in patch {
                    if let Some(n) = self.peers.get_mut(&p.id) {
                        n.apply_update(&p);
                    }
                }
            }
            None => {}
        }
    }
}

/// Applies updates until `ok` holds (bounded by `next_update`'s hang guard).
pub(crate) async fn until(
    s: &mut (impl futures_util::Stream<Item = StateUpdate> + Unpin),
    v: &mut View,
    what: &str,
    ok: impl Fn(&View) -> bool,
) {
    for _ in 0..30 {
        if ok(v) {
            return;
        }
        v.apply(next_update(s).await);
    }
    assert!(ok(v), "never saw: {what}");
}

/// alpha and bravo registered with one reusable key, and alpha watching: its map stream open
/// and its first map, which lists bravo, applied.
pub(crate) struct Watching {
    pub(crate) key: String,
    pub(crate) a: Client,
    pub(crate) b: Client,
    pub(crate) sa: Pin<Box<dyn futures_util::Stream<Item = StateUpdate>>>,
    pub(crate) va: View,
    /// bravo's id as alpha's client sees it, and as the server stores it.
    pub(crate) b_id: NodeId,
    pub(crate) bid: hs_types::NodeId,
}

pub(crate) async fn alpha_watching_bravo(h: &Harness) -> Watching {
    let key = h.key(true, false);
    let a = Client::registered(h, "alpha", &key).await;
    let b = Client::registered(h, "bravo", &key).await;
    let mut sa = a.stream(h).await;
    let mut va = View::default();
    va.apply(next_update(&mut sa).await);
    let &b_id = va.peers.keys().next().expect("A's first map lists B");
    let bid = hs_types::NodeId(u64::try_from(b_id).unwrap());
    Watching {
        key,
        a,
        b,
        sa: Box::pin(sa),
        va,
        b_id,
        bid,
    }
}

impl Watching {
    /// Applies alpha's updates until `ok` holds for its view.
    pub(crate) async fn until(&mut self, what: &str, ok: impl Fn(&View) -> bool) {
        until(&mut self.sa, &mut self.va, what, ok).await;
    }
}

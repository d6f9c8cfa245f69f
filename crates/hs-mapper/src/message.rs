//! Assembling one `MapResponse` as JSON: the small fields go through the typed
//! `tailcfg::MapResponse`, and the large, shared parts (node entries, DERP map, DNS config,
//! packet filter, SSH policy) are spliced in as pre-serialised bytes, so a peer entry is
//! encoded once however many maps carry it.

use std::sync::Arc;

use hs_types::NodeId;
use hs_types::tailcfg::MapResponse;

use crate::error::Error;

/// An empty SSH policy: what a node gets when the policy has no SSH rules for it (an absent
/// `SSHPolicy` would mean "unchanged" and keep old rules alive on the client).
pub const EMPTY_SSH_POLICY: &str = r#"{"rules":[]}"#;

/// One message before encoding.
#[derive(Debug, Default)]
pub(crate) struct Message {
    /// Typed small fields; its `Node`, `Peers`, `PeersChanged`, `DERPMap`, `DNSConfig`,
    /// `PacketFilter(s)` and `SSHPolicy` must be left `None` (they are spliced).
    pub(crate) base: MapResponse,
    pub(crate) node: Option<Arc<[u8]>>,
    pub(crate) derp_map: Option<Arc<str>>,
    pub(crate) dns: Option<Arc<str>>,
    pub(crate) peers: Option<Vec<Arc<[u8]>>>,
    pub(crate) peers_changed: Vec<Arc<[u8]>>,
    pub(crate) packet_filter: Option<Arc<str>>,
    pub(crate) ssh: Option<Arc<str>>,
    /// Set for a full map whose DERP map and runs of peers may be written as parts other
    /// messages share (see [`Sink::shared`]).
    pub(crate) share: Option<Share>,
}

/// What a message needs to mark its shareable parts.
#[derive(Debug)]
pub(crate) struct Share {
    /// The node the message is for: the run of ids holding it lacks it, so no other
    /// viewer has that run.
    pub(crate) viewer: NodeId,
    /// The id of each entry of `Message::peers`, in the same order (sorted).
    pub(crate) peer_ids: Vec<NodeId>,
}

/// Peers are grouped into runs by id: ids `k * RUN_IDS .. (k + 1) * RUN_IDS` form run `k`.
/// Fixed id ranges make the same run out of the same nodes for every viewer that sees them.
pub(crate) const RUN_IDS: u64 = 64;

/// A run shorter than this is written inline: a frame of its own for a few entries costs
/// more in frame overhead and lost compression context than sharing saves (per-user
/// policies, where each viewer sees a few nodes scattered over the id space).
pub(crate) const RUN_MIN: usize = 8;

/// The key of the DERP map among shared parts (peer runs use their run number).
pub(crate) const DERP_KEY: u64 = u64::MAX;

/// Where a message's JSON goes.
pub(crate) trait Sink {
    /// Bytes of this message alone.
    fn own(&mut self, b: &[u8]);
    /// Bytes other messages may carry too: `prefix`, then `items` joined by commas. `key`
    /// says where in a map they sit (a run number or [`DERP_KEY`]); the same key, prefix and
    /// items (by identity) always make the same bytes.
    fn shared(&mut self, key: u64, prefix: &'static [u8], items: &[Arc<[u8]>])
    -> Result<(), Error>;
}

/// Plain JSON text.
impl Sink for Vec<u8> {
    fn own(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }

    fn shared(
        &mut self,
        _key: u64,
        prefix: &'static [u8],
        items: &[Arc<[u8]>],
    ) -> Result<(), Error> {
        self.extend_from_slice(prefix);
        join(self, items);
        Ok(())
    }
}

/// Appends `items` separated by commas.
pub(crate) fn join(out: &mut Vec<u8>, items: &[Arc<[u8]>]) {
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(it);
    }
}

struct Splicer<'a, S: Sink> {
    sink: &'a mut S,
    empty: bool,
}

impl<S: Sink> Splicer<'_, S> {
    fn key(&mut self, k: &str) {
        if !self.empty {
            self.sink.own(b",");
        }
        self.empty = false;
        self.sink.own(b"\"");
        self.sink.own(k.as_bytes());
        self.sink.own(b"\":");
    }

    fn raw(&mut self, k: &str, v: &[u8]) {
        self.key(k);
        self.sink.own(v);
    }

    fn array(&mut self, k: &str, items: &[Arc<[u8]>]) {
        self.key(k);
        self.sink.own(b"[");
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                self.sink.own(b",");
            }
            self.sink.own(it);
        }
        self.sink.own(b"]");
    }

    /// The DERP map as a shared part.
    fn shared_derp(&mut self, d: &Arc<str>) -> Result<(), Error> {
        let prefix: &'static [u8] = if self.empty {
            b"\"DERPMap\":"
        } else {
            b",\"DERPMap\":"
        };
        self.empty = false;
        self.sink
            .shared(DERP_KEY, prefix, &[Arc::<[u8]>::from(Arc::clone(d))])
    }

    /// `Peers`, with every run of [`RUN_MIN`] or more entries that does not hold the viewer
    /// as a shared part.
    fn shared_peers(&mut self, items: &[Arc<[u8]>], share: &Share) -> Result<(), Error> {
        let ids = &share.peer_ids;
        if ids.len() != items.len() {
            self.array("Peers", items);
            return Ok(());
        }
        self.key("Peers");
        self.sink.own(b"[");
        let own_run = share.viewer.get() / RUN_IDS;
        let mut i = 0;
        while i < items.len() {
            let k = ids[i].get() / RUN_IDS;
            let len = ids[i..]
                .iter()
                .take_while(|id| id.get() / RUN_IDS == k)
                .count();
            let run = &items[i..i + len];
            if run.len() >= RUN_MIN && k != own_run {
                let lead: &'static [u8] = if i == 0 { b"" } else { b"," };
                self.sink.shared(k, lead, run)?;
            } else {
                for (j, it) in run.iter().enumerate() {
                    if i + j > 0 {
                        self.sink.own(b",");
                    }
                    self.sink.own(it);
                }
            }
            i += len;
        }
        self.sink.own(b"]");
        Ok(())
    }
}

impl Message {
    /// Whether the message would tell the client nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.base == MapResponse::default()
            && self.node.is_none()
            && self.derp_map.is_none()
            && self.dns.is_none()
            && self.peers.is_none()
            && self.peers_changed.is_empty()
            && self.packet_filter.is_none()
            && self.ssh.is_none()
    }

    /// The JSON text of the message.
    pub(crate) fn to_json(&self) -> Result<Vec<u8>, Error> {
        let extra: usize = self
            .peers
            .iter()
            .flatten()
            .map(|p| p.len() + 1)
            .sum::<usize>()
            + self
                .peers_changed
                .iter()
                .map(|p| p.len() + 1)
                .sum::<usize>()
            + self.derp_map.as_ref().map_or(0, |s| s.len())
            + self.packet_filter.as_ref().map_or(0, |s| s.len())
            + 512;
        let mut out = Vec::with_capacity(extra);
        self.write(&mut out)?;
        Ok(out)
    }

    /// Writes the message's JSON to `sink`, marking the shareable parts when
    /// [`Message::share`] is set.
    pub(crate) fn write<S: Sink>(&self, sink: &mut S) -> Result<(), Error> {
        let mut head = serde_json::to_vec(&self.base)?;
        // serde_json writes an object, so the text ends with '}'.
        head.pop();
        let empty = head.len() == 1;
        sink.own(&head);
        let mut s = Splicer { sink, empty };
        if let Some(n) = &self.node {
            s.raw("Node", n);
        }
        if let Some(d) = &self.derp_map {
            if self.share.is_some() {
                s.shared_derp(d)?;
            } else {
                s.raw("DERPMap", d.as_bytes());
            }
        }
        if let Some(p) = &self.peers {
            match &self.share {
                Some(share) => s.shared_peers(p, share)?,
                None => s.array("Peers", p),
            }
        }
        if !self.peers_changed.is_empty() {
            s.array("PeersChanged", &self.peers_changed);
        }
        if let Some(d) = &self.dns {
            s.raw("DNSConfig", d.as_bytes());
        }
        if let Some(f) = &self.packet_filter {
            s.key("PacketFilters");
            s.sink.own(b"{\"base\":");
            s.sink.own(f.as_bytes());
            s.sink.own(b"}");
        }
        if let Some(x) = &self.ssh {
            s.raw("SSHPolicy", x.as_bytes());
        }
        s.sink.own(b"}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_into_typed_fields() {
        let mut m = Message::default();
        assert!(m.is_empty());
        m.packet_filter = Some(Arc::from("[]"));
        m.peers_changed = vec![Arc::from(&b"{\"ID\":2}"[..]), Arc::from(&b"{\"ID\":3}"[..])];
        let v: serde_json::Value = serde_json::from_slice(&m.to_json().unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"PeersChanged":[{"ID":2},{"ID":3}],"PacketFilters":{"base":[]}})
        );
        m.base.peers_removed = vec![NodeId(9)];
        let v: serde_json::Value = serde_json::from_slice(&m.to_json().unwrap()).unwrap();
        assert_eq!(v["PeersRemoved"], serde_json::json!([9]));
        assert_eq!(
            v["PacketFilters"]["base"],
            serde_json::json!([]),
            "deny-all stays explicit"
        );
    }
}

//! Assembling one `MapResponse` as JSON: the small fields go through the typed
//! `tailcfg::MapResponse`, and the large, shared parts (node entries, DERP map, DNS config,
//! packet filter, SSH policy) are spliced in as pre-serialised bytes, so a peer entry is
//! encoded once however many maps carry it.

use std::sync::Arc;

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
}

struct Splicer {
    out: Vec<u8>,
    empty: bool,
}

impl Splicer {
    fn key(&mut self, k: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn raw(&mut self, k: &str, v: &[u8]) {
        self.key(k);
        self.out.extend_from_slice(v);
    }

    fn array(&mut self, k: &str, items: &[Arc<[u8]>]) {
        self.key(k);
        self.out.push(b'[');
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.out.extend_from_slice(it);
        }
        self.out.push(b']');
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
        serde_json::to_writer(&mut out, &self.base)?;
        // serde_json writes an object, so the text ends with '}'.
        out.pop();
        let empty = out.len() == 1;
        let mut s = Splicer { out, empty };
        if let Some(n) = &self.node {
            s.raw("Node", n);
        }
        if let Some(d) = &self.derp_map {
            s.raw("DERPMap", d.as_bytes());
        }
        if let Some(p) = &self.peers {
            s.array("Peers", p);
        }
        if !self.peers_changed.is_empty() {
            s.array("PeersChanged", &self.peers_changed);
        }
        if let Some(d) = &self.dns {
            s.raw("DNSConfig", d.as_bytes());
        }
        if let Some(f) = &self.packet_filter {
            s.key("PacketFilters");
            s.out.extend_from_slice(b"{\"base\":");
            s.out.extend_from_slice(f.as_bytes());
            s.out.push(b'}');
        }
        if let Some(x) = &self.ssh {
            s.raw("SSHPolicy", x.as_bytes());
        }
        s.out.push(b'}');
        Ok(s.out)
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
        m.base.peers_removed = vec![hs_types::NodeId(9)];
        let v: serde_json::Value = serde_json::from_slice(&m.to_json().unwrap()).unwrap();
        assert_eq!(v["PeersRemoved"], serde_json::json!([9]));
        assert_eq!(
            v["PacketFilters"]["base"],
            serde_json::json!([]),
            "deny-all stays explicit"
        );
    }
}

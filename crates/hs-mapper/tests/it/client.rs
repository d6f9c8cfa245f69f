//! A client-side model of the map stream, applying messages with the rules of Tailscale's
//! `controlclient` (`updateStateFromResponse`, `updatePeersStateFromResponse`) as
//! `tailscale-protocol.md` §3.2 describes them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// What the client believes.
#[derive(Debug, Default, Clone)]
pub(crate) struct ClientModel {
    pub(crate) node: Option<Value>,
    pub(crate) peers: BTreeMap<u64, Value>,
    pub(crate) derp_map: Option<Value>,
    pub(crate) dns: Option<Value>,
    pub(crate) domain: String,
    pub(crate) filters: BTreeMap<String, Value>,
    pub(crate) ssh: Option<Value>,
    pub(crate) profiles: BTreeMap<u64, Value>,
}

fn id_of(v: &Value) -> u64 {
    v["ID"].as_u64().expect("node has an ID")
}

fn key_id(k: &str) -> u64 {
    k.parse().expect("map keys are decimal node ids")
}

impl ClientModel {
    /// Applies one decoded MapResponse.
    pub(crate) fn apply(&mut self, m: &Value) {
        let m = m.as_object().expect("a MapResponse is an object");
        if m.get("KeepAlive") == Some(&Value::Bool(true)) {
            return;
        }
        if let Some(n) = m.get("Node").filter(|v| !v.is_null()) {
            self.node = Some(n.clone());
        }
        if let Some(d) = m.get("DERPMap").filter(|v| !v.is_null()) {
            self.derp_map = Some(d.clone());
        }
        if let Some(d) = m.get("DNSConfig").filter(|v| !v.is_null()) {
            self.dns = Some(d.clone());
        }
        if let Some(Value::String(d)) = m.get("Domain")
            && !d.is_empty()
        {
            self.domain = d.clone();
        }
        if let Some(f) = m.get("PacketFilter").filter(|v| !v.is_null()) {
            self.filters.insert("base".into(), f.clone());
        }
        if let Some(Value::Object(fs)) = m.get("PacketFilters") {
            if fs.get("*").is_some_and(Value::is_null) {
                self.filters.clear();
            }
            for (k, v) in fs {
                if k == "*" {
                    continue;
                }
                if v.is_null() {
                    self.filters.remove(k);
                } else {
                    self.filters.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(s) = m.get("SSHPolicy").filter(|v| !v.is_null()) {
            self.ssh = Some(s.clone());
        }
        if let Some(Value::Array(ps)) = m.get("UserProfiles") {
            for p in ps {
                self.profiles.insert(id_of(p), p.clone());
            }
        }
        self.apply_peers(m);
    }

    fn apply_peers(&mut self, m: &Map<String, Value>) {
        if let Some(Value::Array(ps)) = m.get("Peers")
            && !ps.is_empty()
        {
            self.peers = ps.iter().map(|p| (id_of(p), p.clone())).collect();
            return;
        }
        if let Some(Value::Array(r)) = m.get("PeersRemoved") {
            for id in r {
                self.peers
                    .remove(&id.as_u64().expect("removed ids are numbers"));
            }
        }
        if let Some(Value::Array(c)) = m.get("PeersChanged") {
            for p in c {
                self.peers.insert(id_of(p), p.clone());
            }
        }
        if let Some(Value::Object(seen)) = m.get("PeerSeenChange") {
            for (k, v) in seen {
                if let Some(p) = self
                    .peers
                    .get_mut(&key_id(k))
                    .and_then(Value::as_object_mut)
                {
                    // `true` would mean "now" on the client's clock; the mapper only clears.
                    assert_eq!(
                        v,
                        &Value::Bool(false),
                        "mapper only sends PeerSeenChange=false"
                    );
                    p.remove("LastSeen");
                }
            }
        }
        if let Some(Value::Object(on)) = m.get("OnlineChange") {
            for (k, v) in on {
                if let Some(p) = self
                    .peers
                    .get_mut(&key_id(k))
                    .and_then(Value::as_object_mut)
                {
                    p.insert("Online".into(), v.clone());
                }
            }
        }
        if let Some(Value::Array(patches)) = m.get("PeersChangedPatch") {
            for pc in patches {
                let id = pc["NodeID"].as_u64().expect("patch has NodeID");
                let Some(p) = self.peers.get_mut(&id).and_then(Value::as_object_mut) else {
                    continue;
                };
                let set = |p: &mut Map<String, Value>, from: &str, to: &str| {
                    if let Some(v) = pc.get(from).filter(|v| !v.is_null()) {
                        p.insert(to.into(), v.clone());
                    }
                };
                set(p, "DERPRegion", "HomeDERP");
                set(p, "Cap", "Cap");
                set(p, "CapMap", "CapMap");
                set(p, "Endpoints", "Endpoints");
                set(p, "Key", "Key");
                set(p, "KeySignature", "KeySignature");
                set(p, "DiscoKey", "DiscoKey");
                set(p, "Online", "Online");
                set(p, "LastSeen", "LastSeen");
                set(p, "KeyExpiry", "KeyExpiry");
            }
        }
    }

    /// Asserts this model holds what a fresh full map (applied to an empty model) holds.
    pub(crate) fn assert_matches_full(&self, fresh: &ClientModel, context: &str) {
        assert_eq!(self.node, fresh.node, "self node differs ({context})");
        assert_eq!(
            self.peers.keys().collect::<Vec<_>>(),
            fresh.peers.keys().collect::<Vec<_>>(),
            "peer set differs ({context})"
        );
        for (id, p) in &fresh.peers {
            assert_eq!(&self.peers[id], p, "peer {id} differs ({context})");
        }
        assert_eq!(self.filters, fresh.filters, "filters differ ({context})");
        assert_eq!(self.ssh, fresh.ssh, "SSH policy differs ({context})");
        assert_eq!(
            self.derp_map, fresh.derp_map,
            "DERP map differs ({context})"
        );
        assert_eq!(self.dns, fresh.dns, "DNS config differs ({context})");
        assert_eq!(self.domain, fresh.domain, "domain differs ({context})");
        for (id, p) in &fresh.profiles {
            assert_eq!(
                self.profiles.get(id),
                Some(p),
                "profile {id} differs ({context})"
            );
        }
    }
}

//! Turning a failed observation into its cause. When a ping does not come back, the harness
//! looks at the pinging client's own network map (`tailscale debug netmap`) for what the
//! server told it about the peer, so a server that sends a broken peer (no DiscoKey, no
//! addresses) is named as such instead of surfacing as a bare ping timeout.

use serde_json::Value;

use crate::client::Client;

/// The peer entry for hostname `peer` in `netmap`'s `Peers`, matched on its MagicDNS name
/// (`peer.` prefix) or, failing that, on its Hostinfo hostname.
fn find_peer<'a>(netmap: &'a Value, peer: &str) -> Option<&'a Value> {
    let peers = netmap["Peers"].as_array()?;
    let prefix = format!("{peer}.");
    peers
        .iter()
        .find(|p| p["Name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
        .or_else(|| {
            peers
                .iter()
                .find(|p| p["Hostinfo"]["Hostname"].as_str() == Some(peer))
        })
}

/// Whether a key in its text form (`discokey:<hex>`) is absent or all zeros.
fn key_missing(v: &Value) -> bool {
    match v.as_str() {
        None => true,
        Some(s) => {
            let hex = s.rsplit_once(':').map_or(s, |(_, h)| h);
            hex.is_empty() || hex.bytes().all(|b| b == b'0')
        }
    }
}

/// What is wrong with `peer` in `netmap`, if the netmap shows it.
pub(crate) fn peer_problem(netmap: &Value, viewer: &str, peer: &str) -> Option<String> {
    let Some(p) = find_peer(netmap, peer) else {
        return Some(format!(
            "{peer} is not in {viewer}'s netmap (tailscale debug netmap): the server did not send it as a peer"
        ));
    };
    if key_missing(&p["DiscoKey"]) {
        return Some(format!(
            "peer {peer} has no DiscoKey in {viewer}'s netmap (tailscale debug netmap; DiscoKey={}): \
             the server sent the peer without its disco key, so disco pings cannot work",
            p["DiscoKey"]
        ));
    }
    if p["Addresses"].as_array().is_none_or(Vec::is_empty) {
        return Some(format!("peer {peer} has no Addresses in {viewer}'s netmap"));
    }
    None
}

/// [`peer_problem`] on `viewer`'s live netmap; `None` when the netmap cannot be read.
pub(crate) fn client_peer_problem(viewer: &Client, peer: &str) -> Option<String> {
    let out = viewer.cli(&["debug", "netmap"]).ok()?;
    if !out.status.success() {
        return None;
    }
    let netmap: Value = serde_json::from_slice(&out.stdout).ok()?;
    peer_problem(&netmap, &viewer.name, peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_peer_without_disco_key() {
        let nm = serde_json::json!({"Peers": [
            {"Name": "u1-n2.hsit.example.com.", "DiscoKey": "discokey:0000000000000000000000000000000000000000000000000000000000000000", "Addresses": ["100.64.0.2/32"]},
            {"Name": "u2-n1.hsit.example.com.", "DiscoKey": "discokey:5f2a", "Addresses": ["100.64.0.3/32"]},
        ]});
        let p = peer_problem(&nm, "u1-n1", "u1-n2").expect("a problem");
        assert!(p.contains("no DiscoKey"), "{p}");
        assert_eq!(peer_problem(&nm, "u1-n1", "u2-n1"), None);
        let p = peer_problem(&nm, "u1-n1", "u2-n2").expect("missing peer");
        assert!(p.contains("not in u1-n1's netmap"), "{p}");
    }

    #[test]
    fn absent_disco_key_field_is_missing() {
        let nm = serde_json::json!({"Peers": [{"Name": "a.x.", "Addresses": ["100.64.0.2/32"]}]});
        assert!(peer_problem(&nm, "b", "a").is_some_and(|p| p.contains("no DiscoKey")));
    }
}

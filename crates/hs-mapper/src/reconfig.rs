//! Configuration changes (DERP map refresh, DNS settings or extra records reloaded, base
//! domain or capabilities changed) turned into messages for every stream.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hs_nodestore::Snapshot;
use hs_types::tailcfg::MapResponse;

use crate::config::MapperConfig;
use crate::error::Error;
use crate::fanout::{CloseReason, Outgoing};
use crate::frame::encode_frame;
use crate::mapper::Mapper;
use crate::message::Message;
use crate::session::Session;

/// Sent when DNS goes from configured to not: a nil `DNSConfig` would mean "unchanged".
const EMPTY_DNS_CONFIG: &str = "{}";

impl Mapper {
    /// Installs `cfg` and returns what each session must be told: the DERP map, DNS config
    /// and domain when they changed, and every visible peer again (plus the node itself)
    /// when nodes render differently (base domain, capabilities). Sessions not in sync with
    /// `snap` are closed.
    pub fn reconfigure<'s>(
        &mut self,
        cfg: MapperConfig,
        snap: &Snapshot,
        sessions: impl IntoIterator<Item = &'s mut Session>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Outgoing>, Error> {
        let old_gen = self.cfg_gen();
        let old = self.set_config(cfg);
        let new = self.config();
        let derp = (old.derp_map != new.derp_map).then(|| Arc::clone(&new.derp_map));
        let dns = (old.dns != new.dns).then(|| {
            new.dns
                .clone()
                .unwrap_or_else(|| Arc::from(EMPTY_DNS_CONFIG))
        });
        let domain = if old.domain != new.domain {
            new.domain.clone()
        } else {
            String::new()
        };
        let rerender = old.renders_nodes_differently(new);
        let shared = if rerender {
            None
        } else {
            let msg = Message {
                base: MapResponse {
                    domain: domain.clone(),
                    ..MapResponse::default()
                },
                derp_map: derp.clone(),
                dns: dns.clone(),
                ..Message::default()
            };
            (!msg.is_empty())
                .then(|| msg.to_json().and_then(|j| encode_frame(&j)))
                .transpose()?
                .map(bytes::Bytes::from)
        };
        let mut out = Vec::new();
        for s in sessions {
            if s.version != snap.version() || s.cfg_gen != old_gen {
                out.push(Outgoing::Close {
                    node: s.node,
                    reason: CloseReason::Desynced,
                });
                continue;
            }
            s.cfg_gen = self.cfg_gen();
            if !rerender {
                if let Some(f) = &shared {
                    out.push(Outgoing::Frame {
                        node: s.node,
                        frame: f.clone(),
                    });
                }
                continue;
            }
            let Some(v) = snap.node(s.node) else {
                out.push(Outgoing::Close {
                    node: s.node,
                    reason: CloseReason::NodeRemoved,
                });
                continue;
            };
            let policy = snap.policy();
            let mut msg = Message {
                base: MapResponse {
                    domain: domain.clone(),
                    ..MapResponse::default()
                },
                derp_map: derp.clone(),
                dns: dns.clone(),
                node: Some(self.cache().node_json(
                    v,
                    new,
                    policy,
                    &v.offered_routes(),
                    true,
                    now,
                )?),
                ..Message::default()
            };
            for p in snap.peers_of(s.node) {
                let routes = snap.visible_routes(v, p);
                msg.peers_changed.push(
                    self.cache()
                        .node_json(p, new, policy, &routes, false, now)?,
                );
            }
            out.push(Outgoing::Frame {
                node: s.node,
                frame: encode_frame(&msg.to_json()?)?.into(),
            });
        }
        Ok(out)
    }
}

//! The first message of a stream: everything the client needs (`tailscale-protocol.md`
//! §3.2), peers sorted by id.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hs_nodestore::Snapshot;
use hs_types::tailcfg::{self, ClientVersion, MapResponse, OptBool, UserProfile};
use hs_types::{NodeId, UserId};

use crate::error::Error;
use crate::mapper::Mapper;
use crate::message::{EMPTY_SSH_POLICY, Message, Share};
use crate::render::{self, TAGGED_DEVICES_USER_ID};
use crate::session::Session;
use crate::shared::FrameSink;

/// Profiles for a set of wire user ids, sorted by id; unknown users are skipped (a node
/// whose user is being deleted in a later batch).
pub(crate) fn profiles(snap: &Snapshot, users: &BTreeSet<UserId>) -> Vec<UserProfile> {
    users
        .iter()
        .filter_map(|u| {
            if *u == TAGGED_DEVICES_USER_ID {
                Some(render::tagged_devices_profile())
            } else {
                snap.user(*u).map(|u| render::user_profile(u))
            }
        })
        .collect()
}

impl Mapper {
    /// The full map for `viewer` and the session that tracks what it was told. Use the
    /// session with [`Mapper::fanout`] for every later batch.
    pub fn full_map(
        &self,
        snap: &Snapshot,
        viewer: NodeId,
        now: DateTime<Utc>,
    ) -> Result<(Session, Vec<u8>), Error> {
        let (session, msg) = self.full_message(snap, viewer, now)?;
        Ok((session, msg.to_json()?))
    }

    fn full_message(
        &self,
        snap: &Snapshot,
        viewer: NodeId,
        now: DateTime<Utc>,
    ) -> Result<(Session, Message), Error> {
        let v = snap.node(viewer).ok_or(Error::UnknownNode(viewer))?;
        let policy = snap.policy();
        let cfg = self.config();
        let mut users = BTreeSet::from([render::wire_user(v)]);
        let mut peers = Vec::new();
        let mut peer_ids = Vec::new();
        for p in snap.peers_of(viewer) {
            users.insert(render::wire_user(p));
            peer_ids.push(p.node.id);
            let routes = snap.visible_routes(v, p);
            peers.push(
                self.cache()
                    .node_json(p, cfg, policy, &routes, false, now)?,
            );
        }
        let filter = policy.packet_filter(&v.node);
        let ssh = policy
            .ssh_policy(&v.node)
            .unwrap_or_else(|| Arc::from(EMPTY_SSH_POLICY));
        let msg = Message {
            base: MapResponse {
                domain: cfg.domain.clone(),
                collect_services: OptBool::False,
                user_profiles: profiles(snap, &users),
                control_time: Some(now),
                debug: Some(tailcfg::Debug {
                    disable_log_tail: !cfg.logtail,
                    ..Default::default()
                }),
                client_version: Some(ClientVersion {
                    running_latest: true,
                    ..Default::default()
                }),
                ..MapResponse::default()
            },
            node: Some(
                self.cache()
                    .node_json(v, cfg, policy, &v.offered_routes(), true, now)?,
            ),
            derp_map: Some(Arc::clone(&cfg.derp_map)),
            dns: cfg.dns.clone(),
            peers: Some(peers),
            peers_changed: Vec::new(),
            packet_filter: Some(Arc::clone(&filter)),
            ssh: Some(Arc::clone(&ssh)),
            share: Some(Share { viewer, peer_ids }),
        };
        let session = Session {
            node: viewer,
            version: snap.version(),
            cfg_gen: self.cfg_gen(),
            filter,
            ssh,
        };
        Ok((session, msg))
    }

    /// A session for a client that already holds `snap`'s state for `viewer` (it was just
    /// sent a full map of that snapshot by other means, e.g. a map built ahead of time),
    /// without building the map again.
    pub fn session_at(&self, snap: &Snapshot, viewer: NodeId) -> Result<Session, Error> {
        let v = snap.node(viewer).ok_or(Error::UnknownNode(viewer))?;
        let policy = snap.policy();
        Ok(Session {
            node: viewer,
            version: snap.version(),
            cfg_gen: self.cfg_gen(),
            filter: policy.packet_filter(&v.node),
            ssh: policy
                .ssh_policy(&v.node)
                .unwrap_or_else(|| Arc::from(EMPTY_SSH_POLICY)),
        })
    }

    /// [`Mapper::full_map`], framed for a stream that asked for zstd: the DERP map and
    /// the runs of peers other viewers also see are frames compressed once and shared (see
    /// `shared.rs`); the frame decodes to exactly [`Mapper::full_map`]'s JSON.
    pub fn full_map_frame(
        &self,
        snap: &Snapshot,
        viewer: NodeId,
        now: DateTime<Utc>,
    ) -> Result<(Session, Vec<u8>), Error> {
        let (session, msg) = self.full_message(snap, viewer, now)?;
        let mut sink = FrameSink::new(self.shared());
        msg.write(&mut sink)?;
        Ok((session, sink.finish()?))
    }
}

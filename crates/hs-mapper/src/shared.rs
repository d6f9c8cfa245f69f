//! Full maps as several zstd frames, with the parts many viewers share compressed once.
//!
//! In a reconnect storm every node asks for a full map at once, and in an all-to-all tailnet
//! each map repeats almost every other map's bytes: the DERP map and the peer entries. One
//! message may be any number of standalone zstd frames back to back (Tailscale's client
//! decodes with `zstdframe.AppendDecode`, which reads "zero or more frames"; any zstd stream
//! decoder does the same), so a full map is written as frames of its own bytes interleaved
//! with frames compressed once for everyone: the DERP map, and each run of peers that share
//! an id range (see `message::RUN_IDS`). A shared frame is found again by what it was made
//! of: the same key, prefix and the very same `Arc`s of serialised entries (the peer cache
//! hands out new `Arc`s whenever an entry's bytes change, and a cached frame holds its
//! `Arc`s, so an address cannot be reused while it is cached).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Error;
use crate::frame::{compress_into, set_length};
use crate::message::{Sink, join};

/// Shards keep concurrent map builds from serialising on one lock.
const SHARDS: usize = 16;

/// Variants kept per key, most recently used first: the current one and a few older
/// ones (viewers that see different subsets of a run, or a run mid-change).
const VARIANTS: usize = 3;

struct Part {
    prefix: &'static [u8],
    items: Vec<Arc<[u8]>>,
    frame: Arc<[u8]>,
}

impl Part {
    fn is(&self, prefix: &[u8], items: &[Arc<[u8]>]) -> bool {
        self.prefix == prefix
            && self.items.len() == items.len()
            && self.items.iter().zip(items).all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

/// Compressed shared parts, by key.
pub(crate) struct SharedFrames {
    shards: Vec<Mutex<HashMap<u64, Vec<Part>>>>,
}

impl std::fmt::Debug for SharedFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedFrames")
            .field("parts", &self.len())
            .finish()
    }
}

impl SharedFrames {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<Part>>> {
        self.shards[(key as usize) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of cached parts.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .values()
                    .map(Vec::len)
                    .sum::<usize>()
            })
            .sum()
    }

    /// The zstd frame of `prefix` and `items` joined by commas, compressed once per
    /// distinct content.
    pub(crate) fn frame(
        &self,
        key: u64,
        prefix: &'static [u8],
        items: &[Arc<[u8]>],
    ) -> Result<Arc<[u8]>, Error> {
        {
            let mut shard = self.shard(key);
            if let Some(parts) = shard.get_mut(&key)
                && let Some(at) = parts.iter().position(|p| p.is(prefix, items))
            {
                let part = parts.remove(at);
                let frame = Arc::clone(&part.frame);
                parts.insert(0, part);
                return Ok(frame);
            }
        }
        // Compress outside the lock: two threads may both compress a part new to both,
        // which costs one extra compression and nothing else.
        let mut json =
            Vec::with_capacity(prefix.len() + items.iter().map(|i| i.len() + 1).sum::<usize>());
        json.extend_from_slice(prefix);
        join(&mut json, items);
        let mut z = Vec::new();
        compress_into(&json, &mut z)?;
        let frame: Arc<[u8]> = z.into();
        let mut shard = self.shard(key);
        let parts = shard.entry(key).or_default();
        parts.retain(|p| !p.is(prefix, items));
        parts.insert(
            0,
            Part {
                prefix,
                items: items.to_vec(),
                frame: Arc::clone(&frame),
            },
        );
        parts.truncate(VARIANTS);
        Ok(frame)
    }
}

/// A [`Sink`] that writes one map-stream frame: the message's own bytes compressed as they
/// come between shared parts, and each shared part's cached frame.
pub(crate) struct FrameSink<'a> {
    shared: &'a SharedFrames,
    pending: Vec<u8>,
    pieces: Vec<Piece>,
}

enum Piece {
    Own(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Own(b) => b,
            Piece::Shared(b) => b,
        }
    }
}

impl<'a> FrameSink<'a> {
    pub(crate) fn new(shared: &'a SharedFrames) -> Self {
        Self {
            shared,
            pending: Vec::new(),
            pieces: Vec::new(),
        }
    }

    fn flush(&mut self) -> Result<(), Error> {
        if !self.pending.is_empty() {
            let mut z = Vec::new();
            compress_into(&self.pending, &mut z)?;
            self.pieces.push(Piece::Own(z));
            self.pending.clear();
        }
        Ok(())
    }

    /// The frame: `u32 LE length ‖ zstd frames`, allocated at its exact size (it waits in
    /// stream queues).
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, Error> {
        self.flush()?;
        let n: usize = self.pieces.iter().map(|p| p.bytes().len()).sum();
        let mut out = Vec::with_capacity(4 + n);
        out.extend_from_slice(&[0; 4]);
        for p in &self.pieces {
            out.extend_from_slice(p.bytes());
        }
        set_length(&mut out)?;
        Ok(out)
    }
}

impl Sink for FrameSink<'_> {
    fn own(&mut self, b: &[u8]) {
        self.pending.extend_from_slice(b);
    }

    fn shared(
        &mut self,
        key: u64,
        prefix: &'static [u8],
        items: &[Arc<[u8]>],
    ) -> Result<(), Error> {
        self.flush()?;
        let frame = self.shared.frame(key, prefix, items)?;
        self.pieces.push(Piece::Shared(frame));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use hs_types::NodeId;

    use super::*;
    use crate::frame::decode_frame;
    use crate::message::{Message, RUN_IDS, RUN_MIN, Share};

    /// The number of zstd frames in a map-stream frame's payload.
    fn zstd_frames(frame: &[u8]) -> usize {
        let mut rest = &frame[4..];
        let mut n = 0;
        while !rest.is_empty() {
            let len = zstd::zstd_safe::find_frame_compressed_size(rest).unwrap();
            rest = &rest[len..];
            n += 1;
        }
        n
    }

    fn entry(id: u64) -> Arc<[u8]> {
        Arc::from(
            format!(
                r#"{{"ID":{id},"Name":"node-{id}.example.com.","Addresses":["100.64.0.{}/32"]}}"#,
                id % 250
            )
            .into_bytes(),
        )
    }

    /// One DERP map for every message, as the mapper's config holds one.
    fn derp() -> Arc<str> {
        static DERP: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
        Arc::clone(DERP.get_or_init(|| Arc::from(r#"{"Regions":{"900":{"RegionID":900}}}"#)))
    }

    fn message(viewer: u64, ids: &[u64], entries: &HashMap<u64, Arc<[u8]>>) -> Message {
        Message {
            node: Some(Arc::clone(&entries[&viewer])),
            derp_map: Some(derp()),
            peers: Some(ids.iter().map(|i| Arc::clone(&entries[i])).collect()),
            packet_filter: Some(Arc::from("[]")),
            share: Some(Share {
                viewer: NodeId(viewer),
                peer_ids: ids.iter().copied().map(NodeId).collect(),
            }),
            ..Message::default()
        }
    }

    fn framed(m: &Message, shared: &SharedFrames) -> Vec<u8> {
        let mut sink = FrameSink::new(shared);
        m.write(&mut sink).unwrap();
        sink.finish().unwrap()
    }

    #[test]
    fn dense_runs_are_shared_frames_and_the_whole_decodes_to_the_json() {
        let entries: HashMap<u64, Arc<[u8]>> = (1..=200).map(|i| (i, entry(i))).collect();
        let shared = SharedFrames::new();
        let all_but = |v: u64| (1..=200).filter(|i| *i != v).collect::<Vec<_>>();
        // Viewer 100 sits in run 1; runs 0, 2 and 3 and the DERP map are shared.
        let m = message(100, &all_but(100), &entries);
        let f = framed(&m, &shared);
        let (json, rest) = decode_frame(&f).unwrap();
        assert!(rest.is_empty());
        assert_eq!(json, m.to_json().unwrap());
        serde_json::from_slice::<serde_json::Value>(&json).unwrap();
        // Head, DERP map, `"Peers":[`, run 0, run 1 (own), run 2, run 3, the rest.
        assert_eq!(zstd_frames(&f), 8);
        assert_eq!(shared.len(), 4);
        // Viewer 10 (run 0) reuses runs 2 and 3 and the DERP map, and adds run 1.
        let m = message(10, &all_but(10), &entries);
        let g = framed(&m, &shared);
        assert_eq!(decode_frame(&g).unwrap().0, m.to_json().unwrap());
        assert_eq!(shared.len(), 5);
        // A changed entry is never served from a stale part.
        let mut entries = entries;
        entries.insert(150, Arc::from(&br#"{"ID":150,"Name":"renamed."}"#[..]));
        let m = message(10, &all_but(10), &entries);
        let h = framed(&m, &shared);
        let json = decode_frame(&h).unwrap().0;
        assert_eq!(json, m.to_json().unwrap());
        assert!(String::from_utf8(json).unwrap().contains("renamed."));
        assert_eq!(shared.len(), 6, "run 2 has a second variant");
    }

    #[test]
    fn sparse_peers_stay_in_the_viewers_own_frame() {
        // Every 16th node: fewer than RUN_MIN per run, so nothing but the DERP map is shared.
        let ids: Vec<u64> = (1..=40).map(|i| i * 16).collect();
        assert!(ids.len() / (ids.len() * 16 / RUN_IDS as usize) < RUN_MIN);
        let entries: HashMap<u64, Arc<[u8]>> = ids.iter().map(|i| (*i, entry(*i))).collect();
        let shared = SharedFrames::new();
        let m = message(16, &ids[1..], &entries);
        let f = framed(&m, &shared);
        assert_eq!(decode_frame(&f).unwrap().0, m.to_json().unwrap());
        assert_eq!(zstd_frames(&f), 3, "head, DERP map, the rest");
        assert_eq!(shared.len(), 1);
    }

    #[test]
    fn a_message_without_share_is_one_frame() {
        let entries: HashMap<u64, Arc<[u8]>> = (1..=100).map(|i| (i, entry(i))).collect();
        let mut m = message(1, &(2..=100).collect::<Vec<_>>(), &entries);
        m.share = None;
        let shared = SharedFrames::new();
        let f = framed(&m, &shared);
        assert_eq!(zstd_frames(&f), 1);
        assert_eq!(decode_frame(&f).unwrap().0, m.to_json().unwrap());
        assert_eq!(shared.len(), 0);
    }

    #[test]
    fn a_key_keeps_a_bounded_number_of_variants() {
        let shared = SharedFrames::new();
        for i in 0..10u64 {
            let items: Vec<Arc<[u8]>> = (0..RUN_MIN as u64).map(|j| entry(i * 100 + j)).collect();
            shared.frame(1, b",", &items).unwrap();
        }
        assert_eq!(shared.len(), VARIANTS);
    }
}

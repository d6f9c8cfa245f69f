//! What a simulated client keeps of its map: its own node ID and the set of peer IDs, kept
//! up to date from full maps and deltas (`Peers`, `PeersChanged`, `PeersRemoved`,
//! `PeersChangedPatch`), and the map stream's framing (u32 LE length, zstd).
//!
//! Only IDs and the endpoints of changed peers are decoded; peers are a bitset by node ID,
//! so 10,000 clients of a 10,000-node tailnet hold about 12 MB of peer state in total.

use anyhow::{Context as _, bail};
use bytes::{Buf as _, BytesMut};
use serde::Deserialize;

/// The most a frame may claim to be, compressed or not; a larger length is a broken stream.
const MAX_FRAME: usize = 256 << 20;

#[derive(Deserialize)]
struct Id {
    #[serde(rename = "ID")]
    id: u64,
}

#[derive(Deserialize)]
struct Changed {
    #[serde(rename = "ID", alias = "NodeID")]
    id: u64,
    #[serde(rename = "Endpoints", default)]
    endpoints: Option<Vec<String>>,
}

/// The parts of a `MapResponse` the tool follows.
#[derive(Deserialize, Default)]
pub(crate) struct Message {
    #[serde(rename = "Node")]
    node: Option<Id>,
    #[serde(rename = "Peers")]
    peers: Option<Vec<Id>>,
    #[serde(rename = "PeersChanged")]
    peers_changed: Option<Vec<Changed>>,
    #[serde(rename = "PeersRemoved")]
    peers_removed: Option<Vec<u64>>,
    #[serde(rename = "PeersChangedPatch")]
    patches: Option<Vec<Changed>>,
}

impl Message {
    /// Parses a decompressed frame.
    pub(crate) fn parse(json: &[u8]) -> anyhow::Result<Self> {
        serde_json::from_slice(json).context("map response JSON")
    }

    /// Whether `id` is listed as changed or patched with `endpoint` among its endpoints.
    pub(crate) fn mentions(&self, id: u64, endpoint: &str) -> bool {
        self.peers_changed
            .iter()
            .flatten()
            .chain(self.patches.iter().flatten())
            .any(|c| {
                c.id == id
                    && c.endpoints
                        .as_ref()
                        .is_some_and(|e| e.iter().any(|x| x == endpoint))
            })
    }
}

/// A set of node IDs as a bitset.
#[derive(Debug, Default)]
pub(crate) struct PeerSet {
    bits: Vec<u64>,
    len: u32,
}

impl PeerSet {
    fn insert(&mut self, id: u64) {
        let (w, b) = ((id / 64) as usize, id % 64);
        if w >= self.bits.len() {
            self.bits.resize(w + 1, 0);
        }
        if self.bits[w] & (1 << b) == 0 {
            self.bits[w] |= 1 << b;
            self.len += 1;
        }
    }

    fn remove(&mut self, id: u64) {
        let (w, b) = ((id / 64) as usize, id % 64);
        if let Some(word) = self.bits.get_mut(w)
            && *word & (1 << b) != 0
        {
            *word &= !(1 << b);
            self.len -= 1;
        }
    }

    /// How many peers.
    pub(crate) fn len(&self) -> u32 {
        self.len
    }
}

/// A client's map: its node ID and peers.
#[derive(Debug, Default)]
pub(crate) struct NetMap {
    pub(crate) self_id: u64,
    pub(crate) peers: PeerSet,
}

impl NetMap {
    /// Applies one message; `full` for the first message of a stream, which replaces
    /// everything even when it lists no peer (Go omits an empty `Peers`).
    pub(crate) fn apply(&mut self, m: &Message, full: bool) {
        if let Some(n) = &m.node {
            self.self_id = n.id;
        }
        if full || m.peers.is_some() {
            self.peers.bits.clear();
            self.peers.len = 0;
            for p in m.peers.iter().flatten() {
                self.peers.insert(p.id);
            }
        }
        for p in m.peers_changed.iter().flatten() {
            self.peers.insert(p.id);
        }
        for id in m.peers_removed.iter().flatten() {
            self.peers.remove(*id);
        }
    }
}

/// Splits complete frames off `buf` and returns their decompressed payloads.
pub(crate) fn take_frames(buf: &mut BytesMut, out: &mut Vec<Vec<u8>>) -> anyhow::Result<()> {
    while buf.len() >= 4 {
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > MAX_FRAME {
            bail!("frame length {len} is past any map's size");
        }
        if buf.len() < 4 + len {
            break;
        }
        buf.advance(4);
        let frame = buf.split_to(len);
        out.push(decompress(&frame).context("zstd frame")?);
    }
    Ok(())
}

/// Decompresses a message: one or more zstd frames. When each declares its content size (as
/// Tailscale's, Go Headscale's and this server's encoders write them), into one buffer of
/// exactly their sum with a decompression context kept per thread: a stream decoder grows
/// its output by doubling, copying a full map's JSON several times.
fn decompress(frames: &[u8]) -> anyhow::Result<Vec<u8>> {
    thread_local! {
        static CTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let mut size = 0usize;
    let mut rest = frames;
    while !rest.is_empty() {
        let n = zstd::zstd_safe::find_frame_compressed_size(rest).map_err(|e| {
            anyhow::anyhow!("not a zstd frame ({})", zstd::zstd_safe::get_error_name(e))
        })?;
        match zstd::zstd_safe::get_frame_content_size(rest) {
            Ok(Some(c)) => size = size.saturating_add(usize::try_from(c).unwrap_or(usize::MAX)),
            // A frame written without its size (a streaming encoder): decode as a stream.
            Ok(None) => return Ok(zstd::stream::decode_all(frames)?),
            Err(_) => bail!("a zstd frame with a broken header"),
        }
        if size > MAX_FRAME {
            bail!("frames claim {size} bytes, past any map's size");
        }
        rest = &rest[n..];
    }
    CTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        let ctx = match &mut *slot {
            Some(c) => c,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        let out = ctx.decompress(frames, size)?;
        if out.len() != size {
            bail!(
                "frames decompressed to {} bytes, not the {size} they claim",
                out.len()
            );
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(json: &str) -> Vec<u8> {
        let z = zstd::stream::encode_all(json.as_bytes(), 1).unwrap();
        let mut out = (z.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&z);
        out
    }

    #[test]
    fn full_maps_and_deltas_keep_the_peer_set() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&frame(
            r#"{"Node":{"ID":7},"Peers":[{"ID":1},{"ID":2},{"ID":300}]}"#,
        ));
        let second = frame(
            r#"{"PeersChanged":[{"ID":4,"Endpoints":["127.0.0.1:20001"]}],"PeersRemoved":[2],"PeersChangedPatch":[{"NodeID":1,"Endpoints":["127.0.0.1:20002"]}]}"#,
        );
        // A frame split across reads waits for its rest.
        buf.extend_from_slice(&second[..5]);
        let mut out = Vec::new();
        take_frames(&mut buf, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        buf.extend_from_slice(&second[5..]);
        take_frames(&mut buf, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert!(buf.is_empty());

        let mut map = NetMap::default();
        let first = Message::parse(&out[0]).unwrap();
        map.apply(&first, true);
        assert_eq!((map.self_id, map.peers.len()), (7, 3));
        let delta = Message::parse(&out[1]).unwrap();
        map.apply(&delta, false);
        assert_eq!(map.peers.len(), 3, "1, 4, 300");
        assert!(delta.mentions(4, "127.0.0.1:20001"));
        assert!(delta.mentions(1, "127.0.0.1:20002"));
        assert!(!delta.mentions(1, "127.0.0.1:20001"));
        // Removing an absent peer changes nothing; a full map with no peers clears.
        map.apply(&Message::parse(br#"{"PeersRemoved":[99]}"#).unwrap(), false);
        assert_eq!(map.peers.len(), 3);
        map.apply(&Message::parse(br#"{"Node":{"ID":7}}"#).unwrap(), true);
        assert_eq!(map.peers.len(), 0);
    }

    #[test]
    fn messages_of_several_frames_decode_whole() {
        let a = zstd::bulk::compress(br#"{"Node":{"ID":7},"Peers":[{"ID":1},"#, 1).unwrap();
        let b = zstd::bulk::compress(br#"{"ID":2}]}"#, 1).unwrap();
        let mut both = a.clone();
        both.extend_from_slice(&b);
        assert_eq!(
            decompress(&both).unwrap(),
            br#"{"Node":{"ID":7},"Peers":[{"ID":1},{"ID":2}]}"#
        );
        // A frame without a content size (streaming encoder) among them still decodes.
        let c = zstd::stream::encode_all(&br#"{"x":1}"#[..], 1).unwrap();
        let mut three = both.clone();
        three.extend_from_slice(&c);
        assert!(decompress(&three).unwrap().ends_with(br#"]}{"x":1}"#));
        // Garbage after a frame, or a truncated frame, is an error.
        let mut bad = a.clone();
        bad.extend_from_slice(b"nope");
        assert!(decompress(&bad).is_err());
        assert!(decompress(&a[..a.len() - 1]).is_err());
    }

    #[test]
    fn an_absurd_frame_length_is_an_error() {
        let mut buf = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
        assert!(take_frames(&mut buf, &mut Vec::new()).is_err());
    }
}

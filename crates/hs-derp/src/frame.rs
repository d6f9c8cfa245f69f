//! DERP frames as values: the protocol constants, the frame type bytes, a [`Frame`] enum with
//! one variant per frame kind, and exact encoding / strict parsing of each payload. Sans-IO.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};
use hs_types::NodePublic;

/// `"DERP🔑"`: the 8 bytes that open the server's `ServerKey` frame.
pub const MAGIC: [u8; 8] = [0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94, 0x91];
/// Length of a frame header: type (1) and big-endian payload length (4).
pub const FRAME_HEADER_LEN: usize = 5;
/// Length of a Curve25519 public key on the wire.
pub const KEY_LEN: usize = 32;
/// Length of a NaCl box nonce.
pub const NONCE_LEN: usize = 24;
/// Largest relayed packet, not counting the key that precedes it.
pub const MAX_PACKET_SIZE: usize = 64 << 10;
/// Largest `ServerInfo` (and any other informational frame) a peer accepts.
pub const MAX_INFO_LEN: usize = 1 << 20;
/// Largest `ClientInfo` the server accepts.
pub const MAX_CLIENT_INFO_LEN: usize = 256 << 10;
/// Smallest possible `ClientInfo`: key, nonce and an empty box's tag.
pub const MIN_CLIENT_INFO_LEN: usize = KEY_LEN + NONCE_LEN;
/// The DERP protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 2;
/// Prefix of a disco message, which earns a `PeerGone(NotHere)` when its destination is absent.
pub const DISCO_MAGIC: [u8; 6] = [0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac];

/// The frame type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// S→C: magic and the server's public key.
    ServerKey = 0x01,
    /// C→S: client key, nonce and sealed client info JSON.
    ClientInfo = 0x02,
    /// S→C: nonce and sealed server info JSON.
    ServerInfo = 0x03,
    /// C→S: destination key and packet.
    SendPacket = 0x04,
    /// S→C: source key and packet.
    RecvPacket = 0x05,
    /// S→C: empty keep-alive.
    KeepAlive = 0x06,
    /// C→S: whether this server is the client's home.
    NotePreferred = 0x07,
    /// S→C: a peer left (or was never here).
    PeerGone = 0x08,
    /// S→C (watchers): a peer connected.
    PeerPresent = 0x09,
    /// Mesh: source, destination and packet.
    ForwardPacket = 0x0a,
    /// C→S (mesh): subscribe to connection changes.
    WatchConns = 0x10,
    /// C→S (mesh): close a peer's connection.
    ClosePeer = 0x11,
    /// Both: 8 bytes to echo.
    Ping = 0x12,
    /// Both: the echoed 8 bytes.
    Pong = 0x13,
    /// S→C: a health problem text, empty when cleared.
    Health = 0x14,
    /// S→C: the server is restarting.
    Restarting = 0x15,
}

impl FrameType {
    /// The known frame type for a byte, if any.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => Self::ServerKey,
            0x02 => Self::ClientInfo,
            0x03 => Self::ServerInfo,
            0x04 => Self::SendPacket,
            0x05 => Self::RecvPacket,
            0x06 => Self::KeepAlive,
            0x07 => Self::NotePreferred,
            0x08 => Self::PeerGone,
            0x09 => Self::PeerPresent,
            0x0a => Self::ForwardPacket,
            0x10 => Self::WatchConns,
            0x11 => Self::ClosePeer,
            0x12 => Self::Ping,
            0x13 => Self::Pong,
            0x14 => Self::Health,
            0x15 => Self::Restarting,
            _ => return None,
        })
    }

    /// The largest payload allowed for a frame of type `b`, checked before the payload is read
    /// so an oversize frame never gets buffered.
    pub fn max_payload_len(b: u8) -> usize {
        match Self::from_byte(b) {
            Some(Self::SendPacket | Self::RecvPacket) => KEY_LEN + MAX_PACKET_SIZE,
            Some(Self::ForwardPacket) => 2 * KEY_LEN + MAX_PACKET_SIZE,
            Some(Self::ClientInfo) => MAX_CLIENT_INFO_LEN,
            _ => MAX_INFO_LEN,
        }
    }
}

/// Why a peer is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerGoneReason {
    /// The peer was connected and disconnected.
    Disconnected,
    /// The peer is not connected to this server.
    NotHere,
    /// A reason byte this crate does not know.
    Other(u8),
}

impl PeerGoneReason {
    fn to_byte(self) -> u8 {
        match self {
            Self::Disconnected => 0x00,
            Self::NotHere => 0x01,
            Self::Other(b) => b,
        }
    }

    fn from_byte(b: u8) -> Self {
        match b {
            0x00 => Self::Disconnected,
            0x01 => Self::NotHere,
            b => Self::Other(b),
        }
    }
}

/// `PeerPresent` flag: an ordinary client.
pub const PEER_PRESENT_IS_REGULAR: u8 = 1;
/// `PeerPresent` flag: a mesh peer.
pub const PEER_PRESENT_IS_MESH_PEER: u8 = 2;
/// `PeerPresent` flag: a prober.
pub const PEER_PRESENT_IS_PROBER: u8 = 4;

/// One DERP frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The server's public key (after the magic).
    ServerKey {
        /// The server's DERP public key.
        key: NodePublic,
    },
    /// The client's key and its sealed info (`nonce ‖ box`).
    ClientInfo {
        /// The client's node public key.
        key: NodePublic,
        /// Nonce followed by the NaCl box of the JSON client info.
        sealed: Bytes,
    },
    /// The server's sealed info (`nonce ‖ box`).
    ServerInfo {
        /// Nonce followed by the NaCl box of the JSON server info.
        sealed: Bytes,
    },
    /// A packet for `dst`.
    SendPacket {
        /// Destination node key.
        dst: NodePublic,
        /// The packet.
        packet: Bytes,
    },
    /// A packet from `src`.
    RecvPacket {
        /// Source node key.
        src: NodePublic,
        /// The packet.
        packet: Bytes,
    },
    /// Keep-alive.
    KeepAlive,
    /// Whether this server is the client's home region.
    NotePreferred {
        /// True for "home".
        preferred: bool,
    },
    /// A peer is gone.
    PeerGone {
        /// The peer's key.
        peer: NodePublic,
        /// Why.
        reason: PeerGoneReason,
    },
    /// A peer connected (sent to watchers).
    PeerPresent {
        /// The peer's key.
        peer: NodePublic,
        /// Where it connected from (unspecified when unknown).
        addr: SocketAddr,
        /// `PEER_PRESENT_*` flags.
        flags: u8,
    },
    /// A mesh-forwarded packet.
    ForwardPacket {
        /// Original sender.
        src: NodePublic,
        /// Destination.
        dst: NodePublic,
        /// The packet.
        packet: Bytes,
    },
    /// Subscribe to connection changes.
    WatchConns,
    /// Close a peer.
    ClosePeer {
        /// The peer to close.
        peer: NodePublic,
    },
    /// Ping with 8 bytes of data.
    Ping([u8; 8]),
    /// Pong echoing a ping's data.
    Pong([u8; 8]),
    /// Health problem text; empty clears it.
    Health {
        /// The problem, or empty.
        problem: String,
    },
    /// The server is restarting.
    Restarting {
        /// Milliseconds to wait before reconnecting.
        reconnect_in_ms: u32,
        /// Milliseconds to keep trying.
        try_for_ms: u32,
    },
    /// A frame type this crate does not know; skipped by receivers.
    Unknown {
        /// The type byte.
        frame_type: u8,
        /// The payload.
        payload: Bytes,
    },
}

/// Why a frame could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The payload length is wrong for the frame type.
    #[error("DERP frame type {frame_type:#04x}: payload of {len} bytes, expected {expected}")]
    BadLength {
        /// The type byte.
        frame_type: u8,
        /// The payload length received.
        len: usize,
        /// A description of what is allowed.
        expected: &'static str,
    },
    /// The header announces a payload larger than this frame type allows.
    #[error("DERP frame type {frame_type:#04x}: length {len} exceeds the limit of {max} bytes")]
    TooLarge {
        /// The type byte.
        frame_type: u8,
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The `ServerKey` frame does not start with the DERP magic.
    #[error("DERP ServerKey frame: bad magic")]
    BadMagic,
    /// A `Health` frame is not UTF-8.
    #[error("DERP Health frame: text is not UTF-8")]
    BadHealthText,
}

fn key_at(payload: &[u8], at: usize) -> NodePublic {
    let mut k = [0u8; KEY_LEN];
    k.copy_from_slice(&payload[at..at + KEY_LEN]);
    NodePublic::from_bytes(k)
}

fn need(
    frame_type: u8,
    payload: &[u8],
    ok: bool,
    expected: &'static str,
) -> Result<(), FrameError> {
    if ok {
        Ok(())
    } else {
        Err(FrameError::BadLength {
            frame_type,
            len: payload.len(),
            expected,
        })
    }
}

impl Frame {
    /// The type byte of this frame.
    pub fn type_byte(&self) -> u8 {
        let t = match self {
            Self::ServerKey { .. } => FrameType::ServerKey,
            Self::ClientInfo { .. } => FrameType::ClientInfo,
            Self::ServerInfo { .. } => FrameType::ServerInfo,
            Self::SendPacket { .. } => FrameType::SendPacket,
            Self::RecvPacket { .. } => FrameType::RecvPacket,
            Self::KeepAlive => FrameType::KeepAlive,
            Self::NotePreferred { .. } => FrameType::NotePreferred,
            Self::PeerGone { .. } => FrameType::PeerGone,
            Self::PeerPresent { .. } => FrameType::PeerPresent,
            Self::ForwardPacket { .. } => FrameType::ForwardPacket,
            Self::WatchConns => FrameType::WatchConns,
            Self::ClosePeer { .. } => FrameType::ClosePeer,
            Self::Ping(_) => FrameType::Ping,
            Self::Pong(_) => FrameType::Pong,
            Self::Health { .. } => FrameType::Health,
            Self::Restarting { .. } => FrameType::Restarting,
            Self::Unknown { frame_type, .. } => return *frame_type,
        };
        t as u8
    }

    /// Parses the payload of a frame whose header said `frame_type`.
    pub fn parse(frame_type: u8, payload: Bytes) -> Result<Self, FrameError> {
        let t = frame_type;
        let p = &payload[..];
        let Some(kind) = FrameType::from_byte(t) else {
            return Ok(Self::Unknown {
                frame_type: t,
                payload,
            });
        };
        Ok(match kind {
            FrameType::ServerKey => {
                // Later protocol versions may append bytes; only the prefix is ours.
                need(t, p, p.len() >= MAGIC.len() + KEY_LEN, "at least 40")?;
                if p[..MAGIC.len()] != MAGIC {
                    return Err(FrameError::BadMagic);
                }
                Self::ServerKey {
                    key: key_at(p, MAGIC.len()),
                }
            }
            FrameType::ClientInfo => {
                need(t, p, p.len() >= MIN_CLIENT_INFO_LEN, "at least 56")?;
                Self::ClientInfo {
                    key: key_at(p, 0),
                    sealed: payload.slice(KEY_LEN..),
                }
            }
            FrameType::ServerInfo => {
                need(t, p, p.len() >= NONCE_LEN, "at least 24")?;
                Self::ServerInfo { sealed: payload }
            }
            FrameType::SendPacket => {
                need(t, p, p.len() >= KEY_LEN, "at least 32")?;
                Self::SendPacket {
                    dst: key_at(p, 0),
                    packet: payload.slice(KEY_LEN..),
                }
            }
            FrameType::RecvPacket => {
                need(t, p, p.len() >= KEY_LEN, "at least 32")?;
                Self::RecvPacket {
                    src: key_at(p, 0),
                    packet: payload.slice(KEY_LEN..),
                }
            }
            FrameType::KeepAlive => Self::KeepAlive,
            FrameType::NotePreferred => {
                need(t, p, p.len() == 1, "exactly 1")?;
                Self::NotePreferred {
                    preferred: p[0] != 0,
                }
            }
            FrameType::PeerGone => {
                need(t, p, p.len() >= KEY_LEN, "at least 32")?;
                let reason = p.get(KEY_LEN).copied().unwrap_or(0);
                Self::PeerGone {
                    peer: key_at(p, 0),
                    reason: PeerGoneReason::from_byte(reason),
                }
            }
            FrameType::PeerPresent => {
                // Old servers sent only the key, then key+ip+port; the flags byte came last.
                need(t, p, p.len() >= KEY_LEN, "at least 32")?;
                let addr = if p.len() >= KEY_LEN + 18 {
                    let mut ip = [0u8; 16];
                    ip.copy_from_slice(&p[KEY_LEN..KEY_LEN + 16]);
                    let ip = Ipv6Addr::from(ip);
                    let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
                    let port = u16::from_be_bytes([p[KEY_LEN + 16], p[KEY_LEN + 17]]);
                    SocketAddr::new(ip, port)
                } else {
                    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
                };
                let flags = p.get(KEY_LEN + 18).copied().unwrap_or(0);
                Self::PeerPresent {
                    peer: key_at(p, 0),
                    addr,
                    flags,
                }
            }
            FrameType::ForwardPacket => {
                need(t, p, p.len() >= 2 * KEY_LEN, "at least 64")?;
                Self::ForwardPacket {
                    src: key_at(p, 0),
                    dst: key_at(p, KEY_LEN),
                    packet: payload.slice(2 * KEY_LEN..),
                }
            }
            FrameType::WatchConns => Self::WatchConns,
            FrameType::ClosePeer => {
                need(t, p, p.len() == KEY_LEN, "exactly 32")?;
                Self::ClosePeer { peer: key_at(p, 0) }
            }
            FrameType::Ping | FrameType::Pong => {
                need(t, p, p.len() >= 8, "at least 8")?;
                let mut data = [0u8; 8];
                data.copy_from_slice(&p[..8]);
                if kind == FrameType::Ping {
                    Self::Ping(data)
                } else {
                    Self::Pong(data)
                }
            }
            FrameType::Health => {
                let problem =
                    String::from_utf8(p.to_vec()).map_err(|_| FrameError::BadHealthText)?;
                Self::Health { problem }
            }
            FrameType::Restarting => {
                need(t, p, p.len() >= 8, "at least 8")?;
                Self::Restarting {
                    reconnect_in_ms: u32::from_be_bytes([p[0], p[1], p[2], p[3]]),
                    try_for_ms: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                }
            }
        })
    }

    /// The length of this frame's payload.
    pub fn payload_len(&self) -> usize {
        match self {
            Self::ServerKey { .. } => MAGIC.len() + KEY_LEN,
            Self::ClientInfo { sealed, .. } => KEY_LEN + sealed.len(),
            Self::ServerInfo { sealed } => sealed.len(),
            Self::SendPacket { packet, .. } | Self::RecvPacket { packet, .. } => {
                KEY_LEN + packet.len()
            }
            Self::KeepAlive | Self::WatchConns => 0,
            Self::NotePreferred { .. } => 1,
            Self::PeerGone { .. } => KEY_LEN + 1,
            Self::PeerPresent { .. } => KEY_LEN + 16 + 2 + 1,
            Self::ForwardPacket { packet, .. } => 2 * KEY_LEN + packet.len(),
            Self::ClosePeer { .. } => KEY_LEN,
            Self::Ping(_) | Self::Pong(_) | Self::Restarting { .. } => 8,
            Self::Health { problem } => problem.len(),
            Self::Unknown { payload, .. } => payload.len(),
        }
    }

    /// Appends the header and payload of this frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let len = self.payload_len();
        out.reserve(FRAME_HEADER_LEN + len);
        out.put_u8(self.type_byte());
        // Every constructible payload is far below 4 GiB: packets are bounded by the codec.
        out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        match self {
            Self::ServerKey { key } => {
                out.put_slice(&MAGIC);
                out.put_slice(key.as_bytes());
            }
            Self::ClientInfo { key, sealed } => {
                out.put_slice(key.as_bytes());
                out.put_slice(sealed);
            }
            Self::ServerInfo { sealed } => out.put_slice(sealed),
            Self::SendPacket { dst: k, packet } | Self::RecvPacket { src: k, packet } => {
                out.put_slice(k.as_bytes());
                out.put_slice(packet);
            }
            Self::KeepAlive | Self::WatchConns => {}
            Self::NotePreferred { preferred } => out.put_u8(u8::from(*preferred)),
            Self::PeerGone { peer, reason } => {
                out.put_slice(peer.as_bytes());
                out.put_u8(reason.to_byte());
            }
            Self::PeerPresent { peer, addr, flags } => {
                out.put_slice(peer.as_bytes());
                let ip = match addr.ip() {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                    IpAddr::V6(v6) => v6,
                };
                out.put_slice(&ip.octets());
                out.put_u16(addr.port());
                out.put_u8(*flags);
            }
            Self::ForwardPacket { src, dst, packet } => {
                out.put_slice(src.as_bytes());
                out.put_slice(dst.as_bytes());
                out.put_slice(packet);
            }
            Self::ClosePeer { peer } => out.put_slice(peer.as_bytes()),
            Self::Ping(d) | Self::Pong(d) => out.put_slice(d),
            Self::Health { problem } => out.put_slice(problem.as_bytes()),
            Self::Restarting {
                reconnect_in_ms,
                try_for_ms,
            } => {
                out.put_u32(*reconnect_in_ms);
                out.put_u32(*try_for_ms);
            }
            Self::Unknown { payload, .. } => out.put_slice(payload),
        }
    }

    /// The encoded frame as a fresh buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }
}

/// Whether `packet` is a disco message (for which absent peers are reported as `NotHere`).
pub fn is_disco(packet: &[u8]) -> bool {
    packet.len() >= DISCO_MAGIC.len() + KEY_LEN + NONCE_LEN && packet.starts_with(&DISCO_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(b: u8) -> NodePublic {
        NodePublic::from_bytes([b; 32])
    }

    fn roundtrip(f: Frame) {
        let bytes = f.to_bytes();
        assert_eq!(bytes.len(), FRAME_HEADER_LEN + f.payload_len());
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        assert_eq!(len, bytes.len() - FRAME_HEADER_LEN);
        let back = Frame::parse(bytes[0], bytes.slice(FRAME_HEADER_LEN..)).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn every_frame_roundtrips() {
        roundtrip(Frame::ServerKey { key: k(1) });
        roundtrip(Frame::ClientInfo {
            key: k(2),
            sealed: Bytes::from(vec![7; 40]),
        });
        roundtrip(Frame::ServerInfo {
            sealed: Bytes::from(vec![7; 40]),
        });
        roundtrip(Frame::SendPacket {
            dst: k(3),
            packet: Bytes::from_static(b"hi"),
        });
        roundtrip(Frame::RecvPacket {
            src: k(3),
            packet: Bytes::new(),
        });
        roundtrip(Frame::KeepAlive);
        roundtrip(Frame::NotePreferred { preferred: true });
        roundtrip(Frame::PeerGone {
            peer: k(4),
            reason: PeerGoneReason::NotHere,
        });
        roundtrip(Frame::PeerPresent {
            peer: k(5),
            addr: "127.0.0.1:4242".parse().unwrap(),
            flags: PEER_PRESENT_IS_REGULAR,
        });
        roundtrip(Frame::PeerPresent {
            peer: k(5),
            addr: "[::1]:1".parse().unwrap(),
            flags: 4,
        });
        roundtrip(Frame::ForwardPacket {
            src: k(1),
            dst: k(2),
            packet: Bytes::from_static(b"x"),
        });
        roundtrip(Frame::WatchConns);
        roundtrip(Frame::ClosePeer { peer: k(9) });
        roundtrip(Frame::Ping(*b"12345678"));
        roundtrip(Frame::Pong(*b"87654321"));
        roundtrip(Frame::Health {
            problem: "disk full".into(),
        });
        roundtrip(Frame::Restarting {
            reconnect_in_ms: 500,
            try_for_ms: 10_000,
        });
        roundtrip(Frame::Unknown {
            frame_type: 0x7f,
            payload: Bytes::from_static(b"zz"),
        });
    }

    #[test]
    fn server_key_has_magic_on_the_wire() {
        let b = Frame::ServerKey { key: k(0xaa) }.to_bytes();
        assert_eq!(&b[..5], &[0x01, 0, 0, 0, 40]);
        assert_eq!(&b[5..13], b"DERP\xf0\x9f\x94\x91");
        assert_eq!(&b[13..], &[0xaa; 32]);
    }

    #[test]
    fn short_and_bad_payloads_are_named_errors() {
        let e = Frame::parse(0x04, Bytes::from_static(&[0; 10])).unwrap_err();
        assert_eq!(
            e,
            FrameError::BadLength {
                frame_type: 0x04,
                len: 10,
                expected: "at least 32"
            }
        );
        assert!(e.to_string().contains("0x04"));
        assert_eq!(
            Frame::parse(0x01, Bytes::from(vec![0u8; 40])).unwrap_err(),
            FrameError::BadMagic
        );
        assert!(Frame::parse(0x07, Bytes::from_static(&[1, 1])).is_err());
        assert!(Frame::parse(0x12, Bytes::from_static(&[1; 7])).is_err());
        assert!(Frame::parse(0x02, Bytes::from(vec![0u8; 55])).is_err());
        assert_eq!(
            Frame::parse(0x14, Bytes::from_static(&[0xff, 0xfe])).unwrap_err(),
            FrameError::BadHealthText
        );
    }

    #[test]
    fn peer_gone_without_reason_means_disconnected() {
        let f = Frame::parse(0x08, Bytes::from(vec![3u8; 32])).unwrap();
        assert_eq!(
            f,
            Frame::PeerGone {
                peer: k(3),
                reason: PeerGoneReason::Disconnected
            }
        );
    }

    #[test]
    fn disco_detection_needs_magic_and_length() {
        let mut p = DISCO_MAGIC.to_vec();
        p.extend([0u8; 56]);
        assert!(is_disco(&p));
        assert!(!is_disco(&p[..40]));
        p[0] = b'X';
        assert!(!is_disco(&p));
    }
}

//! Incremental DERP frame decoding from a byte buffer: header first, the per-type size limit
//! checked before any payload is buffered, then [`Frame::parse`]. Sans-IO: the caller reads
//! bytes into the buffer.

use bytes::{Buf, BytesMut};

use crate::frame::{FRAME_HEADER_LEN, Frame, FrameError, FrameType};

/// Pulls whole frames out of a growing buffer.
#[derive(Debug, Default, Clone)]
pub struct FrameDecoder {
    _priv: (),
}

impl FrameDecoder {
    /// A decoder with the protocol's per-type limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// If `buf` starts with a whole frame, removes and parses it. `Ok(None)` means more bytes
    /// are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let frame_type = buf[0];
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        let max = FrameType::max_payload_len(frame_type);
        if len > max {
            return Err(FrameError::TooLarge {
                frame_type,
                len,
                max,
            });
        }
        if buf.len() < FRAME_HEADER_LEN + len {
            buf.reserve(FRAME_HEADER_LEN + len - buf.len());
            return Ok(None);
        }
        buf.advance(FRAME_HEADER_LEN);
        let payload = buf.split_to(len).freeze();
        Frame::parse(frame_type, payload).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes};
    use hs_types::NodePublic;

    use super::*;
    use crate::frame::{KEY_LEN, MAX_PACKET_SIZE};

    #[test]
    fn decodes_frames_split_at_every_byte() {
        let a = Frame::SendPacket {
            dst: NodePublic::from_bytes([1; 32]),
            packet: Bytes::from_static(b"abc"),
        };
        let b = Frame::Ping(*b"pingpong");
        let mut wire = BytesMut::new();
        a.encode(&mut wire);
        b.encode(&mut wire);
        let wire = wire.freeze();
        let mut dec = FrameDecoder::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire.iter() {
            buf.put_u8(*byte);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, vec![a, b]);
        assert!(buf.is_empty());
    }

    #[test]
    fn oversize_packet_is_refused_from_the_header_alone() {
        let mut buf = BytesMut::new();
        buf.put_u8(0x04);
        buf.put_u32((KEY_LEN + MAX_PACKET_SIZE + 1) as u32);
        let err = FrameDecoder::new().decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    frame_type: 0x04,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn largest_packet_is_accepted() {
        let f = Frame::SendPacket {
            dst: NodePublic::from_bytes([2; 32]),
            packet: Bytes::from(vec![9u8; MAX_PACKET_SIZE]),
        };
        let mut buf = BytesMut::new();
        f.encode(&mut buf);
        assert_eq!(FrameDecoder::new().decode(&mut buf).unwrap(), Some(f));
    }

    #[test]
    fn oversize_client_info_is_refused() {
        let mut buf = BytesMut::new();
        buf.put_u8(0x02);
        buf.put_u32((256 << 10) + 1);
        assert!(FrameDecoder::new().decode(&mut buf).is_err());
    }
}

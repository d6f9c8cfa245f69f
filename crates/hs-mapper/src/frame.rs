//! Map-stream framing: each message is a little-endian u32 length followed by standalone
//! zstd frames of the JSON (`tailscale-protocol.md` §3.2: one frame, or several back to back
//! for a full map, see `shared.rs`), and the keep-alive schedule.

use std::time::Duration;

use crate::error::Error;

/// zstd level for map frames: Tailscale and Headscale use the fastest setting, and map
/// JSON compresses well enough at level 1 that higher levels only cost CPU.
const ZSTD_LEVEL: i32 = 1;

/// The JSON of a keep-alive message.
pub const KEEPALIVE_JSON: &[u8] = br#"{"KeepAlive":true}"#;

/// Base keep-alive interval; clients give up after 120 s of silence.
pub const KEEPALIVE_BASE: Duration = Duration::from_secs(50);

/// Upper bound of the random jitter added to [`KEEPALIVE_BASE`] (Headscale adds 0–9 s).
pub const KEEPALIVE_JITTER_MAX: Duration = Duration::from_secs(9);

/// Compresses `json` into one frame: `u32 LE length ‖ zstd frame` (with a content checksum,
/// as Tailscale's encoder writes).
///
/// The frame is allocated at its exact size: frames wait in stream queues and are shared
/// across viewers, so a buffer sized for the worst case (as large as the JSON) would hold
/// ten times the bytes sent.
pub fn encode_frame(json: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = vec![0; 4];
    compress_into(json, &mut out)?;
    set_length(&mut out)?;
    Ok(out)
}

/// Writes the length prefix of a frame assembled in `out` (four placeholder bytes, then
/// the payload).
pub(crate) fn set_length(out: &mut [u8]) -> Result<(), Error> {
    let n = out.len() - 4;
    let len = u32::try_from(n).map_err(|_| Error::TooLarge(n))?;
    out[..4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Appends one standalone zstd frame of `json` to `out`, growing `out` by exactly its size.
///
/// The compressor context and its scratch buffer are kept per thread, so a storm of full
/// maps does not allocate a context per map.
pub(crate) fn compress_into(json: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Option<(zstd::bulk::Compressor<'static>, Vec<u8>)>> =
            const { std::cell::RefCell::new(None) };
    }
    SCRATCH.with(|cell| {
        let mut slot = cell.borrow_mut();
        let (c, buf) = match &mut *slot {
            Some(s) => s,
            None => {
                let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(Error::Compress)?;
                c.include_checksum(true).map_err(Error::Compress)?;
                c.include_contentsize(true).map_err(Error::Compress)?;
                slot.insert((c, Vec::new()))
            }
        };
        let bound = zstd::zstd_safe::compress_bound(json.len());
        buf.clear();
        buf.resize(bound, 0);
        let n = c
            .compress_to_buffer(json, &mut buf[..])
            .map_err(Error::Compress)?;
        out.reserve_exact(n);
        out.extend_from_slice(&buf[..n]);
        // A thread that once compressed a huge map does not keep that much scratch.
        if buf.capacity() > SCRATCH_KEEP {
            *buf = Vec::new();
        }
        Ok(())
    })
}

/// Scratch kept per thread between frames: enough for the full map of a 10,000-node
/// tailnet, so a storm of full maps reuses one buffer per thread.
const SCRATCH_KEEP: usize = 8 << 20;

/// Splits one frame off the front of `buf` and decompresses it; returns the JSON and the
/// rest of the buffer. The inverse of [`encode_frame`], for tests and diagnostics.
pub fn decode_frame(buf: &[u8]) -> Result<(Vec<u8>, &[u8]), Error> {
    let Some((head, rest)) = buf.split_first_chunk::<4>() else {
        return Err(Error::BadFrame(format!(
            "{} bytes is too short for a length prefix",
            buf.len()
        )));
    };
    let len = u32::from_le_bytes(*head) as usize;
    if rest.len() < len {
        return Err(Error::BadFrame(format!(
            "length prefix says {len} bytes but only {} follow",
            rest.len()
        )));
    }
    let (frame, rest) = rest.split_at(len);
    let json = zstd::decode_all(frame).map_err(|e| Error::BadFrame(e.to_string()))?;
    Ok((json, rest))
}

/// The keep-alive message, framed.
pub fn keepalive_frame() -> Result<Vec<u8>, Error> {
    encode_frame(KEEPALIVE_JSON)
}

/// The delay before the next keep-alive: 50 s plus a jitter derived from `random` (any
/// uniformly random number the caller draws), so sessions do not wake in lockstep.
pub fn keepalive_interval(random: u64) -> Duration {
    let span = KEEPALIVE_JITTER_MAX.as_millis() as u64 + 1;
    KEEPALIVE_BASE + Duration::from_millis(random % span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_le_length() {
        let json = br#"{"Node":{"ID":1},"Peers":[]}"#;
        let f = encode_frame(json).unwrap();
        let len = u32::from_le_bytes(f[..4].try_into().unwrap()) as usize;
        assert_eq!(len, f.len() - 4);
        // zstd frame magic 0xFD2FB528, little-endian on the wire.
        assert_eq!(&f[4..8], &[0x28, 0xb5, 0x2f, 0xfd]);
        let mut two = f.clone();
        two.extend_from_slice(&keepalive_frame().unwrap());
        let (a, rest) = decode_frame(&two).unwrap();
        assert_eq!(a, json);
        let (b, rest) = decode_frame(rest).unwrap();
        assert_eq!(b, KEEPALIVE_JSON);
        assert!(rest.is_empty());
    }

    #[test]
    fn a_frame_holds_only_its_compressed_bytes() {
        // 2 MB of map-like JSON compresses to a small fraction; the frame must not keep a
        // buffer sized for the JSON.
        let peer = br#"{"ID":1,"Name":"node.example.com.","Addresses":["100.64.0.1/32"]},"#;
        let json: Vec<u8> = peer.iter().copied().cycle().take(2 << 20).collect();
        let f = encode_frame(&json).unwrap();
        assert!(f.len() < json.len() / 10, "{} bytes", f.len());
        assert_eq!(f.capacity(), f.len());
        // Frames from the reused context stand alone.
        let g = encode_frame(b"{}").unwrap();
        assert_eq!(decode_frame(&f).unwrap().0, json);
        assert_eq!(decode_frame(&g).unwrap().0, b"{}");
    }

    #[test]
    fn truncated_frames_are_errors() {
        let f = encode_frame(b"{}").unwrap();
        assert!(matches!(decode_frame(&f[..2]), Err(Error::BadFrame(_))));
        assert!(matches!(
            decode_frame(&f[..f.len() - 1]),
            Err(Error::BadFrame(_))
        ));
    }

    #[test]
    fn keepalive_interval_stays_in_50_to_59_s() {
        assert_eq!(keepalive_interval(0), Duration::from_secs(50));
        assert_eq!(keepalive_interval(9000), Duration::from_secs(59));
        assert_eq!(keepalive_interval(9001), Duration::from_secs(50));
        for r in [1u64, 77, 123_456_789, u64::MAX] {
            let d = keepalive_interval(r);
            assert!(d >= KEEPALIVE_BASE && d <= KEEPALIVE_BASE + KEEPALIVE_JITTER_MAX);
        }
    }
}

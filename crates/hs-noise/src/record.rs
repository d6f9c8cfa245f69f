//! Transport records after the handshake: framing (`0x04`, u16 BE length, ciphertext),
//! the 4096-byte frame limit, and per-direction ChaCha20-Poly1305 with Tailscale's
//! big-endian nonce counter. Sans-IO: callers hand in buffers.

use crate::Error;
use crate::crypto::{Aead, HASH_LEN, TAG_LEN};

/// Message type of a transport record.
pub const MSG_TYPE_RECORD: u8 = 0x04;
/// Record header: type and u16 BE ciphertext length.
pub const HEADER_LEN: usize = 3;
/// Largest frame on the wire, header included.
pub const MAX_FRAME_LEN: usize = 4096;
/// Largest ciphertext in one frame.
pub const MAX_CIPHERTEXT_LEN: usize = MAX_FRAME_LEN - HEADER_LEN;
/// Largest plaintext in one record; writers split larger writes here.
pub const MAX_PLAINTEXT_LEN: usize = MAX_CIPHERTEXT_LEN - TAG_LEN;

/// Counter value at which a direction is used up (Go's `invalidNonce`).
const EXHAUSTED: u64 = u64::MAX;

/// Looks at buffered bytes from the peer and says whether a whole frame is there.
///
/// Returns `Ok(None)` when more bytes are needed, `Ok(Some(n))` when the first `n` bytes
/// are one complete frame, and an error as soon as the header shows a bad type or length,
/// so a hostile peer cannot make us buffer more than [`MAX_FRAME_LEN`] bytes.
pub fn parse_frame(buf: &[u8]) -> Result<Option<usize>, Error> {
    let Some(&[ty, hi, lo]) = buf.first_chunk::<HEADER_LEN>() else {
        return match buf.first() {
            Some(&ty) if ty != MSG_TYPE_RECORD => Err(Error::UnknownMessageType { got: ty }),
            _ => Ok(None),
        };
    };
    if ty != MSG_TYPE_RECORD {
        return Err(Error::UnknownMessageType { got: ty });
    }
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > MAX_CIPHERTEXT_LEN {
        return Err(Error::FrameTooLarge {
            len: len + HEADER_LEN,
        });
    }
    if len < TAG_LEN {
        return Err(Error::FrameTooShort { len });
    }
    let total = HEADER_LEN + len;
    Ok((buf.len() >= total).then_some(total))
}

/// The sending half: seals plaintext into frames with an increasing counter.
pub struct Sealer {
    aead: Aead,
    counter: u64,
}

impl Sealer {
    /// Number of records sealed so far (the next nonce).
    #[must_use]
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Appends one frame carrying `plaintext` (at most [`MAX_PLAINTEXT_LEN`] bytes) to `out`.
    pub fn seal_record(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(Error::PlaintextTooLarge {
                len: plaintext.len(),
            });
        }
        if self.counter == EXHAUSTED {
            return Err(Error::NonceExhausted);
        }
        let ct_len = plaintext.len() + TAG_LEN;
        out.reserve(HEADER_LEN + ct_len);
        out.push(MSG_TYPE_RECORD);
        // ct_len ≤ MAX_CIPHERTEXT_LEN < u16::MAX, checked above.
        out.extend_from_slice(&(ct_len as u16).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self.aead.seal(self.counter, &[], &mut out[start..]);
        out.extend_from_slice(&tag);
        self.counter += 1;
        Ok(())
    }

    /// Appends as many frames as `data` needs, splitting at [`MAX_PLAINTEXT_LEN`]. An empty
    /// `data` produces one empty record.
    pub fn seal(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        if data.is_empty() {
            return self.seal_record(data, out);
        }
        for chunk in data.chunks(MAX_PLAINTEXT_LEN) {
            self.seal_record(chunk, out)?;
        }
        Ok(())
    }

    #[cfg(test)]
    fn set_counter(&mut self, c: u64) {
        self.counter = c;
    }
}

/// The receiving half: opens frames in order.
pub struct Opener {
    aead: Aead,
    counter: u64,
}

impl Opener {
    /// Number of records opened so far (the next expected nonce).
    #[must_use]
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Decrypts one whole frame (as delimited by [`parse_frame`]) in place and returns the
    /// plaintext, a sub-slice of `frame`. Any failure is fatal for the session.
    pub fn open<'a>(&mut self, frame: &'a mut [u8]) -> Result<&'a [u8], Error> {
        match parse_frame(frame)? {
            Some(n) if n == frame.len() => {}
            // A caller passing a partial or over-long slice is a programming error, but it
            // must not be mistaken for a valid record.
            _ => return Err(Error::FrameTooShort { len: frame.len() }),
        }
        if self.counter == EXHAUSTED {
            return Err(Error::NonceExhausted);
        }
        let body_len = frame.len() - HEADER_LEN - TAG_LEN;
        let (body, tag) = frame[HEADER_LEN..].split_at_mut(body_len);
        if !self.aead.open(self.counter, &[], body, tag) {
            return Err(Error::RecordDecrypt {
                counter: self.counter,
            });
        }
        self.counter += 1;
        Ok(body)
    }

    #[cfg(test)]
    fn set_counter(&mut self, c: u64) {
        self.counter = c;
    }
}

/// Both directions of an established session.
pub struct Transport {
    /// Outgoing records.
    pub sealer: Sealer,
    /// Incoming records.
    pub opener: Opener,
}

impl Transport {
    /// Builds a transport from the send and receive keys the handshake split produced.
    #[must_use]
    pub fn new(tx_key: &[u8; HASH_LEN], rx_key: &[u8; HASH_LEN]) -> Self {
        Self {
            sealer: Sealer {
                aead: Aead::new(tx_key),
                counter: 0,
            },
            opener: Opener {
                aead: Aead::new(rx_key),
                counter: 0,
            },
        }
    }

    /// Separates the two directions so reading and writing can proceed independently.
    #[must_use]
    pub fn split(self) -> (Sealer, Opener) {
        (self.sealer, self.opener)
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("sent", &self.sealer.counter)
            .field("received", &self.opener.counter)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Transport, Transport) {
        (
            Transport::new(&[1; 32], &[2; 32]),
            Transport::new(&[2; 32], &[1; 32]),
        )
    }

    #[test]
    fn exhausted_counter_refuses_both_directions() {
        let (mut a, mut b) = pair();
        a.sealer.set_counter(u64::MAX - 1);
        b.opener.set_counter(u64::MAX - 1);
        let mut out = Vec::new();
        a.sealer.seal_record(b"last", &mut out).unwrap();
        assert_eq!(b.opener.open(&mut out).unwrap(), b"last");
        assert!(matches!(
            a.sealer.seal_record(b"x", &mut Vec::new()),
            Err(Error::NonceExhausted)
        ));
        let mut frame = vec![MSG_TYPE_RECORD, 0, 16];
        frame.extend_from_slice(&[0; 16]);
        assert!(matches!(
            b.opener.open(&mut frame),
            Err(Error::NonceExhausted)
        ));
    }

    #[test]
    fn open_rejects_slice_that_is_not_exactly_one_frame() {
        let (mut a, mut b) = pair();
        let mut out = Vec::new();
        a.sealer.seal_record(b"abc", &mut out).unwrap();
        out.push(0);
        assert!(matches!(
            b.opener.open(&mut out),
            Err(Error::FrameTooShort { .. })
        ));
        assert_eq!(b.opener.counter(), 0);
    }
}

//! Fuzzes DERP over WebSocket as the server reads a client: any byte stream from the client,
//! delivered in reads of a size the input chooses and read through buffers of another size,
//! must give data, end of stream or an error, never a panic and never `Pending` (the peer is
//! always ready). What is read and what the server writes back (pongs, the close reply) must
//! equal what a plain reading of RFC 6455 framing predicts, so the output is never longer
//! than the input and does not depend on how the bytes were split.
#![no_main]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use hs_derp::ws::{Role, WsStream};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client's side of the connection: hands out `input` `chunk` bytes at a time, then end
/// of stream; takes every write at once.
struct Peer<'a> {
    input: &'a [u8],
    chunk: usize,
    written: &'a mut Vec<u8>,
}

impl AsyncRead for Peer<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.chunk.min(self.input.len()).min(buf.remaining());
        let (head, tail) = self.input.split_at(n);
        buf.put_slice(head);
        self.input = tail;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Peer<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What a reader of RFC 6455 framing gets from `b`: the unmasked payloads of data frames
/// (streamed, so a frame cut short by the end still yields what arrived), the server's
/// replies (a pong echoing each ping, an empty close answering a close, which ends the
/// stream), and whether it stops on an error (a control frame over 125 bytes).
fn expected(mut b: &[u8]) -> (Vec<u8>, Vec<u8>, bool) {
    let mut data = Vec::new();
    let mut replies = Vec::new();
    loop {
        let Some(&[b0, b1]) = b.first_chunk::<2>() else {
            return (data, replies, false);
        };
        let opcode = b0 & 0x0f;
        let (len, mut at) = match b1 & 0x7f {
            126 => match b.get(2..4) {
                Some(l) => (u64::from(u16::from_be_bytes([l[0], l[1]])), 4),
                None => return (data, replies, false),
            },
            127 => match b.get(2..10) {
                Some(l) => (u64::from_be_bytes(l.try_into().expect("8 bytes")), 10),
                None => return (data, replies, false),
            },
            l => (u64::from(l), 2),
        };
        let mask = if b1 & 0x80 != 0 {
            let Some(m) = b.get(at..at + 4) else {
                return (data, replies, false);
            };
            at += 4;
            [m[0], m[1], m[2], m[3]]
        } else {
            [0; 4]
        };
        b = &b[at..];
        let avail = usize::try_from(len).map_or(b.len(), |l| l.min(b.len()));
        let payload: Vec<u8> = b[..avail]
            .iter()
            .enumerate()
            .map(|(i, x)| x ^ mask[i % 4])
            .collect();
        if opcode & 0x8 == 0 {
            data.extend_from_slice(&payload);
            if (avail as u64) < len {
                return (data, replies, false);
            }
            b = &b[avail..];
            continue;
        }
        if len > 125 {
            return (data, replies, true);
        }
        if (avail as u64) < len {
            return (data, replies, false);
        }
        b = &b[avail..];
        match opcode {
            0x8 => {
                replies.extend_from_slice(&[0x88, 0]);
                return (data, replies, false);
            }
            0x9 => {
                replies.extend_from_slice(&[0x8a, payload.len() as u8]);
                replies.extend_from_slice(&payload);
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[split], input)) = data.split_first_chunk::<1>() else {
        return;
    };
    // Low nibble: the peer's read size; high nibble: the size of our read buffer.
    let chunk = 1usize << (split & 0x0f);
    let out_len = 1 + usize::from(split >> 4) * 37;
    let mut written = Vec::new();
    let peer = Peer {
        input,
        chunk,
        written: &mut written,
    };
    let mut ws = WsStream::new(peer, Role::Server, BytesMut::new());
    let mut cx = Context::from_waker(Waker::noop());
    let mut got = Vec::new();
    let mut buf = vec![0u8; out_len];
    let failed = loop {
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut ws).poll_read(&mut cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => break false,
            Poll::Ready(Ok(())) => got.extend_from_slice(rb.filled()),
            Poll::Ready(Err(_)) => break true,
            Poll::Pending => panic!("Pending although the peer is always ready"),
        }
        assert!(got.len() <= input.len(), "read more than the client sent");
    };
    drop(ws);
    let (want, replies, want_err) = expected(input);
    assert_eq!(failed, want_err, "error where the framing says otherwise");
    assert_eq!(got, want, "payload differs from the framing");
    assert_eq!(written, replies, "replies differ from the framing");
});

//! Fuzzes the WebSocket variant of ts2021 as the server runs it: `WsIo` over tungstenite in
//! the server role with `ws_config()`, reading a client that is always ready, in reads of a
//! size the input chooses. Any bytes give data, end of stream or an error, never a panic or
//! `Pending`, and never more data than the client sent. Inputs whose first byte has the top
//! bit set are instead messages (split at 0xff) sent as masked binary frames, some fragmented
//! and some after a ping, then a close: reading must give exactly their concatenation.
//!
//! Every input that is UTF-8 is also a query parameter for `query_unescape`, which must
//! agree with Go's `url.QueryUnescape` (written out below from its definition) and invert
//! `QueryEscape`.
#![no_main]

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use hs_noise::{WsIo, query_unescape, ws_config};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The client's side of the connection: hands out `input` `chunk` bytes at a time, then end
/// of stream; takes every write at once.
struct Peer {
    input: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl AsyncRead for Peer {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let at = self.at;
        let n = self.chunk.min(self.input.len() - at).min(buf.remaining());
        buf.put_slice(&self.input[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Peer {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Reads `input` as the server does; returns what was read and whether it ended in an
/// error. Flushes after each read so queued pongs go out.
fn read_all(input: Vec<u8>, chunk: usize, out_len: usize) -> (Vec<u8>, bool) {
    let mut cx = Context::from_waker(Waker::noop());
    let peer = Peer {
        input,
        at: 0,
        chunk,
    };
    let ws = match pin!(WebSocketStream::from_raw_socket(
        peer,
        Role::Server,
        Some(ws_config())
    ))
    .poll(&mut cx)
    {
        Poll::Ready(ws) => ws,
        Poll::Pending => panic!("from_raw_socket pending"),
    };
    let mut io = WsIo::new(ws);
    let mut got = Vec::new();
    let mut buf = vec![0u8; out_len];
    loop {
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut io).poll_read(&mut cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => return (got, false),
            Poll::Ready(Ok(())) => got.extend_from_slice(rb.filled()),
            Poll::Ready(Err(_)) => return (got, true),
            Poll::Pending => panic!("Pending although the peer is always ready"),
        }
        if let Poll::Ready(Err(_)) = Pin::new(&mut io).poll_flush(&mut cx) {
            return (got, true);
        }
    }
}

/// A client frame: FIN as given, masked with `mask`.
fn frame(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    match payload.len() {
        l @ 0..126 => out.push(0x80 | l as u8),
        l => {
            out.push(0x80 | 126);
            out.extend_from_slice(
                &u16::try_from(l)
                    .expect("fuzz inputs are short")
                    .to_be_bytes(),
            );
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

/// Messages split at 0xff, each a binary message: odd ones fragmented in two, every third
/// after a ping; then a close.
fn structured(rest: &[u8], chunk: usize, out_len: usize) {
    let mut wire = Vec::new();
    let mut want = Vec::new();
    for (i, msg) in rest.split(|b| *b == 0xff).enumerate() {
        let mask = [i as u8, 0x5a, 0xa5, msg.len() as u8];
        if i % 3 == 2 {
            frame(&mut wire, true, 0x9, &msg[..msg.len().min(125)], mask);
        }
        if i % 2 == 1 {
            let (a, b) = msg.split_at(msg.len() / 2);
            frame(&mut wire, false, 0x2, a, mask);
            frame(&mut wire, true, 0x0, b, mask);
        } else {
            frame(&mut wire, true, 0x2, msg, mask);
        }
        want.extend_from_slice(msg);
    }
    frame(&mut wire, true, 0x8, &[0x03, 0xe8], [9, 8, 7, 6]);
    let (got, failed) = read_all(wire, chunk, out_len);
    assert!(!failed, "well-formed frames gave an error");
    assert_eq!(got, want, "read differs from the messages sent");
}

/// Go's `url.QueryUnescape`, from net/url's `unescape` in `encodeQueryComponent` mode: `%`
/// must be followed by two hex digits, `+` is a space. Go returns any bytes; the adapter
/// needs text, so non-UTF-8 results are `None` here as there.
fn go_query_unescape(s: &str) -> Option<String> {
    let hex = |c: u8| char::from(c).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let (hi, lo) = (hex(*b.get(i + 1)?)?, hex(*b.get(i + 2)?)?);
                out.push(u8::try_from(hi << 4 | lo).expect("two hex digits"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Go's `url.QueryEscape`: unreserved bytes as themselves, space as `+`, the rest `%XX`.
fn go_query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let got = query_unescape(s);
        assert_eq!(got, go_query_unescape(s), "differs from Go on {s:?}");
        assert_eq!(query_unescape(&go_query_escape(s)).as_deref(), Some(s));
    }
    let Some((&[split], rest)) = data.split_first_chunk::<1>() else {
        return;
    };
    // Bits 0-3: the peer's read size; bits 4-6: the size of our read buffer.
    let chunk = 1usize << (split & 0x0f);
    let out_len = 1 + usize::from((split >> 4) & 0x07) * 613;
    if split & 0x80 != 0 {
        structured(rest, chunk, out_len);
        return;
    }
    let (got, _) = read_all(rest.to_vec(), chunk, out_len);
    assert!(got.len() <= rest.len(), "read more than the client sent");
});

//! DERP over WebSocket (`Upgrade: websocket`, subprotocol `derp`): the accept-key
//! computation and a byte-stream adapter that carries the DERP stream in binary messages, as
//! Go's derper does. Data frames of any opcode are concatenated; pings are answered, close
//! ends the stream. The server side writes unmasked frames; the client side (for tests and
//! harnesses) masks them.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use base64::Engine;
use bytes::{Buf, BufMut, BytesMut};
use rand::RngCore;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::error::Error;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xa;
const OP_BINARY: u8 = 0x2;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Which end of the connection this is (clients mask what they send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The server: writes unmasked frames.
    Server,
    /// The client: writes masked frames.
    Client,
}

/// A WebSocket connection seen as a plain byte stream.
#[derive(Debug)]
pub struct WsStream<S> {
    inner: S,
    role: Role,
    rbuf: BytesMut,
    /// Payload bytes left in the current data frame.
    remaining: u64,
    mask: Option<[u8; 4]>,
    mask_off: usize,
    wbuf: BytesMut,
    closed: bool,
}

fn encode_frame(out: &mut BytesMut, opcode: u8, payload: &[u8], role: Role) {
    out.put_u8(0x80 | opcode);
    let mask_bit = if role == Role::Client { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.put_u8(mask_bit | len as u8);
    } else if let Ok(l) = u16::try_from(len) {
        out.put_u8(mask_bit | 126);
        out.put_u16(l);
    } else {
        out.put_u8(mask_bit | 127);
        out.put_u64(len as u64);
    }
    if role == Role::Client {
        let mut mask = [0u8; 4];
        rand::thread_rng().fill_bytes(&mut mask);
        out.put_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.put_slice(payload);
    }
}

/// A parsed frame header: opcode, payload length, mask, header length.
fn parse_header(b: &[u8]) -> Option<(u8, u64, Option<[u8; 4]>, usize)> {
    if b.len() < 2 {
        return None;
    }
    let opcode = b[0] & 0x0f;
    let masked = b[1] & 0x80 != 0;
    let (len, mut at) = match b[1] & 0x7f {
        126 => (u64::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?])), 4),
        127 => {
            let s: [u8; 8] = b.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(s), 10)
        }
        l => (u64::from(l), 2),
    };
    let mask = if masked {
        let m: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(m)
    } else {
        None
    };
    Some((opcode, len, mask, at))
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    /// Wraps an upgraded connection; `leftover` holds bytes already read past the HTTP head.
    pub fn new(inner: S, role: Role, leftover: BytesMut) -> Self {
        Self {
            inner,
            role,
            rbuf: leftover,
            remaining: 0,
            mask: None,
            mask_off: 0,
            wbuf: BytesMut::new(),
            closed: false,
        }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.wbuf.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.wbuf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wbuf.advance(n);
        }
        Poll::Ready(Ok(()))
    }

    /// Reads more bytes from the socket into `rbuf`; `Ok(false)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let mut tmp = [0u8; 16 * 1024];
        let mut rb = ReadBuf::new(&mut tmp);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb))?;
        if rb.filled().is_empty() {
            return Poll::Ready(Ok(false));
        }
        self.rbuf.extend_from_slice(rb.filled());
        Poll::Ready(Ok(true))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.closed {
                return Poll::Ready(Ok(()));
            }
            if this.remaining > 0 && !this.rbuf.is_empty() {
                let n = (this.remaining.min(this.rbuf.len() as u64) as usize).min(out.remaining());
                let mut chunk = this.rbuf.split_to(n);
                if let Some(m) = this.mask {
                    for (i, b) in chunk.iter_mut().enumerate() {
                        *b ^= m[(this.mask_off + i) % 4];
                    }
                }
                this.mask_off += n;
                this.remaining -= n as u64;
                out.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            if this.remaining == 0
                && let Some((opcode, len, mask, hlen)) = parse_header(&this.rbuf)
            {
                if opcode & 0x8 == 0 {
                    this.rbuf.advance(hlen);
                    this.remaining = len;
                    this.mask = mask;
                    this.mask_off = 0;
                    continue;
                }
                if len > 125 {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "WebSocket control frame longer than 125 bytes",
                    )));
                }
                if this.rbuf.len() >= hlen + len as usize {
                    this.rbuf.advance(hlen);
                    let mut payload = this.rbuf.split_to(len as usize);
                    if let Some(m) = mask {
                        for (i, b) in payload.iter_mut().enumerate() {
                            *b ^= m[i % 4];
                        }
                    }
                    match opcode {
                        OP_CLOSE => {
                            this.closed = true;
                            encode_frame(&mut this.wbuf, OP_CLOSE, &[], this.role);
                            let _ = this.poll_drain(cx);
                        }
                        OP_PING => {
                            encode_frame(&mut this.wbuf, OP_PONG, &payload, this.role);
                            let _ = this.poll_drain(cx);
                        }
                        _ => {}
                    }
                    continue;
                }
            }
            if !ready!(this.poll_fill(cx))? {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        encode_frame(&mut this.wbuf, OP_BINARY, buf, this.role);
        // The frame is ours now; push what the socket takes without waiting.
        let _ = this.poll_drain(cx)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Client side: asks for a WebSocket upgrade of `/derp` with subprotocol `derp`, checks the
/// accept key and returns the stream ready for the DERP handshake.
pub async fn client_upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
) -> Result<WsStream<S>, Error> {
    let mut nonce = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut nonce);
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let req = format!(
        "GET /derp HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: derp\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await?;
    let mut buf = BytesMut::with_capacity(1024);
    let head = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break buf.split_to(end + 4);
        }
        if buf.len() > 16 * 1024 || stream.read_buf(&mut buf).await? == 0 {
            return Err(Error::Upgrade("no WebSocket upgrade response".into()));
        }
    };
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if head.split_whitespace().nth(1) != Some("101") {
        return Err(Error::Upgrade(format!(
            "server answered {}",
            head.lines().next().unwrap_or("")
        )));
    }
    let want = format!(
        "sec-websocket-accept: {}",
        accept_key(&key).to_ascii_lowercase()
    );
    if !head.lines().any(|l| l.trim() == want) {
        return Err(Error::Upgrade("bad Sec-WebSocket-Accept".into()));
    }
    Ok(WsStream::new(stream, Role::Client, buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn headers_of_every_length_class_parse() {
        for (len, hlen) in [(5usize, 2usize), (300, 4), (70_000, 10)] {
            let mut b = BytesMut::new();
            encode_frame(&mut b, OP_BINARY, &vec![1u8; len], Role::Server);
            assert_eq!(parse_header(&b), Some((OP_BINARY, len as u64, None, hlen)));
            assert_eq!(parse_header(&b[..hlen - 1]), None);
            let mut c = BytesMut::new();
            encode_frame(&mut c, OP_BINARY, &vec![1u8; len], Role::Client);
            let (_, l, mask, h) = parse_header(&c).unwrap();
            assert_eq!((l, h), (len as u64, hlen + 4));
            let m = mask.unwrap();
            assert!(c[h..].iter().enumerate().all(|(i, b)| b ^ m[i % 4] == 1));
        }
    }

    #[tokio::test]
    async fn masked_messages_and_pings_over_a_duplex_pipe() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let mut client = WsStream::new(a, Role::Client, BytesMut::new());
        let mut server = WsStream::new(b, Role::Server, BytesMut::new());
        client.write_all(b"hello ").await.unwrap();
        // A ping between data frames is answered and does not show up as data.
        let mut ping = BytesMut::new();
        encode_frame(&mut ping, OP_PING, b"p", Role::Client);
        client.inner.write_all(&ping).await.unwrap();
        client.write_all(b"world").await.unwrap();
        client.flush().await.unwrap();
        let mut got = [0u8; 11];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world");
        server.write_all(b"back").await.unwrap();
        server.flush().await.unwrap();
        let mut raw = [0u8; 3 + 6];
        client.inner.read_exact(&mut raw).await.unwrap();
        assert_eq!(&raw[..3], &[0x80 | OP_PONG, 1, b'p']);
        assert_eq!(&raw[3..], &[0x80 | OP_BINARY, 4, b'b', b'a', b'c', b'k']);
    }
}

//! grpc-go clients on the unix socket. Go Headscale's CLI dials the socket path itself as its
//! gRPC target, so every request carries that path (`/var/run/headscale/headscale.sock`) as
//! its HTTP/2 `:authority`. A path is not a URI authority, and the HTTP/2 stack under tonic
//! resets such a stream (`RST_STREAM PROTOCOL_ERROR`) before any handler runs; Go's gRPC
//! server does not check. So connections accepted on the socket go through a small filter
//! that, in HEADERS blocks only, replaces an `:authority` that is not a valid authority with
//! `localhost`; every other byte is passed on as it came. Plain HTTP/1.1 (curl on the socket)
//! is passed through untouched.
//!
//! Header blocks are decoded with the client's HPACK state and re-encoded without the
//! dynamic table, so the server's decoder state never depends on the rewrite.

use std::io;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, DuplexStream};
use tokio::net::UnixListener;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The frame size every HTTP/2 peer must accept (`SETTINGS_MAX_FRAME_SIZE` default).
const MAX_FRAME: usize = 16_384;
/// A header block larger than this is refused (the connection is closed).
const MAX_BLOCK: usize = 1 << 20;

/// The unix-socket listener with the `:authority` filter on every connection.
pub(crate) struct AuthorityFilter {
    pub(crate) inner: UnixListener,
}

impl Listener for AuthorityFilter {
    type Io = DuplexStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let (client_r, client_w) = stream.into_split();
            let (server_r, server_w) = tokio::io::split(theirs);
            let up = filter(client_r, server_w);
            let down = copy_and_close(server_r, client_w);
            if let (Err(e), _) | (_, Err(e)) = tokio::join!(up, down) {
                tracing::debug!(error = %e, "unix socket connection ended");
            }
        });
        (ours, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

async fn copy_and_close(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
) -> io::Result<()> {
    tokio::io::copy(&mut from, &mut to).await?;
    to.shutdown().await
}

/// Client to server: the preface, then frame by frame with HEADERS blocks rewritten.
async fn filter(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
) -> io::Result<()> {
    let mut preface = vec![0u8; PREFACE.len()];
    let mut got = 0;
    while got < PREFACE.len() {
        let n = from.read(&mut preface[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
        if preface[..got] != PREFACE[..got] {
            break;
        }
    }
    to.write_all(&preface[..got]).await?;
    if preface[..got] != *PREFACE {
        // Not HTTP/2 with prior knowledge (HTTP/1.1, or a closed connection): as it is.
        return copy_and_close(from, to).await;
    }
    let mut decoder = fluke_hpack::Decoder::new();
    // A header block in progress: its stream, flags, priority bytes and fragments.
    let mut block: Option<(u32, u8, Vec<u8>, Vec<u8>)> = None;
    loop {
        let mut head = [0u8; 9];
        if let Err(e) = from.read_exact(&mut head).await {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                return to.shutdown().await;
            }
            return Err(e);
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        from.read_exact(&mut payload).await?;
        match (kind, block.as_mut()) {
            (HEADERS, None) => {
                let (priority, fragment) = headers_parts(flags, &payload)?;
                block = Some((stream, flags, priority, fragment.to_vec()));
            }
            (CONTINUATION, Some((s, _, _, fragments))) if *s == stream => {
                fragments.extend_from_slice(&payload);
                if fragments.len() > MAX_BLOCK {
                    return Err(invalid("header block too large"));
                }
            }
            (_, Some(_)) => return Err(invalid("frame inside a header block")),
            _ => {
                to.write_all(&head).await?;
                to.write_all(&payload).await?;
                continue;
            }
        }
        let last = if kind == HEADERS { flags } else { 0 } & END_HEADERS != 0
            || (kind == CONTINUATION && flags & END_HEADERS != 0);
        if last && let Some((s, first_flags, priority, fragments)) = block.take() {
            let rewritten = rewrite(&mut decoder, &fragments)?;
            write_block(&mut to, s, first_flags, &priority, &rewritten).await?;
        }
    }
}

/// A HEADERS payload without padding: its priority bytes (if flagged) and its fragment.
fn headers_parts(flags: u8, payload: &[u8]) -> io::Result<(Vec<u8>, &[u8])> {
    let mut body = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        let (&p, rest) = body
            .split_first()
            .ok_or_else(|| invalid("empty padded frame"))?;
        pad = usize::from(p);
        body = rest;
    }
    if pad > body.len() {
        return Err(invalid("padding longer than the frame"));
    }
    body = &body[..body.len() - pad];
    if flags & PRIORITY != 0 {
        if body.len() < 5 {
            return Err(invalid("short priority field"));
        }
        return Ok((body[..5].to_vec(), &body[5..]));
    }
    Ok((Vec::new(), body))
}

/// The block decoded, `:authority` fixed when it is not an authority, and encoded again.
fn rewrite(decoder: &mut fluke_hpack::Decoder<'_>, block: &[u8]) -> io::Result<Vec<u8>> {
    let headers = decoder
        .decode(block)
        .map_err(|e| invalid(&format!("header block does not decode: {e:?}")))?;
    let fixed: Vec<(Vec<u8>, Vec<u8>)> = headers
        .into_iter()
        .map(|(name, value)| {
            if name == b":authority" && http::uri::Authority::try_from(&value[..]).is_err() {
                (name, b"localhost".to_vec())
            } else {
                (name, value)
            }
        })
        .collect();
    let mut encoder = fluke_hpack::Encoder::new();
    Ok(encoder.encode(fixed.iter().map(|(n, v)| (&n[..], &v[..]))))
}

/// One HEADERS frame (priority kept, no padding) and CONTINUATION frames as needed.
async fn write_block(
    to: &mut (impl AsyncWrite + Unpin),
    stream: u32,
    first_flags: u8,
    priority: &[u8],
    block: &[u8],
) -> io::Result<()> {
    let first_room = MAX_FRAME - priority.len();
    let (first, mut rest) = block.split_at(block.len().min(first_room));
    let mut flags = first_flags & (END_STREAM | PRIORITY);
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    let mut payload = priority.to_vec();
    payload.extend_from_slice(first);
    write_frame(to, HEADERS, flags, stream, &payload).await?;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
        rest = tail;
        let flags = if rest.is_empty() { END_HEADERS } else { 0 };
        write_frame(to, CONTINUATION, flags, stream, chunk).await?;
    }
    Ok(())
}

async fn write_frame(
    to: &mut (impl AsyncWrite + Unpin),
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
) -> io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| invalid("frame too large"))?;
    let mut head = [0u8; 9];
    head[..3].copy_from_slice(&len.to_be_bytes()[1..]);
    head[3] = kind;
    head[4] = flags;
    head[5..].copy_from_slice(&stream.to_be_bytes());
    to.write_all(&head).await?;
    to.write_all(payload).await
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client HEADERS frame carrying a path as `:authority` comes out with `localhost`,
    /// the other headers and the flags as they were; later frames pass untouched.
    #[tokio::test]
    async fn a_path_authority_becomes_localhost() {
        let mut enc = fluke_hpack::Encoder::new();
        let block = enc.encode([
            (&b":method"[..], &b"POST"[..]),
            (b":scheme", b"http"),
            (b":path", b"/headscale.v1.HeadscaleService/ListUsers"),
            (b":authority", b"/var/run/headscale/headscale.sock"),
            (b"content-type", b"application/grpc"),
        ]);
        let mut input = PREFACE.to_vec();
        let mut frame = Vec::new();
        write_frame(&mut frame, HEADERS, END_HEADERS, 1, &block)
            .await
            .unwrap();
        input.extend_from_slice(&frame);
        let mut data = Vec::new();
        write_frame(&mut data, 0x0, END_STREAM, 1, b"payload")
            .await
            .unwrap();
        input.extend_from_slice(&data);

        let mut out = Vec::new();
        filter(&input[..], &mut out).await.unwrap();
        assert_eq!(&out[..PREFACE.len()], PREFACE);
        let rest = &out[PREFACE.len()..];
        let len = usize::from(rest[2]) | usize::from(rest[1]) << 8;
        assert_eq!((rest[3], rest[4]), (HEADERS, END_HEADERS));
        let headers = fluke_hpack::Decoder::new()
            .decode(&rest[9..9 + len])
            .unwrap();
        let authority = headers.iter().find(|(n, _)| n == b":authority").unwrap();
        assert_eq!(authority.1, b"localhost");
        assert_eq!(headers.len(), 5);
        assert_eq!(&rest[9 + len..], &data[..], "the DATA frame is untouched");
    }

    #[tokio::test]
    async fn http1_passes_through() {
        let req = b"GET /api/v1/user HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut out = Vec::new();
        filter(&req[..], &mut out).await.unwrap();
        assert_eq!(out, req);
    }
}

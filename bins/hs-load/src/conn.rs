//! A lean ts2021 connection, as a Tailscale client opens one: `GET /key`, then `POST /ts2021`
//! with the Noise initiation in `X-Tailscale-Handshake`, the 101 and the Noise response, the
//! early payload skipped, and HTTP/2 inside the tunnel. No TLS: the tool talks to loopback.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use bytes::Bytes;
use hs_noise::{EARLY_PAYLOAD_MAGIC, Initiator, NoiseStream};
use hs_types::{MachinePrivate, MachinePublic};
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _,
};
use tokio::io::{BufReader, ReadBuf};
use tokio::net::TcpStream;

/// The capability version announced, as Tailscale's Rust client (Tailscale v1.90's).
pub(crate) const CAPABILITY_VERSION: u16 = 130;

/// An HTTP/2 handle on one Noise session; clones share the connection.
pub(crate) type H2 = h2::client::SendRequest<Bytes>;

/// The server's Noise public key from `GET /key?v=…`.
pub(crate) async fn server_key(addr: SocketAddr) -> anyhow::Result<MachinePublic> {
    let mut tcp = TcpStream::connect(addr)
        .await
        .context("connecting for /key")?;
    let req = format!(
        "GET /key?v={CAPABILITY_VERSION} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut resp = Vec::new();
    tcp.read_to_end(&mut resp).await?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("/key: no end of headers")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("/key: {}", head.lines().next().unwrap_or_default());
    }
    let v: serde_json::Value = serde_json::from_str(body.trim()).context("/key: body")?;
    let key = v["publicKey"].as_str().context("/key: no publicKey")?;
    key.parse().map_err(|e| anyhow::anyhow!("/key: {e}"))
}

/// Opens a Noise session as `machine` and starts HTTP/2 in it; the connection task runs on
/// the runtime until the handle and every stream are dropped.
pub(crate) async fn dial(
    addr: SocketAddr,
    server: &MachinePublic,
    machine: &MachinePrivate,
) -> anyhow::Result<H2> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (init, msg) =
        Initiator::start(machine, server, CAPABILITY_VERSION, &mut rand::rngs::OsRng)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(msg);
    let mut io = BufReader::with_capacity(1024, tcp);
    let req = format!(
        "POST /ts2021 HTTP/1.1\r\nHost: {addr}\r\nUpgrade: tailscale-control-protocol\r\n\
         Connection: upgrade\r\nX-Tailscale-Handshake: {b64}\r\nContent-Length: 0\r\n\r\n"
    );
    io.get_mut().write_all(req.as_bytes()).await?;
    let mut status = String::new();
    io.read_line(&mut status).await?;
    if !status.starts_with("HTTP/1.1 101") {
        bail!("/ts2021 upgrade refused: {}", status.trim());
    }
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            bail!("/ts2021: connection closed in the headers");
        }
        if line == "\r\n" {
            break;
        }
    }
    // The response's 3-byte header says how long it is (an error message is not 51 bytes).
    let mut head = [0u8; 3];
    io.read_exact(&mut head).await?;
    let mut resp = head.to_vec();
    resp.resize(3 + usize::from(u16::from_be_bytes([head[1], head[2]])), 0);
    io.read_exact(&mut resp[3..]).await?;
    let transport = init.finish(&resp)?;
    let mut noise = NoiseStream::new(io, transport);
    // The early payload (magic, u32 BE length, JSON) comes first when the server sends one;
    // otherwise the first bytes are HTTP/2's and go back in front of the stream.
    let mut first = [0u8; 9];
    noise.read_exact(&mut first[..5]).await?;
    let prefix = if first[..5] == *EARLY_PAYLOAD_MAGIC {
        noise.read_exact(&mut first[5..]).await?;
        let len = u32::from_be_bytes([first[5], first[6], first[7], first[8]]);
        let mut json = vec![0u8; len as usize];
        noise.read_exact(&mut json).await?;
        Vec::new()
    } else {
        first[..5].to_vec()
    };
    let io = Prefixed {
        prefix,
        pos: 0,
        inner: noise,
    };
    let (h2, conn) = h2::client::Builder::new()
        .initial_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .handshake(io)
        .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(h2)
}

/// A stream with bytes already read from it put back in front.
struct Prefixed<T> {
    prefix: Vec<u8>,
    pos: usize,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Sends a JSON POST in the session; the response's status and body stream.
pub(crate) async fn post(
    h2: &H2,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<(http::StatusCode, h2::RecvStream)> {
    let mut h2 = h2.clone().ready().await?;
    let req = http::Request::post(format!("http://control{path}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(())?;
    let (resp, mut send) = h2.send_request(req, false)?;
    send.send_data(body.into(), true)?;
    let resp = resp.await?;
    let status = resp.status();
    Ok((status, resp.into_body()))
}

/// The whole of a (short) response body.
pub(crate) async fn read_all(mut body: h2::RecvStream) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

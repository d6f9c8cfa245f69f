//! A small DERP client: plain-HTTP upgrade on loopback (what `TS_DEBUG_USE_DERP_HTTP=1` does),
//! the client half of the handshake, and frame send/receive. Used by this crate's tests and
//! bench and by test harnesses; real nodes use tailscaled.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use hs_types::{NodePrivate, NodePublic};
use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter, ReadHalf, WriteHalf,
};
use tokio::net::TcpStream;

use crate::error::Error;
use crate::frame::{Frame, PROTOCOL_VERSION};
use crate::handshake::{self, ClientInfo, ServerInfo};
use crate::io::{FrameReader, write_frame};

/// The receiving half of a client.
#[derive(Debug)]
pub struct ClientReceiver<S> {
    reader: FrameReader<ReadHalf<S>>,
}

/// The sending half of a client.
#[derive(Debug)]
pub struct ClientSender<S> {
    writer: BufWriter<WriteHalf<S>>,
    scratch: BytesMut,
}

/// A connected, handshaken DERP client.
#[derive(Debug)]
pub struct DerpClient<S> {
    /// The server's DERP public key from `ServerKey`.
    pub server_key: NodePublic,
    /// What the server said in `ServerInfo`.
    pub server_info: ServerInfo,
    sender: ClientSender<S>,
    receiver: ClientReceiver<S>,
}

/// Writes an HTTP/1.1 upgrade request for `/derp` and reads the response head; returns the
/// bytes read past the head (the start of the DERP stream).
pub async fn http_upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
) -> Result<BytesMut, Error> {
    let req = format!(
        "GET /derp HTTP/1.1\r\nHost: {host}\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = buf.split_to(end + 4);
            let status_line = head[..].split(|b| *b == b'\n').next().unwrap_or_default();
            let status_line = String::from_utf8_lossy(status_line);
            if status_line.split_whitespace().nth(1) != Some("101") {
                return Err(Error::Upgrade(format!(
                    "server answered {}",
                    status_line.trim()
                )));
            }
            return Ok(buf);
        }
        if buf.len() > 16 * 1024 {
            return Err(Error::Upgrade("response head too long".into()));
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(Error::Upgrade("connection closed during upgrade".into()));
        }
    }
}

impl DerpClient<TcpStream> {
    /// Connects over plain HTTP to `addr`, upgrades and handshakes as `private`.
    pub async fn connect(addr: SocketAddr, private: &NodePrivate) -> Result<Self, Error> {
        let info = ClientInfo {
            version: u64::from(PROTOCOL_VERSION),
            can_ack_pings: true,
            ..ClientInfo::default()
        };
        Self::connect_with(addr, private, &info).await
    }

    /// Like [`DerpClient::connect`] with explicit client info (e.g. a mesh key).
    pub async fn connect_with(
        addr: SocketAddr,
        private: &NodePrivate,
        info: &ClientInfo,
    ) -> Result<Self, Error> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let leftover = http_upgrade(&mut stream, &addr.to_string()).await?;
        Self::handshake(stream, leftover, private, info).await
    }
}

impl<S: AsyncRead + AsyncWrite + Send> DerpClient<S> {
    /// Runs the client handshake on an upgraded stream.
    pub async fn handshake(
        stream: S,
        leftover: BytesMut,
        private: &NodePrivate,
        info: &ClientInfo,
    ) -> Result<Self, Error> {
        let (r, w) = tokio::io::split(stream);
        let mut receiver = ClientReceiver {
            reader: FrameReader::new(r, leftover),
        };
        let mut sender = ClientSender {
            writer: BufWriter::new(w),
            scratch: BytesMut::new(),
        };
        let server_key = match receiver.reader.read_frame().await? {
            Some(Frame::ServerKey { key }) => key,
            other => {
                return Err(Error::Protocol(format!(
                    "expected ServerKey, got {other:?}"
                )));
            }
        };
        let sealed = handshake::seal(
            private,
            &server_key,
            &info.to_json(),
            &mut rand::rngs::OsRng,
        );
        sender
            .send(&Frame::ClientInfo {
                key: private.public(),
                sealed: Bytes::from(sealed),
            })
            .await?;
        let server_info = match receiver.reader.read_frame().await? {
            Some(Frame::ServerInfo { sealed }) => {
                let json = handshake::open(private, &server_key, &sealed, "ServerInfo")?;
                ServerInfo::from_json(&json)?
            }
            None => return Err(Error::Protocol("server closed the connection".into())),
            Some(other) => {
                return Err(Error::Protocol(format!(
                    "expected ServerInfo, got {other:?}"
                )));
            }
        };
        Ok(Self {
            server_key,
            server_info,
            sender,
            receiver,
        })
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), Error> {
        self.sender.send(frame).await
    }

    /// Sends a packet to `dst`.
    pub async fn send_packet(&mut self, dst: NodePublic, packet: Bytes) -> Result<(), Error> {
        self.sender.send(&Frame::SendPacket { dst, packet }).await
    }

    /// Writes raw bytes (for tests of malformed input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.sender.send_raw(bytes).await
    }

    /// The next frame; `None` when the server closed the connection.
    pub async fn recv(&mut self) -> Result<Option<Frame>, Error> {
        self.receiver.recv().await
    }

    /// Splits into independently usable halves.
    pub fn into_split(self) -> (ClientSender<S>, ClientReceiver<S>) {
        (self.sender, self.receiver)
    }
}

impl<S: AsyncWrite> ClientSender<S> {
    /// Sends one frame.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), Error> {
        write_frame(&mut self.writer, frame, &mut self.scratch).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// Sends a frame without flushing; call [`ClientSender::flush`] after a batch.
    pub async fn feed(&mut self, frame: &Frame) -> Result<(), Error> {
        write_frame(&mut self.writer, frame, &mut self.scratch).await
    }

    /// Flushes fed frames.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.writer.flush().await?;
        Ok(())
    }

    /// Writes raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.writer.write_all(bytes).await?;
        self.writer.flush().await?;
        Ok(())
    }
}

impl<S: AsyncRead> ClientReceiver<S> {
    /// The next frame; `None` when the server closed the connection.
    pub async fn recv(&mut self) -> Result<Option<Frame>, Error> {
        self.reader.read_frame().await
    }
}

//! Async adapters around the sans-IO codec: read whole frames from an `AsyncRead`, write
//! frames to an `AsyncWrite`. Shared by the server and the client.

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::FrameDecoder;
use crate::error::Error;
use crate::frame::{Frame, KEY_LEN};

/// Reads frames from a byte stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a reader; `buf` holds bytes already read past an HTTP upgrade, if any.
    pub fn new(inner: R, buf: BytesMut) -> Self {
        Self {
            inner,
            buf,
            decoder: FrameDecoder::new(),
        }
    }

    /// The next frame; `Ok(None)` on a clean end of stream between frames.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, Error> {
        loop {
            if let Some(f) = self.decoder.decode(&mut self.buf)? {
                return Ok(Some(f));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(16 * 1024);
            }
            let n = self.inner.read_buf(&mut self.buf).await?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "DERP stream ended inside a frame",
                )));
            }
        }
    }
}

/// Encodes `frame` into `scratch` and writes it (without flushing).
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &Frame,
    scratch: &mut BytesMut,
) -> Result<(), Error> {
    scratch.clear();
    match frame {
        // Packets go out without being copied into the scratch buffer first.
        Frame::SendPacket { dst: k, packet } | Frame::RecvPacket { src: k, packet } => {
            scratch.put_u8(frame.type_byte());
            scratch.put_u32(u32::try_from(KEY_LEN + packet.len()).unwrap_or(u32::MAX));
            scratch.put_slice(k.as_bytes());
            w.write_all(scratch).await?;
            w.write_all(packet).await?;
        }
        _ => {
            frame.encode(scratch);
            w.write_all(scratch).await?;
        }
    }
    Ok(())
}

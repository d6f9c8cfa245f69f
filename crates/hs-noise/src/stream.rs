//! `NoiseStream`: the tokio adapter that turns a byte stream carrying records into a
//! plaintext `AsyncRead`/`AsyncWrite`, with bounded buffers so a connection's memory
//! is bounded no matter what the peer sends. The buffers exist only while bytes wait in
//! them: a server holds one session per connected node, almost all of them idle between
//! keep-alives, and 20 KiB of empty buffers per session was a large share of a node's cost.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::Error;
use crate::crypto::TAG_LEN;
use crate::record::{
    HEADER_LEN, MAX_FRAME_LEN, MAX_PLAINTEXT_LEN, Opener, Sealer, Transport, parse_frame,
};

/// Sealed bytes we hold before pushing back on the writer: four full frames.
const WRITE_BUF_CAP: usize = 4 * MAX_FRAME_LEN;

/// A Noise session over `T`, reading and writing plaintext.
///
/// Reads decrypt one record at a time into a 4096-byte buffer; writes are split into records
/// of at most 4077 plaintext bytes and buffered up to 16 KiB, flushed on `poll_flush`. Both
/// buffers are released when they empty (an idle session holds neither). Any
/// protocol error (bad frame, failed decryption) is returned as `io::ErrorKind::InvalidData`
/// wrapping [`Error`], and the read side stays failed afterwards.
pub struct NoiseStream<T> {
    io: T,
    sealer: Sealer,
    opener: Opener,
    /// Ciphertext from the peer: `rbuf[..rfilled]` is buffered, and when a record has been
    /// opened its plaintext is `rbuf[plain_start..plain_end]`, followed by the frame's tag
    /// up to `frame_end`. Either empty (nothing buffered: released) or `MAX_FRAME_LEN` long.
    rbuf: Vec<u8>,
    rfilled: usize,
    plain_start: usize,
    plain_end: usize,
    frame_end: usize,
    read_failed: bool,
    read_eof: bool,
    /// Sealed frames not yet written: `wbuf[wpos..]`.
    wbuf: Vec<u8>,
    wpos: usize,
    write_failed: bool,
    /// Until the first record arrives: when to give up on a silent peer.
    first_read_deadline: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
}

impl<T> NoiseStream<T> {
    /// Wraps `io`, on which the handshake has completed, with the session's keys.
    pub fn new(io: T, transport: Transport) -> Self {
        let (sealer, opener) = transport.split();
        Self {
            io,
            sealer,
            opener,
            rbuf: Vec::new(),
            rfilled: 0,
            plain_start: 0,
            plain_end: 0,
            frame_end: 0,
            read_failed: false,
            read_eof: false,
            wbuf: Vec::new(),
            wpos: 0,
            write_failed: false,
            first_read_deadline: None,
        }
    }

    /// Like [`NoiseStream::new`], with `preamble` (the raw handshake response) queued ahead
    /// of the first record so both leave in one write on the next flush.
    pub fn with_preamble(io: T, transport: Transport, preamble: &[u8]) -> Self {
        let mut s = Self::new(io, transport);
        s.wbuf.extend_from_slice(preamble);
        s
    }

    /// Fails reads with [`Error::HandshakeTimeout`] if no record has arrived within `limit`
    /// from now, so a peer that completes the handshake and then stays silent is dropped
    /// instead of holding the connection open forever. Needs a tokio timer.
    pub fn set_first_read_deadline(&mut self, limit: Duration) {
        self.first_read_deadline = Some((Box::pin(tokio::time::sleep(limit)), limit));
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// Records sent and received so far.
    pub fn counters(&self) -> (u64, u64) {
        (self.sealer.counter(), self.opener.counter())
    }
}

impl<T> std::fmt::Debug for NoiseStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseStream")
            .field("sent", &self.sealer.counter())
            .field("received", &self.opener.counter())
            .field("read_failed", &self.read_failed)
            .field("write_failed", &self.write_failed)
            .finish_non_exhaustive()
    }
}

fn protocol_error(e: Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<T: AsyncWrite + Unpin> NoiseStream<T> {
    /// Writes buffered frames until the buffer is empty or the socket would block.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.wpos < self.wbuf.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]) {
                Poll::Ready(Ok(0)) => {
                    self.write_failed = true;
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => self.wpos += n,
                Poll::Ready(Err(e)) => {
                    // A partial frame is on the wire; nothing we send after it can be read.
                    self.write_failed = true;
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        // Released rather than kept: the next write may be a keep-alive a minute away.
        self.wbuf = Vec::new();
        self.wpos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> NoiseStream<T> {
    /// Reads and opens records until plaintext is buffered (`true`) or the peer closed
    /// cleanly (`false`).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        loop {
            if self.read_failed {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "noise session failed earlier",
                )));
            }
            if self.plain_start < self.plain_end {
                return Poll::Ready(Ok(true));
            }
            if self.frame_end > 0 {
                // The previous record is consumed; move any following bytes to the front.
                self.rbuf.copy_within(self.frame_end..self.rfilled, 0);
                self.rfilled -= self.frame_end;
                self.frame_end = 0;
                self.plain_start = 0;
                self.plain_end = 0;
            }
            match parse_frame(&self.rbuf[..self.rfilled]) {
                Err(e) => {
                    self.read_failed = true;
                    return Poll::Ready(Err(protocol_error(e)));
                }
                Ok(Some(n)) => {
                    match self.opener.open(&mut self.rbuf[..n]) {
                        Ok(plain) => {
                            self.first_read_deadline = None;
                            self.plain_start = HEADER_LEN;
                            self.plain_end = HEADER_LEN + plain.len();
                            self.frame_end = n;
                        }
                        Err(e) => {
                            self.read_failed = true;
                            return Poll::Ready(Err(protocol_error(e)));
                        }
                    }
                    // An empty record yields nothing; go on to the next one rather than
                    // returning a zero-length read, which would look like EOF.
                    continue;
                }
                Ok(None) => {}
            }
            if self.read_eof {
                return Poll::Ready(if self.rfilled == 0 {
                    Ok(false)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed in the middle of a noise record",
                    ))
                });
            }
            // parse_frame caps a frame at the buffer size, so a full buffer always holds
            // a whole frame and this read has room. With nothing buffered the read goes to
            // the stack, and the heap buffer is taken only when bytes arrive.
            let mut stack = [0u8; MAX_FRAME_LEN];
            let dst = if self.rbuf.is_empty() {
                &mut stack[..]
            } else {
                &mut self.rbuf[self.rfilled..]
            };
            let mut rb = ReadBuf::new(dst);
            let polled = Pin::new(&mut self.io).poll_read(cx, &mut rb);
            if polled.is_pending() {
                if self.rfilled == 0 {
                    // Idle: give the buffer back until the peer sends again.
                    self.rbuf = Vec::new();
                }
                if let Some((sleep, limit)) = &mut self.first_read_deadline
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    self.read_failed = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        Error::HandshakeTimeout(*limit),
                    )));
                }
                return Poll::Pending;
            }
            ready!(polled)?;
            let n = rb.filled().len();
            if n == 0 {
                self.read_eof = true;
            } else if self.rbuf.is_empty() {
                let mut buf = vec![0; MAX_FRAME_LEN];
                buf[..n].copy_from_slice(&stack[..n]);
                self.rbuf = buf;
            }
            self.rfilled += n;
        }
    }

    /// Waits until the peer's first plaintext has arrived (without consuming it), so a
    /// caller can bound how long a peer may sit idle after the handshake. `Ok(false)` if the
    /// peer closed instead.
    pub async fn wait_readable(&mut self) -> io::Result<bool> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for NoiseStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if ready!(this.poll_fill(cx))? {
            let n = out.remaining().min(this.plain_end - this.plain_start);
            out.put_slice(&this.rbuf[this.plain_start..this.plain_start + n]);
            this.plain_start += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for NoiseStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write_failed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "noise session failed earlier",
            )));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.wbuf.len() + MAX_FRAME_LEN > WRITE_BUF_CAP {
            ready!(this.poll_drain(cx))?;
        }
        // The buffer is allocated per burst (see `poll_drain`): size it for what this call
        // seals rather than letting it double its way up.
        let frames = (WRITE_BUF_CAP - this.wbuf.len()) / MAX_FRAME_LEN;
        let take = buf.len().min(frames * MAX_PLAINTEXT_LEN);
        this.wbuf
            .reserve_exact(take + take.div_ceil(MAX_PLAINTEXT_LEN) * (HEADER_LEN + TAG_LEN));
        let mut taken = 0;
        while taken < buf.len() && this.wbuf.len() + MAX_FRAME_LEN <= WRITE_BUF_CAP {
            let end = buf.len().min(taken + MAX_PLAINTEXT_LEN);
            if let Err(e) = this.sealer.seal_record(&buf[taken..end], &mut this.wbuf) {
                this.write_failed = true;
                return Poll::Ready(Err(protocol_error(e)));
            }
            taken = end;
        }
        // Start sending now; if the socket is busy the bytes wait for the next call.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.write_failed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_failed {
            ready!(this.poll_drain(cx))?;
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

    use super::*;

    fn pair() -> (NoiseStream<DuplexStream>, NoiseStream<DuplexStream>) {
        let (a, b) = tokio::io::duplex(64 << 10);
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        (
            NoiseStream::new(a, Transport::new(&k1, &k2)),
            NoiseStream::new(b, Transport::new(&k2, &k1)),
        )
    }

    /// A connected node's session sits idle between keep-alives; its buffers must not
    /// outlive the bytes in them (they were 20 KiB per session).
    #[tokio::test]
    async fn an_idle_session_holds_no_buffers() {
        let (mut a, mut b) = pair();
        assert_eq!((a.rbuf.capacity(), a.wbuf.capacity()), (0, 0));
        // Larger than one record and than the write buffer: several bursts.
        let msg: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let writer = async {
            a.write_all(&msg).await.unwrap();
            a.flush().await.unwrap();
            a
        };
        let reader = async {
            let mut got = vec![0u8; msg.len()];
            b.read_exact(&mut got).await.unwrap();
            (b, got)
        };
        let (mut a, (mut b, got)) = tokio::join!(writer, reader);
        assert_eq!(got, msg);
        assert_eq!(a.wbuf.capacity(), 0, "write buffer kept after the flush");
        // A read with nothing on the wire: pending, and the read buffer goes.
        let mut one = [0u8; 1];
        let idle = tokio::time::timeout(Duration::from_millis(20), b.read(&mut one)).await;
        assert!(idle.is_err(), "nothing was sent");
        assert_eq!(b.rbuf.capacity(), 0, "read buffer kept while idle");
        // And both come back for the next message, in either direction.
        b.write_all(b"pong").await.unwrap();
        b.flush().await.unwrap();
        let mut pong = [0u8; 4];
        a.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"pong");
    }

    /// A record split across reads (the first part read into the stack buffer) still opens.
    #[tokio::test]
    async fn a_record_arriving_in_pieces_opens() {
        let (raw, peer) = tokio::io::duplex(64 << 10);
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let mut sealer = Transport::new(&k1, &k2).split().0;
        let mut rx = NoiseStream::new(peer, Transport::new(&k2, &k1));
        let mut frame = Vec::new();
        sealer.seal_record(b"hello, noise", &mut frame).unwrap();
        let mut raw = raw;
        let read = tokio::spawn(async move {
            let mut got = [0u8; 12];
            rx.read_exact(&mut got).await.unwrap();
            got
        });
        for piece in frame.chunks(5) {
            raw.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(&read.await.unwrap(), b"hello, noise");
    }
}

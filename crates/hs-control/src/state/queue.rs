//! A map stream's outgoing queue, bounded in bytes as well as in frames. A client that stops
//! reading (or reads slower than the tailnet changes) must not make the server hold an ever
//! longer backlog: once its queue would pass the byte budget the stream is closed, the client
//! redials and gets one fresh full map, which is smaller than the backlog it replaces.
//! Every queued byte is counted in one gauge across streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;

/// How many frames may wait for one stream.
pub(crate) const STREAM_BUFFER: usize = 256;

/// How many bytes may wait for one stream. One frame larger than this (a full map of a very
/// large tailnet) is still accepted into an empty queue, so a stream always makes progress.
pub(crate) const STREAM_BUFFER_BYTES: usize = 2 * 1024 * 1024;

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The reader fell behind (frames or bytes over budget): close the stream.
    Behind,
    /// The stream is gone.
    Gone,
}

/// The sending half, held by the coordinator.
pub(crate) struct QueueTx {
    tx: mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    limit: usize,
}

/// The receiving half, read by the stream's response body.
pub(crate) struct QueueRx {
    rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

/// A queue of at most `frames` frames and `limit` bytes; `total` counts the bytes queued
/// across every stream.
pub(crate) fn queue(frames: usize, limit: usize, total: Arc<AtomicUsize>) -> (QueueTx, QueueRx) {
    let (tx, rx) = mpsc::channel(frames);
    let queued = Arc::new(AtomicUsize::new(0));
    (
        QueueTx {
            tx,
            queued: queued.clone(),
            total: total.clone(),
            limit,
        },
        QueueRx { rx, queued, total },
    )
}

impl QueueTx {
    /// Queues `frame`, or says why not.
    pub(crate) fn push(&self, frame: Bytes) -> Result<(), Refused> {
        let len = frame.len();
        // Counted before sending so the reader, which subtracts after receiving, never sees
        // the count go below zero.
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(Refused::Behind);
        }
        self.total.fetch_add(len, Ordering::Relaxed);
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                self.total.fetch_sub(len, Ordering::Relaxed);
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => Refused::Behind,
                    mpsc::error::TrySendError::Closed(_) => Refused::Gone,
                })
            }
        }
    }

    /// Bytes waiting for this stream's reader.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl QueueRx {
    /// The next frame, as `mpsc::Receiver::poll_recv`.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let r = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(f)) = &r {
            self.queued.fetch_sub(f.len(), Ordering::AcqRel);
            self.total.fetch_sub(f.len(), Ordering::Relaxed);
        }
        r
    }

    /// The next frame (for tests and one-shot readers).
    #[cfg(test)]
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// A frame if one is waiting, as `mpsc::Receiver::try_recv`.
    #[cfg(test)]
    pub(crate) fn try_recv(&mut self) -> Result<Bytes, mpsc::error::TryRecvError> {
        let r = self.rx.try_recv();
        if let Ok(f) = &r {
            self.queued.fetch_sub(f.len(), Ordering::AcqRel);
            self.total.fetch_sub(f.len(), Ordering::Relaxed);
        }
        r
    }
}

impl Drop for QueueRx {
    fn drop(&mut self) {
        // What was never read goes with the receiver: take it off the shared gauge. The
        // channel is closed first so no push lands after the count is taken.
        self.rx.close();
        while let Ok(f) = self.rx.try_recv() {
            self.queued.fetch_sub(f.len(), Ordering::AcqRel);
            self.total.fetch_sub(f.len(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[tokio::test]
    async fn a_stalled_reader_cannot_grow_the_queue_past_its_byte_budget() {
        let total = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = queue(1_000, 10_000, total.clone());
        let mut accepted = 0;
        let refused = loop {
            match tx.push(frame(1_500)) {
                Ok(()) => accepted += 1,
                Err(e) => break e,
            }
            assert!(tx.queued() <= 10_000, "queued {}", tx.queued());
            assert!(accepted < 1_000, "never refused");
        };
        assert_eq!(refused, Refused::Behind);
        assert_eq!(accepted, 6, "6 × 1500 fits in 10 000, a 7th does not");
        assert_eq!(total.load(Ordering::Relaxed), 9_000);
        // Reading frees budget.
        assert_eq!(rx.recv().await.map(|f| f.len()), Some(1_500));
        assert_eq!(total.load(Ordering::Relaxed), 7_500);
        tx.push(frame(1_500)).unwrap();
        // A frame larger than the whole budget still goes into an empty queue.
        let (big_tx, _big_rx) = queue(4, 100, total.clone());
        big_tx.push(frame(1_000)).unwrap();
        assert_eq!(big_tx.push(frame(1)), Err(Refused::Behind));
        drop(_big_rx);
        // Dropping a reader returns everything it held to the gauge.
        drop(rx);
        assert_eq!(total.load(Ordering::Relaxed), 0);
        assert_eq!(tx.push(frame(1)), Err(Refused::Gone));
    }

    #[tokio::test]
    async fn the_frame_count_still_bounds_small_frames() {
        let total = Arc::new(AtomicUsize::new(0));
        let (tx, _rx) = queue(3, 1_000_000, total);
        for _ in 0..3 {
            tx.push(frame(10)).unwrap();
        }
        assert_eq!(tx.push(frame(10)), Err(Refused::Behind));
        assert_eq!(tx.queued(), 30);
    }
}

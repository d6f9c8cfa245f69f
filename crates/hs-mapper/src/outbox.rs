//! A per-stream bounded outbox, runtime-agnostic: the fan-out pushes frames without ever
//! waiting, and the stream's writer task awaits them (any executor: it is a plain
//! `Future`). A client that falls more than `capacity` frames behind is cut off: the outbox
//! closes and drops its backlog, the writer ends the stream, and the client reconnects to a
//! fresh full map. So one slow client never holds up the fan-out or anybody else's stream.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// Why an outbox is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxClosed {
    /// The client fell too far behind.
    Overflow,
    /// The sender closed it (node removed, session desynced, shutdown).
    Closed,
    /// The receiving stream is gone.
    ReceiverGone,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Bytes>,
    waker: Option<Waker>,
    closed: Option<OutboxClosed>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    capacity: usize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close(&self, why: OutboxClosed) {
        let waker = {
            let mut s = self.lock();
            if s.closed.is_none() {
                s.closed = Some(why);
            }
            s.queue.clear();
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The pushing side (held by the fan-out).
#[derive(Debug, Clone)]
pub struct OutboxSender {
    inner: Arc<Inner>,
}

/// The receiving side (held by the stream's writer task).
#[derive(Debug)]
pub struct OutboxReceiver {
    inner: Arc<Inner>,
}

/// A new outbox that holds at most `capacity` undelivered frames (at least 1).
pub fn outbox(capacity: usize) -> (OutboxSender, OutboxReceiver) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            waker: None,
            closed: None,
        }),
        capacity: capacity.max(1),
    });
    (
        OutboxSender {
            inner: Arc::clone(&inner),
        },
        OutboxReceiver { inner },
    )
}

impl OutboxSender {
    /// Queues a frame. Never waits. Fails when the outbox is closed, and closes it (with
    /// [`OutboxClosed::Overflow`]) when the backlog is full.
    pub fn push(&self, frame: Bytes) -> Result<(), OutboxClosed> {
        let waker = {
            let mut s = self.inner.lock();
            if let Some(why) = s.closed {
                return Err(why);
            }
            if s.queue.len() >= self.inner.capacity {
                drop(s);
                self.inner.close(OutboxClosed::Overflow);
                return Err(OutboxClosed::Overflow);
            }
            s.queue.push_back(frame);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Closes the outbox; the receiver sees the end of the stream.
    pub fn close(&self) {
        self.inner.close(OutboxClosed::Closed);
    }

    /// Undelivered frames.
    pub fn backlog(&self) -> usize {
        self.inner.lock().queue.len()
    }
}

impl OutboxReceiver {
    /// The next frame if one is queued.
    pub fn try_recv(&self) -> Option<Bytes> {
        self.inner.lock().queue.pop_front()
    }

    /// Polls for the next frame; `Ready(None)` once the outbox is closed.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut s = self.inner.lock();
        if let Some(f) = s.queue.pop_front() {
            return Poll::Ready(Some(f));
        }
        if s.closed.is_some() {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Waits for the next frame; `None` once the outbox is closed.
    pub fn recv(&self) -> Recv<'_> {
        Recv { rx: self }
    }

    /// Why the outbox closed, if it did.
    pub fn closed(&self) -> Option<OutboxClosed> {
        self.inner.lock().closed
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        self.inner.close(OutboxClosed::ReceiverGone);
    }
}

/// The future returned by [`OutboxReceiver::recv`].
#[derive(Debug)]
pub struct Recv<'a> {
    rx: &'a OutboxReceiver,
}

impl Future for Recv<'_> {
    type Output = Option<Bytes>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (Arc::clone(&c), Waker::from(c))
    }

    #[test]
    fn delivers_in_order_and_wakes_the_waiting_reader() {
        let (tx, rx) = outbox(4);
        let (count, w) = waker();
        let mut cx = Context::from_waker(&w);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        tx.push(Bytes::from_static(b"a")).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        tx.push(Bytes::from_static(b"b")).unwrap();
        assert_eq!(
            rx.poll_recv(&mut cx),
            Poll::Ready(Some(Bytes::from_static(b"a")))
        );
        assert_eq!(rx.try_recv(), Some(Bytes::from_static(b"b")));
        assert_eq!(rx.try_recv(), None);
        tx.close();
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
        assert_eq!(tx.push(Bytes::new()), Err(OutboxClosed::Closed));
    }

    #[test]
    fn a_full_backlog_cuts_the_client_off() {
        let (tx, rx) = outbox(2);
        let (count, w) = waker();
        let mut cx = Context::from_waker(&w);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        tx.push(Bytes::from_static(b"1")).unwrap();
        let (_, w2) = waker();
        assert!(rx.poll_recv(&mut Context::from_waker(&w2)).is_ready());
        tx.push(Bytes::from_static(b"2")).unwrap();
        tx.push(Bytes::from_static(b"3")).unwrap();
        assert_eq!(tx.backlog(), 2);
        assert_eq!(
            tx.push(Bytes::from_static(b"4")),
            Err(OutboxClosed::Overflow)
        );
        assert_eq!(tx.backlog(), 0, "the backlog is dropped");
        assert_eq!(rx.closed(), Some(OutboxClosed::Overflow));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn dropping_the_reader_stops_the_sender() {
        let (tx, rx) = outbox(2);
        drop(rx);
        assert_eq!(tx.push(Bytes::new()), Err(OutboxClosed::ReceiverGone));
    }
}

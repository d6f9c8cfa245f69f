//! The one write path. Every change to the tailnet (users, nodes, the policy and what it
//! auto-approves) is a command that runs [`ControlState::write`]: it validates against a
//! snapshot, writes the columns it changes in one database transaction, and hands the
//! NodeStore ops it derived to the coordinator, which applies them and fans them out once.
//!
//! Why a lock: the database and the NodeStore must see writes in the same order, or two
//! writes to one node can land in one order in the database and in the other in memory (a
//! lost update that lasts until restart). The lock covers the transaction and the enqueueing
//! only, never an `.await`: it is taken on a blocking thread, and the coordinator applies
//! queued batches in arrival order. Waiting for the fan-out happens after it is released.

use std::sync::{Arc, PoisonError};

use hs_db::Conn;
use hs_nodestore::{Applied, Op, Snapshot};
use tokio::sync::oneshot;

use super::ControlState;
use super::actor::Cmd;
use crate::error::Error;

/// Which snapshot a command validates against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// The published snapshot: writes queued for the next batch (at most one fan-out
    /// interval old) are not in it. For client-driven writes, which must not defeat batching.
    Published,
    /// The snapshot with every earlier write applied: the coordinator flushes its held
    /// batch first. For operator commands and policy changes, whose checks must see
    /// everything committed before them.
    Synced,
}

/// A command's body: reads the snapshot, writes through the transaction, and returns its
/// value with the ops that make the NodeStore agree with what it wrote.
pub(crate) type Body<T> =
    Box<dyn FnOnce(&mut Conn<'_>, &Arc<Snapshot>) -> Result<(T, Vec<Op>), Error> + Send>;

impl ControlState {
    /// Runs one command: `body` inside a database transaction (rolled back when it fails),
    /// then its ops applied to the NodeStore in commit order. Returns the body's value and
    /// what the batch did (`None` when the body asked for no ops).
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        read: Read,
        body: Body<T>,
    ) -> Result<(T, Option<Arc<Applied>>), Error> {
        let state = self.clone();
        let (value, pending) = tokio::task::spawn_blocking(move || state.commit(read, body))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let Some((kinds, rx)) = pending else {
            return Ok((value, None));
        };
        Ok((value, Some(self.finish(kinds, rx).await?)))
    }

    /// Runs on a blocking thread: lock, read, transaction, enqueue, unlock.
    #[allow(
        clippy::type_complexity,
        reason = "private plumbing between write and finish"
    )]
    fn commit<T>(&self, read: Read, body: Body<T>) -> Result<(T, Option<Enqueued>), Error> {
        let _one_writer = self.lock_writes();
        let snap = match read {
            Read::Published => self.store().load_full(),
            Read::Synced => self.synced_snapshot()?,
        };
        // The body's own error (a refusal) rolls the transaction back like a database error.
        let mut refused = None;
        let out = self.db().tx(|c| match body(c, &snap) {
            Ok(v) => Ok(v),
            Err(Error::Db(e)) => Err(e),
            Err(e) => {
                refused = Some(e);
                Err(hs_db::Error::Config("command refused".into()))
            }
        });
        let (value, ops) = match out {
            Ok(v) => v,
            Err(e) => return Err(refused.unwrap_or(Error::Db(e))),
        };
        if ops.is_empty() {
            return Ok((value, None));
        }
        Ok((value, Some(self.enqueue(Cmd::apply(ops))?)))
    }

    /// Takes the write lock. Only on a blocking thread, and never held across an `.await`.
    pub(super) fn lock_writes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the coordinator to apply what it holds and answer with the snapshot then
    /// published. Called with the write lock held, so nothing can be queued behind it.
    pub(super) fn synced_snapshot(&self) -> Result<Arc<Snapshot>, Error> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .cmd
            .send(Cmd::Sync { reply })
            .map_err(|_| Error::Stopped)?;
        rx.blocking_recv().map_err(|_| Error::Stopped)
    }

    /// Queues a batch for the coordinator; the receiver answers once it is applied.
    pub(super) fn enqueue(
        &self,
        (cmd, kinds, rx): (Cmd, Kinds, ApplyRx),
    ) -> Result<Enqueued, Error> {
        let m = &self.inner.metrics;
        m.queue_depth
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.inner.cmd.send(cmd).is_err() {
            m.queue_depth
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            return Err(Error::Stopped);
        }
        Ok((kinds, rx))
    }

    /// Waits for a queued batch, records its metrics and gives the addresses of nodes it
    /// removed back to the allocator (whoever removed them).
    pub(super) async fn finish(
        &self,
        (kinds, started): Kinds,
        rx: ApplyRx,
    ) -> Result<Arc<Applied>, Error> {
        let applied = rx.await.map_err(|_| Error::Stopped)?;
        for k in kinds {
            self.inner.metrics.store_op(k, started.elapsed());
        }
        crate::lifecycle::release_removed(self.ips(), &applied);
        Ok(applied)
    }
}

/// The metric kinds of a batch's ops and when it was queued.
pub(crate) type Kinds = (Vec<crate::metrics::StoreOp>, std::time::Instant);
/// Where a queued batch's outcome arrives.
pub(crate) type ApplyRx = oneshot::Receiver<Arc<Applied>>;
/// A queued batch: its metric kinds and its outcome.
pub(crate) type Enqueued = (Kinds, ApplyRx);

impl Cmd {
    /// An apply command for `ops`, with what [`ControlState::finish`] needs.
    pub(crate) fn apply(ops: Vec<Op>) -> (Self, Kinds, ApplyRx) {
        let kinds = ops.iter().filter_map(crate::metrics::StoreOp::of).collect();
        let (reply, rx) = oneshot::channel();
        (
            Self::Apply { ops, reply },
            (kinds, crate::clock::stopwatch()),
            rx,
        )
    }
}

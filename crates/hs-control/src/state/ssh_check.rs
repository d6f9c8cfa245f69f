//! SSH `check` sessions: the auth IDs handed to a destination node that holds an SSH
//! connection until someone approves it (the source node's owner through OIDC, or an operator
//! with `headscale auth approve`), their verdicts, and when each (source, destination) pair
//! was last approved, so a check inside the rule's `checkPeriod` passes at once. In memory,
//! as in Go Headscale: a restart forgets approvals and pending checks, and the client asks
//! again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use hs_types::NodeId;
use tokio::sync::watch;

use super::ControlState;
use super::pending::{canonical, new_auth_id};
use crate::clock::now;
use crate::error::Error;

/// At most this many pending checks; the oldest go first.
const MAX_CHECKS: usize = 1024;

/// One pending check: the pair it is bound to and its verdict (`Some(true)` approved).
#[derive(Debug)]
pub(crate) struct SshCheck {
    pub(crate) src: NodeId,
    pub(crate) dst: NodeId,
    pub(crate) created: DateTime<Utc>,
    pub(crate) verdict: watch::Sender<Option<bool>>,
}

/// The pending checks and the last approval per pair.
#[derive(Debug, Default)]
pub(crate) struct SshChecks {
    pending: Mutex<HashMap<String, Arc<SshCheck>>>,
    last: Mutex<HashMap<(NodeId, NodeId), DateTime<Utc>>>,
}

impl ControlState {
    /// Files a check for `src` → `dst`; its auth ID.
    pub(crate) fn ssh_check_begin(&self, src: NodeId, dst: NodeId) -> String {
        let t = now();
        let ttl = self.register_ttl();
        let id = new_auth_id();
        let (verdict, _) = watch::channel(None);
        let mut map = self
            .inner
            .ssh_checks
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, c| t - c.created < ttl);
        if map.len() >= MAX_CHECKS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, c)| c.created)
                .map(|(k, _)| k.clone())
            && let Some(evicted) = map.remove(&oldest)
        {
            // A follow-up held on the evicted check is refused now, as Go's cache eviction
            // does, rather than left waiting for a verdict that can no longer come.
            evicted.verdict.send_if_modified(|v| {
                let undecided = v.is_none();
                if undecided {
                    *v = Some(false);
                }
                undecided
            });
        }
        map.insert(
            id.clone(),
            Arc::new(SshCheck {
                src,
                dst,
                created: t,
                verdict,
            }),
        );
        id
    }

    /// The pending check under `auth_id` (either form of the ID), if it has not expired.
    pub(crate) fn ssh_check(&self, auth_id: &str) -> Option<Arc<SshCheck>> {
        let t = now();
        let ttl = self.register_ttl();
        let map = self
            .inner
            .ssh_checks
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(canonical(auth_id).as_ref())
            .filter(|c| t - c.created < ttl)
            .cloned()
    }

    /// Whether `auth_id` names an SSH check waiting for its verdict.
    pub fn is_ssh_check_pending(&self, auth_id: &str) -> bool {
        self.ssh_check(auth_id)
            .is_some_and(|c| c.verdict.borrow().is_none())
    }

    /// Decides the pending check under `auth_id`: the held SSH connection is let through
    /// (`approve`) or refused. An approval starts the pair's check period.
    pub fn decide_ssh_check(&self, auth_id: &str, approve: bool) -> Result<(), Error> {
        let c = self
            .ssh_check(auth_id)
            .filter(|c| c.verdict.borrow().is_none())
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no pending SSH check with auth ID {auth_id:?} (it may have expired or been decided)"
                ))
            })?;
        if approve {
            self.inner
                .ssh_checks
                .last
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert((c.src, c.dst), now());
        }
        c.verdict.send_replace(Some(approve));
        tracing::info!(
            src = c.src.get(),
            dst = c.dst.get(),
            approve,
            "SSH check decided"
        );
        Ok(())
    }

    /// When `src` → `dst` was last approved.
    pub(crate) fn ssh_last_approval(&self, src: NodeId, dst: NodeId) -> Option<DateTime<Utc>> {
        self.inner
            .ssh_checks
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(src, dst))
            .copied()
    }
}

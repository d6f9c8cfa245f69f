//! Policy commands: putting a policy in force (from the file, the database, or the admin API)
//! together with the route approvals it causes, as one batch and one fan-out.
//!
//! The policy in force lives in one place, the coordinator ([`super::actor`]), which
//! recompiles it on every identity change; the snapshot carries its compiled form.

use std::sync::Arc;

use hs_config::{PolicyConfig, PolicyMode};
use hs_db::PolicyRow;
use hs_nodestore::{AllowAll, Op, PolicyView, Snapshot};
use hs_policy::Policy;
use hs_types::NodeId;
use ipnet::IpNet;
use tokio::sync::oneshot;

use super::ControlState;
use super::actor::Cmd;
use crate::clock::now;
use crate::error::Error;
use crate::policy::CompiledView;

/// Why a policy is being loaded from its configured source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyLoad {
    /// At start-up. A policy whose `tests` or `sshTests` fail is put in force anyway with a
    /// warning, as Go Headscale does: refusing to start over a test that a node's deletion
    /// made fail would take the whole tailnet down.
    Boot,
    /// An operator's reload (SIGHUP). Failing tests refuse the new policy, and so does a
    /// blank policy file while a policy is in force: an empty file is far more likely a
    /// truncated write than an intent to allow everything.
    Reload,
}

/// What a policy's tests decide when it is put in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tests {
    Enforce,
    Warn,
}

impl ControlState {
    /// Reads the configured policy (the `policy.path` file in file mode, the newest policy
    /// row in database mode), compiles it against the tailnet and puts it in force, pushing
    /// new maps to connected nodes. No policy configured (or, at boot, an empty document)
    /// means allow all. On any error the policy in force stays and the error names the
    /// source; `why` decides what failing tests and a blank document do.
    pub async fn load_policy(&self, cfg: &PolicyConfig, why: PolicyLoad) -> Result<(), Error> {
        let (source, text) = match cfg.mode {
            PolicyMode::File if cfg.path.is_empty() => ("no policy file".to_owned(), None),
            PolicyMode::File => {
                let text = tokio::fs::read_to_string(&cfg.path).await.map_err(|e| {
                    Error::Config(format!("policy.path: cannot read {}: {e}", cfg.path))
                })?;
                (format!("policy file {}", cfg.path), Some(text))
            }
            PolicyMode::Database => {
                let row = self.blocking(|db| db.tx(|c| c.get_policy())).await?;
                ("the database policy".to_owned(), row.map(|r| r.data))
            }
        };
        let blank = text.as_deref().is_some_and(|t| t.trim().is_empty());
        if blank && why == PolicyLoad::Reload && self.policy().await?.is_some() {
            return Err(Error::Config(format!(
                "{source} is empty; keeping the policy in force. An empty policy would allow \
                 every node to reach every node: to mean that, write a rule that accepts \
                 \"*\" to \"*:*\""
            )));
        }
        let tests = match why {
            PolicyLoad::Boot => Tests::Warn,
            PolicyLoad::Reload => Tests::Enforce,
        };
        self.put_text(&source, text.as_deref(), tests).await
    }

    /// Parses and compiles policy text and puts it in force (`None` or blank: allow all);
    /// `source` names where it came from in errors and logs. The policy's tests must pass.
    /// A bad policy changes nothing.
    pub async fn set_policy_text(&self, source: &str, text: Option<&str>) -> Result<(), Error> {
        self.put_text(source, text, Tests::Enforce).await
    }

    async fn put_text(&self, source: &str, text: Option<&str>, tests: Tests) -> Result<(), Error> {
        let policy = parse(source, text)?;
        let allow_all = policy.is_none();
        self.put_policy(policy, None, tests)
            .await
            .map_err(|e| Error::Config(format!("{source}: {e}")))?;
        if allow_all {
            tracing::warn!(
                source,
                "no policy in force; every node may reach every node"
            );
        } else {
            tracing::info!(source, "policy in force");
        }
        Ok(())
    }

    /// Stores `text` as the database policy (`policy.mode: database`) and puts it in force,
    /// in one transaction with the approvals it causes. A policy that does not parse, does
    /// not compile against the tailnet or fails its own tests is refused, and so is a blank
    /// one (it would allow everything); nothing is written then.
    pub async fn store_policy(&self, text: String) -> Result<PolicyRow, Error> {
        self.store_policy_if(text, None).await
    }

    /// [`Self::store_policy`], only if the stored policy is still `expected` (the text the
    /// caller read; `Some("")` when none was stored): the check and the write are one
    /// transaction, so of two writers that read the same version only the first succeeds.
    /// A changed policy is [`Error::Conflict`].
    pub async fn store_policy_if(
        &self,
        text: String,
        expected: Option<String>,
    ) -> Result<PolicyRow, Error> {
        if text.trim().is_empty() {
            return Err(Error::Invalid(
                "the new policy is empty; an empty policy would allow every node to reach \
                 every node: to mean that, write a rule that accepts \"*\" to \"*:*\""
                    .into(),
            ));
        }
        let policy = parse("the new policy", Some(&text))?;
        let row = self
            .put_policy(policy, Some((text, expected)), Tests::Enforce)
            .await?;
        tracing::info!("policy stored and in force");
        row.ok_or_else(|| Error::Task("the stored policy row was not returned".into()))
    }

    /// Puts a parsed policy in force (`None`: allow all). Test helper kept public for
    /// embedders that build policies in code.
    pub async fn set_policy(&self, policy: Option<Policy>) -> Result<(), Error> {
        self.put_policy(policy, None, Tests::Enforce)
            .await
            .map(|_| ())
    }

    /// The policy in force (`None` when none is configured: allow all), as the coordinator
    /// holds it.
    pub async fn policy(&self) -> Result<Option<Arc<Policy>>, Error> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .cmd
            .send(Cmd::Policy { reply })
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// The policy command: compile against the synced snapshot, work out the routes it
    /// auto-approves, write those (and the policy row, when given) in one transaction, and
    /// hand the coordinator the policy with those writes as one batch.
    async fn put_policy(
        &self,
        policy: Option<Policy>,
        store: Option<(String, Option<String>)>,
        tests: Tests,
    ) -> Result<Option<PolicyRow>, Error> {
        let state = self.clone();
        let policy = policy.map(Arc::new);
        let (row, queued) = tokio::task::spawn_blocking(move || {
            let _one_writer = state.lock_writes();
            let snap = state.synced_snapshot()?;
            let view: Arc<dyn PolicyView> = match &policy {
                None => Arc::new(AllowAll::new()),
                Some(p) => {
                    let v = CompiledView::compile(p, &snap)
                        .map_err(|e| Error::Config(e.to_string()))?;
                    match (v.check_tests(), tests) {
                        (Ok(()), _) => {}
                        (Err(e), Tests::Enforce) => return Err(Error::Config(e.detailed())),
                        (Err(e), Tests::Warn) => tracing::warn!(
                            error = %e.detailed(),
                            "the policy's tests fail; it is in force anyway (fix the policy or its tests)"
                        ),
                    }
                    Arc::new(v)
                }
            };
            let approvals = approvals(view.as_ref(), &snap);
            let t = now();
            let (row, ops) = state.db().tx(|c| {
                let row = match store {
                    None => None,
                    Some((text, expected)) => {
                        if let Some(expected) = expected {
                            let current = c.get_policy()?.map(|r| r.data).unwrap_or_default();
                            if current != expected {
                                return Err(hs_db::Error::Conflict(
                                    "the policy was changed since it was read".into(),
                                ));
                            }
                        }
                        Some(c.set_policy(&text, t)?)
                    }
                };
                let mut ops = Vec::with_capacity(approvals.len());
                for (id, routes) in &approvals {
                    c.set_node_approved_routes(*id, routes, t)?;
                    if let Some(n) = c.get_node(*id)? {
                        ops.push(Op::Upsert(Box::new(n)));
                    }
                }
                Ok((row, ops))
            })?;
            for (id, routes) in &approvals {
                tracing::info!(
                    node = id.get(),
                    routes = ?routes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "routes auto-approved by the policy"
                );
            }
            let kinds = ops.iter().filter_map(crate::metrics::StoreOp::of).collect();
            let (reply, rx) = oneshot::channel();
            let cmd = Cmd::SetPolicy {
                policy,
                view,
                ops,
                reply,
            };
            let queued = state.enqueue((cmd, (kinds, crate::clock::stopwatch()), rx))?;
            Ok::<_, Error>((row, queued))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        let (kinds, rx) = queued;
        self.finish(kinds, rx).await?;
        Ok(row)
    }
}

fn parse(source: &str, text: Option<&str>) -> Result<Option<Policy>, Error> {
    text.filter(|t| !t.trim().is_empty())
        .map(|t| Policy::parse(t).map_err(|e| Error::Config(format!("{source}: {e}"))))
        .transpose()
}

/// Every node's approved routes after adding what `view` auto-approves among its announced
/// ones, for the nodes where that adds something.
pub(crate) fn approvals(view: &dyn PolicyView, snap: &Snapshot) -> Vec<(NodeId, Vec<IpNet>)> {
    snap.nodes()
        .filter(|e| {
            e.announced_routes
                .iter()
                .any(|r| !e.node.approved_routes.contains(r))
        })
        .filter_map(|e| {
            let extra = view.auto_approved_routes(&e.node);
            (!extra.is_empty()).then(|| {
                let mut routes = e.node.approved_routes.clone();
                routes.extend(extra);
                routes.sort();
                routes.dedup();
                (e.node.id, routes)
            })
        })
        .collect()
}

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

impl ControlState {
    /// Reads the configured policy (the `policy.path` file in file mode, the newest policy
    /// row in database mode), compiles it against the tailnet and puts it in force, pushing
    /// new maps to connected nodes. No policy configured (or an empty document) means allow
    /// all. On any error the policy in force stays and the error names the source.
    pub async fn load_policy(&self, cfg: &PolicyConfig) -> Result<(), Error> {
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
        self.set_policy_text(&source, text.as_deref()).await
    }

    /// Parses and compiles policy text and puts it in force (`None` or blank: allow all);
    /// `source` names where it came from in errors and logs. A bad policy changes nothing.
    pub async fn set_policy_text(&self, source: &str, text: Option<&str>) -> Result<(), Error> {
        let policy = parse(source, text)?;
        let allow_all = policy.is_none();
        self.put_policy(policy, None)
            .await
            .map_err(|e| Error::Config(format!("{source}: {e}")))?;
        if allow_all {
            tracing::info!("no policy configured; every node may reach every node");
        } else {
            tracing::info!(source, "policy in force");
        }
        Ok(())
    }

    /// Stores `text` as the database policy (`policy.mode: database`) and puts it in force,
    /// in one transaction with the approvals it causes. A policy that does not parse or
    /// compile against the tailnet is refused and nothing is written.
    pub async fn store_policy(&self, text: String) -> Result<PolicyRow, Error> {
        let policy = parse("the new policy", Some(&text))?;
        let row = self.put_policy(policy, Some(text)).await?;
        tracing::info!("policy stored and in force");
        row.ok_or_else(|| Error::Task("the stored policy row was not returned".into()))
    }

    /// Puts a parsed policy in force (`None`: allow all). Test helper kept public for
    /// embedders that build policies in code.
    pub async fn set_policy(&self, policy: Option<Policy>) -> Result<(), Error> {
        self.put_policy(policy, None).await.map(|_| ())
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
        store: Option<String>,
    ) -> Result<Option<PolicyRow>, Error> {
        let state = self.clone();
        let policy = policy.map(Arc::new);
        let (row, queued) = tokio::task::spawn_blocking(move || {
            let _one_writer = state.lock_writes();
            let snap = state.synced_snapshot()?;
            let view: Arc<dyn PolicyView> = match &policy {
                None => Arc::new(AllowAll::new()),
                Some(p) => Arc::new(
                    CompiledView::compile(p, &snap).map_err(|e| Error::Config(e.to_string()))?,
                ),
            };
            let approvals = approvals(view.as_ref(), &snap);
            let t = now();
            let (row, ops) = state.db().tx(|c| {
                let row = store.map(|text| c.set_policy(&text, t)).transpose()?;
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

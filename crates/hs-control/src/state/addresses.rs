//! `nodes backfillips`: Go Headscale's address backfill as one command. A node missing an
//! address of a configured family gets one from the shared allocator; an address of a
//! family no longer configured is removed. Every changed row is written in one transaction
//! and pushed in one batch.

use std::net::IpAddr;

use hs_nodestore::Op;

use super::ControlState;
use super::write::Read;
use crate::error::Error;

impl ControlState {
    /// Runs the backfill and returns one line per change, in Headscale's wording. With
    /// `confirmed == false` nothing is changed and the caller is told to confirm.
    pub async fn backfill_ips(&self, confirmed: bool) -> Result<Vec<String>, Error> {
        if !confirmed {
            return Err(Error::Invalid(
                "backfilling IPs changes node addresses: set confirmed=true to proceed".into(),
            ));
        }
        let st = self.clone();
        let out = self
            .write(
                Read::Synced,
                Box::new(move |c, _| {
                    let ips = st.ips();
                    let (has4, has6) = (ips.v4_prefix().is_some(), ips.v6_prefix().is_some());
                    let mut lines = Vec::new();
                    let mut assigned = Vec::new();
                    let mut ops = Vec::new();
                    let result = (|| {
                        for mut n in c.list_nodes()? {
                            let who = format!("Node({}) {:?}", n.id.get(), n.hostname);
                            let before = lines.len();
                            if (has4 && n.ipv4.is_none()) || (has6 && n.ipv6.is_none()) {
                                let (v4, v6) = ips.allocate(&mut rand::thread_rng())?;
                                // `allocate` gives one of each family; keep what is missing.
                                let mut unused = Vec::new();
                                match (n.ipv4, v4) {
                                    (None, Some(a)) => {
                                        lines.push(format!("assigned IPv4 \"{a}\" to {who}"));
                                        assigned.push(IpAddr::V4(a));
                                        n.ipv4 = Some(a);
                                    }
                                    (_, a) => unused.extend(a.map(IpAddr::V4)),
                                }
                                match (n.ipv6, v6) {
                                    (None, Some(a)) => {
                                        lines.push(format!("assigned IPv6 \"{a}\" to {who}"));
                                        assigned.push(IpAddr::V6(a));
                                        n.ipv6 = Some(a);
                                    }
                                    (_, a) => unused.extend(a.map(IpAddr::V6)),
                                }
                                ips.release(unused);
                            }
                            if !has4 && let Some(a) = n.ipv4.take() {
                                lines.push(format!("removing IPv4 \"{a}\" from {who}"));
                            }
                            if !has6 && let Some(a) = n.ipv6.take() {
                                lines.push(format!("removing IPv6 \"{a}\" from {who}"));
                            }
                            if lines.len() > before {
                                c.upsert_node(&n)?;
                                ops.push(Op::Upsert(Box::new(n)));
                            }
                        }
                        Ok::<_, Error>(())
                    })();
                    if let Err(e) = result {
                        // The transaction rolls back: give the new addresses back.
                        ips.release(assigned);
                        return Err(e);
                    }
                    Ok((lines, ops))
                }),
            )
            .await?;
        Ok(out.0)
    }
}

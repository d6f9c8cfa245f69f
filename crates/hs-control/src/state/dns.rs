//! The DNS settings in force: the config file's `dns` section (re-read on SIGHUP) with the
//! edits an operator made through `/api/v2` laid over it. Either changing sends every node
//! the new `DNSConfig` at once.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};

use hs_config::DnsConfig;
use hs_types::tailcfg::DNSRecord;
use tokio::sync::oneshot;

use super::actor::Cmd;
use super::{ControlState, read_extra_records};
use crate::error::Error;

/// DNS settings edited through the API; `None` keeps the config file's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsOverrides {
    /// Replaces `dns.nameservers.global`.
    pub nameservers: Option<Vec<String>>,
    /// Replaces `dns.search_domains`.
    pub search_domains: Option<Vec<String>>,
    /// Replaces `dns.magic_dns`.
    pub magic_dns: Option<bool>,
    /// Replaces `dns.nameservers.split`.
    pub split: Option<BTreeMap<String, Vec<String>>>,
}

impl DnsOverrides {
    /// `base` with these edits applied.
    pub fn apply(&self, base: &DnsConfig) -> DnsConfig {
        let mut out = base.clone();
        if let Some(v) = &self.nameservers {
            out.nameservers_global.clone_from(v);
        }
        if let Some(v) = &self.search_domains {
            out.search_domains.clone_from(v);
        }
        if let Some(v) = self.magic_dns {
            out.magic_dns = v;
        }
        if let Some(v) = &self.split {
            out.nameservers_split.clone_from(v);
        }
        out
    }
}

/// The config file's DNS section (with the records read from `dns.extra_records_path`) and
/// the API's edits.
#[derive(Debug, Default)]
pub(crate) struct DnsState {
    base: Option<(DnsConfig, Option<Vec<DNSRecord>>)>,
    overrides: DnsOverrides,
}

impl ControlState {
    /// Re-reads `dns.extra_records_path` (when set) and sends every node the resulting DNS
    /// config, with the API's edits over `dns`, if it changed: what SIGHUP does for DNS.
    pub async fn reload_dns(&self, dns: &DnsConfig) -> Result<(), Error> {
        let records = read_extra_records(dns).await?;
        self.push_dns(|s| {
            s.base = Some((dns.clone(), records));
            Ok(())
        })
        .await
    }

    /// Replaces the API's DNS edits and sends every node the result.
    pub async fn set_dns_overrides(&self, overrides: DnsOverrides) -> Result<(), Error> {
        self.edit_dns_overrides(|_| Ok(overrides)).await.map(|_| ())
    }

    /// Changes the API's DNS edits: `edit` gets the current ones and returns the new ones
    /// (or refuses with a message); it runs under the DNS lock, so edits made at the same
    /// time apply one after the other, and is where the caller persists the result. Every
    /// node gets the new config. Refused when the server runs without a config file's DNS
    /// section (an embedder's bare `start`).
    pub async fn edit_dns_overrides(
        &self,
        edit: impl FnOnce(&DnsOverrides) -> Result<DnsOverrides, String>,
    ) -> Result<DnsOverrides, Error> {
        let mut out = None;
        self.push_dns(|s| {
            if s.base.is_none() {
                return Err(Error::Invalid(
                    "this server was started without DNS settings".to_owned(),
                ));
            }
            let next = edit(&s.overrides).map_err(Error::Invalid)?;
            out = Some(next.clone());
            s.overrides = next;
            Ok(())
        })
        .await?;
        Ok(out.unwrap_or_default())
    }

    /// The DNS settings in force (the config file's with the API's edits), if any.
    pub fn dns_settings(&self) -> Option<DnsConfig> {
        let s = self
            .inner
            .dns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        s.base.as_ref().map(|(b, _)| s.overrides.apply(b))
    }

    /// Changes the DNS state and queues the resulting config for the coordinator. The
    /// command is queued under the lock so that two changes reach the coordinator in the
    /// order they were made; the answer is awaited after it is released.
    async fn push_dns(
        &self,
        change: impl FnOnce(&mut DnsState) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let rx = {
            let mut s = self
                .inner
                .dns
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let mut next = DnsState {
                base: s.base.clone(),
                overrides: s.overrides.clone(),
            };
            change(&mut next)?;
            let Some((base, records)) = &next.base else {
                *s = next;
                return Ok(());
            };
            let effective = next.overrides.apply(base);
            let text =
                serde_json::to_string(&hs_mapper::dns_config(&effective, records.as_deref()))
                    .map_err(|e| Error::Config(format!("encoding the DNS config: {e}")))?;
            let (reply, rx) = oneshot::channel();
            self.inner
                .cmd
                .send(Cmd::SetDns {
                    dns: Some(Arc::from(text)),
                    reply,
                })
                .map_err(|_| Error::Stopped)?;
            *s = next;
            rx
        };
        Ok(rx.await.map_err(|_| Error::Stopped)??)
    }
}

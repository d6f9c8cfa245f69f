//! The DNS settings in force: the config file's `dns` section (re-read on SIGHUP) with the
//! edits an operator made through `/api/v2` laid over it. Either changing sends every node
//! the new `DNSConfig` at once.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use hs_config::DnsConfig;
use hs_types::tailcfg::DNSRecord;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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

    /// The records from `dns.extra_records_path` in force (`None` when no path is set or the
    /// server runs without a config file's DNS section).
    pub fn extra_records(&self) -> Option<Vec<DNSRecord>> {
        let s = self
            .inner
            .dns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        s.base.as_ref().and_then(|(_, r)| r.clone())
    }

    /// Watches `dns.extra_records_path` (when set) and loads its records whenever the file
    /// changes, without waiting for SIGHUP, as Headscale's file watcher does. The file is
    /// polled every `every`: its bytes are compared with those last loaded, so an edit in
    /// place, a copy over it and an atomic rename into place are all seen. A file that does
    /// not load (half written, not JSON) leaves the records in force and is tried again when
    /// its bytes change; a deleted file keeps them too, and a file written there again is
    /// picked up.
    pub fn spawn_extra_records_watch(
        &self,
        dns: DnsConfig,
        every: Duration,
    ) -> Option<JoinHandle<()>> {
        let path = dns.extra_records_path.clone()?;
        let state = self.clone();
        Some(tokio::spawn(async move {
            // Nothing counts as loaded yet: the first look loads the file as it is then, so
            // a change made between the server's start and this task's is not missed.
            let mut watch = FileWatch::new(None);
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(bytes) = watch.changed(tokio::fs::read(&path).await.ok()) else {
                    continue;
                };
                match state.reload_dns(&dns).await {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "dns.extra_records_path changed; records reloaded");
                        watch.loaded(bytes);
                    }
                    Err(Error::Stopped) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "dns.extra_records_path changed but does not load; keeping the records in force");
                        watch.failed(bytes);
                    }
                }
            }
        }))
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

/// What the extra-records watcher knows about the file: the bytes last loaded and the bytes
/// that last failed to load, so neither is loaded (or complained about) twice.
#[derive(Debug)]
struct FileWatch {
    loaded: Option<Vec<u8>>,
    failed: Option<Vec<u8>>,
}

impl FileWatch {
    fn new(loaded: Option<Vec<u8>>) -> Self {
        Self {
            loaded,
            failed: None,
        }
    }

    /// The file's bytes if they are worth loading: readable (a missing file changes
    /// nothing), and neither the bytes in force nor ones that already failed.
    fn changed(&self, now: Option<Vec<u8>>) -> Option<Vec<u8>> {
        let now = now?;
        if self.loaded.as_deref() == Some(now.as_slice())
            || self.failed.as_deref() == Some(now.as_slice())
        {
            return None;
        }
        Some(now)
    }

    fn loaded(&mut self, bytes: Vec<u8>) {
        self.loaded = Some(bytes);
        self.failed = None;
    }

    fn failed(&mut self, bytes: Vec<u8>) {
        self.failed = Some(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::FileWatch;

    #[test]
    fn the_watcher_loads_each_new_content_once_and_ignores_a_missing_file() {
        let mut w = FileWatch::new(Some(b"[1]".to_vec()));
        assert_eq!(w.changed(Some(b"[1]".to_vec())), None, "unchanged");
        assert_eq!(w.changed(None), None, "a deleted file keeps the records");
        let next = w.changed(Some(b"[2]".to_vec())).expect("new bytes");
        w.loaded(next);
        assert_eq!(w.changed(Some(b"[2]".to_vec())), None);
        let bad = w.changed(Some(b"[2".to_vec())).expect("half written");
        w.failed(bad);
        assert_eq!(w.changed(Some(b"[2".to_vec())), None, "not retried as is");
        assert!(
            w.changed(Some(b"[2]".to_vec())).is_none(),
            "back to the loaded bytes"
        );
        assert!(w.changed(Some(b"[3]".to_vec())).is_some());
    }
}

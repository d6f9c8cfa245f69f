//! Loading DERP maps from their sources and keeping them fresh: [`DerpMapLoader`] fetches
//! every `derp.urls` body (through an injected fetch function, so the control plane chooses
//! the HTTP client and tests need no network) and reads every `derp.paths` file, all or
//! nothing; [`refresh_loop`] reloads every `update_frequency`, retries failures with
//! exponential backoff, keeps the previous map meanwhile and publishes only real changes on a
//! `watch` channel the control plane turns into map updates for nodes.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hs_types::tailcfg::{DERPMap, DERPRegion};
use tokio::sync::watch;

use crate::derpmap::{self, DerpMapSource};
use crate::error::Error;

/// The future a [`UrlFetcher`] returns: the response body or a description of the failure.
pub type FetchFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;

/// Fetches a `derp.urls` entry. It should apply its own timeout and reject non-2xx answers.
pub type UrlFetcher = Arc<dyn Fn(&str) -> FetchFuture + Send + Sync>;

/// Largest map body accepted (the public map is a few tens of kilobytes).
pub const MAX_MAP_BYTES: usize = 4 << 20;

/// Everything needed to build the DERP map.
#[derive(Clone)]
pub struct DerpMapLoader {
    /// `derp.urls`, applied first, in order.
    pub urls: Vec<String>,
    /// `derp.paths`, applied after the URLs, in order.
    pub paths: Vec<PathBuf>,
    /// The embedded relay's region, added last (when it is enabled and auto-added).
    pub embedded: Option<DERPRegion>,
    /// Node shuffle seed (see [`derpmap::seed_from_base_domain`]).
    pub seed: u64,
    /// How URLs are fetched.
    pub fetch: UrlFetcher,
}

impl std::fmt::Debug for DerpMapLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DerpMapLoader")
            .field("urls", &self.urls)
            .field("paths", &self.paths)
            .field("embedded", &self.embedded.as_ref().map(|r| r.region_id))
            .finish_non_exhaustive()
    }
}

impl DerpMapLoader {
    /// Loads every source and builds the map. One failing source fails the whole load, so a
    /// refresh never publishes a partial map.
    pub async fn load(&self) -> Result<DERPMap, Error> {
        let mut sources: Vec<DerpMapSource> =
            Vec::with_capacity(self.urls.len() + self.paths.len());
        for url in &self.urls {
            let body = (self.fetch)(url).await.map_err(|e| Error::DerpMap {
                source_name: url.clone(),
                detail: e,
            })?;
            if body.len() > MAX_MAP_BYTES {
                return Err(Error::DerpMap {
                    source_name: url.clone(),
                    detail: format!("body of {} bytes exceeds {MAX_MAP_BYTES}", body.len()),
                });
            }
            sources.push(derpmap::parse_json(url, &body)?);
        }
        for path in &self.paths {
            let name = path.display().to_string();
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| Error::DerpMap {
                    source_name: name.clone(),
                    detail: e.to_string(),
                })?;
            sources.push(derpmap::parse_yaml(&name, &text)?);
        }
        Ok(derpmap::build(&sources, self.embedded.as_ref(), self.seed))
    }
}

/// Retry pacing after a failed refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First retry delay.
    pub initial: Duration,
    /// Longest retry delay (capped further at the refresh period).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

/// Reloads the map every `every` (after an initial wait of `every`: the caller publishes the
/// first map itself), retrying failures with doubling delays from `backoff` while `out` keeps
/// the previous map. Subscribers are woken only when the map changed. Returns when every
/// receiver of `out` is gone.
pub async fn refresh_loop(
    loader: DerpMapLoader,
    every: Duration,
    backoff: Backoff,
    out: watch::Sender<Arc<DERPMap>>,
) {
    let mut delay = every;
    loop {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = out.closed() => return,
        }
        match loader.load().await {
            Ok(map) => {
                delay = every;
                let changed = out.send_if_modified(|cur| {
                    if **cur == map {
                        false
                    } else {
                        *cur = Arc::new(map);
                        true
                    }
                });
                if changed {
                    tracing::info!("DERP map changed; pushing to nodes");
                }
            }
            Err(e) => {
                delay = if delay >= every {
                    backoff.initial
                } else {
                    (delay * 2).min(backoff.max)
                };
                delay = delay.min(every);
                tracing::warn!(error = %e, retry_in = ?delay, "DERP map refresh failed; keeping the previous map");
            }
        }
    }
}

//! Manual certificates (`tls_cert_path`, `tls_key_path`): loaded at start (a problem fails
//! the start, naming the key), then re-read when either file changes on disk or on
//! [`FileSource::reload`] (SIGHUP). A renewal tool such as certbot replaces the files; the
//! next handshake gets the new certificate, and a pair that does not load (half-written,
//! mismatched) is reported once and the old certificate keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::Error;
use crate::certs::{self, Keys, Loaded};
use crate::resolver::Resolver;

/// How often the files are checked for a change.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

const KEYS: Keys = Keys {
    cert: "tls_cert_path",
    key: "tls_key_path",
};

/// What a change looks like from outside: size and modification time of both files
/// (following symlinks, so certbot's `live/` links count).
type Stamp = [(u64, Option<SystemTime>); 2];

/// A certificate served from two files.
#[derive(Debug)]
pub struct FileSource {
    cert: PathBuf,
    key: PathBuf,
    resolver: Arc<Resolver>,
    // (the stamp last loaded, the stamp last reported as broken)
    seen: Mutex<(Option<Stamp>, Option<Stamp>)>,
}

impl FileSource {
    /// Loads the pair into `resolver`, or says which file is wrong.
    pub fn load(cert: &Path, key: &Path, resolver: Arc<Resolver>) -> Result<Arc<Self>, Error> {
        let src = Arc::new(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            resolver,
            seen: Mutex::new((None, None)),
        });
        let stamp = src.stamp();
        let loaded = src.read()?;
        src.install(&loaded);
        src.lock().0 = stamp;
        Ok(src)
    }

    /// Re-reads both files now (SIGHUP). On failure the old certificate stays.
    pub fn reload(&self) -> Result<(), Error> {
        let stamp = self.stamp();
        let loaded = self.read()?;
        self.install(&loaded);
        self.lock().0 = stamp;
        Ok(())
    }

    /// Re-reads the files if they changed since the last load; reports a broken pair once.
    pub fn check(&self) {
        let stamp = self.stamp();
        {
            let seen = self.lock();
            if stamp.is_none() || seen.0 == stamp || seen.1 == stamp {
                return;
            }
        }
        match self.read() {
            Ok(loaded) => {
                self.install(&loaded);
                *self.lock() = (stamp, None);
            }
            Err(e) => {
                tracing::warn!(error = %e, "the certificate files changed but do not load; still serving the previous certificate");
                self.lock().1 = stamp;
            }
        }
    }

    /// Checks the files every `interval` until `stop` turns true.
    pub fn spawn_watch(self: &Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        let src = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tick.tick() => {}
                }
                let s = Arc::clone(&src);
                let _ = tokio::task::spawn_blocking(move || s.check()).await;
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<Stamp>, Option<Stamp>)> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stamp(&self) -> Option<Stamp> {
        let one = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.len(), m.modified().ok()))
        };
        Some([one(&self.cert)?, one(&self.key)?])
    }

    fn read(&self) -> Result<Loaded, Error> {
        let read = |key: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| Error::Read {
                key,
                path: path.to_owned(),
                source,
            })
        };
        let chain = read(KEYS.cert, &self.cert)?;
        let key = read(KEYS.key, &self.key)?;
        certs::from_pem(&chain, &key, KEYS)
    }

    fn install(&self, loaded: &Loaded) {
        let now = crate::clock::now();
        if loaded.not_after <= now {
            tracing::warn!(path = %self.cert.display(), "tls_cert_path: the certificate has expired; clients will refuse it");
        }
        let expires = loaded
            .not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        tracing::info!(path = %self.cert.display(), names = ?loaded.dns_names, expires_unix = expires, "serving the certificate from tls_cert_path");
        self.resolver.set(Arc::clone(&loaded.key));
    }
}

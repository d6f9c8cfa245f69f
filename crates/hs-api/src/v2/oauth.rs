//! OAuth clients and their access tokens, and the other state `/api/v2` keeps beside the
//! database: the DNS edits.
//!
//! Go Headscale 0.29.3 checks that its SQLite schema has exactly its own tables, so a new
//! table would stop an operator from rolling back. This state lives in one JSON file instead
//! (`api_v2.json` beside the Noise private key, mode 0600), written whole to a temporary file
//! and renamed over the old one, so a crash leaves the old or the new file, never half of one.
//! Client secrets are stored as bcrypt hashes. Access tokens are not stored: each is signed
//! with HMAC-SHA256 under a key kept in the file, so they survive a restart and a deleted
//! client's tokens stop working at once (every request looks its client up).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::scope::{self, Grant, Scope};
use crate::error::ApiError;

/// The head of a client secret.
pub const CLIENT_SECRET_PREFIX: &str = "hskey-client-";
/// The head of an access token.
pub const ACCESS_TOKEN_PREFIX: &str = "hskey-oauth-";
/// How long an access token lives (Tailscale's: one hour).
pub const TOKEN_LIFETIME_SECS: i64 = 3600;

const CLIENT_ID_LEN: usize = 16;

/// An OAuth client as stored (without its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClient {
    /// Public id, used as the OAuth `client_id`.
    pub id: String,
    /// bcrypt hash of the secret.
    #[serde(with = "hash_text")]
    pub secret_hash: Vec<u8>,
    /// Scopes it may request, by Tailscale's names.
    pub scopes: Vec<String>,
    /// Tags it may assign.
    pub tags: Vec<String>,
    /// What the operator wrote about it.
    #[serde(default)]
    pub description: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

mod hash_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        String::deserialize(d).map(String::into_bytes)
    }
}

/// The API's DNS edits, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDns {
    /// `nameservers.global`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nameservers: Option<Vec<String>>,
    /// `search_domains`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_paths: Option<Vec<String>>,
    /// `magic_dns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magic_dns: Option<bool>,
    /// `nameservers.split`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileState {
    version: u32,
    /// Hex HMAC key for access tokens.
    token_key: String,
    #[serde(default)]
    clients: Vec<OAuthClient>,
    #[serde(default)]
    dns: StoredDns,
}

/// The claims an access token carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    /// Client id.
    c: String,
    /// Expiry, Unix seconds.
    e: i64,
    /// Scopes.
    s: Vec<String>,
}

/// The store: the file and its content in memory.
#[derive(Clone)]
pub struct OAuthStore {
    path: Option<PathBuf>,
    state: Arc<Mutex<FileState>>,
}

impl std::fmt::Debug for OAuthStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path, what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("{what} {}: {e}", path.display()))
}

fn fresh_state() -> FileState {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    FileState {
        version: 1,
        token_key: hex::encode(key),
        clients: Vec::new(),
        dns: StoredDns::default(),
    }
}

impl OAuthStore {
    /// Opens (or creates) the state file at `path`. A file that does not parse is refused
    /// rather than replaced: it holds the operator's clients.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, ApiError> {
        let path = path.into();
        let state = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let st: FileState = serde_json::from_str(&text).map_err(|e| {
                    io_err(
                        &path,
                        "cannot parse",
                        format!("{e}; fix or remove the file"),
                    )
                })?;
                if hex::decode(&st.token_key).map_or(true, |k| k.len() < 32) {
                    return Err(io_err(&path, "cannot use", "token_key is not 32 hex bytes"));
                }
                st
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let st = fresh_state();
                write_atomic(&path, &st)?;
                st
            }
            Err(e) => return Err(io_err(&path, "cannot read", e)),
        };
        Ok(Self {
            path: Some(path),
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// A store that keeps everything in memory (embedders and tests without a state
    /// directory); clients made here are lost on restart.
    pub fn in_memory() -> Self {
        Self {
            path: None,
            state: Arc::new(Mutex::new(fresh_state())),
        }
    }

    /// Where the state is kept, if on disk.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Applies `change` to a copy of the state, writes it, and keeps it once written.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut FileState) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = st.clone();
        let out = change(&mut next)?;
        if let Some(path) = &self.path {
            write_atomic(path, &next)?;
        }
        *st = next;
        Ok(out)
    }

    fn read<T>(&self, f: impl FnOnce(&FileState) -> T) -> T {
        f(&self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Creates a client; returns it and its secret (shown once). Blocking (bcrypt).
    pub fn create_client(
        &self,
        scopes: &[String],
        tags: &[String],
        description: &str,
        now: DateTime<Utc>,
    ) -> Result<(OAuthClient, String), ApiError> {
        let parsed = scope::parse_scopes(scopes).map_err(ApiError::bad_request)?;
        for t in tags {
            crate::service::validate_tag(t)?;
        }
        if tags.is_empty() && scope::needs_tags(&parsed) {
            return Err(ApiError::bad_request(
                "an OAuth client with the auth_keys or devices:core scope (or all) needs tags: \
                 every device it creates or changes is tagged with them",
            ));
        }
        let mut rng = rand::thread_rng();
        let id: String = (0..CLIENT_ID_LEN)
            .map(|_| {
                let n = (rng.next_u32() % 36) as u8;
                char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
            })
            .collect();
        let mut s = [0u8; 32];
        rng.fill_bytes(&mut s);
        let secret_part = hex::encode(s);
        let secret = format!("{CLIENT_SECRET_PREFIX}{id}-{secret_part}");
        let hash = hs_db::secret::hash_secret(&secret_part)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut tags: Vec<String> = tags.to_vec();
        tags.sort();
        tags.dedup();
        let client = OAuthClient {
            id,
            secret_hash: hash,
            scopes: parsed.iter().map(ToString::to_string).collect(),
            tags,
            description: description.to_owned(),
            created_at: now,
        };
        let c = client.clone();
        self.update(move |st| {
            st.clients.push(c);
            Ok(())
        })?;
        Ok((client, secret))
    }

    /// All clients, oldest first.
    pub fn list_clients(&self) -> Vec<OAuthClient> {
        self.read(|st| st.clients.clone())
    }

    /// One client by id.
    pub fn client(&self, id: &str) -> Option<OAuthClient> {
        self.read(|st| st.clients.iter().find(|c| c.id == id).cloned())
    }

    /// Deletes a client; its tokens stop working at once.
    pub fn delete_client(&self, id: &str) -> Result<(), ApiError> {
        self.update(|st| {
            let before = st.clients.len();
            st.clients.retain(|c| c.id != id);
            if st.clients.len() == before {
                return Err(ApiError::not_found(format!(
                    "OAuth client {id:?} not found"
                )));
            }
            Ok(())
        })
    }

    /// Checks a client's credentials and issues a token for `requested` scopes (all of the
    /// client's when empty). Blocking (bcrypt). Returns the token and its scopes.
    pub fn issue_token(
        &self,
        client_id: &str,
        secret: &str,
        requested: &[String],
        now: DateTime<Utc>,
    ) -> Result<(String, Vec<String>), ApiError> {
        let refused = || ApiError::Unauthorized("invalid client credentials".to_owned());
        let client = self.client(client_id).ok_or_else(refused)?;
        // Accept the full secret or only its random part (some tools strip known heads).
        let part = secret
            .strip_prefix(CLIENT_SECRET_PREFIX)
            .and_then(|rest| rest.strip_prefix(client_id))
            .and_then(|rest| rest.strip_prefix('-'))
            .unwrap_or(secret);
        if !hs_db::secret::verify_secret(part, &client.secret_hash) {
            return Err(refused());
        }
        let own = scope::parse_scopes(&client.scopes).map_err(ApiError::Internal)?;
        let scopes: BTreeSet<Scope> = if requested.is_empty() {
            own
        } else {
            let want = scope::parse_scopes(requested).map_err(ApiError::bad_request)?;
            if let Some(extra) = want.iter().find(|w| !own.iter().any(|o| o.covers(**w))) {
                return Err(ApiError::bad_request(format!(
                    "scope {extra} was not granted to this OAuth client"
                )));
            }
            want
        };
        let names: Vec<String> = scopes.iter().map(ToString::to_string).collect();
        let claims = Claims {
            c: client.id,
            e: now.timestamp() + TOKEN_LIFETIME_SECS,
            s: names.clone(),
        };
        let payload =
            B64.encode(serde_json::to_vec(&claims).map_err(|e| ApiError::Internal(e.to_string()))?);
        let sig = B64.encode(self.mac(payload.as_bytes()));
        Ok((format!("{ACCESS_TOKEN_PREFIX}{payload}.{sig}"), names))
    }

    /// The grant an access token carries, if it is valid now and its client still exists.
    pub fn verify_token(&self, token: &str, now: DateTime<Utc>) -> Result<Grant, ApiError> {
        let refused = |why: &str| ApiError::Unauthorized(format!("invalid access token: {why}"));
        let body = token
            .strip_prefix(ACCESS_TOKEN_PREFIX)
            .ok_or_else(|| refused("not an access token"))?;
        let (payload, sig) = body.split_once('.').ok_or_else(|| refused("malformed"))?;
        let sig = B64.decode(sig).map_err(|_| refused("malformed"))?;
        self.verify_mac(payload.as_bytes(), &sig)
            .map_err(|()| refused("bad signature"))?;
        let claims: Claims = B64
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| refused("malformed"))?;
        if claims.e <= now.timestamp() {
            return Err(refused("expired"));
        }
        let client = self
            .client(&claims.c)
            .ok_or_else(|| refused("its OAuth client was deleted"))?;
        let scopes = scope::parse_scopes(&claims.s).map_err(|_| refused("malformed"))?;
        Ok(Grant::Client {
            client_id: client.id,
            scopes,
            tags: client.tags,
        })
    }

    fn key(&self) -> Vec<u8> {
        self.read(|st| hex::decode(&st.token_key).unwrap_or_default())
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut m = <Hmac<Sha256>>::new_from_slice(&self.key()).expect("HMAC takes any key length");
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    fn verify_mac(&self, data: &[u8], sig: &[u8]) -> Result<(), ()> {
        let mut m = <Hmac<Sha256>>::new_from_slice(&self.key()).map_err(|_| ())?;
        m.update(data);
        m.verify_slice(sig).map_err(|_| ())
    }

    /// The stored DNS edits.
    pub fn dns(&self) -> StoredDns {
        self.read(|st| st.dns.clone())
    }

    /// Replaces the stored DNS edits.
    pub fn set_dns(&self, dns: StoredDns) -> Result<(), ApiError> {
        self.update(|st| {
            st.dns = dns;
            Ok(())
        })
    }
}

/// Replaces the state file whole (see `hs_control::keyfile::replace_private_file`).
fn write_atomic(path: &Path, st: &FileState) -> Result<(), ApiError> {
    let text = serde_json::to_vec_pretty(st).map_err(|e| ApiError::Internal(e.to_string()))?;
    hs_control::keyfile::replace_private_file(path, &text)
        .map_err(|e| io_err(path, "cannot write", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn clients_tokens_and_dns_survive_a_reopen_and_secrets_are_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api_v2.json");
        let store = OAuthStore::open(&path).unwrap();
        let (client, secret) = store
            .create_client(
                &strings(&["devices:core", "dns:read"]),
                &strings(&["tag:ci"]),
                "ci",
                now(),
            )
            .unwrap();
        assert!(secret.starts_with(&format!("{CLIENT_SECRET_PREFIX}{}-", client.id)));
        let dns = StoredDns {
            nameservers: Some(strings(&["9.9.9.9"])),
            ..StoredDns::default()
        };
        store.set_dns(dns.clone()).unwrap();
        let (token, scopes) = store.issue_token(&client.id, &secret, &[], now()).unwrap();
        assert_eq!(scopes, ["devices:core", "dns:read"]);

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(&secret[CLIENT_SECRET_PREFIX.len() + 17..]),
            "secret stored"
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let again = OAuthStore::open(&path).unwrap();
        assert_eq!(again.list_clients(), store.list_clients());
        assert_eq!(again.dns(), dns);
        let grant = again.verify_token(&token, now()).unwrap();
        assert_eq!(
            grant,
            Grant::Client {
                client_id: client.id.clone(),
                scopes: scope::parse_scopes(&scopes).unwrap(),
                tags: strings(&["tag:ci"]),
            },
            "a token issued before a restart still works after it"
        );
    }

    #[test]
    fn bad_credentials_scopes_and_tokens_are_refused() {
        let store = OAuthStore::in_memory();
        let (c, secret) = store
            .create_client(&strings(&["dns:read"]), &[], "", now())
            .unwrap();
        let e = store.issue_token(&c.id, "hskey-client-wrong", &[], now());
        assert!(matches!(e, Err(ApiError::Unauthorized(_))));
        assert!(matches!(
            store.issue_token("nobody", &secret, &[], now()),
            Err(ApiError::Unauthorized(_))
        ));
        let e = store
            .issue_token(&c.id, &secret, &strings(&["dns"]), now())
            .unwrap_err();
        assert!(e.to_string().contains("scope dns was not granted"), "{e}");

        let (token, _) = store.issue_token(&c.id, &secret, &[], now()).unwrap();
        let later = now() + chrono::Duration::seconds(TOKEN_LIFETIME_SECS);
        let e = store.verify_token(&token, later).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        // A token whose claims were edited no longer matches its signature.
        let (payload, sig) = token[ACCESS_TOKEN_PREFIX.len()..].split_once('.').unwrap();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
        claims["s"] = serde_json::json!(["all"]);
        let forged = format!(
            "{ACCESS_TOKEN_PREFIX}{}.{sig}",
            B64.encode(serde_json::to_vec(&claims).unwrap())
        );
        let e = store.verify_token(&forged, now()).unwrap_err();
        assert!(e.to_string().contains("bad signature"), "{e}");
        // Another store's key does not verify it either.
        let other = OAuthStore::in_memory();
        assert!(other.verify_token(&token, now()).is_err());

        store.delete_client(&c.id).unwrap();
        let e = store.verify_token(&token, now()).unwrap_err();
        assert!(e.to_string().contains("deleted"), "{e}");
        assert!(matches!(
            store.delete_client(&c.id),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn writers_need_tags_and_tags_must_be_well_formed() {
        let store = OAuthStore::in_memory();
        let e = store
            .create_client(&strings(&["auth_keys"]), &[], "", now())
            .unwrap_err();
        assert!(e.to_string().contains("needs tags"), "{e}");
        let e = store
            .create_client(&strings(&["auth_keys"]), &strings(&["ci"]), "", now())
            .unwrap_err();
        assert!(e.to_string().contains("tag:"), "{e}");
        assert!(
            store
                .create_client(&strings(&["nope"]), &[], "", now())
                .is_err()
        );
        assert!(store.list_clients().is_empty(), "nothing half-made is kept");
    }

    #[test]
    fn an_unreadable_state_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api_v2.json");
        std::fs::write(&path, "{not json").unwrap();
        let e = OAuthStore::open(&path).unwrap_err();
        assert!(e.to_string().contains("cannot parse"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    }
}

//! The DERP handshake payloads: NaCl boxes (`nonce ‖ crypto_box`) between node keys, the JSON
//! client info the server reads (tolerant of Go's case-insensitive field matching and of
//! snake_case senders) and the JSON server info it answers with.

use crypto_box::aead::Aead;
use crypto_box::{PublicKey, SalsaBox, SecretKey};
use hs_types::{NodePrivate, NodePublic};
use rand::{CryptoRng, RngCore};
use serde::Serialize;

use crate::frame::{NONCE_LEN, PROTOCOL_VERSION};

/// Why a handshake payload was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The box is shorter than a nonce or failed authentication.
    #[error("DERP handshake: {0} box could not be opened (wrong key or corrupted)")]
    Open(&'static str),
    /// The opened JSON is malformed.
    #[error("DERP handshake: {what} JSON: {detail}")]
    Json {
        /// Which message.
        what: &'static str,
        /// The parser's complaint.
        detail: String,
    },
    /// The peer speaks a protocol version we do not.
    #[error("DERP handshake: unsupported protocol version {0}")]
    Version(u64),
}

fn salsa_box(private: &NodePrivate, peer: &NodePublic) -> SalsaBox {
    let secret = SecretKey::from(*private.secret_bytes());
    SalsaBox::new(&PublicKey::from(*peer.as_bytes()), &secret)
}

/// Seals `plaintext` from `private` to `peer`: a random nonce followed by the box.
pub fn seal<R: RngCore + CryptoRng>(
    private: &NodePrivate,
    peer: &NodePublic,
    plaintext: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let b = salsa_box(private, peer);
    // Encryption into a Vec cannot fail for inputs of this size; an empty box would simply
    // be refused by the peer.
    let ct = b.encrypt((&nonce).into(), plaintext).unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens a `nonce ‖ box` sealed by `peer` to `private`.
pub fn open(
    private: &NodePrivate,
    peer: &NodePublic,
    sealed: &[u8],
    what: &'static str,
) -> Result<Vec<u8>, HandshakeError> {
    if sealed.len() < NONCE_LEN {
        return Err(HandshakeError::Open(what));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| HandshakeError::Open(what))?;
    salsa_box(private, peer)
        .decrypt(nonce.into(), ct)
        .map_err(|_| HandshakeError::Open(what))
}

/// What a client says about itself in `ClientInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// Protocol version (2).
    pub version: u64,
    /// Whether the client answers pings.
    pub can_ack_pings: bool,
    /// The mesh key, as 64 hex digits, if the client is a mesh peer.
    pub mesh_key: Option<String>,
    /// Whether the client is a prober.
    pub is_prober: bool,
}

impl ClientInfo {
    /// Parses the opened JSON. Field names match case-insensitively and ignoring underscores,
    /// as Go's decoder effectively does for the fields that matter.
    pub fn from_json(json: &[u8]) -> Result<Self, HandshakeError> {
        let v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(json).map_err(|e| HandshakeError::Json {
                what: "ClientInfo",
                detail: e.to_string(),
            })?;
        let mut info = Self::default();
        for (k, v) in &v {
            let norm: String = k
                .chars()
                .filter(|c| *c != '_')
                .collect::<String>()
                .to_lowercase();
            match norm.as_str() {
                "version" => info.version = v.as_u64().unwrap_or(0),
                "canackpings" => info.can_ack_pings = v.as_bool().unwrap_or(false),
                "isprober" => info.is_prober = v.as_bool().unwrap_or(false),
                "meshkey" => {
                    info.mesh_key = v
                        .as_str()
                        .filter(|s| !s.is_empty() && *s != "none")
                        .map(str::to_owned);
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// The JSON a Go client sends.
    pub fn to_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Wire<'a> {
            version: u64,
            #[serde(rename = "meshKey", skip_serializing_if = "Option::is_none")]
            mesh_key: Option<&'a str>,
            #[serde(rename = "CanAckPings")]
            can_ack_pings: bool,
            #[serde(rename = "IsProber", skip_serializing_if = "std::ops::Not::not")]
            is_prober: bool,
        }
        serde_json::to_vec(&Wire {
            version: self.version,
            mesh_key: self.mesh_key.as_deref(),
            can_ack_pings: self.can_ack_pings,
            is_prober: self.is_prober,
        })
        .unwrap_or_default()
    }
}

/// What the server says in `ServerInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ServerInfo {
    /// Protocol version (2).
    pub version: u64,
    /// Advertised receive rate limit, bytes per second (0: none).
    #[serde(
        rename = "TokenBucketBytesPerSecond",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub token_bucket_bytes_per_second: u64,
    /// Advertised receive burst, bytes (0: none).
    #[serde(
        rename = "TokenBucketBytesBurst",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub token_bucket_bytes_burst: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl ServerInfo {
    /// Server info for this crate's protocol version.
    pub fn current() -> Self {
        Self {
            version: u64::from(PROTOCOL_VERSION),
            ..Self::default()
        }
    }

    /// Parses the opened JSON and checks the version.
    pub fn from_json(json: &[u8]) -> Result<Self, HandshakeError> {
        let info: Self = serde_json::from_slice(json).map_err(|e| HandshakeError::Json {
            what: "ServerInfo",
            detail: e.to_string(),
        })?;
        if info.version != u64::from(PROTOCOL_VERSION) {
            return Err(HandshakeError::Version(info.version));
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::OsRng;

    use super::*;

    #[test]
    fn sealed_box_opens_only_with_the_right_keys() {
        let a = NodePrivate::generate(&mut OsRng);
        let b = NodePrivate::generate(&mut OsRng);
        let c = NodePrivate::generate(&mut OsRng);
        let sealed = seal(&a, &b.public(), b"hello", &mut OsRng);
        assert_eq!(sealed.len(), NONCE_LEN + 5 + 16);
        assert_eq!(open(&b, &a.public(), &sealed, "t").unwrap(), b"hello");
        assert_eq!(
            open(&c, &a.public(), &sealed, "t"),
            Err(HandshakeError::Open("t"))
        );
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(open(&b, &a.public(), &bad, "t").is_err());
        assert!(open(&b, &a.public(), &sealed[..10], "t").is_err());
    }

    #[test]
    fn client_info_accepts_go_and_snake_case_spellings() {
        let go =
            ClientInfo::from_json(br#"{"version":2,"CanAckPings":true,"meshKey":"ab"}"#).unwrap();
        assert_eq!(
            go,
            ClientInfo {
                version: 2,
                can_ack_pings: true,
                mesh_key: Some("ab".into()),
                is_prober: false
            }
        );
        let rs = ClientInfo::from_json(
            br#"{"can_ack_pings":false,"is_prober":true,"mesh_key":"none","version":2}"#,
        )
        .unwrap();
        assert_eq!(rs.mesh_key, None);
        assert!(rs.is_prober);
        assert!(ClientInfo::from_json(b"[1]").is_err());
        let back = ClientInfo::from_json(&go.to_json()).unwrap();
        assert_eq!(back, go);
    }

    #[test]
    fn server_info_wire_form_and_version_check() {
        assert_eq!(
            serde_json::to_string(&ServerInfo::current()).unwrap(),
            r#"{"version":2}"#
        );
        assert!(ServerInfo::from_json(br#"{"version":2}"#).is_ok());
        assert_eq!(
            ServerInfo::from_json(br#"{"version":1}"#),
            Err(HandshakeError::Version(1))
        );
    }
}

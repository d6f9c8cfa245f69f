//! Key exchange messages around the Noise transport: the `/key` answer
//! (`OverTLSPublicKeyResponse`) and the optional early payload (`EarlyNoise`).

use serde::{Deserialize, Serialize};

use crate::key::{ChallengePublic, MachinePublic};

/// Go's `tailcfg.OverTLSPublicKeyResponse`, the JSON body of `GET /key?v=<capver>`. Both keys
/// are always written; a zero key is written as `mkey:` and 64 zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OverTLSPublicKeyResponse {
    /// `legacyPublicKey`: the pre-Noise NaCl key; zero for modern clients (Headscale sends
    /// zero).
    #[serde(rename = "legacyPublicKey")]
    pub legacy_public_key: MachinePublic,
    /// `publicKey`: the server's Noise static public key. Clients refuse a zero key.
    #[serde(rename = "publicKey")]
    pub public_key: MachinePublic,
}

/// Go's `tailcfg.EarlyNoise`: the JSON the server may send inside the Noise transport before
/// HTTP/2, after the `\xff\xff\xffTS` magic and a big-endian u32 length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EarlyNoise {
    /// `nodeKeyChallenge`: a per-connection public key a client can use to prove it holds
    /// its node private key. Always written.
    #[serde(rename = "nodeKeyChallenge")]
    pub node_key_challenge: ChallengePublic,
}

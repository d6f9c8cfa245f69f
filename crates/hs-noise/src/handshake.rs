//! The server half of the ts2021 handshake, Noise `IK` with Tailscale's framing: parse the
//! client's 101-byte initiation, authenticate it against our static key, and produce the
//! 51-byte response plus the transport keys. Sans-IO: bytes in, bytes out, randomness passed in.

use base64::Engine as _;
use hs_types::{MachinePrivate, MachinePublic};
use rand::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use crate::Error;
use crate::crypto::{Aead, HASH_LEN, TAG_LEN, hash, hkdf2};
use crate::record::Transport;

/// The Noise protocol name; its hash seeds the handshake.
pub const PROTOCOL_NAME: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
/// Message type of a handshake initiation.
pub const MSG_TYPE_INITIATION: u8 = 0x01;
/// Message type of a handshake response.
pub const MSG_TYPE_RESPONSE: u8 = 0x02;
/// Message type of an (unauthenticated) error message.
pub const MSG_TYPE_ERROR: u8 = 0x03;
/// Bytes before the Noise message in an initiation: version (u16 BE), type, length (u16 BE).
pub const INITIATION_HEADER_LEN: usize = 5;
/// The Noise message inside an initiation: e (32), encrypted s (48), payload tag (16).
pub const INITIATION_PAYLOAD_LEN: u16 = 96;
/// The whole initiation.
pub const INITIATION_LEN: usize = INITIATION_HEADER_LEN + INITIATION_PAYLOAD_LEN as usize;
/// The Noise message inside a response: e (32), payload tag (16).
pub const RESPONSE_PAYLOAD_LEN: u16 = 48;
/// The whole response: type, length (u16 BE), payload.
pub const RESPONSE_LEN: usize = 3 + RESPONSE_PAYLOAD_LEN as usize;

/// The Noise prologue both sides bind: the client's capability version in decimal.
#[must_use]
pub fn prologue(version: u16) -> String {
    format!("Tailscale Control Protocol v{version}")
}

/// A syntactically valid handshake initiation (not yet authenticated).
#[derive(Clone)]
pub struct Initiation {
    version: u16,
    msg: [u8; INITIATION_PAYLOAD_LEN as usize],
}

impl std::fmt::Debug for Initiation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiation")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Initiation {
    /// Checks the 5-byte header alone, so a stream reader can reject early; returns the
    /// client's protocol version.
    pub fn check_header(header: &[u8; INITIATION_HEADER_LEN]) -> Result<u16, Error> {
        let version = u16::from_be_bytes([header[0], header[1]]);
        if header[2] != MSG_TYPE_INITIATION {
            return Err(Error::InitiationType { got: header[2] });
        }
        let len = u16::from_be_bytes([header[3], header[4]]);
        if len != INITIATION_PAYLOAD_LEN {
            return Err(Error::InitiationLength { got: len });
        }
        Ok(version)
    }

    /// Parses the raw 101-byte initiation.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let (Some(header), Some(msg)) = (
            bytes.first_chunk::<INITIATION_HEADER_LEN>(),
            bytes.get(INITIATION_HEADER_LEN..),
        ) else {
            return Err(Error::InitiationSize { got: bytes.len() });
        };
        if bytes.len() != INITIATION_LEN {
            return Err(Error::InitiationSize { got: bytes.len() });
        }
        let version = Self::check_header(header)?;
        let mut out = [0u8; INITIATION_PAYLOAD_LEN as usize];
        out.copy_from_slice(msg);
        Ok(Self { version, msg: out })
    }

    /// Parses the base64 (standard, padded) form carried in `X-Tailscale-Handshake`.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        // The longest valid value is 136 characters; refuse to decode anything much larger.
        if text.len() > 4 * INITIATION_LEN {
            return Err(Error::InitiationSize {
                got: text.len() / 4 * 3,
            });
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim())?;
        Self::parse(&bytes)
    }

    /// The client's capability version from the header.
    #[must_use]
    pub fn version(&self) -> u16 {
        self.version
    }
}

/// A completed responder handshake: what to send back, and the session it opened.
pub struct Accepted {
    /// The 51 bytes to write to the client before any record.
    pub response: [u8; RESPONSE_LEN],
    /// Record keys, server role (send with k2, receive with k1).
    pub transport: Transport,
    /// The client's authenticated machine key.
    pub peer: MachinePublic,
    /// The client's protocol (capability) version.
    pub version: u16,
    /// The final Noise handshake hash, for channel binding.
    pub handshake_hash: [u8; HASH_LEN],
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("peer", &self.peer)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The Noise symmetric state (`h`, `ck`) during the handshake.
pub(crate) struct Symmetric {
    pub(crate) h: [u8; HASH_LEN],
    pub(crate) ck: [u8; HASH_LEN],
}

impl Symmetric {
    pub(crate) fn new(prologue: &str, responder_static: &[u8; 32]) -> Self {
        // The name is 33 bytes, longer than HASHLEN, so the spec hashes it.
        let h = hash(&[PROTOCOL_NAME.as_bytes()]);
        let mut s = Self { h, ck: h };
        s.mix_hash(prologue.as_bytes());
        s.mix_hash(responder_static);
        s
    }

    pub(crate) fn mix_hash(&mut self, data: &[u8]) {
        self.h = hash(&[&self.h, data]);
    }

    /// MixKey; returns the one-shot cipher key (used once at nonce 0).
    pub(crate) fn mix_key(&mut self, dh: &[u8; 32]) -> Result<Aead, Error> {
        // A low-order peer point yields an all-zero secret; Go's X25519 refuses it too.
        if dh.iter().all(|b| *b == 0) {
            return Err(Error::HandshakeDecrypt);
        }
        let (ck, mut k) = hkdf2(&self.ck, dh);
        self.ck = ck;
        let aead = Aead::new(&k);
        k.zeroize();
        Ok(aead)
    }

    pub(crate) fn decrypt_and_hash(
        &mut self,
        k: &Aead,
        ct: &[u8],
        out: &mut [u8],
    ) -> Result<(), Error> {
        let (body, tag) = ct.split_at(ct.len() - TAG_LEN);
        out.copy_from_slice(body);
        if !k.open(0, &self.h, out, tag) {
            return Err(Error::HandshakeDecrypt);
        }
        self.mix_hash(ct);
        Ok(())
    }

    /// EncryptAndHash of `plain` into `out` (`plain.len() + TAG_LEN` bytes).
    pub(crate) fn encrypt_and_hash(&mut self, k: &Aead, plain: &[u8], out: &mut [u8]) {
        let (body, tag) = out.split_at_mut(plain.len());
        body.copy_from_slice(plain);
        tag.copy_from_slice(&k.seal(0, &self.h, body));
        self.mix_hash(out);
    }

    pub(crate) fn encrypt_and_hash_empty(&mut self, k: &Aead) -> [u8; TAG_LEN] {
        let tag = k.seal(0, &self.h, &mut []);
        self.mix_hash(&tag);
        tag
    }
}

/// Runs the responder side of Noise IK on `init` with our static `key`.
///
/// `rng` supplies the ephemeral key. Fails with [`Error::HandshakeDecrypt`] when the
/// initiation was not made for `key` or was altered.
pub fn respond<R: RngCore + CryptoRng>(
    key: &MachinePrivate,
    init: &Initiation,
    rng: &mut R,
) -> Result<Accepted, Error> {
    let s_pub = key.public();
    let mut sym = Symmetric::new(&prologue(init.version), s_pub.as_bytes());

    // -> e
    let mut re = [0u8; 32];
    re.copy_from_slice(&init.msg[..32]);
    sym.mix_hash(&re);
    // -> es
    let k = sym.mix_key(&key.shared_secret(&re))?;
    // -> s
    let mut rs = [0u8; 32];
    sym.decrypt_and_hash(&k, &init.msg[32..80], &mut rs)?;
    // -> ss
    let k = sym.mix_key(&key.shared_secret(&rs))?;
    // empty payload
    sym.decrypt_and_hash(&k, &init.msg[80..96], &mut [])?;

    // <- e
    let e = StaticSecret::random_from_rng(rng);
    let e_pub = PublicKey::from(&e);
    sym.mix_hash(e_pub.as_bytes());
    // <- ee (its key is superseded before use)
    sym.mix_key(e.diffie_hellman(&PublicKey::from(re)).as_bytes())?;
    // <- se
    let k = sym.mix_key(e.diffie_hellman(&PublicKey::from(rs)).as_bytes())?;
    let tag = sym.encrypt_and_hash_empty(&k);

    let mut response = [0u8; RESPONSE_LEN];
    response[0] = MSG_TYPE_RESPONSE;
    response[1..3].copy_from_slice(&RESPONSE_PAYLOAD_LEN.to_be_bytes());
    response[3..35].copy_from_slice(e_pub.as_bytes());
    response[35..].copy_from_slice(&tag);

    let (mut k1, mut k2) = hkdf2(&sym.ck, &[]);
    // The initiator sends with k1; we are the responder.
    let transport = Transport::new(&k2, &k1);
    k1.zeroize();
    k2.zeroize();
    sym.ck.zeroize();

    Ok(Accepted {
        response,
        transport,
        peer: MachinePublic::from_bytes(rs),
        version: init.version,
        handshake_hash: sym.h,
    })
}

/// An unauthenticated error message (type 0x03) to send instead of a response, as Go's
/// server does when it rejects an initiation read from the stream.
#[must_use]
pub fn error_message(msg: &str) -> Vec<u8> {
    let body = &msg.as_bytes()[..msg.len().min(usize::from(u16::MAX))];
    let mut out = Vec::with_capacity(3 + body.len());
    out.push(MSG_TYPE_ERROR);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

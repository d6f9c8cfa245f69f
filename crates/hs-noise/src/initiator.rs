//! The client half of the ts2021 handshake, for tools that speak the protocol without
//! Tailscale's client (the load generator): build the 101-byte initiation for a server's
//! key, then turn the server's 51-byte response into record keys. Sans-IO like the responder.

use hs_types::{MachinePrivate, MachinePublic};
use rand::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use crate::Error;
use crate::crypto::{HASH_LEN, TAG_LEN, hkdf2};
use crate::handshake::{
    INITIATION_LEN, INITIATION_PAYLOAD_LEN, MSG_TYPE_ERROR, MSG_TYPE_INITIATION, MSG_TYPE_RESPONSE,
    RESPONSE_LEN, RESPONSE_PAYLOAD_LEN, Symmetric, prologue,
};
use crate::record::Transport;

/// A handshake in flight: what the initiator must keep until the response arrives.
pub struct Initiator {
    sym: Symmetric,
    e: StaticSecret,
    key: MachinePrivate,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator").finish_non_exhaustive()
    }
}

impl Initiator {
    /// Starts a handshake as `key` towards the server's `server` key, announcing capability
    /// `version`; returns the state and the initiation to send (in the
    /// `X-Tailscale-Handshake` header, base64).
    pub fn start<R: RngCore + CryptoRng>(
        key: &MachinePrivate,
        server: &MachinePublic,
        version: u16,
        rng: &mut R,
    ) -> Result<(Self, [u8; INITIATION_LEN]), Error> {
        let rs = *server.as_bytes();
        let mut sym = Symmetric::new(&prologue(version), &rs);
        let mut out = [0u8; INITIATION_LEN];
        out[..2].copy_from_slice(&version.to_be_bytes());
        out[2] = MSG_TYPE_INITIATION;
        out[3..5].copy_from_slice(&INITIATION_PAYLOAD_LEN.to_be_bytes());
        // -> e
        let e = StaticSecret::random_from_rng(rng);
        let e_pub = PublicKey::from(&e);
        out[5..37].copy_from_slice(e_pub.as_bytes());
        sym.mix_hash(e_pub.as_bytes());
        // -> es
        let k = sym.mix_key(e.diffie_hellman(&PublicKey::from(rs)).as_bytes())?;
        // -> s
        sym.encrypt_and_hash(&k, key.public().as_bytes(), &mut out[37..85]);
        // -> ss
        let k = sym.mix_key(&key.shared_secret(&rs))?;
        // empty payload
        out[85..].copy_from_slice(&sym.encrypt_and_hash_empty(&k));
        Ok((
            Self {
                sym,
                e,
                key: key.clone(),
            },
            out,
        ))
    }

    /// Completes the handshake with the server's answer. An error message (type 0x03)
    /// becomes [`Error::Refused`] with the server's text.
    pub fn finish(mut self, response: &[u8]) -> Result<Transport, Error> {
        if response.len() < 3 {
            return Err(Error::BadResponse("shorter than its 3-byte header"));
        }
        let len = usize::from(u16::from_be_bytes([response[1], response[2]]));
        match response[0] {
            MSG_TYPE_RESPONSE => {}
            MSG_TYPE_ERROR => {
                let end = (3 + len).min(response.len());
                return Err(Error::Refused(
                    String::from_utf8_lossy(&response[3..end]).into_owned(),
                ));
            }
            _ => return Err(Error::BadResponse("unknown message type")),
        }
        if len != usize::from(RESPONSE_PAYLOAD_LEN) || response.len() != RESPONSE_LEN {
            return Err(Error::BadResponse("wrong length"));
        }
        let mut re = [0u8; 32];
        re.copy_from_slice(&response[3..35]);
        // <- e
        self.sym.mix_hash(&re);
        // <- ee
        self.sym
            .mix_key(self.e.diffie_hellman(&PublicKey::from(re)).as_bytes())?;
        // <- se
        let k = self.sym.mix_key(&self.key.shared_secret(&re))?;
        let tag: &[u8; TAG_LEN] = response[35..]
            .try_into()
            .map_err(|_| Error::BadResponse("wrong length"))?;
        self.sym.decrypt_and_hash(&k, tag, &mut [])?;
        let (mut k1, mut k2): ([u8; HASH_LEN], [u8; HASH_LEN]) = hkdf2(&self.sym.ck, &[]);
        // The initiator sends with k1.
        let t = Transport::new(&k1, &k2);
        k1.zeroize();
        k2.zeroize();
        self.sym.ck.zeroize();
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{Initiation, respond};

    #[test]
    fn initiator_and_responder_agree_on_keys_and_identity() {
        let mut rng = rand::thread_rng();
        let server = MachinePrivate::generate(&mut rng);
        let client = MachinePrivate::generate(&mut rng);
        let (init, msg) = Initiator::start(&client, &server.public(), 130, &mut rng).unwrap();
        let accepted = respond(&server, &Initiation::parse(&msg).unwrap(), &mut rng).unwrap();
        assert_eq!(accepted.peer, client.public());
        assert_eq!(accepted.version, 130);
        let mut client_t = init.finish(&accepted.response).unwrap();
        let mut server_t = accepted.transport;
        // Records go both ways.
        let mut rec = Vec::new();
        client_t.sealer.seal_record(b"hello", &mut rec).unwrap();
        assert_eq!(server_t.opener.open(&mut rec).unwrap(), b"hello");
        let mut back = Vec::new();
        server_t.sealer.seal_record(b"world", &mut back).unwrap();
        assert_eq!(client_t.opener.open(&mut back).unwrap(), b"world");
    }

    #[test]
    fn a_wrong_server_key_or_altered_response_fails() {
        let mut rng = rand::thread_rng();
        let server = MachinePrivate::generate(&mut rng);
        let other = MachinePrivate::generate(&mut rng);
        let client = MachinePrivate::generate(&mut rng);
        let (_, msg) = Initiator::start(&client, &other.public(), 130, &mut rng).unwrap();
        assert!(respond(&server, &Initiation::parse(&msg).unwrap(), &mut rng).is_err());

        let (init, msg) = Initiator::start(&client, &server.public(), 130, &mut rng).unwrap();
        let accepted = respond(&server, &Initiation::parse(&msg).unwrap(), &mut rng).unwrap();
        let mut bad = accepted.response;
        bad[40] ^= 1;
        assert!(matches!(init.finish(&bad), Err(Error::HandshakeDecrypt)));

        let (init, _) = Initiator::start(&client, &server.public(), 130, &mut rng).unwrap();
        let mut refusal = vec![MSG_TYPE_ERROR, 0, 4];
        refusal.extend_from_slice(b"nope");
        assert!(matches!(init.finish(&refusal), Err(Error::Refused(m)) if m == "nope"));
    }
}

//! A client-side ts2021 implementation written from the protocol description (Noise IK
//! spec + Tailscale's framing), independent of the crate's code, to test the responder.

use blake2::{Blake2s256, Digest};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use x25519_dalek::{PublicKey, StaticSecret};

fn h(parts: &[&[u8]]) -> [u8; 32] {
    let mut d = Blake2s256::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().into()
}

fn hmac(key: &[u8], data: &[&[u8]]) -> [u8; 32] {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let mut inner_parts: Vec<&[u8]> = vec![&ipad];
    inner_parts.extend_from_slice(data);
    let inner = h(&inner_parts);
    h(&[&opad, &inner])
}

fn hkdf(ck: &[u8; 32], ikm: &[u8]) -> ([u8; 32], [u8; 32]) {
    let prk = hmac(ck, &[ikm]);
    let t1 = hmac(&prk, &[&[1]]);
    let t2 = hmac(&prk, &[&t1, &[2]]);
    (t1, t2)
}

/// Nonce with the counter big-endian in bytes 4..12 (Tailscale), or little-endian (Noise
/// spec) when `le` — used to prove the server does not accept the spec's layout.
pub(crate) fn nonce(counter: u64, le: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    if le {
        n[4..].copy_from_slice(&counter.to_le_bytes());
    } else {
        n[4..].copy_from_slice(&counter.to_be_bytes());
    }
    n
}

fn encrypt(k: &[u8; 32], counter: u64, ad: &[u8], pt: &[u8]) -> Vec<u8> {
    let c = ChaCha20Poly1305::new(k.into());
    let mut buf = pt.to_vec();
    c.encrypt_in_place(&nonce(counter, false).into(), ad, &mut buf)
        .unwrap();
    buf
}

fn decrypt(k: &[u8; 32], counter: u64, ad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    let c = ChaCha20Poly1305::new(k.into());
    let mut buf = ct.to_vec();
    c.decrypt_in_place(&nonce(counter, false).into(), ad, &mut buf)
        .ok()?;
    Some(buf)
}

/// Handshake state held between sending the initiation and reading the response.
pub(crate) struct Initiator {
    h: [u8; 32],
    ck: [u8; 32],
    e: StaticSecret,
    s: StaticSecret,
    rs: [u8; 32],
}

impl Initiator {
    fn mix_hash(&mut self, d: &[u8]) {
        self.h = h(&[&self.h, d]);
    }
    fn mix_key(&mut self, dh: &[u8]) -> [u8; 32] {
        let (ck, k) = hkdf(&self.ck, dh);
        self.ck = ck;
        k
    }

    /// Builds the 101-byte initiation from `client` to the server with public key `server`.
    pub(crate) fn start(
        version: u16,
        client: [u8; 32],
        ephemeral: [u8; 32],
        server: [u8; 32],
    ) -> (Self, Vec<u8>) {
        let name = b"Noise_IK_25519_ChaChaPoly_BLAKE2s";
        let h0 = h(&[name]);
        let mut st = Self {
            h: h0,
            ck: h0,
            e: StaticSecret::from(ephemeral),
            s: StaticSecret::from(client),
            rs: server,
        };
        st.mix_hash(format!("Tailscale Control Protocol v{version}").as_bytes());
        st.mix_hash(&server);
        let e_pub = PublicKey::from(&st.e);
        st.mix_hash(e_pub.as_bytes());
        let k = st.mix_key(st.e.diffie_hellman(&PublicKey::from(server)).as_bytes());
        let s_pub = PublicKey::from(&st.s);
        let enc_s = encrypt(&k, 0, &st.h, s_pub.as_bytes());
        st.mix_hash(&enc_s);
        let k = st.mix_key(st.s.diffie_hellman(&PublicKey::from(server)).as_bytes());
        let tag = encrypt(&k, 0, &st.h, &[]);
        st.mix_hash(&tag);

        let mut msg = Vec::with_capacity(101);
        msg.extend_from_slice(&version.to_be_bytes());
        msg.push(1);
        msg.extend_from_slice(&96u16.to_be_bytes());
        msg.extend_from_slice(e_pub.as_bytes());
        msg.extend_from_slice(&enc_s);
        msg.extend_from_slice(&tag);
        assert_eq!(msg.len(), 101);
        (st, msg)
    }

    /// Checks the server's 51-byte response; returns the client's (tx, rx) record keys.
    pub(crate) fn finish(mut self, resp: &[u8]) -> Result<ClientTransport, String> {
        if resp.len() != 51 {
            return Err(format!("response is {} bytes", resp.len()));
        }
        if resp[0] != 2 || resp[1..3] != [0, 48] {
            return Err(format!("bad response header {:?}", &resp[..3]));
        }
        let mut re = [0u8; 32];
        re.copy_from_slice(&resp[3..35]);
        self.mix_hash(&re);
        self.mix_key(self.e.diffie_hellman(&PublicKey::from(re)).as_bytes());
        let k = self.mix_key(self.s.diffie_hellman(&PublicKey::from(re)).as_bytes());
        let _ = self.rs;
        decrypt(&k, 0, &self.h, &resp[35..51]).ok_or("response tag does not verify")?;
        let (k1, k2) = hkdf(&self.ck, &[]);
        Ok(ClientTransport {
            tx: k1,
            rx: k2,
            tx_n: 0,
            rx_n: 0,
        })
    }
}

/// The client's record keys and counters.
pub(crate) struct ClientTransport {
    pub(crate) tx: [u8; 32],
    pub(crate) rx: [u8; 32],
    pub(crate) tx_n: u64,
    pub(crate) rx_n: u64,
}

impl ClientTransport {
    /// One record frame with the next send counter.
    pub(crate) fn seal(&mut self, pt: &[u8]) -> Vec<u8> {
        let ct = encrypt(&self.tx, self.tx_n, &[], pt);
        self.tx_n += 1;
        let mut f = vec![4];
        f.extend_from_slice(&(ct.len() as u16).to_be_bytes());
        f.extend_from_slice(&ct);
        f
    }

    /// One record sealed at `counter` with the nonce laid out little-endian.
    pub(crate) fn seal_le(&self, counter: u64, pt: &[u8]) -> Vec<u8> {
        let c = ChaCha20Poly1305::new((&self.tx).into());
        let mut buf = pt.to_vec();
        c.encrypt_in_place(&nonce(counter, true).into(), &[], &mut buf)
            .unwrap();
        let mut f = vec![4];
        f.extend_from_slice(&(buf.len() as u16).to_be_bytes());
        f.extend_from_slice(&buf);
        f
    }

    /// Opens every whole frame in `buf`, returning their plaintexts and the bytes left over.
    pub(crate) fn open_all(&mut self, mut buf: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut out = Vec::new();
        while buf.len() >= 3 {
            assert_eq!(buf[0], 4, "server sent a non-record frame");
            let n = u16::from_be_bytes([buf[1], buf[2]]) as usize;
            assert!(3 + n <= 4096, "server frame over 4096 bytes");
            if buf.len() < 3 + n {
                break;
            }
            let pt = decrypt(&self.rx, self.rx_n, &[], &buf[3..3 + n]).expect("server record");
            self.rx_n += 1;
            out.push(pt);
            buf = &buf[3 + n..];
        }
        (out, buf.to_vec())
    }
}

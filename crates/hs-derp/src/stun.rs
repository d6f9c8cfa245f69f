//! STUN (RFC 5389) just far enough for Tailscale's netcheck: parse Binding requests, answer
//! with XOR-MAPPED-ADDRESS, plus the client side (request builder, response parser) used by
//! tests and probes. Everything else is rejected with a reason and ignored by the responder.
//! The UDP loop lives in [`serve`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;

/// The RFC 5389 magic cookie.
pub const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const HEADER_LEN: usize = 20;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
const ATTR_XOR_MAPPED_ADDRESS_ALT: u16 = 0x8020;
const ATTR_SOFTWARE: u16 = 0x8022;
const ATTR_FINGERPRINT: u16 = 0x8028;
const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// A STUN transaction id.
pub type TxId = [u8; 12];

/// Why a datagram is not a usable STUN message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    /// Shorter than a header, top bits set, or without the magic cookie.
    #[error("STUN: not a STUN message")]
    NotStun,
    /// The header's length does not match the datagram.
    #[error("STUN: header length {header} but {actual} attribute bytes")]
    BadLength {
        /// Length from the header.
        header: usize,
        /// Bytes actually present after the header.
        actual: usize,
    },
    /// A STUN message of another type.
    #[error("STUN: message type {0:#06x} is not the one expected")]
    WrongType(u16),
    /// A FINGERPRINT attribute that does not match.
    #[error("STUN: bad FINGERPRINT")]
    BadFingerprint,
    /// An attribute runs past the end.
    #[error("STUN: truncated attribute")]
    Truncated,
    /// A response without a usable address attribute.
    #[error("STUN: response has no mapped address")]
    NoAddress,
}

/// CRC-32 (IEEE), bitwise: STUN messages are tiny, a table buys nothing.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

fn header(msg: &[u8]) -> Result<(u16, TxId), StunError> {
    if msg.len() < HEADER_LEN || msg[0] & 0xc0 != 0 || msg[4..8] != MAGIC_COOKIE {
        return Err(StunError::NotStun);
    }
    let len = usize::from(u16::from_be_bytes([msg[2], msg[3]]));
    if len != msg.len() - HEADER_LEN {
        return Err(StunError::BadLength {
            header: len,
            actual: msg.len() - HEADER_LEN,
        });
    }
    let mut tx = [0u8; 12];
    tx.copy_from_slice(&msg[8..20]);
    Ok((u16::from_be_bytes([msg[0], msg[1]]), tx))
}

/// Walks attributes, calling `f(type, value, offset_of_attr)`.
fn attrs(msg: &[u8], mut f: impl FnMut(u16, &[u8], usize)) -> Result<(), StunError> {
    let mut at = HEADER_LEN;
    while at < msg.len() {
        if at + 4 > msg.len() {
            return Err(StunError::Truncated);
        }
        let t = u16::from_be_bytes([msg[at], msg[at + 1]]);
        let l = usize::from(u16::from_be_bytes([msg[at + 2], msg[at + 3]]));
        let end = at + 4 + l;
        if end > msg.len() {
            return Err(StunError::Truncated);
        }
        f(t, &msg[at + 4..end], at);
        at = end + (4 - l % 4) % 4;
    }
    Ok(())
}

/// Checks that `msg` is a Binding request and returns its transaction id. A FINGERPRINT, when
/// present, must be right; SOFTWARE is not required (Tailscale's own server is stricter).
pub fn parse_binding_request(msg: &[u8]) -> Result<TxId, StunError> {
    let (ty, tx) = header(msg)?;
    if ty != BINDING_REQUEST {
        return Err(StunError::WrongType(ty));
    }
    let mut fp_ok = true;
    attrs(msg, |t, v, at| {
        if t == ATTR_FINGERPRINT {
            let want = crc32(&msg[..at]) ^ FINGERPRINT_XOR;
            fp_ok = v.len() == 4 && u32::from_be_bytes([v[0], v[1], v[2], v[3]]) == want;
        }
    })?;
    if !fp_ok {
        return Err(StunError::BadFingerprint);
    }
    Ok(tx)
}

fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// A Binding success response telling the client it was seen at `addr`.
pub fn binding_response(tx: &TxId, addr: SocketAddr) -> Vec<u8> {
    let addr = unmap(addr);
    let (family, ip): (u8, Vec<u8>) = match addr.ip() {
        IpAddr::V4(v4) => (1, v4.octets().to_vec()),
        IpAddr::V6(v6) => (2, v6.octets().to_vec()),
    };
    let value_len = 4 + ip.len();
    let mut m = Vec::with_capacity(HEADER_LEN + 4 + value_len);
    m.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    m.extend_from_slice(&((4 + value_len) as u16).to_be_bytes());
    m.extend_from_slice(&MAGIC_COOKIE);
    m.extend_from_slice(tx);
    m.extend_from_slice(&ATTR_XOR_MAPPED_ADDRESS.to_be_bytes());
    m.extend_from_slice(&(value_len as u16).to_be_bytes());
    m.push(0);
    m.push(family);
    m.extend_from_slice(&(addr.port() ^ 0x2112).to_be_bytes());
    let mut mask = MAGIC_COOKIE.to_vec();
    mask.extend_from_slice(tx);
    m.extend(ip.iter().zip(mask.iter()).map(|(a, b)| a ^ b));
    m
}

/// A Binding request as tailscaled sends it: SOFTWARE `tailnode` and a FINGERPRINT.
pub fn binding_request(tx: &TxId) -> Vec<u8> {
    let mut m = Vec::with_capacity(40);
    m.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    m.extend_from_slice(&20u16.to_be_bytes());
    m.extend_from_slice(&MAGIC_COOKIE);
    m.extend_from_slice(tx);
    m.extend_from_slice(&ATTR_SOFTWARE.to_be_bytes());
    m.extend_from_slice(&8u16.to_be_bytes());
    m.extend_from_slice(b"tailnode");
    let fp = crc32(&m) ^ FINGERPRINT_XOR;
    m.extend_from_slice(&ATTR_FINGERPRINT.to_be_bytes());
    m.extend_from_slice(&4u16.to_be_bytes());
    m.extend_from_slice(&fp.to_be_bytes());
    m
}

/// Parses a Binding success response: its transaction id and the mapped address.
pub fn parse_response(msg: &[u8]) -> Result<(TxId, SocketAddr), StunError> {
    let (ty, tx) = header(msg)?;
    if ty != BINDING_SUCCESS {
        return Err(StunError::WrongType(ty));
    }
    let mut xor = None;
    let mut plain = None;
    attrs(msg, |t, v, _| match t {
        ATTR_XOR_MAPPED_ADDRESS | ATTR_XOR_MAPPED_ADDRESS_ALT => {
            let mut mask = MAGIC_COOKIE.to_vec();
            mask.extend_from_slice(&tx);
            xor = xor.or_else(|| decode_addr(v, Some(&mask)));
        }
        ATTR_MAPPED_ADDRESS => plain = plain.or_else(|| decode_addr(v, None)),
        _ => {}
    })?;
    xor.or(plain).map(|a| (tx, a)).ok_or(StunError::NoAddress)
}

fn decode_addr(v: &[u8], mask: Option<&[u8]>) -> Option<SocketAddr> {
    if v.len() < 4 {
        return None;
    }
    let mut port = u16::from_be_bytes([v[2], v[3]]);
    let xor = |i: usize, b: u8| mask.map_or(b, |m| b ^ m[i]);
    if mask.is_some() {
        port ^= 0x2112;
    }
    let ip = match (v[1], v.len()) {
        (1, 8) => {
            let o: Vec<u8> = v[4..8]
                .iter()
                .enumerate()
                .map(|(i, b)| xor(i, *b))
                .collect();
            IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
        }
        (2, 20) => {
            let mut o = [0u8; 16];
            for (i, b) in v[4..20].iter().enumerate() {
                o[i] = xor(i, *b);
            }
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Answers Binding requests on `socket` until it fails; other datagrams are dropped.
pub async fn serve(socket: UdpSocket) -> std::io::Result<()> {
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(v) => v,
            // A previous reply's ICMP unreachable surfaces here on some platforms.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => continue,
            Err(e) => return Err(e),
        };
        match parse_binding_request(&buf[..n]) {
            Ok(tx) => {
                let resp = binding_response(&tx, from);
                if let Err(e) = socket.send_to(&resp, from).await {
                    tracing::debug!(%from, error = %e, "STUN reply failed");
                }
            }
            Err(e) => tracing::trace!(%from, error = %e, "ignoring non-binding STUN datagram"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TX: TxId = *b"abcdefghijkl";

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn request_is_tailscales_40_bytes_and_parses() {
        let r = binding_request(&TX);
        assert_eq!(r.len(), 40);
        assert_eq!(&r[..4], &[0, 1, 0, 20]);
        assert_eq!(parse_binding_request(&r), Ok(TX));
    }

    #[test]
    fn corrupted_fingerprint_and_junk_are_rejected() {
        let mut r = binding_request(&TX);
        r[39] ^= 1;
        assert_eq!(parse_binding_request(&r), Err(StunError::BadFingerprint));
        assert_eq!(parse_binding_request(b"hello"), Err(StunError::NotStun));
        let mut r = binding_request(&TX);
        r[0] = 0x01;
        r[1] = 0x01;
        assert_eq!(parse_binding_request(&r), Err(StunError::WrongType(0x0101)));
        let r = binding_request(&TX);
        assert!(matches!(
            parse_binding_request(&r[..36]),
            Err(StunError::BadLength { .. })
        ));
    }

    #[test]
    fn response_xor_encodes_v4_per_rfc() {
        let addr: SocketAddr = "192.0.2.1:32853".parse().unwrap();
        let r = binding_response(&TX, addr);
        assert_eq!(r.len(), 32);
        assert_eq!(&r[20..24], &[0x00, 0x20, 0x00, 0x08]);
        // RFC 5769 §2.2's x-port and x-address for the same address.
        assert_eq!(&r[26..28], &[0xa1, 0x47]);
        assert_eq!(&r[28..32], &[0xe1, 0x12, 0xa6, 0x43]);
        assert_eq!(parse_response(&r), Ok((TX, addr)));
    }

    #[test]
    fn response_handles_v6_and_unmaps_v4_in_v6() {
        let v6: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
        let r = binding_response(&TX, v6);
        assert_eq!(r.len(), 44);
        assert_eq!(parse_response(&r), Ok((TX, v6)));
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:77".parse().unwrap();
        let r = binding_response(&TX, mapped);
        assert_eq!(
            parse_response(&r).unwrap().1,
            "10.1.2.3:77".parse().unwrap()
        );
    }
}

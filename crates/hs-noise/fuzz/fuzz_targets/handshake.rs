//! Fuzzes the handshake initiation parsers (raw and base64) and the responder. Any input
//! must give a clean error or a 51-byte response, never a panic. Inputs starting with 0x01
//! instead choose keys and byte flips for an initiation built by the spec initiator (shared
//! with the integration tests): unmodified it must complete both sides, modified it must be
//! refused.
#![no_main]
#![allow(dead_code)]

#[path = "../../tests/it/initiator.rs"]
mod initiator;

use hs_noise::handshake::{INITIATION_HEADER_LEN, RESPONSE_LEN};
use hs_noise::{Initiation, respond};
use hs_types::MachinePrivate;
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

fn server() -> MachinePrivate {
    MachinePrivate::from_bytes([0x33; 32])
}

fn structured(data: &[u8]) {
    let Some((keys, flips)) = data.split_at_checked(66) else {
        return;
    };
    let version = u16::from_be_bytes([keys[0], keys[1]]);
    let client: [u8; 32] = keys[2..34].try_into().expect("32");
    let eph: [u8; 32] = keys[34..66].try_into().expect("32");
    let key = server();
    let (ini, original) =
        initiator::Initiator::start(version, client, eph, *key.public().as_bytes());
    let mut msg = original.clone();
    // Each (position, xor) pair flips bits of the initiation.
    for pair in flips.chunks_exact(2) {
        let pos = usize::from(pair[0]) % msg.len();
        msg[pos] ^= pair[1];
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let result = Initiation::parse(&msg).and_then(|i| respond(&key, &i, &mut rng));
    // Flips that cancel out leave a valid message; any real change must be refused.
    match (msg == original, result) {
        (true, Ok(acc)) => {
            let mut client_t = ini
                .finish(&acc.response)
                .expect("client accepts our response");
            let mut f = client_t.seal(b"x");
            let mut server_t = acc.transport;
            assert_eq!(server_t.opener.open(&mut f).expect("keys agree"), b"x");
        }
        (true, Err(e)) => panic!("valid initiation refused: {e}"),
        (false, Ok(_)) => panic!("a modified initiation was accepted"),
        (false, Err(_)) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some((&0x01, rest)) = data.split_first() {
        structured(rest);
        return;
    }
    if let Some(h) = data.first_chunk::<INITIATION_HEADER_LEN>() {
        let _ = Initiation::check_header(h);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Initiation::from_base64(text);
    }
    if let Ok(init) = Initiation::parse(data) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        if let Ok(acc) = respond(&server(), &init, &mut rng) {
            assert_eq!(acc.response.len(), RESPONSE_LEN);
        }
    }
});

//! Fuzzes the handshake initiation parsers (raw and base64) and the responder: any input
//! must give a clean error or a 51-byte response, never a panic.
#![no_main]

use hs_noise::handshake::{INITIATION_HEADER_LEN, RESPONSE_LEN};
use hs_noise::{Initiation, respond};
use hs_types::MachinePrivate;
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    if let Some(h) = data.first_chunk::<INITIATION_HEADER_LEN>() {
        let _ = Initiation::check_header(h);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Initiation::from_base64(text);
    }
    if let Ok(init) = Initiation::parse(data) {
        let key = MachinePrivate::from_bytes([0x33; 32]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        if let Ok(acc) = respond(&key, &init, &mut rng) {
            assert_eq!(acc.response.len(), RESPONSE_LEN);
        }
    }
});

//! Fuzzes the STUN server's parsing: any datagram as a binding request or a binding response
//! gives a value or a `StunError`, never a panic; a request that parses is answered with a
//! response that parses back to the same transaction ID and address.
#![no_main]

use std::net::SocketAddr;

use hs_derp::stun::{binding_response, parse_binding_request, parse_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = parse_binding_request(data) {
        for addr in ["192.0.2.7:41641", "[2001:db8::7]:3478"] {
            let addr: SocketAddr = addr.parse().expect("a literal address");
            let resp = binding_response(&tx, addr);
            assert_eq!(parse_response(&resp).ok(), Some((tx, addr)));
        }
    }
    let _ = parse_response(data);
});

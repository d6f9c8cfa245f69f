//! Fuzzes the record parser and opener: arbitrary bytes from a peer, split into frames and
//! opened in order, must yield a clean error or plaintext, never a panic, and never a frame
//! over 4096 bytes. Inputs starting with 0xff are instead a plaintext to round-trip.
#![no_main]

use hs_noise::record::{MAX_FRAME_LEN, MAX_PLAINTEXT_LEN};
use hs_noise::{Transport, parse_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut server = Transport::new(&[1; 32], &[2; 32]);
    let mut client = Transport::new(&[2; 32], &[1; 32]);
    if let Some((&0xff, plain)) = data.split_first() {
        let mut wire = Vec::new();
        client.sealer.seal(plain, &mut wire).expect("seal");
        let mut rest = &mut wire[..];
        let mut got = Vec::new();
        while !rest.is_empty() {
            let n = parse_frame(rest)
                .expect("own frame parses")
                .expect("whole frame");
            assert!(n <= MAX_FRAME_LEN);
            let (frame, tail) = rest.split_at_mut(n);
            let p = server.opener.open(frame).expect("own frame opens");
            assert!(p.len() <= MAX_PLAINTEXT_LEN);
            got.extend_from_slice(p);
            rest = tail;
        }
        assert_eq!(got, plain);
        return;
    }
    let mut buf = data.to_vec();
    let mut rest = &mut buf[..];
    loop {
        match parse_frame(rest) {
            Ok(Some(n)) => {
                assert!(n <= MAX_FRAME_LEN && n <= rest.len());
                let (frame, tail) = rest.split_at_mut(n);
                if server.opener.open(frame).is_err() {
                    return;
                }
                rest = tail;
            }
            Ok(None) | Err(_) => return,
        }
    }
});

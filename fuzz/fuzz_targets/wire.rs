//! The wire connection state machine fed arbitrary bytes, in arbitrary pieces: never
//! panics, never buffers more than a message, and every close has a reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmsite_node::wire::message::{EXT_HANDSHAKE, ExtHandshake, Handshake, frame_extended};
use swarmsite_node::wire::{Connection, Event, WireConfig};

fuzz_target!(|data: &[u8]| {
    let cfg = WireConfig::new([9; 20], [1; 20], Some(7000));
    // Half the inputs start after a valid handshake, so the fuzzer reaches messages.
    let (prefix, rest) = match data.split_first() {
        Some((b, rest)) if b & 1 == 1 => {
            let mut p = Handshake::new([9; 20], [2; 20]).encode().to_vec();
            p.extend_from_slice(&frame_extended(
                EXT_HANDSHAKE,
                &ExtHandshake::ours(Some(1), Some(2), Some((3, [4; 20]))).encode(),
            ));
            (p, rest)
        }
        Some((_, rest)) => (Vec::new(), rest),
        None => return,
    };
    let mut conn = Connection::new(cfg, 0, false);
    conn.handle_input(&prefix, 0);
    let mut now = 0;
    for chunk in rest.chunks(97) {
        now += 7;
        conn.handle_input(chunk, now);
        let _ = conn.take_transmit();
        while let Some(ev) = conn.poll_event() {
            if let Event::Closed(reason) = ev {
                let _ = reason.to_string();
            }
        }
        if conn.is_closed() {
            break;
        }
    }
    conn.handle_eof();
    conn.handle_timeout(now + 1_000_000);
});

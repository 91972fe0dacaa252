//! Arbitrary client streams and segmentations through the server session: pongs never exceed
//! the complete pings received, none follow `end` or an invalid byte, and the total equals the
//! model's (SPEC: SRV-PONG-1, SRV-PONG-2, SRV-END-2, SRV-INVALID-1, SRV-EOF-1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use udsping::proto::{Ending, ServerSession};

use udsping::proto::grammar::{judge, pieces, ModelEnding};

fuzz_target!(|input: (Vec<u8>, Vec<u8>, bool)| {
    let (stream, lengths, eof) = input;
    let mut session = ServerSession::new();
    let mut pongs = 0;
    let mut fed = 0;
    let mut closed: Option<Ending> = None;
    for piece in pieces(&stream, &lengths) {
        let reply = session.on_bytes(piece);
        if closed.is_some() {
            assert_eq!(reply.pongs, 0, "a pong after the connection's end");
        }
        pongs += reply.pongs;
        fed += piece.len();
        // Never more pongs than complete pings received so far.
        assert!(pongs <= judge(&stream[..fed]).pings);
        closed = closed.or(reply.close);
    }
    if eof {
        let reply = session.on_eof();
        assert_eq!(reply.pongs, 0);
        closed = closed.or(reply.close);
    }
    let verdict = judge(&stream);
    assert_eq!(pongs, verdict.pings);
    match (&verdict.ending, closed) {
        (ModelEnding::End { .. }, Some(Ending::End)) => {}
        (ModelEnding::Invalid { at }, Some(Ending::Invalid(invalid))) => assert_eq!(invalid.offset as usize, *at),
        (ModelEnding::Open { mid_token }, Some(Ending::Eof { mid_token: m })) if eof => assert_eq!(*mid_token, m),
        (ModelEnding::Open { .. }, None) if !eof => {}
        (ending, closed) => panic!("model {ending:?}, session closed with {closed:?} (eof: {eof})"),
    }
    assert_eq!(session.ending(), closed);
});

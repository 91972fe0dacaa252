//! Any bytes, fed in any segmentation derived from the input, give the same events as feeding
//! them whole, and those events are what the grammar says (SPEC: WIRE-STREAM-1, WIRE-INVALID-1,
//! WIRE-DECODE-1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use udsping::proto::{Decoder, Event, Status};

use udsping::proto::grammar::{judge, pieces, ModelEnding};

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (stream, lengths) = input;
    let verdict = judge(&stream);

    let whole = Decoder::new().decode(&stream);
    assert_eq!(whole.pings, verdict.pings);
    match (whole.status, &verdict.ending) {
        (Status::NeedMore, ModelEnding::Open { .. }) => assert_eq!(whole.consumed, stream.len()),
        (Status::End, ModelEnding::End { at }) => assert_eq!(whole.consumed, *at),
        (Status::Invalid(invalid), ModelEnding::Invalid { at }) => {
            // The first deviating byte, named exactly.
            assert_eq!(invalid.offset as usize, *at);
            assert_eq!(invalid.byte, stream[*at]);
            assert_eq!(whole.consumed, *at);
        }
        (status, ending) => panic!("decoder says {status:?}, the grammar says {ending:?}"),
    }

    let mut decoder = Decoder::new();
    let mut events = Vec::new();
    let mut fed = 0usize;
    for piece in pieces(&stream, &lengths) {
        let decoded = decoder.decode(piece);
        events.extend(decoded.events());
        fed += piece.len();
        if decoded.status != Status::NeedMore {
            // Nothing is decoded after the stream ended or broke.
            let again = decoder.decode(b"pingping");
            assert_eq!(again.pings, 0);
            assert!(again.status != Status::NeedMore);
            break;
        }
        // At most one partial token is pending, and exactly when the bytes so far stop inside one.
        let so_far = judge(&stream[..fed]);
        assert_eq!(decoder.is_mid_token(), so_far.ending == ModelEnding::Open { mid_token: true });
        assert_eq!(decoder.offset() as usize, fed);
    }
    let whole_events: Vec<Event> = whole.events().collect();
    assert_eq!(events, whole_events);
});

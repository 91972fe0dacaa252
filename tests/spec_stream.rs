//! SPEC.md sections 4 and 5 against the real server over real sockets: segmentation, replies,
//! `end`, invalid input and EOF. Each case names the requirements it checks.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use rstest::rstest;
use udsping::proto::grammar::{judge, split_at, INVALID_CLASSES, INVALID_TABLE};
use udsping::proto::{Decoder, Event, Status};

/// The pieces of a named case, written as one byte string with `|` between pieces.
fn pieces(parts: &[u8]) -> Vec<Vec<u8>> {
    parts.split(|&b| b == b'|').map(<[u8]>::to_vec).collect()
}

// SPEC: WIRE-GRAMMAR-1 — in every case the server sends nothing but whole `pong`s.
// Named cases of SPEC.md: the bytes a client sends (one write per piece, 20 ms apart to force
// separate reads), and the exact reply. Every case half-closes at the end and expects the
// server to close.
#[rstest]
// SPEC: SRV-PONG-1, SRV-END-1
#[case::lockstep_then_end(b"ping|ping|end", b"pongpong")]
// SPEC: WIRE-STREAM-1, SRV-PONG-2 — a ping split at every position.
#[case::split_p_ing(b"p|ing|end", b"pong")]
#[case::split_pi_ng(b"pi|ng|end", b"pong")]
#[case::split_pin_g(b"pin|g|end", b"pong")]
#[case::split_byte_by_byte(b"p|i|n|g|e|n|d", b"pong")]
#[case::split_end(b"pinge|nd", b"pong")]
// SPEC: WIRE-STREAM-1, SRV-PONG-4 — coalesced tokens in one read.
#[case::coalesced(b"pingpingpingend", b"pongpongpong")]
#[case::coalesced_across_pieces(b"pingpi|ngping|end", b"pongpongpong")]
// SPEC: WIRE-INVALID-1, SRV-INVALID-1 — each kind of invalid input; owed pongs first.
#[case::wrong_case(b"PING", b"")]
#[case::wrong_case_late(b"pingpinG", b"pong")]
#[case::newline(b"ping\n", b"pong")]
#[case::non_utf8(b"ping|\xff\xfe", b"pong")]
#[case::nul(b"pingpi\0", b"pong")]
#[case::garbage_after_pings(b"pingpingxyz", b"pongpong")]
#[case::space_delimited(b"ping ping", b"pong")]
// SPEC: SRV-END-2 — bytes after end never answered, in the same read or a later one.
#[case::bytes_after_end_same_read(b"pingendping", b"pong")]
#[case::bytes_after_end_later(b"pingend|pingping", b"pong")]
// SPEC: SRV-EOF-1 — EOF mid-token: owed pongs, nothing for the partial token.
#[case::eof_mid_ping(b"pingpi", b"pong")]
#[case::eof_mid_end(b"pingen", b"pong")]
#[case::eof_at_boundary(b"pingping", b"pongpong")]
#[case::eof_at_once(b"", b"")]
fn named_case(#[case] parts: &[u8], #[case] reply: &[u8]) {
    let server = TestServer::start();
    let heard = converse(&server.path, &pieces(parts), Duration::from_millis(20));
    assert_eq!(heard, Heard { bytes: reply.to_vec(), closed: true }, "sent {:?}", parts.escape_ascii().to_string());
}

// SPEC: SRV-PONG-3, WIRE-STREAM-2 — a complete ping is answered while the client keeps the
// connection open and sends nothing more (the server does not wait for a fuller read).
#[test]
fn pong_is_sent_without_waiting_for_more_bytes() {
    let server = TestServer::start();
    let mut stream = connect(&server.path);
    for piece in [&b"pi"[..], b"ng"] {
        stream.write_all(piece).unwrap();
        stream.flush().unwrap();
    }
    assert_eq!(read_exactly(&mut stream, 4), b"pong");
    stream.write_all(b"pingp").unwrap();
    assert_eq!(read_exactly(&mut stream, 4), b"pong", "the pending 'p' must not hold back the reply");
}

// SPEC: SRV-END-1 — after `end` the server closes by itself, without waiting for the client's EOF.
#[test]
fn end_closes_without_client_eof() {
    let server = TestServer::start();
    let mut stream = connect(&server.path);
    stream.write_all(b"pingend").unwrap();
    assert_eq!(read_to_close(&mut stream, DEADLINE), Heard { bytes: b"pong".to_vec(), closed: true });
}

// SPEC: SRV-EOF-2 — the server counts each way a connection ends separately.
#[test]
fn endings_are_counted_by_kind() {
    let server = TestServer::start();
    for stream in [&b"pingend"[..], b"pingX", b"pi", b"ping"] {
        converse(&server.path, &[stream.to_vec()], Duration::ZERO);
    }
    let stats = server.wait_for_ended(4);
    assert_eq!((stats.ended_by_end, stats.ended_by_invalid, stats.ended_by_eof), (1, 1, 2), "{stats:?}");
}

// SPEC: SRV-PONG-4, WIRE-DECODE-1 — a long pipelined stream is answered in full.
#[test]
fn long_pipelined_stream_is_answered_in_full() {
    let server = TestServer::start();
    let count = 100_000;
    let mut stream = connect(&server.path);
    let mut reader = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        stream.write_all(&b"ping".repeat(count)).unwrap();
        stream.write_all(b"end").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
    });
    let heard = read_to_close(&mut reader, DEADLINE);
    writer.join().unwrap();
    assert!(heard.closed);
    assert_eq!(heard.bytes.len(), 4 * count);
    assert!(heard.bytes.chunks(4).all(|c| c == b"pong"));
}

/// A client's stream: sequences of tokens, near misses, bytes of every invalid class of SPEC.md
/// section 4.4 and noise.
fn client_stream() -> impl Strategy<Value = Vec<u8>> {
    let classed: Vec<u8> = INVALID_CLASSES.iter().flat_map(|(_, bytes)| bytes.iter().copied()).collect();
    let token = prop_oneof![
        6 => Just(b"ping".to_vec()),
        1 => Just(b"end".to_vec()),
        1 => prop::sample::select(vec![&b"PING"[..], b"pin", b"pi", b"p", b"en", b"pong", b"ping\n", b"\0", b"\xff"]).prop_map(<[u8]>::to_vec),
        1 => prop::sample::select(classed).prop_map(|b| vec![b]),
        1 => prop::collection::vec(any::<u8>(), 1..4),
    ];
    prop::collection::vec(token, 0..12).prop_map(|tokens| tokens.concat())
}

/// Splits `stream` at the given fractions into non-empty pieces (the shared segmenter).
fn split(stream: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
    let points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
    split_at(stream, &points).into_iter().map(<[u8]>::to_vec).collect()
}

// SPEC: WIRE-INVALID-1 — SPEC.md section 4.4's table against the real server: the pings before
// the first invalid byte are answered, then the connection closes.
#[test]
fn spec_table_streams_against_the_server() {
    let server = TestServer::start();
    for row in INVALID_TABLE {
        let heard = converse(&server.path, &[row.stream.to_vec()], Duration::ZERO);
        let pongs = row.stream[..row.offset].len() / 4;
        assert_eq!(heard, Heard { bytes: b"pong".repeat(pongs), closed: true }, "{}", row.why);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    // SPEC: WIRE-STREAM-1, SRV-PONG-1, SRV-PONG-2, SRV-END-2, SRV-INVALID-1, SRV-EOF-1 —
    // generated streams, split at generated points and written with generated pauses, against
    // the real server: the reply and the close are what the model of SPEC.md predicts.
    #[test]
    fn server_replies_as_the_model_predicts(
        stream in client_stream(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        pause_ms in 0u64..3,
    ) {
        let server = TestServer::start();
        let heard = converse(&server.path, &split(&stream, &cuts), Duration::from_millis(pause_ms));
        prop_assert_eq!(heard, Heard { bytes: b"pong".repeat(judge(&stream).pings), closed: true });
    }

    // SPEC: WIRE-STREAM-1, WIRE-DECODE-1 — the pure decoder: any segmentation gives the same
    // events as the whole stream.
    #[test]
    fn decoder_events_do_not_depend_on_segmentation(
        stream in client_stream(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let whole: Vec<Event> = Decoder::new().decode(&stream).events().collect();
        let mut decoder = Decoder::new();
        let mut pieced = Vec::new();
        for piece in split(&stream, &cuts) {
            let decoded = decoder.decode(&piece);
            pieced.extend(decoded.events());
            if decoded.status != Status::NeedMore { break; }
        }
        prop_assert_eq!(pieced, whole);
    }

    // SPEC: WIRE-INVALID-1 — the decoder's pings and its verdict agree with the model: as many
    // pings as lead the stream, and an end of stream exactly when the model closes early.
    #[test]
    fn decoder_agrees_with_the_model(stream in client_stream()) {
        let decoded = Decoder::new().decode(&stream);
        prop_assert_eq!(decoded.pings, judge(&stream).pings);
        prop_assert_eq!(decoded.status != Status::NeedMore, judge(&stream).closes_before_eof());
        if let Status::Invalid(invalid) = decoded.status {
            // The invalid byte is the first byte that no string of the grammar continues with.
            let offset = invalid.offset as usize;
            prop_assert_eq!(stream[offset], invalid.byte);
            prop_assert!(!judge(&stream[..offset]).closes_before_eof());
        }
    }
}

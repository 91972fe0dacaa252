//! The core against references written independently of it, through its public API only.
//!
//! - The decoder and the server session against the grammar oracle (`grammar::judge`): for any
//!   byte string cut into any reads (empty ones included), the same pings and pongs, in the read
//!   that completes them, the same offsets, consumed bytes, first invalid byte and ending.
//! - The client session against a model of a lock-step client kept in flags, not states.
//!
//! Each comparison runs on generated streams (proptest: tokens, token prefixes, runs long enough
//! for the decoder's block fast path, and arbitrary bytes) and on every short concatenation of
//! tokens, token prefixes and an invalid byte, read whole, a byte at a time and in two reads at
//! every point, so the short cases never depend on the draw (with `PROPTEST_CASES=1` the suite
//! still kills every mutant cargo-mutants makes of the crate).

use std::fmt;

use proptest::prelude::*;
use proptest::sample::Index;
use udsping_proto::grammar::{judge, pieces, ModelEnding, Verdict};
use udsping_proto::{
    pong_chunks, ClientSession, Decoded, Decoder, Ending, Event, Expected, InvalidByte, ProtocolError, Reply,
    ServerSession, Status, END, PING, PONG,
};

// ---------------------------------------------------------------------------------------------
// Dividing a stream into reads.

/// How a stream is divided into reads.
#[derive(Clone, Debug)]
enum Split {
    /// At these offsets (any order; past the end means at the end): a repeated offset, or one
    /// at either end, gives an empty read.
    At(Vec<usize>),
    /// At these points, each a fraction of the stream's length, and at these offsets.
    Random(Vec<Index>, Vec<usize>),
    /// Reads of these lengths, cycled (`grammar::pieces`; `[1]` is a byte at a time).
    Lengths(Vec<u8>),
}

fn cut_at(data: &[u8], mut points: Vec<usize>) -> Vec<&[u8]> {
    points.iter_mut().for_each(|p| *p = (*p).min(data.len()));
    points.extend([0, data.len()]);
    points.sort_unstable();
    points.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

impl Split {
    fn apply<'a>(&self, data: &'a [u8]) -> Vec<&'a [u8]> {
        let reads = match self {
            Split::At(points) => cut_at(data, points.clone()),
            Split::Random(cuts, points) => {
                cut_at(data, cuts.iter().map(|c| c.index(data.len() + 1)).chain(points.iter().copied()).collect())
            }
            Split::Lengths(lengths) => pieces(data, lengths),
        };
        assert_eq!(reads.concat(), data, "the reads are the stream");
        reads
    }
}

/// A stream and how it was read, for failure messages (formatted only when one fails).
struct Case<'a> {
    rounds: Option<u64>,
    stream: &'a [u8],
    split: &'a Split,
}

impl fmt::Display for Case<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(rounds) = self.rounds {
            write!(f, "{rounds} rounds, the server sends ")?;
        }
        write!(f, "\"{}\" read as {:?}", self.stream.escape_ascii(), self.split)
    }
}

fn split() -> impl Strategy<Value = Split> {
    prop_oneof![
        3 => prop::collection::vec(any::<Index>(), 0..8).prop_map(|cuts| Split::Random(cuts, vec![])),
        1 => prop::collection::vec(0u8..9, 0..4).prop_map(Split::Lengths),
    ]
}

/// Every way to read a short stream that matters here: whole, a byte at a time, in two reads
/// cut anywhere (an empty first or last read included).
fn every_simple_split(len: usize) -> Vec<Split> {
    let mut splits = vec![Split::Lengths(vec![]), Split::Lengths(vec![1])];
    splits.extend((0..=len).map(|cut| Split::At(vec![cut])));
    splits
}

/// Every concatenation of at most `max` of these pieces.
fn every_concatenation(pieces: &[&[u8]], max: usize) -> Vec<Vec<u8>> {
    let mut all = vec![vec![]];
    let mut last = vec![vec![]];
    for _ in 0..max {
        last = last.iter().flat_map(|s: &Vec<u8>| pieces.iter().map(move |p| [&s[..], p].concat())).collect();
        all.extend(last.iter().cloned());
    }
    all
}

// ---------------------------------------------------------------------------------------------
// The decoder and the server session against the oracle.

/// A client stream: mostly tokens and token prefixes, some invalid bytes, runs of pings and of
/// one byte longer than the decoder's 32-byte block, and now and then bytes at random.
fn client_stream() -> impl Strategy<Value = Vec<u8>> {
    let atom = prop_oneof![
        6 => Just(PING.to_vec()),
        2 => (2usize..=20).prop_map(|n| PING.repeat(n)),
        2 => Just(END.to_vec()),
        2 => prop::sample::select(vec![&b"p"[..], b"pi", b"pin", b"e", b"en"]).prop_map(<[u8]>::to_vec),
        2 => prop::sample::select(&b"pingedPINGED\x00\n \xff"[..]).prop_map(|b| vec![b]),
        1 => any::<u8>().prop_map(|b| vec![b]),
        1 => (prop::sample::select(&b"\x00pex"[..]), 31usize..=40).prop_map(|(b, n)| vec![b; n]),
    ];
    prop_oneof![
        8 => prop::collection::vec(atom, 0..10).prop_map(|atoms| atoms.concat()),
        1 => prop::collection::vec(any::<u8>(), 0..80),
    ]
}

/// The first invalid byte the oracle's verdict implies, with what was expected there: a token's
/// start at a boundary, else the next byte of the token begun at the boundary.
fn oracle_invalid_byte(stream: &[u8], verdict: Verdict) -> Option<InvalidByte> {
    let ModelEnding::Invalid { at } = verdict.ending else { return None };
    let start = 4 * verdict.pings;
    let expected = if at == start {
        Expected::TokenStart
    } else {
        let token: &[u8] = if stream[start] == END[0] { END } else { PING };
        Expected::Byte(token[at - start])
    };
    Some(InvalidByte { offset: at as u64, byte: stream[at], expected })
}

/// The oracle's pings whose last byte is in `from..to`.
fn pings_completed_in(verdict: Verdict, from: usize, to: usize) -> usize {
    (1..=verdict.pings).filter(|j| from < 4 * j && 4 * j <= to).count()
}

/// Whether the oracle says the bytes up to `to` stop inside a token.
fn mid_token_at(stream: &[u8], to: usize) -> bool {
    judge(&stream[..to]).ending == ModelEnding::Open { mid_token: true }
}

/// Where a read that ends at `to` leaves the stream, by the oracle: the status, and the offset
/// of the next byte the decoder takes.
fn oracle_status(stream: &[u8], verdict: Verdict, to: usize) -> (Status, usize) {
    match verdict.ending {
        ModelEnding::End { at } if at <= to => (Status::End, at),
        ModelEnding::Invalid { at } if at < to => (Status::Invalid(oracle_invalid_byte(stream, verdict).unwrap()), at),
        _ => (Status::NeedMore, to),
    }
}

fn assert_events(decoded: &Decoded) {
    let mut expected = vec![Event::Ping; decoded.pings];
    expected.extend(match decoded.status {
        Status::NeedMore => None,
        Status::End => Some(Event::End),
        Status::Invalid(invalid) => Some(Event::Invalid(invalid)),
    });
    assert_eq!(decoded.events().collect::<Vec<_>>(), expected);
}

// SPEC: WIRE-STREAM-1, WIRE-STREAM-2, WIRE-INVALID-1, WIRE-DECODE-1
fn check_decoder(stream: &[u8], split: &Split) {
    let verdict = judge(stream);
    let name = Case { rounds: None, stream, split };
    let mut decoder = Decoder::new();
    let (mut from, mut pings) = (0, 0);
    let mut stop = None;
    for read in split.apply(stream) {
        let to = from + read.len();
        let decoded = decoder.decode(read);
        assert_events(&decoded);
        // Each ping is reported by the read that delivers its last byte, and the read is taken
        // up to `end`'s last byte or up to (not including) the first invalid byte.
        let (status, next) = oracle_status(stream, verdict, to);
        let expected = Decoded { pings: pings_completed_in(verdict, from, to), consumed: next - from, status };
        assert_eq!(decoded, expected, "{name}: read {from}..{to}");
        assert_eq!(decoder.offset(), next as u64, "{name}: read {from}..{to}");
        assert_eq!(decoder.is_mid_token(), status == Status::NeedMore && mid_token_at(stream, to), "{name}");
        pings += decoded.pings;
        if status != Status::NeedMore {
            stop = Some((status, next));
            break;
        }
        from = to;
    }
    assert_eq!(pings, verdict.pings, "{name}");
    let Some((status, next)) = stop else {
        // Every byte was valid: the stream is open, and stays so on an empty read.
        assert!(matches!(verdict.ending, ModelEnding::Open { .. }), "{name}");
        assert_eq!(decoder.decode(b""), Decoded { pings: 0, consumed: 0, status: Status::NeedMore }, "{name}");
        assert_eq!(decoder.offset(), stream.len() as u64, "{name}");
        return;
    };
    // The rest of the stream (and anything after it) is never taken: after `end` the first
    // byte offered is invalid, and a broken stream reports its first invalid byte again.
    let mut after = status;
    for rest in [&stream[next..], PING, b"x"] {
        if let (Status::End, Some(&byte)) = (after, rest.first()) {
            after = Status::Invalid(InvalidByte { offset: next as u64, byte, expected: Expected::Nothing });
        }
        assert_eq!(decoder.decode(rest), Decoded { pings: 0, consumed: 0, status: after }, "{name}: after the stop");
        assert_eq!(decoder.offset(), next as u64, "{name}: after the stop");
        assert!(!decoder.is_mid_token(), "{name}: after the stop");
    }
}

// SPEC: SRV-PONG-1, SRV-PONG-2, SRV-PONG-3, SRV-END-1, SRV-END-2, SRV-INVALID-1, SRV-EOF-1, SRV-EOF-2
fn check_server(stream: &[u8], split: &Split) {
    let verdict = judge(stream);
    let name = Case { rounds: None, stream, split };
    let mut session = ServerSession::new();
    let (mut from, mut pongs, mut close) = (0, 0, None);
    for read in split.apply(stream) {
        let to = from + read.len();
        let reply = session.on_bytes(read);
        let expected = match close {
            // Once the connection is to close, nothing more is answered.
            Some(ending) => Reply { pongs: 0, close: Some(ending) },
            // A pong for each ping completed by this read, sent before closing for `end` or an
            // invalid byte in it.
            None => Reply {
                pongs: pings_completed_in(verdict, from, to),
                close: match oracle_status(stream, verdict, to).0 {
                    Status::NeedMore => None,
                    Status::End => Some(Ending::End),
                    Status::Invalid(invalid) => Some(Ending::Invalid(invalid)),
                },
            },
        };
        assert_eq!(reply, expected, "{name}: read {from}..{to}");
        // What the driver writes for them: exactly those pongs, one write per 1024.
        let writes: Vec<&[u8]> = pong_chunks(reply.pongs).collect();
        assert_eq!(writes.concat(), PONG.repeat(reply.pongs), "{name}: read {from}..{to}");
        assert_eq!(writes.len(), reply.pongs.div_ceil(1024), "{name}: read {from}..{to}");
        (pongs, close) = (pongs + reply.pongs, reply.close);
        assert_eq!(session.ending(), close, "{name}: read {from}..{to}");
        from = to;
    }
    assert_eq!(pongs, verdict.pings, "{name}");
    assert_eq!(close.is_some(), verdict.closes_before_eof(), "{name}");
    // At EOF an open stream ends, mid-token or not, with no reply; an ending stays the ending.
    let ending = close.unwrap_or(Ending::Eof { mid_token: verdict.ending == ModelEnding::Open { mid_token: true } });
    assert_eq!(session.on_eof(), Reply { pongs: 0, close: Some(ending) }, "{name}: EOF");
    assert_eq!(session.on_bytes(PING), Reply { pongs: 0, close: Some(ending) }, "{name}: after EOF");
    assert_eq!(session.on_eof(), Reply { pongs: 0, close: Some(ending) }, "{name}: EOF again");
    assert_eq!(session.ending(), Some(ending), "{name}");
    assert_eq!(ending.is_orderly(), matches!(verdict.ending, ModelEnding::End { .. }), "{name}");
}

proptest! {
    #[test]
    fn the_decoder_agrees_with_the_oracle(stream in client_stream(), split in split()) {
        check_decoder(&stream, &split);
    }

    #[test]
    fn the_server_session_agrees_with_the_oracle(stream in client_stream(), split in split()) {
        check_server(&stream, &split);
    }
}

#[test]
fn every_short_stream_agrees_with_the_oracle_read_every_simple_way() {
    // Up to three tokens, token prefixes and invalid bytes: every seam between two of them (a
    // token cut short by another, a wrong byte at each place in each token, a byte after `end`).
    for stream in every_concatenation(&[PING, END, b"p", b"pi", b"pin", b"e", b"en", b"x"], 3) {
        for split in every_simple_split(stream.len()) {
            check_decoder(&stream, &split);
            check_server(&stream, &split);
        }
    }
}

// SPEC: WIRE-INVALID-1 — a run of one byte, longer than the decoder's block of eight pings, at a
// boundary after any number of pings (each byte value, read whole).
#[test]
fn every_byte_repeated_past_a_block_agrees_with_the_oracle() {
    for byte in 0..=u8::MAX {
        for pings in [0, 1, 7, 8, 9] {
            let stream = [PING.repeat(pings), vec![byte; 40]].concat();
            check_decoder(&stream, &Split::Lengths(vec![]));
            check_server(&stream, &Split::Lengths(vec![]));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client session against a model.

/// A protocol error as the model states it: the kind, the round, the bytes shown.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ModelError {
    UnexpectedReply(u64, Vec<u8>),
    ClosedEarly(u64, Vec<u8>),
    Unsolicited(u64, Vec<u8>),
}

impl From<ProtocolError> for ModelError {
    fn from(error: ProtocolError) -> Self {
        match error {
            ProtocolError::UnexpectedReply { round, received } => {
                Self::UnexpectedReply(round, received.as_bytes().into())
            }
            ProtocolError::ClosedEarly { round, received } => Self::ClosedEarly(round, received.as_bytes().into()),
            ProtocolError::Unsolicited { round, received } => Self::Unsolicited(round, received.as_bytes().into()),
        }
    }
}

/// A lock-step client in flags: a ping is sent only when no reply is owed and rounds remain,
/// `end` once none remain; a reply byte must continue `pong`; the first error is final.
struct ClientModel {
    rounds: u64,
    completed: u64,
    /// Bytes of the owed reply received so far.
    got: usize,
    owed: bool,
    sent_end: bool,
    error: Option<ModelError>,
}

impl ClientModel {
    fn new(rounds: u64) -> Self {
        ClientModel { rounds, completed: 0, got: 0, owed: false, sent_end: false, error: None }
    }

    fn transmit(&mut self) -> Option<&'static [u8]> {
        if self.error.is_some() || self.owed || self.sent_end {
            None
        } else if self.completed < self.rounds {
            self.owed = true;
            Some(PING)
        } else {
            self.sent_end = true;
            Some(END)
        }
    }

    fn fail(&mut self, error: ModelError) -> Result<(), ModelError> {
        self.error = Some(error.clone());
        Err(error)
    }

    fn bytes(&mut self, read: &[u8]) -> Result<(), ModelError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        for (i, &byte) in read.iter().enumerate() {
            if !self.owed {
                // The rest of this read (up to four bytes) came unasked.
                return self.fail(ModelError::Unsolicited(self.completed, read[i..].iter().take(4).copied().collect()));
            }
            if byte != PONG[self.got] {
                let shown = [&PONG[..self.got], &[byte]].concat();
                return self.fail(ModelError::UnexpectedReply(self.completed + 1, shown));
            }
            self.got += 1;
            if self.got == PONG.len() {
                (self.got, self.owed, self.completed) = (0, false, self.completed + 1);
            }
        }
        Ok(())
    }

    fn eof(&mut self) -> Result<(), ModelError> {
        match &self.error {
            Some(error) => Err(error.clone()),
            None if self.owed => self.fail(ModelError::ClosedEarly(self.completed + 1, PONG[..self.got].to_vec())),
            None => Ok(()),
        }
    }
}

/// The session's observable state next to the model's: rounds, reading, finished, error.
fn assert_same_state(session: &ClientSession, model: &ClientModel, case: &Case, when: fmt::Arguments) {
    let healthy = model.error.is_none();
    assert_eq!(session.completed_rounds(), model.completed, "{case}: {when}: completed rounds");
    assert_eq!(session.wants_read(), healthy && model.owed, "{case}: {when}: wants_read");
    assert_eq!(session.is_finished(), healthy && model.sent_end, "{case}: {when}: is_finished");
    assert_eq!(session.error().map(ModelError::from), model.error, "{case}: {when}: error");
}

/// Hands out what the session offers, as a driver does before each read, next to the model.
fn drain(session: &mut ClientSession, model: &mut ClientModel, case: &Case, when: fmt::Arguments) {
    loop {
        let offered = session.poll_transmit();
        assert_eq!(offered, model.transmit(), "{case}: {when}: transmit");
        if offered.is_none() {
            return;
        }
    }
}

// SPEC: CLT-LOCKSTEP-1, CLT-REPLY-1, CLT-REPLY-2, CLT-EOF-1, CLT-END-1, CLT-EXIT-1
fn check_client(rounds: u64, server: &[u8], split: &Split) {
    let case = Case { rounds: Some(rounds), stream: server, split };
    let (mut session, mut model) = (ClientSession::new(rounds), ClientModel::new(rounds));
    assert_same_state(&session, &model, &case, format_args!("at the start"));
    for (i, read) in split.apply(server).into_iter().enumerate() {
        drain(&mut session, &mut model, &case, format_args!("before read {i}"));
        assert_same_state(&session, &model, &case, format_args!("before read {i}"));
        assert_eq!(session.on_bytes(read).map_err(ModelError::from), model.bytes(read), "{case}: read {i}");
        assert_same_state(&session, &model, &case, format_args!("after read {i}"));
    }
    drain(&mut session, &mut model, &case, format_args!("after the reads"));
    assert_same_state(&session, &model, &case, format_args!("after the reads"));
    for when in ["EOF", "EOF again"] {
        assert_eq!(session.on_eof().map_err(ModelError::from), model.eof(), "{case}: {when}");
        assert_same_state(&session, &model, &case, format_args!("{when}"));
    }
    drain(&mut session, &mut model, &case, format_args!("after EOF"));
    // A failed session reports its first error to any later read.
    if let Some(error) = model.error.clone() {
        assert_eq!(session.on_bytes(PONG).map_err(ModelError::from), Err(error), "{case}: a read after the error");
    }
}

/// What a server sends a client: mostly whole pongs, some cut short or wrong, extra ones.
fn server_stream() -> impl Strategy<Value = Vec<u8>> {
    let atom = prop_oneof![
        8 => Just(PONG.to_vec()),
        2 => prop::sample::select(vec![&b"p"[..], b"po", b"pon"]).prop_map(<[u8]>::to_vec),
        2 => prop::sample::select(&b"pongPONGie\x00\n\xff"[..]).prop_map(|b| vec![b]),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(atom, 0..10).prop_map(|atoms| atoms.concat())
}

/// Reads of a server's stream: cut at random points only, or like a lock-step server's writes
/// (every four bytes, as each reply is owed) and at random points within them.
fn server_split(len: usize) -> impl Strategy<Value = Split> {
    let replies: Vec<usize> = (4..len).step_by(4).collect();
    prop_oneof![
        1 => split(),
        2 => prop::collection::vec(any::<Index>(), 0..4).prop_map(move |cuts| Split::Random(cuts, replies.clone())),
    ]
}

proptest! {
    #[test]
    fn the_client_session_agrees_with_the_model(
        rounds in 0u64..6,
        (server, split) in server_stream().prop_flat_map(|s| { let len = s.len(); (Just(s), server_split(len)) }),
    ) {
        check_client(rounds, &server, &split);
    }
}

#[test]
fn every_short_server_stream_agrees_with_the_model() {
    // Up to four whole pongs, pongs cut short and wrong bytes: a wrong byte at each place of a
    // reply, a close at each place, a reply too many; read whole, a byte at a time, in two,
    // and a reply at a time.
    for server in every_concatenation(&[PONG, b"p", b"po", b"pon", b"x"], 4) {
        let aligned = Split::At((4..server.len()).step_by(4).collect());
        for rounds in 0..=3 {
            check_client(rounds, &server, &aligned);
            for split in every_simple_split(server.len()) {
                check_client(rounds, &server, &split);
            }
        }
    }
}

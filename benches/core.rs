//! The sans-IO core alone: decoding a long pipelined stream, and the server session over it,
//! against the limit of comparing the same bytes with `memcmp` and no state machine.
//!
//!     cargo bench --bench core
//!
//! divan prints throughput in bytes per second for each.

use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use udsping::proto::{Decoder, ServerSession, PING};

fn main() {
    divan::main();
}

/// 1 MiB of pings, read in 4 KiB pieces as the server reads them.
fn stream() -> Vec<u8> {
    PING.repeat(256 * 1024)
}

const READ_SIZE: usize = 4096;

/// The limit: `memcmp` of each 4 KiB piece against 4 KiB of pings, with no state machine (it
/// says only whether a piece is all pings, not how many or where one breaks).
#[divan::bench]
fn limit_memcmp(bencher: Bencher) {
    let stream = stream();
    let pings = PING.repeat(READ_SIZE / PING.len());
    bencher.counter(BytesCount::of_slice(&stream)).bench(|| {
        let stream = black_box(&stream);
        stream.chunks(READ_SIZE).filter(|piece| *piece == &pings[..piece.len()]).count()
    });
}

#[divan::bench]
fn decode(bencher: Bencher) {
    let stream = stream();
    bencher.counter(BytesCount::of_slice(&stream)).bench(|| {
        let mut decoder = Decoder::new();
        black_box(&stream).chunks(READ_SIZE).map(|piece| decoder.decode(piece).pings).sum::<usize>()
    });
}

#[divan::bench]
fn server_session(bencher: Bencher) {
    let stream = stream();
    bencher.counter(BytesCount::of_slice(&stream)).bench(|| {
        let mut session = ServerSession::new();
        black_box(&stream).chunks(READ_SIZE).map(|piece| session.on_bytes(piece).pongs).sum::<usize>()
    });
}

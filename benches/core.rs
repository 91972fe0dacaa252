//! The sans-IO core alone: decoding a long pipelined stream, and the server session over it,
//! against the limit of comparing the same bytes word by word with no state machine.
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

/// The limit: count the 4-byte words equal to "ping".
#[divan::bench]
fn limit_compare_words(bencher: Bencher) {
    let stream = stream();
    bencher.counter(BytesCount::of_slice(&stream)).bench(|| {
        let stream = black_box(&stream);
        stream.chunks_exact(4).filter(|word| *word == PING).count()
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

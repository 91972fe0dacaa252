//! Arbitrary server byte streams, split arbitrarily, against the client session: it never
//! sends a second ping before a complete pong, and it fails exactly when the bytes are not the
//! pongs it is owed (SPEC: CLT-LOCKSTEP-1, CLT-REPLY-1, CLT-REPLY-2, CLT-EOF-1, CLT-END-1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use udsping::proto::{ClientSession, ProtocolError};

use udsping::proto::grammar::pieces;

fuzz_target!(|input: (u8, Vec<u8>, Vec<u8>)| {
    let (rounds, server, lengths) = input;
    let rounds = u64::from(rounds % 16);
    let owed = b"pong".repeat(rounds as usize);
    let mut session = ClientSession::new(rounds);
    let (mut pings_sent, mut sent_end) = (0u64, false);
    let mut delivered = 0usize;
    // A piece that carried more than the reply then awaited (only visible within one read).
    let mut overran = false;
    let mut source = pieces(&server, &lengths).into_iter();
    let result = loop {
        while let Some(bytes) = session.poll_transmit() {
            assert!(!sent_end, "sent {bytes:?} after end");
            if bytes == b"ping" {
                // Lock-step: a new ping only once every earlier one has its complete pong.
                assert_eq!(session.completed_rounds(), pings_sent);
                pings_sent += 1;
            } else {
                assert_eq!(bytes, b"end");
                assert_eq!(session.completed_rounds(), rounds);
                sent_end = true;
            }
        }
        if !session.wants_read() {
            break Ok(());
        }
        match source.next() {
            Some(piece) => {
                overran |= delivered + piece.len() > 4 * pings_sent as usize;
                delivered += piece.len();
                if let Err(e) = session.on_bytes(piece) {
                    break Err(e);
                }
            }
            None => break session.on_eof(),
        }
    };
    let correct = server.iter().zip(&owed).take_while(|(a, b)| a == b).count();
    match result {
        Ok(()) => {
            assert!(sent_end);
            assert!(server.starts_with(&owed), "accepted {server:?} for {rounds} rounds");
        }
        Err(ProtocolError::UnexpectedReply { round, received }) => {
            // The first wrong byte, in the round it belongs to.
            assert!(correct < server.len().min(owed.len()));
            assert_eq!(round as usize, correct / 4 + 1);
            assert_eq!(received.as_bytes(), &server[correct / 4 * 4..=correct]);
            assert!(!sent_end);
        }
        Err(ProtocolError::ClosedEarly { round, .. }) => {
            assert!(server.len() < owed.len() && correct == server.len());
            assert_eq!(round as usize, server.len() / 4 + 1);
            assert!(!sent_end);
        }
        Err(ProtocolError::Unsolicited { round, received }) => {
            // Bytes beyond the reply owed arrived in the same read as a complete reply: every
            // reply before them was right, and the message quotes the first of the bytes that followed
            // (those of that read).
            assert!(overran, "unsolicited reported without extra bytes in a read");
            let answered = 4 * round as usize;
            assert!(correct >= answered);
            let extra = &server[answered..];
            assert!(!received.as_bytes().is_empty() && extra.starts_with(received.as_bytes()));
            assert!(!sent_end || round == rounds);
        }
    }
});

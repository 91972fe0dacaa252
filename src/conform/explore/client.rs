//! Generated servers against a client (`conform client --explore`; SPEC.md section 6), a
//! family of the exploration engine ([`super`]).
//!
//! A generated [`ClientPlan`] answers the client's pings with `pong`s split at generated points
//! with pauses between the pieces (during which the client must stay silent, CLT-LOCKSTEP-1),
//! and in one generated round (early, or late, from round 50 on) does one thing wrong: a wrong
//! byte at a generated position of the reply, a close after part of the reply, or an extra
//! byte after the `pong` in the same write. What a client must do then is SPEC.md's, read as
//! the [`ClientSession`] of the core reads it:
//!
//! - after a wrong byte it has read, it sends nothing more (never `end`), closes and exits
//!   non-zero (CLT-REPLY-2, CLT-EXIT-1); after a close mid-reply, likewise (CLT-EOF-1);
//! - a client that reads each reply as four bytes may have sent its next `ping` before it read
//!   a byte that followed a `pong` in the same write (or `end`, if that `pong` was its last):
//!   the gate answers that `ping` with `pong`, so such a client reads the extra byte at once as
//!   the first of the reply, and must stop then; one that threw the byte away goes on, and
//!   breaks CLT-REPLY-2. No verdict waits on the client's own timeout (CLT-REPLY-3, acting on a
//!   wrong byte without waiting for a whole reply, is the fixed case
//!   `client/6/wrong-byte-then-silence`'s).

use std::fmt;
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

use super::engine::{Env, Family, Ran};
use crate::conform::bytes::Bytes;
use crate::conform::case::Role;
use crate::conform::cases::client::{
    close_after_end, expect_clean_exit, expect_stopped, finish_cleanly, next_token, stopped_after_pong,
    stopped_after_split, Token,
};
use crate::conform::harness::{Conn, Ctx, End};
use crate::conform::verdict::{CaseResult, Exercise};
use crate::proto::{ClientSession, END, PING, PONG};

/// The one thing the gate's server does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disruption {
    /// Byte `at` (0 to 3) of the reply is `byte` instead.
    Wrong {
        /// Which byte of the reply, from 0.
        at: u8,
        /// The byte sent in its place.
        byte: u8,
    },
    /// The first `sent` bytes (0 to 3) of the reply, then a close.
    Close {
        /// Bytes of `pong` written before the close.
        sent: u8,
    },
    /// `"pong"` and then `byte`, in one write.
    Extra {
        /// The byte written after the `pong`.
        byte: u8,
    },
}

/// How a correct reply is written: pieces cut after byte 1, 2 or 3 (a bit each), `pause` ms
/// apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Split {
    /// Where the reply is cut: bit `i` set cuts it after byte `i + 1`.
    pub cuts: u8,
    /// Milliseconds between the pieces.
    pub pause: u8,
}

/// A generated server for one client run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientPlan {
    /// How the replies of the first rounds are split (later rounds get whole `pong`s).
    pub splits: Vec<Split>,
    /// The round (from 1) in which the disruption happens.
    pub round: u32,
    /// What the server does wrong in that round.
    pub disruption: Disruption,
}

impl fmt::Display for ClientPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, split) in self.splits.iter().enumerate().filter(|(i, _)| (*i as u32) + 1 < self.round) {
            let pieces: Vec<String> = pieces(split).iter().map(|p| Bytes::from(p.to_vec()).to_string()).collect();
            writeln!(f, "round {}: replied {} ({} ms apart)", i + 1, pieces.join(" "), split.pause)?;
        }
        let before = (self.round - 1) as usize;
        if before > self.splits.len() {
            writeln!(f, "rounds {}..{}: replied \"pong\"", self.splits.len() + 1, before)?;
        }
        writeln!(f, "{}", describe(self.disruption, self.round).1)
    }
}

/// The bytes `disruption` writes in `round`, the words that say so (the plan's text and the
/// step's name), and what a client that does not stop then breaks.
fn describe(disruption: Disruption, round: u32) -> (Vec<u8>, String, &'static [&'static str]) {
    let (sent, how, blames): (_, _, &'static [&'static str]) = match disruption {
        Disruption::Wrong { at, byte } => {
            let mut reply = PONG.to_vec();
            reply[usize::from(at)] = byte;
            (reply, "", &["CLT-REPLY-2"])
        }
        Disruption::Close { sent } => (PONG[..usize::from(sent)].to_vec(), " and closed", &["CLT-EOF-1"]),
        Disruption::Extra { byte } => ([&PONG[..], &[byte]].concat(), " in one write", &["CLT-REPLY-2"]),
    };
    let what = format!("round {round}: replied {}{how}", Bytes::from(sent.clone()));
    (sent, what, blames)
}

fn pieces(split: &Split) -> Vec<&'static [u8]> {
    let mut out = Vec::new();
    let mut from = 0;
    for cut in 1..4 {
        if split.cuts & (1 << (cut - 1)) != 0 {
            out.push(&PONG[from..cut]);
            from = cut;
        }
    }
    out.push(&PONG[from..]);
    out
}

/// The generator of servers for a client.
pub(crate) fn plans() -> impl Strategy<Value = ClientPlan> {
    let split = (0u8..8, 0u8..25).prop_map(|(cuts, pause)| Split { cuts, pause });
    // Mostly rounds 1 to 9, sometimes a late round, 50 to 100; monotonic, so it shrinks exactly.
    let round = (0u32..951).prop_map(|x| if x < 900 { 1 + x / 100 } else { 50 + (x - 900) });
    let wrong = prop_oneof![prop::sample::select(&b"PONGpaxz\0\xff\n"[..]), any::<u8>(),];
    let disruption = prop_oneof![
        ((0u8..4), wrong.clone()).prop_map(|(at, byte)| Disruption::Wrong { at, byte }),
        (0u8..4).prop_map(|sent| Disruption::Close { sent }),
        wrong.prop_map(|byte| Disruption::Extra { byte }),
    ];
    (prop::collection::vec(split, 0..6), round, disruption).prop_map(|(splits, round, disruption)| ClientPlan {
        splits,
        round,
        disruption,
    })
}

/// Plays `plan` as the server of one run of the client.
fn play(env: &Env<'_>, plan: &ClientPlan) -> Result<(), Ran> {
    let mut ctx = Ctx::new(env.target, env.waits, env.addressing, Role::Client).map_err(|p| Ran::new(p, None))?;
    let listener = ctx.listen().map_err(|p| Ran::new(p, None))?;
    let result = ctx.start_client(&listener).and_then(|mut conn| serve(&mut ctx, &mut conn, plan));
    result.map_err(|problem| Ran::new(problem, Some(ctx.transcript())))
}

fn serve(ctx: &mut Ctx, conn: &mut Conn, plan: &ClientPlan) -> CaseResult {
    let mut split_before = false;
    for round in 1.. {
        let stopped = if split_before { stopped_after_split() } else { stopped_after_pong() };
        if next_token(conn, round, &stopped)? == Token::End {
            // The client finished its rounds before the disruption: after `end` the gate closes
            // as a server must, the client closes too and exits 0 (SPEC: SRV-END-1, CLT-END-1).
            close_after_end(conn, round - 1)?;
            return expect_clean_exit(ctx, round - 1);
        }
        if round == plan.round {
            return disrupt(ctx, conn, plan.disruption, round);
        }
        let split = plan.splits.get((round - 1) as usize).copied().unwrap_or(Split { cuts: 0, pause: 0 });
        let pieces = pieces(&split);
        split_before = pieces.len() > 1;
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 && split.pause > 0 {
                // SPEC: CLT-LOCKSTEP-1 — nothing from the client until the reply is complete.
                let window = Duration::from_millis(u64::from(split.pause));
                let step = Exercise::new(
                    format!("round {round}: a reply in pieces, {} ms apart", split.pause),
                    &["CLT-LOCKSTEP-1", "CLT-REPLY-1"],
                );
                conn.expect_silence(window, &step)?;
            }
            let _ = conn.send(piece);
        }
    }
    unreachable!("the loop returns")
}

/// After the disruption: what SPEC.md section 6 requires of the client (module docs).
fn disrupt(ctx: &mut Ctx, conn: &mut Conn, disruption: Disruption, round: u32) -> CaseResult {
    let (sent, what, blames) = describe(disruption, round);
    let _ = conn.send(&sent);
    if let Disruption::Close { .. } = disruption {
        conn.half_close();
    }
    // A "wrong" byte equal to the right one is not wrong: the client session of the core says so.
    let mut model = ClientSession::new(u64::from(round) + 1);
    for _ in 1..round {
        let _ = model.poll_transmit();
        let _ = model.on_bytes(PONG);
    }
    let _ = model.poll_transmit();
    if model.on_bytes(&sent).is_ok() && !matches!(disruption, Disruption::Close { .. } | Disruption::Extra { .. }) {
        return finish_cleanly(ctx, conn, round, &stopped_after_pong());
    }
    let step = Exercise::new(what.clone(), blames);
    // `end` is complete at 3 bytes: a client that sends it and waits for the close is not kept waiting.
    let heard = conn.read_until(ctx.waits.timeout, PING.len(), |got| got == END || got.len() >= PING.len());
    if heard.end == End::Capped {
        return Err(conn.capped("after a bad reply"));
    }
    if let Disruption::Extra { .. } = disruption {
        match heard.bytes.as_slice() {
            // A client that reads each reply as four bytes may not have read the extra byte
            // before sending the next round's ping; answered with "pong", it reads the extra
            // byte as the first of that reply, and must stop then (a client that threw the
            // byte away takes the reply for a good one and goes on).
            b"ping" => {
                let _ = conn.send(PONG);
                let step = step.at(format!("{what}, then the client's next \"ping\" answered \"pong\""));
                let heard = conn.read_until_close();
                return expect_stopped(ctx, conn, &heard, &step, exit_of(&step));
            }
            // Its rounds were over: it may finish as after any last round.
            b"end" => {
                close_after_end(conn, round)?;
                let step = Exercise::new(format!("{what}, then the client's \"end\""), &["CLT-END-1"]);
                return ctx.expect_any_exit(&step).map(drop);
            }
            _ => {}
        }
    }
    // The whole disrupted reply was in one write, or the server closed: nothing to wait for.
    expect_stopped(ctx, conn, &heard, &step, exit_of(&step))
}

/// The step of the client's exit after `step`.
fn exit_of(step: &Exercise) -> Exercise {
    step.at(format!("{}: the client's exit", step.step))
}

/// The family of generated servers against a client.
pub(crate) struct Servers;

impl Family for Servers {
    type Plan = ClientPlan;
    type Repro = ClientPlan;
    type Worker = ();

    const ID: &'static str = "client/explore";

    const SECTION: &'static str = "explore: generated servers (SPEC.md section 6)";

    const NOUN: &'static str = "generated servers";

    const REQUIREMENTS: &'static [&'static str] =
        &["CLT-LOCKSTEP-1", "CLT-REPLY-1", "CLT-REPLY-2", "CLT-EOF-1", "CLT-END-1", "CLT-EXIT-1", "WIRE-GRAMMAR-1"];

    const DEFAULT_CASES: u32 = 60;

    fn strategy(&self) -> BoxedStrategy<ClientPlan> {
        plans().boxed()
    }

    fn repro(&self, plan: &ClientPlan) -> ClientPlan {
        plan.clone()
    }

    fn worker(&self) {}

    fn play(&self, env: &Env<'_>, _: &mut (), plan: &ClientPlan) -> Result<(), Ran> {
        play(env, plan)
    }

    fn text(&self, plan: &ClientPlan) -> String {
        plan.to_string()
    }

    fn size(&self, plan: &ClientPlan) -> usize {
        plan.round as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_every_cut_and_keep_the_bytes() {
        for cuts in 0..8 {
            assert_eq!(pieces(&Split { cuts, pause: 0 }).concat(), PONG);
        }
        assert_eq!(pieces(&Split { cuts: 0b101, pause: 0 }), [&b"p"[..], b"on", b"g"]);
    }
}

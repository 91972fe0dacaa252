//! Generated conversations against a server (`conform server --explore`; SPEC.md sections 4
//! and 5), a family of the exploration engine ([`super`]).
//!
//! A generated [`Plan`] is 1 to 8 connections, each with a token stream (pings, long runs of
//! pings, `end`, partial tokens, invalid bytes of every class of SPEC.md section 4.4, `"pong"`),
//! optionally one byte of it corrupted, cut at generated offsets into writes with pauses and
//! looks between them, optional lock-step rounds (up to thousands) first, and an ending (left
//! open, half-closed, or closed with replies unread); the connections' writes are interleaved in
//! a generated order. [`model`] turns the plan into a script with the expectations of SPEC.md
//! sections 4 and 5, so nothing generated needs a hand-written answer. A worker reuses one
//! server process while it stays healthy and restarts it when it dies; after proptest's
//! shrinking, a pass over the moves drops whole connections and single moves.

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

use super::engine::{Env, Family, Ran};
use crate::conform::bytes::Bytes;
use crate::conform::case::Role;
use crate::conform::harness::{Ctx, Transcript};
use crate::conform::model::{self, Move};
use crate::conform::script::{self, Action, Script};
use crate::conform::verdict::Problem;
use crate::proto::grammar::INVALID_CLASSES;
use crate::proto::{END, PING, PONG};

/// One piece of a connection's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// This many `ping`s in a row (mostly 1 to 3, sometimes 100 or more).
    Pings(u16),
    /// `end`.
    End,
    /// A piece of `ping` or `end` (a partial token, or the rest of one).
    Fragment(&'static [u8]),
    /// One byte, mostly of the invalid classes of SPEC.md section 4.4.
    Byte(u8),
    /// `pong`, which a client never sends (invalid).
    Pong,
}

const FRAGMENTS: &[&[u8]] = &[b"p", b"pi", b"pin", b"ing", b"ng", b"g", b"e", b"en", b"nd", b"d"];

impl Tok {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Tok::Pings(n) => PING.repeat(usize::from(*n)),
            Tok::End => END.to_vec(),
            Tok::Fragment(bytes) => bytes.to_vec(),
            Tok::Byte(byte) => vec![*byte],
            Tok::Pong => PONG.to_vec(),
        }
    }
}

/// What the client does at a cut, after the write before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Look {
    /// Nothing: the next write follows.
    Nothing,
    /// Read what the model says has arrived by now ([`Move::Observe`]).
    Observe,
    /// Read it and check the quiet period passes with nothing more ([`Move::Quiet`]).
    Quiet,
}

/// A cut of a connection's stream into two writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cut {
    /// Where: the token (counted modulo the number of tokens) and the byte within it (modulo
    /// its length plus one), so that removing a later token while shrinking leaves the cut
    /// where it was.
    pub at: (u16, u16),
    /// What the client does there.
    pub look: Look,
}

/// How a connection ends once its stream is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Left to the model's end (EOF, replies and close expected).
    Leave,
    /// Half-closed (EOF from the client), then observed.
    HalfClose,
    /// Closed with whatever is unread (a reset).
    Close,
}

/// One connection of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConnPlan {
    /// Lock-step rounds before the stream (0 for none).
    pub lock_step: u16,
    /// The stream, token by token.
    pub toks: Vec<Tok>,
    /// One byte of the stream replaced by this one, placed as a cut is.
    pub corrupt: Option<((u16, u16), u8)>,
    /// Where the stream is split into writes, and what the client does at each split.
    pub cuts: Vec<Cut>,
    /// How the connection ends.
    pub finish: Finish,
}

/// One turn of the interleaving: which connection goes next, after how long a pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Turn {
    /// Counted modulo the number of connections with something left to do.
    pub conn: u16,
    /// Milliseconds of pause before it (a partial token held open, a server left waiting).
    pub pause: u16,
}

/// A generated conversation: connections and the order their writes interleave in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The connections, numbered from 1 in this order.
    pub conns: Vec<ConnPlan>,
    /// The first turns (round-robin after them, without pauses).
    pub order: Vec<Turn>,
}

fn invalid_byte() -> impl Strategy<Value = u8> {
    let classed: Vec<u8> = INVALID_CLASSES.iter().flat_map(|(_, bytes)| bytes.iter().copied()).collect();
    prop_oneof![4 => prop::sample::select(classed), 1 => any::<u8>()]
}

/// A count from one generated integer, by tiers: below `zero` it is `base`; below `zero +
/// small` it is spread over `small_range`; above, it counts up by one from `large_from`. The
/// map is monotonic, so shrinking the integer shrinks the count all the way down, and exactly
/// (a union of ranges would stop shrinking at the large range's start).
fn tiered(x: u32, zero: u32, base: u32, small: u32, small_range: (u32, u32), large_from: u32) -> u32 {
    if x < zero {
        base
    } else if x < zero + small {
        small_range.0 + (x - zero) * (small_range.1 - small_range.0 + 1) / small
    } else {
        large_from + (x - zero - small)
    }
}

/// Mostly 1 to 3 pings (the small tier), one token in 13 a long run of 100 to 3000.
fn pings_count() -> impl Strategy<Value = u16> {
    (0u32..37_700).prop_map(|x| tiered(x, 0, 0, 34_800, (1, 3), 100) as u16)
}

fn tok() -> impl Strategy<Value = Tok> {
    prop_oneof![
        12 => pings_count().prop_map(Tok::Pings),
        2 => Just(Tok::End),
        2 => prop::sample::select(FRAGMENTS).prop_map(Tok::Fragment),
        2 => invalid_byte().prop_map(Tok::Byte),
        1 => Just(Tok::Pong),
    ]
}

fn cut() -> impl Strategy<Value = Cut> {
    let look = prop_oneof![10 => Just(Look::Nothing), 8 => Just(Look::Observe), 1 => Just(Look::Quiet)];
    ((any::<u16>(), any::<u16>()), look).prop_map(|(at, look)| Cut { at, look })
}

fn turn() -> impl Strategy<Value = Turn> {
    // Mostly none, often 1 to 3 ms, one turn in 75 a pause of 150 to 200 ms (a partial
    // token held open, a server left waiting).
    let pause = (0u32..1_310)
        .prop_map(|x| if x < 1_293 { tiered(x, 1_000, 0, 293, (1, 3), 0) } else { 150 + 3 * (x - 1_293) } as u16);
    (any::<u16>(), pause).prop_map(|(conn, pause)| Turn { conn, pause })
}

fn conn_plan() -> impl Strategy<Value = ConnPlan> {
    // Mostly none, one connection in 5 1 to 4 rounds, one in 40 a long run of 200 to 2000.
    let lock_step = (0u32..72_000).prop_map(|x| tiered(x, 55_800, 0, 14_400, (1, 4), 200) as u16);
    let corrupt = prop_oneof![3 => Just(None), 1 => ((any::<u16>(), any::<u16>()), invalid_byte()).prop_map(Some)];
    let finish = prop_oneof![3 => Just(Finish::Leave), 1 => Just(Finish::HalfClose), 1 => Just(Finish::Close)];
    (lock_step, prop::collection::vec(tok(), 0..6), corrupt, prop::collection::vec(cut(), 0..4), finish)
        .prop_map(|(lock_step, toks, corrupt, cuts, finish)| ConnPlan { lock_step, toks, corrupt, cuts, finish })
}

/// The generator of conversations.
pub(crate) fn plans() -> impl Strategy<Value = Plan> {
    // One range, not a union of small and large counts: proptest shrinks within a range, and
    // would not move a failure found with many connections to a plan with fewer.
    (prop::collection::vec(conn_plan(), 1..=8), prop::collection::vec(turn(), 0..16))
        .prop_map(|(conns, order)| Plan { conns, order })
}

impl ConnPlan {
    /// This connection's actions in groups that stay together when interleaved.
    fn groups(&self, conn: u32) -> Vec<Vec<Move>> {
        let mut groups = vec![vec![Move::Do(Action::Connect { conn, because: Vec::new() })]];
        if self.lock_step > 0 {
            groups.push(vec![Move::LockStep { conn, rounds: u32::from(self.lock_step) }]);
        }
        let toks: Vec<Vec<u8>> = self.toks.iter().map(Tok::bytes).collect();
        let starts: Vec<usize> = toks.iter().scan(0, |at, t| Some(std::mem::replace(at, *at + t.len()))).collect();
        let mut stream = toks.concat();
        // A byte position from (token, byte); `end` allows the position after the token.
        let position = |(tok, byte): (u16, u16), end: usize| -> Option<usize> {
            let i = usize::from(tok) % toks.len().max(1);
            let len = toks.get(i)?.len();
            (len + end > 0).then(|| starts[i] + usize::from(byte) % (len + end))
        };
        if let Some((at, byte)) = self.corrupt {
            if let Some(i) = position(at, 0) {
                stream[i] = byte;
            }
        }
        let mut cuts: Vec<(usize, &Cut)> = self.cuts.iter().map(|c| (position(c.at, 1).unwrap_or(0), c)).collect();
        cuts.sort_by_key(|(at, _)| *at);
        let mut from = 0;
        let last = Cut { at: (0, 0), look: Look::Nothing };
        for (at, cut) in cuts.iter().copied().chain([(stream.len(), &last)]) {
            let mut group = Vec::new();
            if at > from {
                group.push(Move::Do(Action::Send {
                    conn,
                    bytes: Bytes::from(stream[from..at].to_vec()),
                    because: Vec::new(),
                }));
                from = at;
            }
            match cut.look {
                Look::Nothing => {}
                Look::Observe => group.push(Move::Observe { conn }),
                Look::Quiet => group.push(Move::Quiet { conn }),
            }
            if !group.is_empty() {
                groups.push(group);
            }
        }
        match self.finish {
            Finish::Leave => {}
            Finish::HalfClose => groups.push(vec![Move::Do(Action::HalfClose { conn }), Move::Observe { conn }]),
            Finish::Close => groups.push(vec![Move::Do(Action::Close { conn })]),
        }
        groups
    }
}

impl Plan {
    /// The plan's actions: each connection's groups in order, interleaved as `order` says
    /// (then round-robin).
    pub(crate) fn moves(&self) -> Vec<Move> {
        let mut queues: Vec<std::collections::VecDeque<Vec<Move>>> =
            self.conns.iter().enumerate().map(|(i, c)| c.groups(i as u32 + 1).into()).collect();
        let mut actions = Vec::new();
        let mut order = self.order.iter();
        let mut turn = 0;
        loop {
            let live: Vec<usize> = (0..queues.len()).filter(|&i| !queues[i].is_empty()).collect();
            if live.is_empty() {
                return actions;
            }
            let pick = match order.next() {
                Some(next) => {
                    if next.pause > 0 {
                        actions.push(Move::Do(Action::Pause { ms: u64::from(next.pause) }));
                    }
                    live[usize::from(next.conn) % live.len()]
                }
                None => {
                    turn += 1;
                    live[turn % live.len()]
                }
            };
            actions.extend(queues[pick].pop_front().expect("a live queue"));
        }
    }

    /// The plan as a script with the model's expectations.
    pub(crate) fn script(&self) -> Script {
        model::script(&self.moves())
    }
}

/// The family of generated conversations.
pub(crate) struct Conversations;

/// Conversations' default number per run: on the reference, the fixed cases and these
/// together take well under 10 s on a 2-CPU machine (README's measurements).
pub(crate) const DEFAULT_CASES: u32 = 200;

/// A worker's server: one process, restarted when it dies.
#[derive(Default)]
pub(crate) struct Server {
    ctx: Option<Ctx>,
    deaths: Vec<String>,
}

/// Why a start failed: a start that fails makes exploration impossible.
fn did_not_start(problem: Problem) -> Problem {
    match problem {
        Problem::Fail(failure) => Problem::Harness(format!("the server did not start: {failure}")),
        other => other,
    }
}

/// A fresh server for `env`'s target.
fn start(env: &Env<'_>) -> Result<Ctx, Ran> {
    let no_start = |problem| Ran::new(did_not_start(problem), None);
    let mut ctx = env.ctx(Role::Server).map_err(no_start)?;
    ctx.start_server().map_err(no_start)?;
    Ok(ctx)
}

/// Plays `script` in a fresh server; its transcript if it passed.
pub(crate) fn play_fresh(env: &Env<'_>, script: &Script) -> Result<Transcript, Ran> {
    env.fresh(Role::Server, |ctx| ctx.start_server().map_err(did_not_start), |ctx, ()| script::play(ctx, script))
}

/// A family of moves for the model: the conversations, and the bursts ([`super::burst`]). Its
/// items are what such a family says of itself, as [`Family`]'s of the same names; the rest of
/// [`Family`] is the same for all of them: a case is the model's script, played on the server
/// the worker keeps (restarted when it dies).
pub(crate) trait Conversational: Sync {
    type Plan: Clone + std::fmt::Debug;
    const ID: &'static str;
    const SECTION: &'static str;
    const NOUN: &'static str;
    const REQUIREMENTS: &'static [&'static str];
    const DEFAULT_CASES: u32;
    /// Whether a failure's moves get the family's own pass after proptest's shrinking
    /// ([`Family::reduce`]).
    const REDUCE: bool;
    fn rng_index(&self, index: u64) -> u64 {
        index
    }
    fn strategy(&self) -> BoxedStrategy<Self::Plan>;
    /// What a plan plays.
    fn moves(plan: &Self::Plan) -> Vec<Move>;
}

impl Conversational for Conversations {
    type Plan = Plan;
    const ID: &'static str = "server/explore";
    const SECTION: &'static str = "explore: generated conversations (SPEC.md sections 4 and 5)";
    const NOUN: &'static str = "generated conversations";
    const REQUIREMENTS: &'static [&'static str] = &[
        "SRV-PONG-1",
        "SRV-PONG-2",
        "SRV-PONG-3",
        "SRV-OPEN-1",
        "WIRE-STREAM-1",
        "WIRE-STREAM-2",
        "WIRE-INVALID-1",
        "SRV-INVALID-1",
        "SRV-INVALID-2",
        "SRV-END-1",
        "SRV-END-2",
        "SRV-EOF-1",
        "SRV-ISOLATE-1",
        "SRV-CONC-2",
    ];
    const DEFAULT_CASES: u32 = DEFAULT_CASES;
    const REDUCE: bool = true;

    fn strategy(&self) -> BoxedStrategy<Plan> {
        plans().boxed()
    }

    fn moves(plan: &Plan) -> Vec<Move> {
        plan.moves()
    }
}

impl<C: Conversational> Family for C {
    type Plan = C::Plan;
    type Repro = Vec<Move>;
    type Worker = Server;

    const ID: &'static str = <C as Conversational>::ID;
    const SECTION: &'static str = <C as Conversational>::SECTION;
    const NOUN: &'static str = <C as Conversational>::NOUN;
    const REQUIREMENTS: &'static [&'static str] = <C as Conversational>::REQUIREMENTS;
    const DEFAULT_CASES: u32 = <C as Conversational>::DEFAULT_CASES;

    fn rng_index(&self, index: u64) -> u64 {
        Conversational::rng_index(self, index)
    }

    fn strategy(&self) -> BoxedStrategy<C::Plan> {
        Conversational::strategy(self)
    }

    fn repro(&self, plan: &C::Plan) -> Vec<Move> {
        C::moves(plan)
    }

    fn worker(&self) -> Server {
        Server::default()
    }

    fn play(&self, env: &Env<'_>, worker: &mut Server, moves: &Vec<Move>) -> Result<(), Ran> {
        if let Some(ctx) = &mut worker.ctx {
            if let Some(status) = ctx.exited() {
                worker.deaths.push(format!(
                    "the server {} between two scripts; restarted it",
                    crate::process::describe_status(status)
                ));
                worker.ctx = None;
            }
        }
        let ctx = match &mut worker.ctx {
            Some(ctx) => ctx,
            None => worker.ctx.insert(start(env)?),
        };
        let result = script::play(ctx, &model::script(moves));
        // Each script's transcript is its own; the process's lines so far are dropped.
        let transcript = ctx.take_transcript();
        result.map_err(|problem| Ran::new(problem, Some(transcript)))
    }

    /// For a family that asks for it ([`Conversational::REDUCE`]), after proptest's shrinking,
    /// which works on the plan (where removing a connection shifts the interleaving of the
    /// others), a pass over the moves in the manner of delta debugging: drop each connection
    /// whole, then each move from the last, while the script still fails.
    fn reduce(
        &self,
        env: &Env<'_>,
        worker: &mut Server,
        mut moves: Vec<Move>,
        budget: &mut u32,
        last: &mut Option<Ran>,
    ) -> Vec<Move> {
        if !C::REDUCE {
            return moves;
        }
        let mut still_fails = |candidate: &Vec<Move>, budget: &mut u32| {
            *budget = budget.saturating_sub(1);
            match self.play(env, worker, candidate) {
                Err(ran) if ran.problem.failure().is_some() => {
                    *last = Some(ran);
                    true
                }
                _ => false,
            }
        };
        let mut conns: Vec<u32> = moves.iter().flat_map(Move::conns).collect();
        conns.sort_unstable();
        conns.dedup();
        for conn in conns {
            let candidate: Vec<Move> = moves.iter().filter(|m| !m.conns().contains(&conn)).cloned().collect();
            if *budget > 0 && !candidate.is_empty() && still_fails(&candidate, budget) {
                moves = candidate;
            }
        }
        for i in (0..moves.len()).rev() {
            let mut candidate = moves.clone();
            candidate.remove(i);
            if *budget > 0 && still_fails(&candidate, budget) {
                moves = candidate;
            }
        }
        moves
    }

    fn script(&self, moves: &Vec<Move>) -> Option<Script> {
        Some(model::script(moves))
    }

    fn notes(&self, worker: &Server) -> Vec<String> {
        worker.deaths.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conform::explore::generate;
    use crate::conform::script::Step;

    #[test]
    fn generation_is_deterministic_for_a_seed_and_case() {
        for index in 0..20 {
            assert_eq!(generate(&Conversations, 7, index), generate(&Conversations, 7, index));
            assert_eq!(generate(&Conversations, 7, index).script(), generate(&Conversations, 7, index).script());
        }
        assert!((0..20).any(|i| generate(&Conversations, 7, i) != generate(&Conversations, 8, i)));
    }

    // SPEC: WIRE-STREAM-1 — the generators reach what the issue lists: several connections,
    // long runs, split tokens, invalid bytes, quiet checks and every ending.
    #[test]
    fn generated_scripts_cover_the_generators() {
        let scripts: Vec<Script> = (0..300).map(|i| generate(&Conversations, 1, i).script()).collect();
        let texts: Vec<String> = scripts.iter().map(Script::text).collect();
        let any = |needle: &str| texts.iter().any(|t| t.contains(needle));
        assert!(any("#5 connect"), "up to 8 connections");
        assert!(any("lock-step rounds") && any("\"ping\" x 1"), "long runs");
        assert!(any("expect nothing, still open"), "quiet checks");
        assert!(any("half-close") && any("close\n"), "endings");
        assert!(any("pause 1"), "pauses, some long");
        let bytes: Vec<u8> = scripts
            .iter()
            .flat_map(|s| s.steps.iter())
            .filter_map(|s| match s {
                Step::Do(Action::Send { bytes, .. }) => Some(bytes.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(bytes.contains(&0) && bytes.iter().any(|b| *b >= 0x80) && bytes.contains(&b'P'), "byte classes");
    }
}

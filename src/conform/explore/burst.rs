//! Bursts (`conform server --explore`): many connections writing pings at the same instant,
//! each with its own count, each count checked (SPEC: SRV-ISOLATE-1). State shared between
//! connections (one counter of pongs owed for all of them) hands one client's replies to
//! another only when several send at once, which conversations that interleave one write at a
//! time rarely make happen: here the writes of a burst are released at one barrier.
//!
//! A [`BurstPlan`] is 2 to 16 connections and 1 to 4 bursts; in each burst every connection
//! writes its own number of pings (1 to 64) in one write, the writes released together, and
//! then every connection must receive exactly its own number of pongs. The model, the runner
//! and the rest of the family are the conversations' ([`super::conversation::Conversational`]).

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

use super::conversation::Conversational;
use crate::conform::bytes::Bytes;
use crate::conform::model::Move;
use crate::conform::script::{Action, ConnWrite};
use crate::proto::PING;

/// The family of bursts.
pub(crate) struct Bursts;

/// A generated set of bursts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BurstPlan {
    /// Per burst, the pings each connection writes (connection `i + 1` writes `burst[i]`).
    pub bursts: Vec<Vec<u8>>,
}

fn plans() -> impl Strategy<Value = BurstPlan> {
    (2usize..=16, 1usize..=4).prop_flat_map(|(conns, bursts)| {
        prop::collection::vec(prop::collection::vec(1u8..=64, conns), bursts).prop_map(|bursts| BurstPlan { bursts })
    })
}

impl BurstPlan {
    /// The plan's moves: every connection opened, each burst written at once and then observed.
    pub(crate) fn moves(&self) -> Vec<Move> {
        let conns = self.bursts.iter().map(Vec::len).max().unwrap_or(0) as u32;
        let mut moves: Vec<Move> =
            (1..=conns).map(|conn| Move::Do(Action::Connect { conn, because: Vec::new() })).collect();
        for burst in &self.bursts {
            let sends = (1..)
                .zip(burst)
                .map(|(conn, &count)| ConnWrite {
                    conn,
                    bytes: Bytes::from(PING.repeat(usize::from(count))),
                    because: Vec::new(),
                })
                .collect();
            moves.push(Move::Do(Action::SendAtOnce { sends }));
            moves.extend((1..=burst.len() as u32).map(|conn| Move::Observe { conn }));
        }
        moves
    }
}

impl Conversational for Bursts {
    type Plan = BurstPlan;
    const ID: &'static str = "server/explore-burst";
    const SECTION: &'static str = "explore: bursts on many connections at one instant (SPEC.md section 5.5)";
    const NOUN: &'static str = "generated bursts";
    const REQUIREMENTS: &'static [&'static str] = &["SRV-ISOLATE-1", "SRV-CONC-1", "SRV-CONC-2", "SRV-PONG-1"];
    const DEFAULT_CASES: u32 = 20;

    // The pass over the moves drops a connection with every move that names it, and each
    // burst's one write names them all: proptest's shrinking of the plan is what shrinks a burst.
    const REDUCE: bool = false;

    fn rng_index(&self, index: u64) -> u64 {
        index | 1 << 62
    }

    fn strategy(&self) -> BoxedStrategy<BurstPlan> {
        plans().boxed()
    }

    fn moves(plan: &BurstPlan) -> Vec<Move> {
        plan.moves()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conform::model;
    use crate::conform::script::Step;

    // SPEC: SRV-ISOLATE-1 — every connection's count is its own, checked after every burst.
    #[test]
    fn each_connection_expects_its_own_count() {
        let plan = BurstPlan { bursts: vec![vec![3, 5]] };
        let script = model::script(&plan.moves());
        let text = script.text();
        assert!(text.contains("send at once: #1 \"pingpingping\", #2 \"ping\" x 5"), "{text}");
        let expected: Vec<(u32, usize)> = script
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::ExpectBytes { conn, bytes, because, .. } => {
                    assert!(because.contains(&"SRV-ISOLATE-1".to_string()), "{because:?}");
                    Some((*conn, bytes.len() / 4))
                }
                _ => None,
            })
            .collect();
        assert_eq!(expected, [(1, 3), (2, 5)]);
    }
}

//! Generated lifecycles (`conform server --explore`, after the conversations): sequences of
//! what is at the socket path and what happens to the server, judged against SPEC.md section
//! 7's table as a model. Foreign things are left untouched, live servers are never orphaned
//! (a second start while one serves refuses), stale sockets are replaced, the server's own
//! file is removed at shutdown only if it is still its own.
//!
//! A [`LifecyclePlan`] is an [`Occupant`] put at the path before the first start, then a list
//! of [`Event`]s. Events that make no sense in the model's state (a signal with no server
//! running) are skipped, so every shrunk plan is valid. Each step blames what it exercises:
//! a start over nothing LIFE-BIND-1, over a stale socket LIFE-STALE-1, over something foreign
//! LIFE-FOREIGN-1, LIFE-LIVE-1 or LIFE-PROBE-1; a liveness round SRV-PONG-1 (it is the most
//! forgiving conversation: one `ping`, read until `pong`). Needs a socket file: it does not
//! run with `--abstract`.

use std::fmt;
use std::time::Instant;

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use rustix::process::Signal;

use super::engine::{Env, Family, Ran};
use crate::conform::case::Role;
use crate::conform::cases::server::{expect_refusal, second_start_refused, unless_unchanged, SAYS_NOTHING};
use crate::conform::harness::Ctx;
use crate::conform::occupant::{Held, Occupant};
use crate::conform::verdict::{CaseResult, Exercise, Observation, PathState, Problem};
use crate::net::connect_bounded;

/// Something that happens to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Start the server (the first event always is one); while one runs, a second instance.
    Start,
    /// Send SIGTERM to the running server.
    Term,
    /// Send SIGINT to the running server.
    Int,
    /// Send SIGKILL to the running server (its socket file stays behind).
    Kill,
    /// A liveness round on a new connection.
    Round,
    /// The socket file removed and a regular file put in its place.
    Replace,
}

/// A generated lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LifecyclePlan {
    /// What is at the path before the first start.
    pub occupant: Occupant,
    /// What happens, in order.
    pub events: Vec<Event>,
}

impl fmt::Display for LifecyclePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at the path: {:?}; then", self.occupant)?;
        for event in &self.events {
            write!(f, " {event:?}")?;
        }
        Ok(())
    }
}

/// The generator of lifecycles: a start always comes first.
pub(crate) fn plans() -> impl Strategy<Value = LifecyclePlan> {
    let occupant = prop_oneof![
        4 => Just(Occupant::Nothing),
        3 => Just(Occupant::StaleSocket),
        1 => Just(Occupant::LiveServer),
        1 => Just(Occupant::BusyServer),
        1 => Just(Occupant::RegularFile),
        1 => Just(Occupant::Directory),
        1 => Just(Occupant::Symlink),
        1 => Just(Occupant::SymlinkToSocket),
        1 => Just(Occupant::Fifo),
    ];
    let event = prop_oneof![
        3 => Just(Event::Round),
        2 => Just(Event::Start),
        1 => Just(Event::Term),
        1 => Just(Event::Int),
        1 => Just(Event::Kill),
        1 => Just(Event::Replace),
    ];
    (occupant, prop::collection::vec(event, 0..6)).prop_map(|(occupant, events)| {
        let events = std::iter::once(Event::Start).chain(events).collect();
        LifecyclePlan { occupant, events }
    })
}

/// The model's view of the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Model {
    /// Nothing there (the first start, or after a clean shutdown).
    Vacant,
    /// A socket nobody listens on (put there, or the server's own after `SIGKILL`).
    Stale,
    /// The server runs and its socket is at the path.
    Serving,
    /// The server runs, but its file was replaced by a regular file.
    Replaced,
    /// Something a start must refuse and leave alone, because of these requirements.
    Foreign(&'static [&'static str]),
}

const REPLACED: &str = "replaced while the server ran\n";
/// The model's view of the path once `occupant` is put there.
fn model_of(occupant: Occupant) -> Model {
    match occupant {
        Occupant::Nothing => Model::Vacant,
        Occupant::StaleSocket => Model::Stale,
        Occupant::LiveServer => Model::Foreign(&["LIFE-LIVE-1"]),
        Occupant::BusyServer => Model::Foreign(&["LIFE-PROBE-1", "LIFE-LIVE-1"]),
        Occupant::RegularFile
        | Occupant::Directory
        | Occupant::Symlink
        | Occupant::SymlinkToSocket
        | Occupant::Fifo => Model::Foreign(&["LIFE-FOREIGN-1"]),
    }
}

/// Plays `plan` against `env`'s target in a fresh directory.
fn play(env: &Env<'_>, plan: &LifecyclePlan) -> Result<(), Ran> {
    let put = |ctx: &mut Ctx| plan.occupant.put(&ctx.socket, ctx.dir());
    // What was put is held until the events are played, then let go before the transcript.
    env.fresh(Role::Server, put, |ctx, held| {
        ctx.note(&format!("put {:?} at the path", plan.occupant));
        events(ctx, plan, &mut model_of(plan.occupant), &held)
    })
    .map(drop)
}

fn events(ctx: &mut Ctx, plan: &LifecyclePlan, model: &mut Model, held: &Held) -> CaseResult {
    for (index, event) in plan.events.iter().enumerate() {
        let at = |what: &str, blames: &[&'static str]| {
            Exercise::new(format!("event {} ({event:?}): {what}", index + 1), blames)
        };
        let running = matches!(model, Model::Serving | Model::Replaced);
        match (event, running, *model) {
            (Event::Start, false, Model::Vacant) => {
                ctx.start_server().map_err(|p| reworded(p, &at("the start, nothing at the path", &["LIFE-BIND-1"])))?;
                *model = Model::Serving;
            }
            (Event::Start, false, Model::Stale) => {
                ctx.start_server_over(&at("the start over a stale socket", &["LIFE-STALE-1"]))?;
                *model = Model::Serving;
            }
            (Event::Start, false, Model::Foreign(ids)) => {
                let step = at("the start with something foreign at the path", ids);
                refuses(ctx, &step, held)?;
            }
            (Event::Start, true, Model::Serving) => {
                // SPEC: LIFE-LIVE-1 — a second instance over the live first one refuses, and
                // the first serves on (it served a liveness round since it started).
                conn_live(ctx, "before the second start")?;
                second_start_refused(ctx, &at("a second start while the server serves", &["LIFE-LIVE-1"]))?;
            }
            (Event::Round, true, Model::Serving) => conn_live(ctx, "a liveness round")?,
            (Event::Replace, true, Model::Serving) => {
                std::fs::remove_file(&ctx.socket)
                    .and_then(|()| std::fs::write(&ctx.socket, REPLACED))
                    .map_err(|e| Problem::harness("cannot replace the socket file", e))?;
                ctx.note("replaced the socket file with a regular file");
                *model = Model::Replaced;
            }
            (Event::Term | Event::Int, true, _) => {
                let (signal, name) =
                    if *event == Event::Term { (Signal::TERM, "SIGTERM") } else { (Signal::INT, "SIGINT") };
                ctx.signal(signal, name)?;
                ctx.expect_exit(&at(&format!("{name}: exit with status 0"), &["LIFE-SHUT-1"]), true)?;
                // SPEC: LIFE-SHUT-1, LIFE-SHUT-2 — its own file removed; a replacement left alone.
                let (expected, step, next) = if *model == Model::Replaced {
                    let expected = PathState::RegularFile { content: REPLACED.into() };
                    (
                        expected,
                        at(&format!("{name}: the replacement left alone"), &["LIFE-SHUT-2"]),
                        Model::Foreign(&["LIFE-FOREIGN-1"]),
                    )
                } else {
                    (
                        PathState::Nothing,
                        at(&format!("{name}: the socket file removed"), &["LIFE-SHUT-1"]),
                        Model::Vacant,
                    )
                };
                let now = PathState::of(&ctx.socket);
                if now != expected {
                    let path = ctx.socket.display().to_string();
                    return step.failed(
                        Observation::Path { path: path.clone(), state: expected },
                        Observation::Path { path, state: now },
                    );
                }
                *model = next;
            }
            (Event::Kill, true, _) => {
                ctx.signal(Signal::KILL, "SIGKILL")?;
                ctx.await_death()?;
                // Its socket stays behind, stale (or the replacement stays, foreign).
                *model = if *model == Model::Replaced { Model::Foreign(&["LIFE-FOREIGN-1"]) } else { Model::Stale };
            }
            _ => continue, // not meaningful in this state
        }
    }
    Ok(())
}

/// A liveness round on a new connection: a server that never answers fails SRV-PONG-1 here
/// (SPEC.md section 8), not a lifecycle requirement.
fn conn_live(ctx: &mut Ctx, context: &str) -> CaseResult {
    ctx.connect()?.live_round(context)
}

/// A start failure is reported as the start the lifecycle made (the same requirements).
fn reworded(problem: Problem, step: &Exercise) -> Problem {
    match problem {
        Problem::Fail(failure) => step.fail(failure.expected, failure.observed),
        other => other,
    }
}

/// SPEC: LIFE-FOREIGN-1, LIFE-LIVE-1, LIFE-PROBE-1 — a start that must refuse: it exits
/// non-zero, leaves what is at the path as it was (the very file: a replacement of the same
/// kind is not), and leaves the other server accepting. The fixed cases' refusal check, with
/// no message asked for (the fixed cases judge the messages).
fn refuses(ctx: &mut Ctx, step: &Exercise, held: &Held) -> CaseResult {
    let intact = unless_unchanged(&ctx.socket);
    expect_refusal(ctx, step, SAYS_NOTHING, "what was at the path", &intact)?;
    if let Held::Listener(listener) = held {
        let accepts = connect_bounded(&ctx.socket, Instant::now() + ctx.waits.timeout).is_ok();
        if accepts {
            // The connection just made is in the backlog: this accept does not wait.
            let _ = listener.accept();
        } else {
            return step.failed(
                Observation::OtherServerAccepts { accepts: true },
                Observation::OtherServerAccepts { accepts },
            );
        }
    }
    Ok(())
}

/// The family of generated lifecycles.
pub(crate) struct Lifecycles;

impl Family for Lifecycles {
    type Plan = LifecyclePlan;
    type Repro = LifecyclePlan;
    type Worker = ();

    const ID: &'static str = "server/explore-lifecycle";

    const SECTION: &'static str = "explore: generated lifecycles (SPEC.md section 7)";

    const NOUN: &'static str = "generated lifecycles";

    const REQUIREMENTS: &'static [&'static str] =
        &["LIFE-BIND-1", "LIFE-STALE-1", "LIFE-LIVE-1", "LIFE-PROBE-1", "LIFE-FOREIGN-1", "LIFE-SHUT-1", "LIFE-SHUT-2"];

    const DEFAULT_CASES: u32 = 20;

    // Offset from the conversations' cases, so the two explorations draw different numbers.
    fn rng_index(&self, index: u64) -> u64 {
        index | 1 << 63
    }

    fn strategy(&self) -> BoxedStrategy<LifecyclePlan> {
        plans().boxed()
    }

    fn repro(&self, plan: &LifecyclePlan) -> LifecyclePlan {
        plan.clone()
    }

    fn worker(&self) {}

    fn play(&self, env: &Env<'_>, _: &mut (), plan: &LifecyclePlan) -> Result<(), Ran> {
        play(env, plan)
    }

    fn text(&self, plan: &LifecyclePlan) -> String {
        format!("minimal lifecycle: {plan}\n")
    }

    fn size(&self, plan: &LifecyclePlan) -> usize {
        plan.events.len() + 1
    }
}

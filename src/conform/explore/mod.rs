//! `--explore`: generated cases after the fixed ones, every failure shrunk to a minimal case,
//! confirmed in fresh processes (or reported flaky), and reported with its seed and the
//! commands that reproduce it (SPEC.md section 8).
//!
//! One engine does this for every family of generated cases: a [`Family`] says how to
//! generate a plan (a proptest strategy), what it plays and how, and how a minimal one reads;
//! the engine generates, plays, shrinks (proptest's `TestRunner`, then the family's own pass),
//! confirms, bounds the time and reports, honouring every option ([`ExploreOptions`]: `--cases`,
//! `--seed`, `--explore-time`, the shrinking and confirmation limits, and the run's `--jobs`
//! and waits). Case `i` of seed `S` is generated from `(S, i)` alone, so a run is
//! deterministic for a seed whatever the number of workers. The families:
//!
//! - [`conversation`]: conversations with a server (SPEC.md sections 4 and 5);
//! - [`burst`]: many connections writing at one instant (SRV-ISOLATE-1);
//! - [`lifecycle`]: what is at the socket path and what happens to the server (section 7);
//! - [`client`]: generated servers against a client (section 6).
//!
//! A failure that blames only SHOULDs is reported as a warning and exploration goes on; the
//! first failure that blames a MUST stops it and is shrunk. Adding a family is one module.

pub(crate) mod burst;
pub(crate) mod client;
pub(crate) mod conversation;
mod engine;
pub(crate) mod lifecycle;

use std::time::Instant;

use engine::{explore, generate, reports, trimmed, Family};
pub use engine::{random_seed, Env, ExploreOptions};

use super::case::Role;
use super::harness::Addressing;
use super::outcome::{CaseReport, ScriptReport};
use super::script::Script;
use super::verdict::Problem;

/// Conversation `index` of `seed`, as generated (before any shrinking), with the model's
/// expectations: what `--explore` plays first and `conform export` writes.
pub fn generated_script(seed: u64, index: u64) -> Script {
    generate(&conversation::Conversations, seed, index).script()
}

/// The families of generated cases, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Conversations with a server (SPEC.md sections 4 and 5).
    Conversations,
    /// Many connections writing at one instant (SRV-ISOLATE-1).
    Bursts,
    /// What is at the socket path and what happens to the server (section 7).
    Lifecycles,
    /// Generated servers against a client (section 6).
    Servers,
}

/// One family's exploration, as report cases: the pass, the failure found, the warning.
pub fn explore_kind(kind: Kind, env: &Env<'_>, options: &ExploreOptions, deadline: Option<Instant>) -> Vec<CaseReport> {
    fn one<F: Family>(
        family: &F,
        env: &Env<'_>,
        options: &ExploreOptions,
        deadline: Option<Instant>,
    ) -> Vec<CaseReport> {
        let exploration = explore(family, env, options, deadline);
        reports(family, &exploration, env, options)
    }
    match kind {
        Kind::Conversations => one(&conversation::Conversations, env, options, deadline),
        Kind::Bursts => one(&burst::Bursts, env, options, deadline),
        Kind::Lifecycles => one(&lifecycle::Lifecycles, env, options, deadline),
        Kind::Servers => one(&client::Servers, env, options, deadline),
    }
}

/// Every exploration `--explore` runs for `role`, as report cases: for a server the
/// conversations, the bursts and (with a socket file) the lifecycles; for a client the
/// generated servers. `--explore-time` bounds them all together.
pub(crate) fn explore_all(role: Role, env: &Env<'_>, options: &ExploreOptions) -> Vec<CaseReport> {
    let deadline = options.time.map(|t| Instant::now() + t);
    let kinds: &[Kind] = match (role, env.addressing) {
        (Role::Client, _) => &[Kind::Servers],
        (Role::Server, Addressing::Path) => &[Kind::Conversations, Kind::Bursts, Kind::Lifecycles],
        (Role::Server, Addressing::Abstract) => &[Kind::Conversations, Kind::Bursts],
    };
    kinds.iter().flat_map(|&kind| explore_kind(kind, env, options, deadline)).collect()
}

/// The section of a report that replays saved scripts.
pub(crate) const REPLAY_SECTION: &str = "replay: saved scripts (judged only on what their steps name)";

/// Plays saved scripts (`--replay FILE`), each in a fresh server, as report cases. Each case
/// holds the target to the requirements its script's steps name, and to nothing else (SPEC.md
/// section 8: the profiles a replay does not exercise are not judged).
pub(crate) fn replay(scripts: &[(String, Script)], env: &Env<'_>) -> Vec<CaseReport> {
    scripts
        .iter()
        .map(|(name, script)| {
            let started = Instant::now();
            // A replay of a replay's report keeps the original name, not one prefix per round;
            // a case of a report or a vector keeps its own ID under the replay prefix.
            let original = name.strip_prefix("server/replay/").or_else(|| name.strip_prefix("server/")).unwrap_or(name);
            let mut case = CaseReport::new(
                format!("server/replay/{original}"),
                format!("a saved script of {} steps", script.steps.len()),
                REPLAY_SECTION,
                script.requirements(),
            );
            let ran = conversation::play_fresh(env, script);
            let (result, transcript) = match ran {
                Ok(transcript) => (Ok(()), Some(transcript)),
                Err(ran) => (Err(ran.problem), ran.transcript.map(|t| *t)),
            };
            case.transcript = transcript.as_ref().map(trimmed);
            case.script = Some(Box::new(ScriptReport {
                script: script.clone(),
                failure: result.as_ref().err().and_then(Problem::failure).cloned(),
                seed: None,
                case_index: None,
                original_steps: None,
                confirmation: None,
            }));
            let mut case = case.conclude(result);
            case.duration = started.elapsed();
            case
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_families_draw_apart() {
        let a = generate(&conversation::Conversations, 7, 3);
        assert_eq!(a, generate(&conversation::Conversations, 7, 3));
        assert_ne!(lifecycle::Lifecycles.rng_index(3), burst::Bursts.rng_index(3));
    }
}

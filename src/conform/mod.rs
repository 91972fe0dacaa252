//! `udsping conform`: judges any implementation of SPEC.md, server or client, through its
//! socket, its process and the filesystem, the way h2spec judges HTTP/2 servers.
//!
//! Each concept has one home:
//!
//! - `case`: what a case is ([`Case`], [`Role`], [`Needs`]) and the one `case!` that declares one.
//! - `cases`: the registry: the stream cases of sections 4.2 to 5.4 as rows of data, and the
//!   server and client cases that need code.
//! - `verdict`: the typed [`Failure`] (step, the requirements it exercises, expected, observed)
//!   inside the one [`Problem`] type (SPEC.md section 8, "How a report blames").
//! - `outcome`: one [`CaseReport`] per case, and the run's [`SuiteReport`] and exit status.
//! - `claims`: what a run may claim per profile, and what no outside observer can check.
//! - `run`: [`Options`], [`preflight`], the runner, and `--replay`.
//! - `harness`: a case's world (`Ctx`): the process, recorded connections, bounded waits.
//! - `occupant`: what the gate puts at the socket path before a start (section 7.1).
//! - `script` and `model`: a conversation as a value and its one runner; the expectations
//!   computed from the protocol core.
//! - `explore`: one engine for every family of generated cases (`--explore`).
//! - `report`, `list`, `export`, `target`: the reports, `--list`, `conform export`, `-- CMD`.
//!
//! A case's level is the strongest level among its requirements, read from SPEC.md itself, so a
//! case cannot claim to check a MUST that SPEC.md calls a SHOULD; a failure's level is the
//! strongest among what it blames.

mod bytes;
mod case;
mod cases;
mod claims;
mod explore;
mod export;
mod harness;
mod list;
mod model;
mod occupant;
mod outcome;
mod report;
mod run;
mod script;
mod target;
mod verdict;

pub use bytes::Bytes;
pub use case::{Case, Needs, Role};
pub use cases::all as cases;
pub use claims::{profiles, ProfileStatus, ProfileVerdict, NOT_OBSERVABLE};
pub use explore::{explore_kind, generated_script, random_seed, Env, ExploreOptions, Kind};
pub use export::{schema as vector_schema, write as export, ExportError};
pub use harness::{abort_run, poll_until, Addressing, Direction, Transcript, Waits};
pub use list::{human as list_human, json as list_json, list, ListedCase};
pub use outcome::{CaseReport, Confirmation, FirstRun, Outcome, ScriptReport};
pub use report::{case_line, first_run_line, human, json, junit, schema, transcript_text};
pub use run::{preflight, replay, run, run_with_progress, GateError, Options, SuiteReport, UnmatchedPattern};
pub use script::{load_file as load_scripts, Action, LoadError, Script, Step};
pub use target::{from_command as target_from_command, relative_arguments, RelativeArgument, TargetError};
pub use verdict::{human_duration, Failure, Observation, PathState, Problem};

pub use crate::process::Target;

//! `udsping conform`: judges any implementation of SPEC.md, server or client, through its
//! socket, its process and the filesystem, the way h2spec judges HTTP/2 servers.
//!
//! - [`harness`]: the process in a fresh directory, recorded connections, bounded waits.
//! - [`server_cases`], [`client_cases`]: the cases, named by the SPEC.md section they check
//!   (`server/5.3/...`) and listing the requirement IDs they hold the implementation to.
//! - [`report`]: human, JSON and JUnit reports, organised like SPEC.md.
//! - [`script`]: a conversation as a value and the one runner that plays it; [`model`]
//!   computes a script's expectations from the protocol core; [`rows`] holds the stream cases
//!   of sections 4.2 to 5.4 as data.
//! - [`explore`]: generated conversations against a server, shrunk and confirmed (`--explore`,
//!   `--replay`); [`explore_lifecycle`]: generated lifecycles of the socket file (section 7);
//!   [`explore_client`]: generated servers against a client; [`export`]: the
//!   stream cases and generated scripts as JSON test vectors (`conform export DIR`).
//!
//! A case's level is the strongest level among its requirements, read from SPEC.md itself, so a
//! case cannot claim to check a MUST that SPEC.md calls a SHOULD.

pub mod client_cases;
pub mod explore;
pub mod explore_client;
pub mod explore_lifecycle;
pub mod export;
pub mod harness;
pub mod model;
pub mod report;
pub mod rows;
pub mod script;
pub mod server_cases;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::{Addressing, Ctx, Problem, Target, Transcript};

use crate::spec::{self, Level, Requirement};

/// Which side of the protocol is under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

/// One conformance case.
pub struct Case {
    /// `role/section/name`, for example `server/4.2/split-ping`.
    pub id: &'static str,
    pub role: Role,
    /// SPEC.md requirement IDs this case holds the implementation to.
    pub requirements: &'static [&'static str],
    pub title: &'static str,
    /// The kind of address the case needs the implementation to be given.
    pub needs: Needs,
    pub run: fn(&mut Ctx) -> harness::CaseResult,
}

/// Which addressing a case applies to (`--abstract` chooses the run's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Any: the case talks only through connections and the process.
    Any,
    /// A socket file: the case checks or prepares the file (section 7.1 to 7.4).
    SocketFile,
    /// An abstract address (section 7.6).
    AbstractAddress,
}

impl Needs {
    /// Why a case does not apply under `addressing`, if it does not.
    pub fn excluded_by(&self, addressing: Addressing) -> Option<&'static str> {
        match (self, addressing) {
            (Needs::SocketFile, Addressing::Abstract) => {
                Some("needs a socket file; this run gives the implementation an abstract address (--abstract)")
            }
            (Needs::AbstractAddress, Addressing::Path) => {
                Some("about abstract addresses; runs with --abstract (TRN-ABSTRACT-1 is a MAY)")
            }
            _ => None,
        }
    }
}

impl Case {
    /// The SPEC.md section number in the ID (`4.2`).
    pub fn section_number(&self) -> &'static str {
        self.id.split('/').nth(1).unwrap_or("")
    }
}

/// Every case for `role`.
pub fn cases(role: Role) -> Vec<Case> {
    match role {
        Role::Server => server_cases::cases(),
        Role::Client => client_cases::cases(),
    }
}

/// Requirements that no case can observe from outside, and why. Every other requirement of
/// SPEC.md has at least one case (checked by `tests/conform.rs`).
pub const NOT_OBSERVABLE: &[(&str, &str)] = &[
    ("TRN-PATH-1", "the gate always runs the target in a directory whose socket is `udsocket`, so it cannot tell a default from an argument"),
    ("TRN-PATH-2", "the gate chooses the socket path; a too-long path would need the target to take its path as an argument"),
    ("WIRE-DECODE-1", "memory held per connection is internal; it is bounded by the grammar for every input the gate can send"),
    ("WIRE-CLOSE-1", "it governs how a peer reads; the gate's own reads follow it"),
    ("SRV-PONG-4", "a MAY: batching writes is invisible on a byte stream"),
    ("SRV-EOF-2", "logs and counters are not part of the protocol"),
    ("LIFE-RACE-1", "needs another process to replace the file inside a microsecond window"),
    ("LIFE-RACE-2", "needs another process to bind inside a microsecond window"),
    ("LIFE-PERM-2", "a MAY: the option's name is the implementation's own"),
    ("SRV-LIMIT-1", "the limit and how to set it are the implementation's own"),
    ("SRV-IDLE-1", "the timeout is the implementation's (the reference's default is 120 s), too long for a gate case"),
    ("SRV-WRITE-1", "the timeout and how to set it are the implementation's own"),
    ("SRV-COUNT-1", "counters are internal; how they are shown is the implementation's own"),
    ("LIFE-CRED-1", "the allow lists and how to set them are the implementation's own, and testing needs root"),
];

/// What became of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
    Error,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
            Outcome::Error => "error",
        }
    }
}

/// The result of one case.
#[derive(Clone, Debug)]
pub struct CaseReport {
    pub id: &'static str,
    pub title: &'static str,
    pub requirements: Vec<&'static str>,
    pub level: Level,
    /// The SPEC.md section heading the case belongs to.
    pub section: String,
    pub outcome: Outcome,
    pub duration: Duration,
    pub message: Option<String>,
    pub transcript: Option<Transcript>,
    /// For a script-shaped case (exploration, replay): the script and how it failed.
    pub script: Option<Box<explore::ScriptReport>>,
}

/// How to run the suite.
#[derive(Clone, Debug)]
pub struct Options {
    pub only: Vec<glob::Pattern>,
    pub skip: Vec<glob::Pattern>,
    pub timeout: Duration,
    pub strict: bool,
    pub jobs: usize,
    pub addressing: Addressing,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            only: Vec::new(),
            skip: Vec::new(),
            timeout: Duration::from_millis(2000),
            strict: false,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            addressing: Addressing::Path,
        }
    }
}

impl Options {
    /// Whether `case` runs: it matches an `--only` pattern (if any) by ID or requirement, and
    /// no `--skip` pattern.
    pub fn selects(&self, case: &Case) -> bool {
        let matches = |patterns: &[glob::Pattern]| {
            patterns.iter().any(|p| p.matches(case.id) || case.requirements.iter().any(|r| p.matches(r)))
        };
        (self.only.is_empty() || matches(&self.only)) && !matches(&self.skip)
    }
}

/// The whole run.
#[derive(Clone, Debug)]
pub struct SuiteReport {
    pub role: Role,
    pub target: Target,
    pub options: Options,
    pub cases: Vec<CaseReport>,
}

impl SuiteReport {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.cases.iter().filter(|c| c.outcome == outcome).count()
    }

    /// Failed cases that fail the run: MUST ones, and SHOULD ones with `--strict`.
    pub fn blocking_failures(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.outcome == Outcome::Fail && (c.level == Level::Must || self.options.strict))
            .count()
    }

    /// 0 every MUST case passed; 1 a MUST case failed (or a SHOULD with `--strict`); 2 the
    /// harness could not run a case.
    pub fn exit_code(&self) -> u8 {
        if self.count(Outcome::Error) > 0 {
            2
        } else if self.blocking_failures() > 0 {
            1
        } else {
            0
        }
    }

    /// Per profile of SPEC.md section 8: `Some(true)` met, `Some(false)` a MUST case of it
    /// failed, `None` none of its cases ran.
    pub fn profiles(&self) -> Vec<(&'static str, Option<bool>)> {
        let requirements = spec::requirements();
        let profile_of = |id: &str| requirements.iter().find(|r| r.id == id).map(|r| r.profile);
        spec::PROFILES
            .iter()
            .map(|&profile| {
                let relevant: Vec<&CaseReport> = self
                    .cases
                    .iter()
                    .filter(|c| {
                        c.outcome != Outcome::Skip && c.requirements.iter().any(|r| profile_of(r) == Some(profile))
                    })
                    .collect();
                let met = relevant.iter().all(|c| c.outcome == Outcome::Pass || c.level != Level::Must);
                (profile, (!relevant.is_empty()).then_some(met))
            })
            .collect()
    }
}

/// The strongest level among `ids`, and the SPEC.md section heading for `section_number`.
fn describe(requirements: &[Requirement<'_>], ids: &[&str], section_number: &str) -> (Level, String) {
    let level = ids.iter().filter_map(|id| requirements.iter().find(|r| r.id == *id)).map(|r| r.level).min();
    let section = requirements
        .iter()
        .map(|r| r.section)
        .find(|s| s.strip_prefix(section_number).is_some_and(|rest| rest.starts_with([' ', '.'])))
        .unwrap_or(section_number);
    (level.unwrap_or(Level::Must), section.to_string())
}

/// Runs the selected cases of `role` against `target`, `options.jobs` at a time.
pub fn run(role: Role, target: &Target, options: &Options) -> SuiteReport {
    let requirements = spec::requirements();
    let all = cases(role);
    let slots: Vec<Mutex<Option<CaseReport>>> = all.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = all.get(index) else { break };
                let report = run_case(case, &requirements, target, options);
                *slots[index].lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
            });
        }
    });
    let cases = slots
        .into_iter()
        .map(|slot| slot.into_inner().unwrap_or_else(|p| p.into_inner()).expect("every case ran"))
        .collect();
    SuiteReport { role, target: target.clone(), options: options.clone(), cases }
}

fn run_case(case: &Case, requirements: &[Requirement<'_>], target: &Target, options: &Options) -> CaseReport {
    let (level, section) = describe(requirements, case.requirements, case.section_number());
    let mut report = CaseReport {
        id: case.id,
        title: case.title,
        requirements: case.requirements.to_vec(),
        level,
        section,
        outcome: Outcome::Skip,
        duration: Duration::ZERO,
        message: None,
        transcript: None,
        script: None,
    };
    if !options.selects(case) {
        report.message = Some("not selected by --only/--skip".into());
        return report;
    }
    if let Some(reason) = case.needs.excluded_by(options.addressing) {
        report.message = Some(reason.into());
        return report;
    }
    let started = Instant::now();
    let (result, transcript) = match Ctx::new(target, options.timeout, options.addressing) {
        Ok(mut ctx) => {
            let result = (case.run)(&mut ctx);
            (result, Some(ctx.transcript()))
        }
        Err(problem) => (Err(problem), None),
    };
    report.duration = started.elapsed();
    report.transcript = transcript;
    (report.outcome, report.message) = match result {
        Ok(()) => (Outcome::Pass, None),
        Err(Problem::Fail(message)) => (Outcome::Fail, Some(format!("{}: {message}", case.requirements.join(", ")))),
        Err(Problem::Harness(message)) => (Outcome::Error, Some(format!("harness error: {message}"))),
    };
    report
}

/// Checks that `program` can be started, before any case runs (exit status 2 otherwise).
pub fn check_target(target: &Target) -> Result<(), String> {
    let program = std::path::Path::new(&target.program);
    let runnable = |path: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if target.program.contains('/') {
        runnable(program)
    } else {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| runnable(&dir.join(program))))
    };
    if found {
        Ok(())
    } else {
        Err(format!("cannot run the target: {:?} is not an executable file (nor found on PATH)", target.program))
    }
}

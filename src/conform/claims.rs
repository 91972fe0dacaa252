//! What a run may claim (SPEC.md section 8): per conformance profile, met (every observable
//! MUST of it checked by at least one case and passed in every case that checks it), NOT met
//! (the MUSTs failures blame), incomplete (some checked), or not judged (none checked: a
//! selection of other cases, a replay of scripts that name none of them); and the
//! requirements no outside observer can check, which a report never claims.

use super::case::{Needs, Role};
use super::harness::Addressing;
use super::outcome::Outcome;
use super::run::SuiteReport;
use crate::spec::{self, Level};

/// Requirements that no case can observe from outside, and why. Every other requirement of
/// SPEC.md has at least one case (checked by `tests/conform.rs`). A report never claims these
/// (SPEC.md section 8): it lists them as unobservable.
pub const NOT_OBSERVABLE: &[(&str, &str)] = &[
    ("TRN-PATH-1", "the gate always runs the target in a directory whose socket is `udsocket`, so it cannot tell a default from an argument"),
    ("WIRE-DECODE-1", "memory held per connection is internal; it is bounded by the grammar for every input the gate can send"),
    ("WIRE-CLOSE-1", "it governs how a peer reads; the gate's own reads follow it"),
    ("SRV-PONG-4", "a MAY: batching writes is invisible on a byte stream"),
    ("SRV-EOF-2", "logs and counters are not part of the protocol"),
    ("LIFE-RACE-1", "needs another process to replace the file inside a microsecond window"),
    ("LIFE-RACE-2", "needs another process to bind inside a microsecond window"),
    ("LIFE-PERM-2", "a MAY: the option's name is the implementation's own"),
    ("SRV-LIMIT-1", "the limit and how to set it are the implementation's own"),
    ("SRV-IDLE-1", "the timeout is the implementation's (the reference's default is 120 s), too long for a gate case"),
    ("SRV-IDLE-2", "it needs the implementation's connection table full, and its limit and threshold are its own"),
    ("SRV-WRITE-1", "the timeout and how to set it are the implementation's own"),
    ("SRV-COUNT-1", "counters are internal; how they are shown is the implementation's own"),
    ("LIFE-CRED-1", "the allow lists and how to set them are the implementation's own, and testing needs root"),
    ("LIFE-CRED-2", "the allow lists and how refusals are reported are the implementation's own"),
    ("LIFE-RACE-3", "needs a racing process and thousands of attempts (tests/race.rs does it for the reference)"),
    ("LIFE-BIND-2", "needs the target's start to fail after bind, which needs control of its resource limits"),
    ("LIFE-SHUT-3", "observable (SIGHUP or SIGQUIT, then as LIFE-SHUT-1), but no case is written yet: a SHOULD"),
    ("SRV-LOG-1", "logs are not part of the protocol"),
    ("CLT-TIMEOUT-1", "the timeout and how to set it are the implementation's own (the reference's default is 10 s)"),
];

/// Whether a requirement binds `role`: SRV-* and LIFE-* bind servers, CLT-* clients, TRN-*
/// and WIRE-* both (SPEC.md section 8).
pub(crate) fn applies_to(id: &str, role: Role) -> bool {
    match role {
        Role::Server => !id.starts_with("CLT-"),
        Role::Client => !id.starts_with("SRV-") && !id.starts_with("LIFE-"),
    }
}

/// How a profile of SPEC.md section 8 fared in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileStatus {
    /// Every MUST of the profile the gate can observe was checked and passed.
    Met,
    /// A failure blames a MUST of the profile.
    NotMet,
    /// Nothing failed, but some observable MUST was not checked (skipped, inconclusive, not
    /// selected, failed at an earlier step, or the harness could not run its case).
    Incomplete,
    /// None of the profile's observable MUSTs was checked (a selection of other cases, or a
    /// replay whose scripts name none of them): the run says nothing about it.
    NotJudged,
}

/// One profile's verdict, with what it rests on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ProfileVerdict {
    /// The profile's name, as in SPEC.md section 8.
    pub name: &'static str,
    /// Whether the run shows the implementation meets the profile.
    pub status: ProfileStatus,
    /// Observable MUSTs of the profile, for this role, that were checked: at least one case
    /// checked each, and every case that holds the implementation to it reached a verdict on it.
    pub checked: usize,
    /// Observable MUSTs that some case of the run checked while another case that holds the
    /// implementation to them did not (it was not selected, or stopped earlier): touched, so
    /// the profile is incomplete rather than not judged, but not counted as checked.
    pub partly: usize,
    /// MUSTs of the profile, for this role, that some case can observe.
    pub observable: usize,
    /// MUSTs of the profile, for this role, that no case can observe: a report claims nothing
    /// about them.
    pub unobservable: Vec<&'static str>,
    /// MUSTs of the profile that a failure blames.
    pub failed: Vec<&'static str>,
}

/// Per profile of SPEC.md section 8 that binds the report's role, what the run may claim.
pub fn profiles(report: &SuiteReport) -> Vec<ProfileVerdict> {
    let registry = super::cases::all(report.role);
    spec::PROFILES
        .iter()
        .map(|&profile| {
            let musts = spec::all()
                .iter()
                .filter(|r| r.profile == profile && r.level == Level::Must && applies_to(r.id, report.role))
                .map(|r| r.id)
                // A MUST that only cases for the other kind of address cite binds only servers
                // that use abstract addresses (a MAY): it does not count in a path run.
                .filter(|id| {
                    let citing: Vec<_> = registry.iter().filter(|c| c.requirements.contains(id)).collect();
                    citing.is_empty()
                        || report.options.addressing != Addressing::Path
                        || !citing.iter().all(|c| c.needs == Needs::AbstractAddress)
                });
            let (observable, unobservable): (Vec<&'static str>, Vec<&'static str>) =
                musts.partition(|id| registry.iter().any(|c| c.requirements.contains(id)));
            let failed: Vec<&'static str> = observable
                .iter()
                .copied()
                .filter(|id| report.cases.iter().any(|c| c.outcome == Outcome::Fail && c.blamed().contains(id)))
                .collect();
            // Checked by at least one case, and by every case that holds the implementation to
            // it: a run that never exercised a requirement claims nothing about it.
            let (mut checked, mut partly) = (0, 0);
            for id in &observable {
                let citing: Vec<_> =
                    report.cases.iter().filter(|c| c.requirements.contains(id) || c.blamed().contains(id)).collect();
                if citing.iter().any(|c| c.checked(id)) {
                    if citing.iter().filter(|c| c.requirements.contains(id)).all(|c| c.checked(id)) {
                        checked += 1;
                    } else {
                        partly += 1;
                    }
                }
            }
            let status = if !failed.is_empty() {
                ProfileStatus::NotMet
            } else if checked + partly == 0 {
                ProfileStatus::NotJudged
            } else if checked == observable.len() {
                ProfileStatus::Met
            } else {
                ProfileStatus::Incomplete
            };
            ProfileVerdict {
                name: profile,
                status,
                checked,
                partly,
                observable: observable.len(),
                unobservable,
                failed,
            }
        })
        // A profile with no MUST for this role (lifecycle, for a client) is not claimed.
        .filter(|verdict| verdict.observable + verdict.unobservable.len() > 0)
        .collect()
}

/// A requirement no case can observe, and why.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Unobservable {
    /// The requirement's ID.
    pub id: &'static str,
    /// Its level: `MUST`, `SHOULD` or `MAY`.
    pub level: &'static str,
    /// Why no case can observe it.
    pub why: &'static str,
}

/// Requirements binding `role` that no case observes, with why.
pub(crate) fn unobservable(role: Role) -> Vec<Unobservable> {
    NOT_OBSERVABLE
        .iter()
        .filter(|(id, _)| applies_to(id, role))
        .filter_map(|(id, why)| Some(Unobservable { id, level: spec::find(id)?.level.as_str(), why }))
        .collect()
}

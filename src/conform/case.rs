//! What a conformance case is: its ID (named by the SPEC.md section it checks), the
//! requirements it holds the implementation to, the kind of address it needs, and how it runs:
//! a conversation that is pure data (a row of [`super::cases::rows`], played by the one
//! script runner), or code, for what needs it (signals, files, descriptor limits).
//!
//! Every case, fixed or generated, is declared through [`case!`]; its section is a field, not
//! something parsed back out of the ID.

use super::harness::{Addressing, Ctx};
use super::model::Move;
use super::verdict::CaseResult;

pub use super::target::Role;

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

/// How a case runs.
#[derive(Clone, Copy)]
pub(crate) enum Run {
    /// A client's moves against a freshly started server; [`super::model`] computes what a
    /// conforming server does, [`super::script::play`] plays it.
    Conversation(&'static [Move]),
    /// Code, for what a conversation cannot say.
    Code(fn(&mut Ctx) -> CaseResult),
}

/// One conformance case.
#[derive(Clone, Copy)]
pub struct Case {
    /// `role/section/name`, for example `server/4.2/split-ping`.
    pub id: &'static str,
    /// The SPEC.md section it checks (`4.2`), as in the ID.
    pub section: &'static str,
    /// The side of the protocol the case tests.
    pub role: Role,
    /// SPEC.md requirement IDs this case holds the implementation to.
    pub requirements: &'static [&'static str],
    /// What it checks, in one line.
    pub title: &'static str,
    /// The kind of address the case needs the implementation to be given.
    pub needs: Needs,
    pub(crate) run: Run,
}

/// Declares a case: `case!(server "4.2" / "split-ping", [IDs], Any, "title", run)`, where `run`
/// is `Run::Conversation(MOVES)` or `Run::Code(function)`; the ID is `server/4.2/split-ping`.
macro_rules! case {
    ($role:ident $section:literal / $name:literal, [$($req:literal),+ $(,)?], $needs:ident, $title:literal, $run:expr) => {
        $crate::conform::case::Case {
            id: concat!(stringify!($role), "/", $section, "/", $name),
            section: $section,
            role: $crate::conform::case::role!($role),
            requirements: &[$($req),+],
            title: $title,
            needs: $crate::conform::case::Needs::$needs,
            run: $run,
        }
    };
}

/// The [`Role`] a case's first word names.
macro_rules! role {
    (server) => {
        $crate::conform::case::Role::Server
    };
    (client) => {
        $crate::conform::case::Role::Client
    };
}

pub(crate) use {case, role};

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing(_: &mut Ctx) -> CaseResult {
        Ok(())
    }

    #[test]
    fn a_case_is_named_by_its_role_section_and_name() {
        let case = case!(client "6" / "lockstep", ["CLT-END-1"], Any, "title", Run::Code(nothing));
        assert_eq!((case.id, case.section, case.role), ("client/6/lockstep", "6", Role::Client));
        assert_eq!(case.needs.excluded_by(Addressing::Abstract), None);
    }
}

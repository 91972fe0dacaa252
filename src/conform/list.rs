//! `udsping conform --list`: the cases a run would select, with the level read from SPEC.md.

use std::fmt::Write as _;

use serde::Serialize;

use super::case::Role;
use super::cases;
use super::run::Options;
use crate::spec;

/// One case as `--list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListedCase {
    /// `role/section/name`.
    pub id: &'static str,
    /// The strongest level among its requirements (`MUST`, `SHOULD`, `MAY`).
    pub level: &'static str,
    /// The SPEC.md requirement IDs it checks.
    pub requirements: &'static [&'static str],
    /// What it checks, in one line.
    pub title: &'static str,
}

/// The cases of `role` that `options` selects, in run order.
pub fn list(role: Role, options: &Options) -> Vec<ListedCase> {
    let requirements = spec::requirements();
    let level_of = |ids: &[&str]| spec::strongest_level(&requirements, ids).as_str();
    cases::all(role)
        .into_iter()
        .filter(|c| options.selects(c))
        .map(|c| ListedCase { id: c.id, level: level_of(c.requirements), requirements: c.requirements, title: c.title })
        .collect()
}

/// One line per case: ID, level, requirements, title, in columns.
pub fn human(cases: &[ListedCase]) -> String {
    let mut out = String::new();
    for c in cases {
        let _ = writeln!(out, "{:<40} {:<6} {:<50} {}", c.id, c.level, c.requirements.join(","), c.title);
    }
    out
}

/// The list as a JSON array of objects with `id`, `level`, `requirements` and `title`.
pub fn json(cases: &[ListedCase]) -> String {
    serde_json::to_string_pretty(cases).expect("a list of strings serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_narrows_the_list_and_levels_come_from_the_spec() {
        let options = Options { only: vec![glob::Pattern::new("SRV-END-*").unwrap()], ..Options::default() };
        let listed = list(Role::Server, &options);
        assert!(!listed.is_empty());
        assert!(listed.iter().all(|c| c.requirements.iter().any(|r| r.starts_with("SRV-END-"))), "{listed:?}");
        assert!(listed.iter().all(|c| ["MUST", "SHOULD", "MAY"].contains(&c.level)));
        let text = human(&listed);
        assert_eq!(text.lines().count(), listed.len());
        let parsed: serde_json::Value = serde_json::from_str(&json(&listed)).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), listed.len());
        assert_eq!(parsed[0]["id"], listed[0].id);
    }
}

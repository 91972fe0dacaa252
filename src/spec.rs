//! SPEC.md's requirements, read from the document itself (embedded at build time), so that
//! the traceability test and the conformance gate share one source of truth.
//!
//! A requirement is a line of the form (SPEC.md section 2):
//! `- **AREA-TOPIC-N** (LEVEL, profile): statement.`

/// The specification text this build implements.
pub const SPEC_MD: &str = include_str!("../SPEC.md");

/// RFC 2119 level of a requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// An absolute requirement.
    Must,
    /// Recommended; a conforming implementation may deviate with reason.
    Should,
    /// Optional.
    May,
}

impl Level {
    /// The level as SPEC.md writes it (`MUST`, `SHOULD`, `MAY`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::May => "MAY",
        }
    }
}

/// One requirement of SPEC.md, borrowing from the text it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement<'a> {
    /// The stable ID, such as `SRV-END-1`.
    pub id: &'a str,
    /// Its RFC 2119 level.
    pub level: Level,
    /// The conformance profile of SPEC.md section 8 it belongs to.
    pub profile: &'a str,
    /// The section heading it stands under, such as `5.3 Invalid input`.
    pub section: &'a str,
    /// The normative text after the level, rationale included.
    pub statement: &'a str,
}

/// A line that starts like a requirement (`- **`) but is not one: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("SPEC.md line {line}: {problem}: {text}")]
pub struct SpecError {
    /// The line number, from 1.
    pub line: usize,
    /// What the line lacks.
    pub problem: &'static str,
    /// The line itself.
    pub text: String,
}

/// The version of the specification this build implements and the gate checks: the `N` of
/// SPEC.md's `Status: ... version N.` line.
pub fn version() -> &'static str {
    SPEC_MD
        .lines()
        .find_map(|line| line.strip_prefix("Status: ")?.rsplit_once("version ").map(|(_, v)| v.trim_end_matches('.')))
        .expect("SPEC.md has a `Status: ... version N.` line (checked by this module's tests)")
}

/// Conformance profiles of SPEC.md section 8.
pub const PROFILES: [&str; 4] = ["core", "stream", "lifecycle", "concurrency"];

/// Every requirement of `SPEC_MD`, in document order.
pub fn requirements() -> Vec<Requirement<'static>> {
    all().to_vec()
}

/// Every requirement of `SPEC_MD`, parsed once.
pub fn all() -> &'static [Requirement<'static>] {
    static ALL: std::sync::OnceLock<Vec<Requirement<'static>>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        parse(SPEC_MD).expect("SPEC.md's requirement lines are well-formed (checked by tests/traceability.rs)")
    })
}

/// The requirement `text` names, as SPEC.md spells its ID, if SPEC.md defines it.
pub fn id(text: &str) -> Option<&'static str> {
    all().iter().find(|r| r.id == text).map(|r| r.id)
}

/// The requirement `id` names, if SPEC.md defines it.
pub fn find(id: &str) -> Option<&'static Requirement<'static>> {
    all().iter().find(|r| r.id == id)
}

/// The strongest level among `ids` (MUST where none is known): a case binds as strictly as its
/// strictest requirement, so it cannot claim to check a MUST that SPEC.md calls a SHOULD.
pub fn strongest_level(requirements: &[Requirement<'_>], ids: &[&str]) -> Level {
    ids.iter().filter_map(|id| requirements.iter().find(|r| r.id == *id)).map(|r| r.level).min().unwrap_or(Level::Must)
}

/// Parses requirement lines; a line that starts like one but is malformed is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Requirement<'_>>, SpecError> {
    let mut section = "";
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if let Some(heading) = line.strip_prefix("## ").or_else(|| line.strip_prefix("### ")) {
            section = heading.trim();
            continue;
        }
        let Some(rest) = line.strip_prefix("- **") else { continue };
        let bad = |problem: &'static str| SpecError { line: number + 1, problem, text: line.to_string() };
        let (id, rest) = rest.split_once("** (").ok_or_else(|| bad("expected `** (` after the ID"))?;
        if !is_requirement_id(id) {
            return Err(bad("malformed requirement ID"));
        }
        let (attributes, statement) = rest.split_once("): ").ok_or_else(|| bad("expected `): ` after the level"))?;
        let (level, profile) = attributes.split_once(", ").ok_or_else(|| bad("expected `LEVEL, profile`"))?;
        let level = match level {
            "MUST" => Level::Must,
            "SHOULD" => Level::Should,
            "MAY" => Level::May,
            _ => return Err(bad("level must be MUST, SHOULD or MAY")),
        };
        if !PROFILES.contains(&profile) {
            return Err(bad("unknown profile"));
        }
        found.push(Requirement { id, level, profile, section, statement });
    }
    Ok(found)
}

/// `AREA-TOPIC-N`: upper-case words and a number, joined by hyphens.
pub fn is_requirement_id(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_uppercase()))
        && parts.last().is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Requirement IDs cited in `source`: the marker `SPEC:`, a space, then IDs separated by `, `.
/// The list ends at the first ID not followed by a comma, so a citation may stand in
/// parentheses or be followed by a dash and a reason.
pub fn citations(source: &str) -> Vec<&str> {
    let mut cited = Vec::new();
    for (start, marker) in source.match_indices("SPEC: ") {
        let mut rest = &source[start + marker.len()..];
        loop {
            let end =
                rest.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')).unwrap_or(rest.len());
            if !is_requirement_id(&rest[..end]) {
                break;
            }
            cited.push(&rest[..end]);
            match rest[end..].strip_prefix(", ") {
                Some(next) => rest = next,
                None => break,
            }
        }
    }
    cited
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_binds_as_strictly_as_its_strictest_requirement() {
        let requirements = requirements();
        assert_eq!(strongest_level(&requirements, &["SRV-CONC-3"]), Level::Should);
        assert_eq!(strongest_level(&requirements, &["SRV-CONC-3", "SRV-CONC-1"]), Level::Must);
        assert_eq!(strongest_level(&requirements, &["NO-SUCH-1"]), Level::Must);
    }

    #[test]
    fn citations_are_found_in_comments_and_parentheses() {
        let text = "// SPEC: SRV-END-1, SRV-END-2 — why\n/// done (SPEC: WIRE-DECODE-1). SPEC: lower-case-1";
        assert_eq!(citations(text), ["SRV-END-1", "SRV-END-2", "WIRE-DECODE-1"]);
    }

    #[test]
    fn the_spec_states_its_version() {
        assert_eq!(version(), "2");
    }

    #[test]
    fn a_malformed_requirement_line_is_named_with_its_number() {
        let error = parse("intro\n- **SRV-END-1** (MUST core): no comma").unwrap_err();
        assert_eq!((error.line, error.problem), (2, "expected `LEVEL, profile`"));
        assert_eq!(
            error.to_string(),
            "SPEC.md line 2: expected `LEVEL, profile`: - **SRV-END-1** (MUST core): no comma"
        );
    }

    #[test]
    fn embedded_spec_parses() {
        let all = requirements();
        assert!(all.iter().any(|r| r.id == "SRV-END-1" && r.level == Level::Must && r.section == "5.2 `end`"));
    }
}

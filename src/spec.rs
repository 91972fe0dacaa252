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
    Must,
    Should,
    May,
}

impl Level {
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
    pub id: &'a str,
    pub level: Level,
    pub profile: &'a str,
    /// The section heading it stands under, such as `5.3 Invalid input`.
    pub section: &'a str,
    pub statement: &'a str,
}

/// Conformance profiles of SPEC.md section 8.
pub const PROFILES: [&str; 4] = ["core", "stream", "lifecycle", "concurrency"];

/// Every requirement of `SPEC_MD`, in document order.
pub fn requirements() -> Vec<Requirement<'static>> {
    parse(SPEC_MD).expect("SPEC.md's requirement lines are well-formed (checked by tests/traceability.rs)")
}

/// Parses requirement lines; a line that starts like one but is malformed is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Requirement<'_>>, String> {
    let mut section = "";
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if let Some(heading) = line.strip_prefix("## ").or_else(|| line.strip_prefix("### ")) {
            section = heading.trim();
            continue;
        }
        let Some(rest) = line.strip_prefix("- **") else { continue };
        let bad = |what: &str| format!("SPEC.md line {}: {what}: {line}", number + 1);
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
    fn citations_are_found_in_comments_and_parentheses() {
        let text = "// SPEC: SRV-END-1, SRV-END-2 — why\n/// done (SPEC: WIRE-DECODE-1). SPEC: lower-case-1";
        assert_eq!(citations(text), ["SRV-END-1", "SRV-END-2", "WIRE-DECODE-1"]);
    }

    #[test]
    fn embedded_spec_parses() {
        let all = requirements();
        assert!(all.iter().any(|r| r.id == "SRV-END-1" && r.level == Level::Must && r.section == "5.2 `end`"));
    }
}

//! Keeps SPEC.md, the code and the tests honest with each other: every requirement is cited by
//! a test and by the implementation, and every citation names a real requirement.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use udsping::spec::{citations, requirements, Level};

/// Rust files under `dir`, recursively, with their text.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

/// Citations in tests (files under tests/ and proto/tests/, and `#[cfg(test)]` modules in src/
/// and proto/src/) and in the implementation (the rest of those), each with the files citing
/// them.
/// Whether the whole repository is here: the published crate ships without the core's
/// sources (proto/ is a crate of its own), so the citations cannot all be counted there.
fn whole_repository() -> bool {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/src").is_dir();
    if !here {
        eprintln!("SKIPPED: proto/ is not here (a packaged crate), so citations cannot be counted");
    }
    here
}

fn cited() -> (BTreeMap<String, Vec<String>>, BTreeMap<String, Vec<String>>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mut tests, mut code) = (BTreeMap::new(), BTreeMap::new());
    let note = |map: &mut BTreeMap<String, Vec<String>>, file: &str, text: &str| {
        for id in citations(text) {
            map.entry(id.to_string()).or_default().push(file.to_string());
        }
    };
    for (file, text) in sources(&root.join("tests")).into_iter().chain(sources(&root.join("proto/tests"))) {
        note(&mut tests, &file, &text);
    }
    // The implementation is this package's src/ and the protocol core's crate, proto/src/.
    for (file, text) in sources(&root.join("src")).into_iter().chain(sources(&root.join("proto/src"))) {
        let (implementation, test_module) = text.split_once("#[cfg(test)]").unwrap_or((&text, ""));
        note(&mut code, &file, implementation);
        note(&mut tests, &file, test_module);
    }
    (tests, code)
}

#[test]
fn spec_requirements_parse_and_ids_are_unique() {
    let requirements = requirements();
    assert!(requirements.len() >= 40, "SPEC.md lost requirements: {}", requirements.len());
    let mut seen = BTreeSet::new();
    for r in &requirements {
        assert!(seen.insert(r.id), "{} is defined twice", r.id);
    }
}

#[test]
fn every_citation_names_a_requirement() {
    if !whole_repository() {
        return;
    }
    let known: BTreeSet<&str> = requirements().iter().map(|r| r.id).collect();
    let (tests, code) = cited();
    for (id, files) in tests.iter().chain(&code) {
        assert!(known.contains(id.as_str()), "{id} is cited in {files:?} but SPEC.md has no such requirement");
    }
}

#[test]
fn every_requirement_has_a_test() {
    if !whole_repository() {
        return;
    }
    let (tests, _) = cited();
    let missing: Vec<String> = requirements()
        .iter()
        .filter(|r| !tests.contains_key(r.id))
        .map(|r| format!("{} ({})", r.id, r.level.as_str()))
        .collect();
    assert!(missing.is_empty(), "requirements no test cites: {missing:?}");
}

#[test]
fn every_must_is_cited_by_the_implementation() {
    if !whole_repository() {
        return;
    }
    let (_, code) = cited();
    let missing: Vec<&str> =
        requirements().iter().filter(|r| r.level == Level::Must && !code.contains_key(r.id)).map(|r| r.id).collect();
    assert!(missing.is_empty(), "MUST requirements no code cites: {missing:?}");
}

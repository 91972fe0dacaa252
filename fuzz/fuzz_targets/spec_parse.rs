//! The hand-written SPEC.md readers (requirement lines and `SPEC:` citations) never panic on
//! any text, and what they return is well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use udsping::spec::{citations, is_requirement_id, parse, PROFILES};

fuzz_target!(|text: &str| {
    if let Ok(requirements) = parse(text) {
        for r in requirements {
            assert!(is_requirement_id(r.id));
            assert!(PROFILES.contains(&r.profile));
        }
    }
    for id in citations(text) {
        assert!(is_requirement_id(id));
        assert!(text.contains(id));
    }
});

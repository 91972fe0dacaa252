//! The registry of fixed cases: every case of a role, in SPEC.md order. Server cases are the
//! rows of sections 4.2 to 5.4 ([`rows`]: pure data) inside the cases that need code
//! ([`server`]); client cases are [`client`]'s.

pub(crate) mod client;
pub(crate) mod rows;
pub(crate) mod server;

use super::case::{Case, Role};

/// Every fixed case for `role`, in SPEC.md order.
pub fn all(role: Role) -> Vec<Case> {
    match role {
        Role::Server => server::cases(),
        Role::Client => client::cases(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every requirement a case names is one of SPEC.md's, and every ID is unique.
    #[test]
    fn cases_name_real_requirements_and_unique_ids() {
        let mut ids = std::collections::BTreeSet::new();
        for case in all(Role::Server).into_iter().chain(all(Role::Client)) {
            assert!(ids.insert(case.id), "{} twice", case.id);
            assert!(case.id.starts_with(&format!("{}/{}/", case.role.as_str(), case.section)), "{}", case.id);
            for id in case.requirements {
                assert!(crate::spec::id(id).is_some(), "{}: {id} is not in SPEC.md", case.id);
            }
        }
    }
}

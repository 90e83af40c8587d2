//! Naming things on the command line: a contact (or project, goal) is given by
//! its id or by its name, matched case- and accent-insensitively.
//!
//! Resolution is a pure function over the candidate records (the store's index
//! supplies them), so its rules are unit-tested here: an exact id wins; then
//! an exact normalised name; then, if nothing matches exactly, a unique
//! normalised prefix. Several matches are an error that lists the candidates,
//! so the user can retry with an id.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// How many candidates an ambiguity error lists before "and N more".
const CANDIDATES_SHOWN_MAX: usize = 6;

/// Lowercase, accents stripped, whitespace collapsed: "  Zoë  ÅBERG " -> "zoe aberg".
pub(crate) fn normalise(s: &str) -> String {
    let folded: String = s
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A record that can be named: its id (as text), its name, a disambiguating detail.
#[derive(Debug, Clone)]
pub(crate) struct Named<'a, T> {
    pub(crate) id: String,
    pub(crate) name: &'a str,
    /// Shown next to the name in an ambiguity error (organisation, status, ...).
    pub(crate) detail: Option<&'a str>,
    pub(crate) item: T,
}

/// Why a name did not resolve to exactly one record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResolveError {
    #[error("unknown {what} '{given}'")]
    Unknown { what: &'static str, given: String },
    #[error("'{given}' matches {count} {what}s: {listed} (use an id)")]
    Ambiguous {
        what: &'static str,
        given: String,
        count: usize,
        listed: String,
    },
}

/// Whether every word of `typed` is a prefix of some word of `name` (both normalised).
fn words_match(typed: &str, name: &str) -> bool {
    let words: Vec<&str> = name.split(' ').collect();
    typed
        .split(' ')
        .all(|t| words.iter().any(|w| w.starts_with(t)))
}

/// Finds the one record `given` names among `candidates`.
pub(crate) fn resolve<T: Clone>(
    what: &'static str,
    given: &str,
    candidates: &[Named<'_, T>],
) -> Result<T, ResolveError> {
    let trimmed = given.trim();
    if let Some(c) = candidates
        .iter()
        .find(|c| c.id.eq_ignore_ascii_case(trimmed))
    {
        return Ok(c.item.clone());
    }
    let key = normalise(trimmed);
    let unknown = || ResolveError::Unknown {
        what,
        given: given.to_string(),
    };
    if key.is_empty() {
        return Err(unknown());
    }
    let exact: Vec<&Named<'_, T>> = candidates
        .iter()
        .filter(|c| normalise(c.name) == key)
        .collect();
    let matches = if exact.is_empty() {
        let prefix: Vec<&Named<'_, T>> = candidates
            .iter()
            .filter(|c| normalise(c.name).starts_with(&key))
            .collect();
        if prefix.is_empty() {
            // People type surnames: every typed word starts some word of the name.
            candidates
                .iter()
                .filter(|c| words_match(&key, &normalise(c.name)))
                .collect()
        } else {
            prefix
        }
    } else {
        exact
    };
    match matches.as_slice() {
        [] => Err(unknown()),
        [one] => Ok(one.item.clone()),
        many => {
            let mut listed: Vec<String> = many
                .iter()
                .take(CANDIDATES_SHOWN_MAX)
                .map(|c| match c.detail.filter(|d| !d.is_empty()) {
                    Some(d) => format!("{} ({}, {})", c.name, d, c.id),
                    None => format!("{} ({})", c.name, c.id),
                })
                .collect();
            if many.len() > CANDIDATES_SHOWN_MAX {
                listed.push(format!("and {} more", many.len() - CANDIDATES_SHOWN_MAX));
            }
            Err(ResolveError::Ambiguous {
                what,
                given: given.to_string(),
                count: many.len(),
                listed: listed.join("; "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people() -> Vec<Named<'static, u32>> {
        let mk = |id: &str, name: &'static str, detail: Option<&'static str>, item| Named {
            id: id.to_string(),
            name,
            detail,
            item,
        };
        vec![
            mk("01AAA", "Zoë Åberg", Some("St Mary's"), 1),
            mk("01BBB", "Ana Silva", Some("Royal Free"), 2),
            mk("01CCC", "Ana Silva", None, 3),
            mk("01DDD", "Anabel Costa", None, 4),
            mk("01EEE", "Bruno Lima", None, 5),
        ]
    }

    #[test]
    fn normalises_case_accents_and_spacing() {
        assert_eq!(normalise("  Zoë   ÅBERG "), "zoe aberg");
        assert_eq!(normalise("José Ñúñez"), "jose nunez");
    }

    #[test]
    fn ids_exact_names_and_unique_prefixes_resolve() {
        let p = people();
        assert_eq!(resolve("contact", "01ccc", &p).unwrap(), 3);
        assert_eq!(resolve("contact", "zoe aberg", &p).unwrap(), 1);
        assert_eq!(resolve("contact", "ZOË", &p).unwrap(), 1);
        assert_eq!(resolve("contact", "bru", &p).unwrap(), 5);
        assert_eq!(resolve("contact", "anabel", &p).unwrap(), 4);
        // Word prefixes, when no whole-name prefix matches: surnames work.
        assert_eq!(resolve("contact", "aberg", &p).unwrap(), 1);
        assert_eq!(resolve("contact", "lim", &p).unwrap(), 5);
        assert_eq!(resolve("contact", "costa an", &p).unwrap(), 4);
        assert!(matches!(
            resolve("contact", "silva", &p),
            Err(ResolveError::Ambiguous { count: 2, .. })
        ));
    }

    #[test]
    fn ambiguity_lists_candidates_and_unknown_names_the_input() {
        let p = people();
        let err = resolve("contact", "ana silva", &p).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("matches 2 contacts"), "{msg}");
        assert!(msg.contains("Ana Silva (Royal Free, 01BBB)"), "{msg}");
        assert!(msg.contains("Ana Silva (01CCC)"), "{msg}");
        let err = resolve("contact", "ana", &p).unwrap_err();
        assert!(err.to_string().contains("matches 3 contacts"), "{err}");
        assert_eq!(
            resolve("contact", "Quentin", &p).unwrap_err().to_string(),
            "unknown contact 'Quentin'"
        );
        assert!(resolve("contact", "  ", &p).is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn normalise_is_idempotent_and_trimmed(s in "\\PC{0,30}") {
                let n = normalise(&s);
                prop_assert_eq!(normalise(&n), n.clone());
                prop_assert_eq!(n.trim(), n.as_str());
                prop_assert!(!n.contains("  "));
            }

            #[test]
            fn every_name_resolves_to_itself_when_unique(names in prop::collection::btree_set("[a-zA-Z]{1,8}( [a-zA-Z]{1,8})?", 1..8)) {
                let list: Vec<String> = names.into_iter().collect();
                let candidates: Vec<Named<'_, usize>> = list
                    .iter()
                    .enumerate()
                    .map(|(i, n)| Named { id: format!("ID{i}"), name: n.as_str(), detail: None, item: i })
                    .collect();
                for (i, n) in list.iter().enumerate() {
                    let same: usize = list.iter().filter(|m| normalise(m) == normalise(n)).count();
                    match resolve("contact", n, &candidates) {
                        Ok(found) => prop_assert_eq!(normalise(&list[found]), normalise(n)),
                        Err(ResolveError::Ambiguous { count, .. }) => prop_assert_eq!(count, same),
                        Err(e) => prop_assert!(false, "{} did not resolve: {}", n, e),
                    }
                    prop_assert_eq!(resolve("contact", &format!("ID{i}"), &candidates).unwrap(), i);
                }
            }
        }
    }
}

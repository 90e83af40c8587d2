//! Text normalisation for names, search tokens and duplicate detection.
//!
//! Everything the index compares goes through [`normalise`]: Unicode NFKD,
//! combining marks stripped, lowercased, so "José", "JOSE" and "jose" meet.

use std::collections::BTreeSet;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Longest token kept in the search index, in characters.
pub const TOKEN_CHARS_MAX: usize = 32;
/// Most distinct tokens indexed per record (bounds the index for huge notes).
pub const TOKENS_PER_RECORD_MAX: usize = 512;

/// NFKD, strip combining marks, lowercase.
pub fn normalise(s: &str) -> String {
    s.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// A name for comparison: normalised, punctuation dropped, whitespace collapsed.
pub fn normalise_name(s: &str) -> String {
    let n = normalise(s);
    n.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prefix-searchable tokens of `s`: normalised alphanumeric words.
pub fn tokens_into(s: &str, out: &mut BTreeSet<String>) {
    for word in normalise(s).split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() || out.len() >= TOKENS_PER_RECORD_MAX {
            continue;
        }
        out.insert(word.chars().take(TOKEN_CHARS_MAX).collect());
    }
}

/// The tokens of a query string, in order, without duplicates.
pub fn query_tokens(s: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    normalise(s)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().take(TOKEN_CHARS_MAX).collect::<String>())
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

/// Digits of a phone number, for suffix comparison.
pub fn phone_digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// An email address for comparison: trimmed, lowercased.
pub fn normalise_email(s: &str) -> String {
    s.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_accents_and_spacing() {
        assert_eq!(normalise("José ÅSTRÖM"), "jose astrom");
        assert_eq!(normalise_name("  José   Åström-Li "), "jose astrom li");
        let mut t = BTreeSet::new();
        tokens_into("Café meeting: café, Zoë!", &mut t);
        assert_eq!(
            t.into_iter().collect::<Vec<_>>(),
            vec!["cafe", "meeting", "zoe"]
        );
        assert_eq!(query_tokens("Ann ann BOB"), vec!["ann", "bob"]);
        assert_eq!(phone_digits("+351 (912) 345-678"), "351912345678");
    }
}

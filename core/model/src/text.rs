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

/// Prefix-searchable tokens of `s`: the normalised alphanumeric words, plus,
/// for a word written with inner punctuation ("O'Brien", "Saint-Éloi",
/// "ana@x.org"), its joined form ("obrien"), so a query typed either way
/// finds it.
pub fn tokens_into(s: &str, out: &mut BTreeSet<String>) {
    let n = normalise(s);
    for chunk in n.split_whitespace() {
        let mut parts = 0;
        for word in chunk.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() {
                continue;
            }
            parts += 1;
            push_token(word, out);
        }
        if parts > 1 {
            let joined: String = chunk.chars().filter(|c| c.is_alphanumeric()).collect();
            push_token(&joined, out);
        }
    }
}

/// Words too common to be worth an index row in free text (interaction
/// summaries, notes, follow-ups). A query word that is a prefix of a longer
/// indexed word still matches it ("the" finds "theatre").
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "had",
    "has", "have", "he", "her", "his", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or",
    "our", "she", "so", "that", "the", "their", "them", "they", "this", "to", "up", "us", "was",
    "we", "were", "with", "you",
];

/// Like [`tokens_into`] for free text: single letters and stopwords are skipped.
pub fn text_tokens_into(s: &str, out: &mut BTreeSet<String>) {
    let mut all = BTreeSet::new();
    tokens_into(s, &mut all);
    for t in all {
        if out.len() >= TOKENS_PER_RECORD_MAX {
            break;
        }
        if t.chars().count() > 1 && STOPWORDS.binary_search(&t.as_str()).is_err() {
            out.insert(t);
        }
    }
}

fn push_token(word: &str, out: &mut BTreeSet<String>) {
    if out.len() < TOKENS_PER_RECORD_MAX {
        out.insert(word.chars().take(TOKEN_CHARS_MAX).collect());
    }
}

/// The tokens of a query: one per whitespace-separated word, punctuation
/// removed ("o'br" -> "obr"), without duplicates, longest first (the most
/// selective token is scanned first).
pub fn query_tokens(s: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out: Vec<String> = normalise(s)
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .take(TOKEN_CHARS_MAX)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty() && seen.insert(w.clone()))
        .collect();
    // Free text does not index stopwords or single letters: as extra words of
    // a longer query they would only exclude matches.
    let useful: Vec<String> = out
        .iter()
        .filter(|w| w.chars().count() > 1 && STOPWORDS.binary_search(&w.as_str()).is_err())
        .cloned()
        .collect();
    if !useful.is_empty() {
        out = useful;
    }
    out.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    out
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
        tokens_into("Café meeting: café, Zoë! O'Brien", &mut t);
        assert_eq!(
            t.into_iter().collect::<Vec<_>>(),
            vec!["brien", "cafe", "meeting", "o", "obrien", "zoe"]
        );
        assert_eq!(query_tokens("Ann ann BOB"), vec!["ann", "bob"]);
        assert_eq!(query_tokens("o'br  Saint-Éloi"), vec!["sainteloi", "obr"]);
        assert!(query_tokens(" ,. ").is_empty());
        assert_eq!(query_tokens("the budget of Q3"), vec!["budget", "q3"]);
        assert_eq!(query_tokens("the"), vec!["the"]);
        let mut t = BTreeSet::new();
        text_tokens_into("We talked about the theatre, a X-ray and Q3", &mut t);
        assert_eq!(
            t.into_iter().collect::<Vec<_>>(),
            vec!["q3", "ray", "talked", "theatre", "xray"]
        );
        assert!(
            STOPWORDS.windows(2).all(|w| w[0] < w[1]),
            "sorted for binary search"
        );
        assert_eq!(phone_digits("+351 (912) 345-678"), "351912345678");
    }
}

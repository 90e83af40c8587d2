//! Text normalisation for names, search tokens and duplicate detection.
//!
//! Everything the index compares goes through [`fold`]: Unicode NFKD,
//! combining marks stripped, Latin letters that are not an accent on a base
//! letter folded to ASCII (ø→o, æ→ae, ł→l, đ→d, ß→ss, þ→th, ð→d, ı→i, œ→oe,
//! with a table generated from `deunicode`'s), lowercased, so "José", "JOSE" and "jose" meet,
//! and so do "Søren" and "soren". Letters of other scripts (Cyrillic, Greek,
//! Arabic, Chinese, Japanese, Korean...) are kept as they are: a name is found
//! by its own letters, never only by a guessed romanisation.
//!
//! A person types a name one of several ways, so names and texts are also
//! spelt in the other [`Spelling`]s: German and Scandinavian transcriptions
//! ("Joerg", "Soeren", "Aarhus") and ß as a single s ("Grosmann"). The index
//! holds the tokens of every spelling that differs, duplicate detection
//! compares every spelling of two names ([`name_keys`]); a query is folded
//! once ([`Spelling::Folded`]) and meets whichever spelling it was typed in.
//!
//! Why `deunicode`'s spellings (see docs/SCHEMA.md, "Search and name
//! folding"): it maps every Latin letter we need to the ASCII a person types,
//! per character, and is maintained and widely used; `any_ascii` gives the
//! same results for these letters, and ICU case folding (`icu_casemap`) only
//! covers ß→ss: ø, ł, đ, æ, þ, ð are letters of their own to ICU, not
//! foldings. Only its rows for the Latin blocks are kept
//! ([`crate::latin_ascii`], about 23 KB instead of the crate's 0.5 MB in the
//! phone library); a test compares them with the crate.

use std::collections::BTreeSet;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Longest token kept in the search index, in characters.
pub const TOKEN_CHARS_MAX: usize = 32;
/// Most distinct tokens indexed per record (bounds the index for huge notes).
pub const TOKENS_PER_RECORD_MAX: usize = 512;

/// One way of writing the letters a keyboard may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// Every Latin letter as its ASCII base: ö→o, ø→o, å→a, æ→ae, ß→ss.
    Folded,
    /// German and Scandinavian transcription: ä/ö/ü→ae/oe/ue, ø→oe, å→aa;
    /// every other letter as in [`Spelling::Folded`].
    Transcribed,
    /// ß as one s ("Grosmann"); every other letter as in [`Spelling::Folded`].
    SingleS,
}

/// Every spelling, the primary ([`Spelling::Folded`]) first.
pub const SPELLINGS: [Spelling; 3] = [Spelling::Folded, Spelling::Transcribed, Spelling::SingleS];

const DIAERESIS: char = '\u{308}';
const RING_ABOVE: char = '\u{30A}';

/// Whether `c` is a letter of the Latin script that is not ASCII (the
/// Latin-1 supplement, Latin Extended A to E and Additional, IPA letters):
/// only these are folded to ASCII.
fn is_latin_letter(c: char) -> bool {
    matches!(c as u32,
        0x00C0..=0x02AF | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F | 0xA720..=0xA7FF | 0xAB30..=0xAB6F)
        && c.is_alphabetic()
}

/// The ASCII letters and digits a Latin letter folds to (deunicode's
/// spelling), `None` for a letter kept as it is.
fn latin_ascii(c: char) -> Option<&'static str> {
    let table = crate::latin_ascii::LATIN_ASCII;
    table
        .binary_search_by_key(&c, |(letter, _)| *letter)
        .ok()
        .map(|i| table[i].1)
}

/// Whether spelling `s` as `spelling` may differ from [`Spelling::Folded`]:
/// a cheap scan, so plain ASCII text is folded once.
fn may_differ(s: &str, spelling: Spelling) -> bool {
    match spelling {
        Spelling::Folded => false,
        Spelling::Transcribed => !s.is_ascii(),
        Spelling::SingleS => s.contains(['ß', 'ẞ']),
    }
}

/// `s` lowercased and spelt as `spelling`: NFKD, combining marks dropped
/// (except that a transcription turns the diaeresis of a/o/u into "e" and the
/// ring of å into "a"), Latin letters folded to ASCII, other scripts kept.
pub fn fold(s: &str, spelling: Spelling) -> String {
    let transcribe = spelling == Spelling::Transcribed;
    let mut out = String::with_capacity(s.len());
    // The base letter the next combining marks sit on (only the first mark
    // after it may be transcribed: "ǘ" is "ue", not "uee").
    let mut base: Option<char> = None;
    for c in s.nfkd() {
        if is_combining_mark(c) {
            if transcribe {
                match (base, c) {
                    (Some('a' | 'o' | 'u'), DIAERESIS) => out.push('e'),
                    (Some('a'), RING_ABOVE) => out.push('a'),
                    _ => {}
                }
            }
            base = None;
            continue;
        }
        base = Some(c.to_ascii_lowercase());
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        if is_latin_letter(c) {
            let special = match (spelling, c) {
                (Spelling::Transcribed, 'ø' | 'Ø') => Some("oe"),
                (Spelling::SingleS, 'ß' | 'ẞ') => Some("s"),
                _ => None,
            };
            // A folding that is not plain letters (deunicode spells ə "@")
            // would split the word: the table leaves it out, the letter stays.
            let ascii = special.or_else(|| latin_ascii(c));
            if let Some(a) = ascii {
                out.extend(a.chars().map(|a| a.to_ascii_lowercase()));
                continue;
            }
        }
        // Greek final sigma is σ at a word's end: lowercasing a capital Σ
        // gives σ, so "ΚΩΣΤΑΣ" and "Κώστας" meet only if ς folds too.
        if c == 'ς' {
            out.push('σ');
            continue;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// [`fold`] in the primary spelling: what queries and the name table use.
pub fn normalise(s: &str) -> String {
    fold(s, Spelling::Folded)
}

/// `s` in every spelling that differs from the others, the primary first.
pub fn spellings(s: &str) -> Vec<String> {
    let mut out = vec![normalise(s)];
    for sp in &SPELLINGS[1..] {
        if may_differ(s, *sp) {
            let f = fold(s, *sp);
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

fn name_form(n: &str) -> String {
    n.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The keys two names are compared by for duplicates: [`normalise_name`] of
/// every spelling of `name`, distinct, the primary first, none empty. Two
/// names that share a key look like the same person ("Jörg Großmann" has
/// "jorg grossmann", "joerg grossmann" and "jorg grosmann").
pub fn name_keys(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in spellings(name) {
        let k = name_form(&s);
        if !k.is_empty() && !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// The normalisation import content hashes were defined with (NFKD, marks
/// stripped, lowercase, punctuation dropped; no letter folding). The hashes
/// are stored in documents as import keys, so this must never change: a
/// re-import of the same file must hash the same.
pub fn normalise_name_unfolded(s: &str) -> String {
    let n: String = s
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    name_form(&n)
}

/// A name for comparison: normalised, punctuation dropped, whitespace collapsed.
pub fn normalise_name(s: &str) -> String {
    name_form(&normalise(s))
}

/// Prefix-searchable tokens of `s`: the normalised alphanumeric words, plus,
/// for a word written with inner punctuation ("O'Brien", "Saint-Éloi",
/// "ana@x.org"), its joined form ("obrien"), so a query typed either way
/// finds it; each in every [`spellings`] of `s` (the primary first, so it
/// fills the per-record bound first).
pub fn tokens_into(s: &str, out: &mut BTreeSet<String>) {
    for n in spellings(s) {
        words_into(&n, out);
    }
}

fn words_into(n: &str, out: &mut BTreeSet<String>) {
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

    /// The table that replaced the `deunicode` crate spells every letter of
    /// the Latin blocks as the crate does (ASCII letters and digits only),
    /// and leaves out exactly the letters the crate spells otherwise.
    #[test]
    fn latin_table_matches_deunicode() {
        let table = crate::latin_ascii::LATIN_ASCII;
        assert!(
            table.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no duplicates"
        );
        let mut checked = 0;
        for c in (0u32..0x1_0000).filter_map(char::from_u32) {
            let expected = deunicode::deunicode_char(c)
                .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric()));
            if is_latin_letter(c) {
                assert_eq!(latin_ascii(c), expected, "{c:?} U+{:04X}", c as u32);
                checked += 1;
            }
        }
        assert!(checked > 900, "{checked} letters checked");
        // Folding through the whole pipeline agrees too.
        assert_eq!(normalise("Łódź Þór Ærø Ŋa"), "lodz thor aero nga");
    }

    #[test]
    fn folds_latin_letters_that_are_not_accents() {
        for (input, folded) in [
            ("Søren Ørsted", "soren orsted"),
            ("Æsa Ærø", "aesa aero"),
            ("Łukasz Wiśniewski", "lukasz wisniewski"),
            ("Đorđe Đoković", "dorde dokovic"),
            ("Großmann GROẞMANN", "grossmann grossmann"),
            ("Þórður Guðmundsson", "thordur gudmundsson"),
            ("İlker Işık", "ilker isik"),
            ("Œdipe cœur", "oedipe coeur"),
            ("Ştefan Ț Dĳk ﬁn", "stefan t dijk fin"),
            ("Ħanna Ɔwusu", "hanna owusu"),
            ("Иван Петров", "иван петров"),
            ("ΚΩΣΤΑΣ Κώστας", "κωστασ κωστασ"),
            ("王小明 山田", "王小明 山田"),
            ("محمد", "محمد"),
            // A folding that is not letters (ə is "@" in deunicode) keeps the letter.
            ("Məmmədov", "məmmədov"),
        ] {
            assert_eq!(normalise(input), folded, "{input}");
        }
    }

    #[test]
    fn every_spelling_is_indexed_and_a_query_is_folded_once() {
        assert_eq!(
            spellings("Jörg Großmann"),
            vec!["jorg grossmann", "joerg grossmann", "jorg grosmann"]
        );
        // Decomposed input transcribes the same; only the first mark counts.
        assert_eq!(
            fold("Jo\u{308}rg A\u{30A}se ǘ", Spelling::Transcribed),
            "joerg aase ue"
        );
        assert_eq!(
            fold("Søren Ødegård", Spelling::Transcribed),
            "soeren oedegaard"
        );
        assert_eq!(spellings("plain ascii"), vec!["plain ascii"]);
        assert_eq!(spellings("José"), vec!["jose"]);
        let mut t = BTreeSet::new();
        tokens_into("Jörg Müller-Lüdenscheidt", &mut t);
        assert_eq!(
            t.into_iter().collect::<Vec<_>>(),
            vec![
                "joerg",
                "jorg",
                "ludenscheidt",
                "luedenscheidt",
                "mueller",
                "muellerluedenscheidt",
                "muller",
                "mullerludenscheidt"
            ]
        );
        assert_eq!(query_tokens("Jörg JOERG"), vec!["joerg", "jorg"]);
        assert_eq!(
            name_keys("Jörg Großmann"),
            vec!["jorg grossmann", "joerg grossmann", "jorg grosmann"]
        );
        assert_eq!(name_keys("  ,. "), Vec::<String>::new());
        assert_eq!(name_keys("Joerg Grossmann"), vec!["joerg grossmann"]);
        // Import content hashes keep the unfolded form.
        assert_eq!(
            normalise_name_unfolded("Søren Großmann-Ølé"),
            "søren großmann øle"
        );
    }
}

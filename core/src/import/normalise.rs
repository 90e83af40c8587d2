//! Normalisation used to recognise the same person across sources: names
//! (case, accents, spacing), email addresses and phone numbers.
//!
//! These keys only decide what is *reported* as a likely duplicate; nothing is
//! merged on their basis without the user asking.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Minimum digits a phone number needs before it is compared at all (shorter
/// numbers, like extensions, match too many unrelated people).
pub const PHONE_DIGITS_MIN: usize = 9;

/// Lower case, accents removed, runs of whitespace collapsed to one space, trimmed.
pub fn normalise_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending_space = false;
    for c in name.nfkd().filter(|c| !is_combining_mark(*c)) {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Trimmed, lower case, `mailto:` removed; `None` when it is not an address.
pub fn normalise_email(email: &str) -> Option<String> {
    let t = email.trim();
    let t = match t.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("mailto:") => &t[7..],
        _ => t,
    };
    let t = t.trim().to_lowercase();
    let (local, domain) = t.split_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    Some(t)
}

/// The last [`PHONE_DIGITS_MIN`] digits, when the number has at least that many;
/// so `+41 79 123 45 67` and `079 123 45 67` compare equal.
pub fn phone_key(phone: &str) -> Option<String> {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < PHONE_DIGITS_MIN {
        return None;
    }
    Some(digits[digits.len() - PHONE_DIGITS_MIN..].iter().collect())
}

/// Organisation names compare like person names.
pub fn normalise_organisation(org: &str) -> String {
    normalise_name(org)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ignore_case_accents_and_spacing() {
        assert_eq!(normalise_name("  José   MÜLLER "), "jose muller");
        assert_eq!(normalise_name("jose\tmuller"), "jose muller");
        assert_eq!(normalise_name("Ñ Ñ"), "n n");
        assert_eq!(normalise_name(""), "");
    }

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            normalise_email(" MAILTO:John.Doe@IBM.com ").as_deref(),
            Some("john.doe@ibm.com")
        );
        assert_eq!(normalise_email("not an address"), None);
        assert_eq!(normalise_email("@x"), None);
    }

    #[test]
    fn phones_compare_by_last_nine_digits() {
        assert_eq!(phone_key("+41 79 123 45 67"), phone_key("079 123 45 67"));
        assert_eq!(phone_key("+41 79 123 45 67").as_deref(), Some("791234567"));
        assert_eq!(phone_key("12345678"), None);
        assert_eq!(phone_key("BusinessPhone"), None);
    }
}

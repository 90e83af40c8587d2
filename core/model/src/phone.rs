//! Phone numbers for duplicate detection: an E.164-like digit form.
//!
//! People store the same number in several shapes: "+44 20 7946 0958" on one
//! phone, "020 7946 0958" (national, with the trunk prefix 0) on another,
//! "0044 20 7946 0958" (international call prefix) in an old address book.
//! Comparing raw digits misses these, so [`normalise`] rewrites a number to
//! country calling code + national significant number (E.164 without the
//! "+"), given a default calling code for numbers written nationally.
//!
//! There is no country setting, so the default calling code is derived from
//! the numbers themselves ([`default_calling_code`]): the calling code most of
//! the internationally written numbers (those starting with "+" or "00") use.
//! A phone's address book holds mostly numbers of its own country, so that is
//! almost always the owner's country. Without any international number, a
//! national number keeps its digits with the trunk prefix dropped, which still
//! meets its international form through the suffix rule of kith-core's `dedup`.
//!
//! Pure functions; kith-core's import planning and `dedup` both call them, so an
//! import and the store's duplicate list agree.

use std::collections::BTreeMap;

/// Two-digit country calling codes (ITU-T E.164 assignments). Codes are
/// prefix-free: "1" and "7" are the only one-digit codes, every code of zones
/// 2-9 not listed here has three digits.
const TWO_DIGIT_CODES: &[&str] = &[
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47",
    "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65",
    "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
];

/// Fewest digits after the calling code for a number to count as a full
/// international number (shorter ones are service or garbled numbers).
const NATIONAL_DIGITS_MIN: usize = 4;

/// How a number was written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Written {
    /// "+CC..." or "00CC...": the digits after the "+" / "00".
    International(String),
    /// Anything else: all its digits.
    National(String),
}

fn classify(raw: &str) -> Written {
    let trimmed = raw.trim_start();
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if trimmed.starts_with('+') {
        return Written::International(digits);
    }
    if let Some(rest) = digits.strip_prefix("00")
        && !rest.starts_with('0')
        && calling_code(rest).is_some()
    {
        return Written::International(rest.to_string());
    }
    Written::National(digits)
}

/// The country calling code an international number (digits after "+")
/// starts with, when it is well formed.
pub fn calling_code(international: &str) -> Option<&str> {
    let b = international.as_bytes();
    let len = match b.first()? {
        b'1' | b'7' => 1,
        b'0' => return None,
        _ if international.len() >= 2 && TWO_DIGIT_CODES.contains(&&international[..2]) => 2,
        _ => 3,
    };
    (international.len() >= len + NATIONAL_DIGITS_MIN).then(|| &international[..len])
}

/// The calling code most internationally written numbers among `numbers`
/// use (ties: the smaller code), or `None` when none is written that way.
pub fn default_calling_code<'a>(numbers: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for n in numbers {
        if let Written::International(d) = classify(n)
            && let Some(cc) = calling_code(&d)
        {
            *counts.entry(cc.to_string()).or_default() += 1;
        }
    }
    // BTreeMap iterates codes in ascending order; max_by_key keeps the last
    // maximum, so iterate in reverse to prefer the smaller code on ties.
    counts
        .into_iter()
        .rev()
        .max_by_key(|(_, n)| *n)
        .map(|(cc, _)| cc)
}

/// The number as calling code + national significant number, digits only.
///
/// - "+CC ..." and "00CC ..." keep their digits (after the prefix), minus an
///   Italian-style "(0)" trunk digit written after the code ("+44 (0)20 ...").
/// - A national number starting with the trunk prefix "0" (or "1" when the
///   default code is "1", "8" when it is "7") loses it and gets
///   `default_cc` in front; without a default code it only loses the prefix.
/// - Other national numbers get `default_cc` in front when the result is not
///   longer than E.164 allows (15 digits).
pub fn normalise(raw: &str, default_cc: Option<&str>) -> String {
    match classify(raw) {
        Written::International(d) => {
            let Some(cc) = calling_code(&d) else {
                return d;
            };
            let national = &d[cc.len()..];
            // "+44 (0)20 7946 0958": the "(0)" is the national trunk prefix.
            if raw.contains("(0)")
                && let Some(rest) = national.strip_prefix('0')
            {
                return format!("{cc}{rest}");
            }
            d
        }
        Written::National(d) => {
            let trunk = match default_cc {
                Some("1") => '1',
                Some("7") => '8',
                _ => '0',
            };
            let national = d.strip_prefix(trunk).unwrap_or(&d);
            match default_cc {
                Some(cc) if cc.len() + national.len() <= E164_DIGITS_MAX => {
                    format!("{cc}{national}")
                }
                _ => national.to_string(),
            }
        }
    }
}

/// Longest E.164 number, digits.
const E164_DIGITS_MAX: usize = 15;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calling_codes_are_split_by_the_e164_zones() {
        assert_eq!(calling_code("442079460958"), Some("44"));
        assert_eq!(calling_code("15551234567"), Some("1"));
        assert_eq!(calling_code("351912345678"), Some("351"));
        assert_eq!(calling_code("74951234567"), Some("7"));
        assert_eq!(calling_code("0123"), None);
        assert_eq!(calling_code("44"), None);
        assert_eq!(calling_code(""), None);
    }

    #[test]
    fn trunk_and_international_prefixes_meet_the_e164_form() {
        let uk = Some("44");
        let e164 = "442079460958";
        for raw in [
            "+44 20 7946 0958",
            "020 7946 0958",
            "0044 20 7946 0958",
            "+44 (0)20 7946 0958",
            "(020) 7946-0958",
        ] {
            assert_eq!(normalise(raw, uk), e164, "{raw}");
        }
        // Without a default code the national form drops its trunk prefix,
        // which is a suffix of the international form.
        assert_eq!(normalise("020 7946 0958", None), "2079460958");
        assert!(e164.ends_with(&normalise("020 7946 0958", None)));
        // North America: trunk prefix 1, and 10-digit national numbers.
        assert_eq!(normalise("1 (555) 123-4567", Some("1")), "15551234567");
        assert_eq!(normalise("(555) 123-4567", Some("1")), "15551234567");
        assert_eq!(normalise("+1 555 123 4567", Some("44")), "15551234567");
        // Portugal has no trunk prefix.
        assert_eq!(normalise("912 345 678", Some("351")), "351912345678");
        // "00" not followed by a calling code stays national.
        assert_eq!(normalise("000", Some("44")), "4400");
    }

    #[test]
    fn the_default_code_is_the_most_common_international_one() {
        let numbers = [
            "+44 20 7946 0958",
            "0044 161 496 0000",
            "+351 912 345 678",
            "020 7946 0000",
        ];
        assert_eq!(default_calling_code(numbers), Some("44".to_string()));
        assert_eq!(default_calling_code(["020 7946 0000"]), None);
        // Ties go to the smaller code, so the choice never depends on order.
        assert_eq!(
            default_calling_code(["+44 20 7946 0958", "+1 555 123 4567"]),
            Some("1".to_string())
        );
        assert_eq!(
            default_calling_code(["+1 555 123 4567", "+44 20 7946 0958"]),
            Some("1".to_string())
        );
    }
}

//! Bytes as text: lower-case hex and RFC 4648 base32 without padding.
//!
//! Keys, recovery codes, pairing tokens and ids travel as text through these
//! two functions pairs. They used to come from the `data-encoding` crate, whose
//! generic encoder is compiled once per encoding and cost 52 KB of the phone
//! library for four calls (issue 15); two small loops do the same. Decoding
//! is strict where it matters for keys and tokens: a text has exactly one
//! decoding and every byte string exactly one canonical text (the unused bits
//! of the last base32 character must be zero, as `data-encoding` requires), so
//! two different texts never name the same key. The tests compare both
//! directions with `data-encoding` on generated input.

const BASE32_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex, two digits per byte.
pub fn hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Hex in either case; `None` for an odd length or a non-hex character.
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    digits
        .chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

/// Lower-case base32 (RFC 4648 alphabet), without padding.
pub fn base32_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u16 = 0;
    let mut bits: u32 = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                BASE32_ALPHABET[usize::from((buffer >> bits) & 31)],
            ));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(
            BASE32_ALPHABET[usize::from((buffer << (5 - bits)) & 31)],
        ));
    }
    out
}

/// Base32 in either case, without padding. `None` for a character outside
/// the alphabet, a length no byte string encodes to (1, 3 or 6 characters
/// past a multiple of 8), or unused trailing bits that are not zero.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    if matches!(text.len() % 8, 1 | 3 | 6) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u16 = 0;
    let mut bits: u32 = 0;
    for c in text.bytes() {
        let value = match c {
            b'a'..=b'z' => c - b'a',
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u16::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from(buffer >> bits).ok()?);
            buffer &= (1 << bits) - 1;
        }
    }
    // What is left are the padding bits of the last character: non-zero
    // ones would give a second text for the same bytes.
    (buffer == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors_of_rfc_4648() {
        for (plain, coded) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(base32_lower(plain.as_bytes()), coded);
            assert_eq!(base32_decode(coded).as_deref(), Some(plain.as_bytes()));
            assert_eq!(
                base32_decode(&coded.to_uppercase()).as_deref(),
                Some(plain.as_bytes())
            );
        }
        assert_eq!(hex_lower(&[0x00, 0x9f, 0xff]), "009fff");
        assert_eq!(hex_decode("009FfF"), Some(vec![0x00, 0x9f, 0xff]));
    }

    #[test]
    fn non_canonical_and_malformed_text_is_refused() {
        // "my" is "f"; "mz" sets a padding bit of the last character.
        assert_eq!(base32_decode("mz"), None);
        assert_eq!(base32_decode("m"), None);
        assert_eq!(base32_decode("mzx"), None);
        assert_eq!(base32_decode("my=="), None);
        assert_eq!(base32_decode("m1"), None);
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_decode("+1"), None);
    }

    // Cases: proptest's default, which PROPTEST_CASES sets.
    proptest! {
        #[test]
        fn encodings_equal_data_encoding(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(
                base32_lower(&bytes),
                data_encoding::BASE32_NOPAD.encode(&bytes).to_ascii_lowercase()
            );
            prop_assert_eq!(hex_lower(&bytes), data_encoding::HEXLOWER.encode(&bytes));
            prop_assert_eq!(base32_decode(&base32_lower(&bytes)), Some(bytes.clone()));
            prop_assert_eq!(hex_decode(&hex_lower(&bytes)), Some(bytes));
        }

        #[test]
        fn decoding_any_text_agrees_with_data_encoding(
            text in "[a-zA-Z2-7019=+ ]{0,40}|[0-9a-fA-FxX]{0,40}"
        ) {
            prop_assert_eq!(
                base32_decode(&text),
                data_encoding::BASE32_NOPAD.decode(text.to_ascii_uppercase().as_bytes()).ok()
            );
            prop_assert_eq!(
                hex_decode(&text),
                data_encoding::HEXLOWER_PERMISSIVE.decode(text.as_bytes()).ok()
            );
        }
    }
}

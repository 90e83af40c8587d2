//! Property tests: the vCard parser never panics and stays within its caps on
//! arbitrary bytes and on vCard-shaped noise.

use kith_formats::vcard::PhotoSource;
use kith_formats::{VcardFileError, VcardLimits, parse_vcards, vcard_drafts};
use proptest::prelude::*;

fn small_limits() -> VcardLimits {
    VcardLimits {
        input_size_bytes_max: 16 * 1024,
        line_length_bytes_max: 256,
        properties_per_card_max: 12,
        cards_max: 6,
        photo_size_bytes_max: 48,
        errors_max: 8,
    }
}

/// Fragments that real files are made of, so the noise reaches deep states.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"BEGIN:VCARD\r\n".to_vec()),
        Just(b"END:VCARD\r\n".to_vec()),
        Just(b"VERSION:2.1\r\n".to_vec()),
        Just(b"N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=C3=91=\r\n".to_vec()),
        Just(b"=20=C3=91;;;\r\n".to_vec()),
        Just(b"FN:Jo\r\n hn\r\n".to_vec()),
        Just(b"TEL;CELL;PREF:123\r\n".to_vec()),
        Just(b"item1.TEL;TYPE=\"work,cell\":1\r\nitem1.X-ABLabel:_$!<Mobile>!$_\r\n".to_vec()),
        Just(b"PHOTO;ENCODING=b:aGVsbG8=\r\n  d29y\r\n".to_vec()),
        Just(b"PHOTO:data:image/png;base64,aGk=\r\n".to_vec()),
        Just(b"BDAY:--0229\r\n".to_vec()),
        Just(b"BDAY;X-APPLE-OMIT-YEAR=1604:1604-02-30\r\n".to_vec()),
        Just(b"NOTE:a\\nb\\,c\\;d\\\\\\:\r\n".to_vec()),
        Just(b"EMAIL;TYPE=\"^'x^n\":a@b\r\n".to_vec()),
        Just(b"\xFF\xFE".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"=\r\n".to_vec()),
        Just(b" ".to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

fn noise() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3000),
        prop::collection::vec(fragment(), 0..80).prop_map(|v| v.concat()),
    ]
}

/// The limits of the cargo-fuzz target (core/fuzz/fuzz_targets/vcard_parse.rs).
fn fuzz_limits() -> VcardLimits {
    VcardLimits {
        input_size_bytes_max: 1 << 20,
        line_length_bytes_max: 4096,
        properties_per_card_max: 64,
        cards_max: 64,
        photo_size_bytes_max: 1024,
        errors_max: 32,
    }
}

/// Regression: a fuzz input (kept in tests/data/fuzz) whose ADR had hundreds
/// of `;`, each once kept as an empty component: 24+ bytes of memory per input
/// byte. Components are now capped, and memory stays within the bound.
#[test]
fn fuzz_crash_many_empty_components_stays_bounded() {
    let input = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/fuzz/vcard_parse-crash-e24f8018"
    ))
    .unwrap();
    let r = parse_vcards(&input, &fuzz_limits()).unwrap();
    assert!(r.retained_size_bytes() <= r.retained_size_bound_bytes(input.len()));
    for c in &r.cards {
        assert!(c.addresses.iter().all(|a| a.components.len() <= 7));
    }

    let mut huge = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nADR:".to_vec();
    huge.extend(std::iter::repeat_n(b';', 100_000));
    huge.extend_from_slice(b"x\r\nORG:Acme");
    huge.extend(std::iter::repeat_n(b';', 100_000));
    huge.extend_from_slice(b"y\r\nCATEGORIES:");
    for i in 0..20_000 {
        huge.extend_from_slice(format!("t{i},").as_bytes());
    }
    huge.extend_from_slice(b"\r\nTEL;TYPE=");
    for i in 0..20_000 {
        huge.extend_from_slice(format!("k{i},").as_bytes());
    }
    huge.extend_from_slice(b":1\r\nEND:VCARD\r\n");
    huge.extend_from_slice(b"BEGIN:VCARD\r\nFN:B\r\nitem1.X-ABLabel:");
    huge.extend(std::iter::repeat_n(b'L', 4000));
    for i in 0..60 {
        huge.extend_from_slice(format!("\r\nitem1.TEL:{i}").as_bytes());
    }
    huge.extend_from_slice(b"\r\nEND:VCARD\r\n");
    let r = parse_vcards(&huge, &VcardLimits::default()).unwrap();
    // The group label goes to one property, not copied to each sibling.
    let labelled = r.cards[1]
        .phones
        .iter()
        .filter(|p| p.custom_label.is_some())
        .count();
    assert_eq!(labelled, 1);
    let c = &r.cards[0];
    assert_eq!(c.addresses.len(), 0, "the first 7 components are empty");
    assert_eq!(c.organisations[0].len(), 8);
    assert_eq!(c.organisations[0][0], "Acme");
    assert_eq!(c.categories.len(), 64);
    assert_eq!(c.phones[0].types.len(), 16);
    assert!(r.retained_size_bytes() <= r.retained_size_bound_bytes(huge.len()));
    assert!(
        r.retained_size_bytes() < 64 * 1024,
        "{}",
        r.retained_size_bytes()
    );
}

proptest! {
    #![proptest_config(crate::proptest_cases(512))]

    #[test]
    fn parser_never_panics_and_respects_caps(input in noise()) {
        let limits = small_limits();
        match parse_vcards(&input, &limits) {
            Err(VcardFileError::TooLarge { .. }) => prop_assert!(input.len() > limits.input_size_bytes_max),
            Err(_) => {}
            Ok(r) => {
                prop_assert!(r.cards.len() <= limits.cards_max);
                prop_assert!(r.errors.len() <= limits.errors_max);
                for c in &r.cards {
                    prop_assert!(c.property_count <= limits.properties_per_card_max);
                    if let Some(PhotoSource::Inline(b)) = c.photo.as_ref().map(|p| &p.source) {
                        prop_assert!(b.len() <= limits.photo_size_bytes_max);
                    }
                }
                let bound = r.retained_size_bound_bytes(input.len());
                prop_assert!(r.retained_size_bytes() <= bound, "{} > {bound}", r.retained_size_bytes());
            }
        }
        // Mapping never panics either, and every draft has a name.
        if let Ok(batch) = vcard_drafts(&input, &limits, Some("Acme")) {
            prop_assert!(batch.drafts.iter().all(|d| !d.name.trim().is_empty()));
        }
    }
}

proptest! {
    #![proptest_config(crate::proptest_cases(512))]

    /// The streaming draft path (cards mapped as parsed, photos checked but
    /// not decoded) gives exactly what mapping the cards of `parse_vcards`
    /// gives: the same drafts, the same errors (photo errors included).
    #[test]
    fn streaming_drafts_equal_mapping_the_parsed_cards(input in noise()) {
        let limits = small_limits();
        let streamed = vcard_drafts(&input, &limits, Some("Acme"));
        match parse_vcards(&input, &limits) {
            Err(e) => prop_assert_eq!(streamed.unwrap_err().to_string(), e.to_string()),
            Ok(parsed) => {
                let batch = streamed.unwrap();
                let mut errors = parsed.errors.clone();
                let mut dropped = parsed.errors_dropped;
                let mut drafts = Vec::new();
                for card in &parsed.cards {
                    match kith_formats::map_card(card, Some("Acme")) {
                        Some(d) => drafts.push(d),
                        None if errors.len() < limits.errors_max => errors.push(kith_formats::CardError {
                            line: card.line,
                            kind: kith_formats::CardErrorKind::EmptyCard,
                            message: format!(
                                "the card at line {} has no name, organisation, email or phone; skipped",
                                card.line
                            ),
                        }),
                        None => dropped += 1,
                    }
                }
                errors.sort_by_key(|e| e.line);
                prop_assert_eq!(batch.drafts, drafts);
                prop_assert_eq!(batch.errors, errors);
                prop_assert_eq!(batch.errors_dropped, dropped);
            }
        }
    }

    /// Checking a photo's base64 without decoding it accepts, refuses and
    /// sizes exactly as decoding does.
    #[test]
    fn base64_size_check_agrees_with_decoding(
        raw in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            "[A-Za-z0-9+/= \r\n\t]{0,64}".prop_map(String::into_bytes),
        ]
    ) {
        use kith_formats::vcard::{base64_decode_lenient, base64_decoded_len_lenient};
        match (base64_decode_lenient(&raw), base64_decoded_len_lenient(&raw)) {
            (Ok(d), Ok(n)) => prop_assert_eq!(d.len(), n),
            (Err(_), Err(_)) => {}
            (a, b) => prop_assert!(false, "decode {:?} vs check {:?}", a, b),
        }
    }
}

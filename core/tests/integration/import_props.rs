//! Property tests: the vCard parser never panics and stays within its caps on
//! arbitrary bytes and on vCard-shaped noise.

use kith_core::import::vcard::PhotoSource;
use kith_core::import::{VcardFileError, VcardLimits, parse_vcards, vcard_drafts};
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

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
                // Decoded text can grow (UTF-16 -> UTF-8, Windows-1252 -> UTF-8: at
                // most 3 bytes per input byte) plus fixed per-card overhead.
                let bound = 3 * input.len() + 2048 * (r.cards.len() + 1);
                prop_assert!(r.retained_size_bytes() <= bound, "{} > {bound}", r.retained_size_bytes());
            }
        }
        // Mapping never panics either, and every draft has a name.
        if let Ok(batch) = vcard_drafts(&input, &limits, Some("Acme")) {
            prop_assert!(batch.drafts.iter().all(|d| !d.name.trim().is_empty()));
        }
    }
}

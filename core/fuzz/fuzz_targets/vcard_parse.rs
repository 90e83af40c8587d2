//! Fuzzes the vCard parser and the mapping to drafts: no panic, caps kept.
//! Run from core/: `cargo +nightly fuzz run vcard_parse`.
#![no_main]

use kith_formats::vcard::PhotoSource;
use kith_formats::{VcardLimits, parse_vcards, vcard_drafts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = VcardLimits {
        input_size_bytes_max: 1 << 20,
        line_length_bytes_max: 4096,
        properties_per_card_max: 64,
        cards_max: 64,
        photo_size_bytes_max: 1024,
        errors_max: 32,
    };
    if let Ok(r) = parse_vcards(data, &limits) {
        assert!(r.cards.len() <= limits.cards_max);
        assert!(r.errors.len() <= limits.errors_max);
        for c in &r.cards {
            assert!(c.property_count <= limits.properties_per_card_max);
            if let Some(PhotoSource::Inline(b)) = c.photo.as_ref().map(|p| &p.source) {
                assert!(b.len() <= limits.photo_size_bytes_max);
            }
        }
        assert!(r.retained_size_bytes() <= r.retained_size_bound_bytes(data.len()));
    }
    if let Ok(batch) = vcard_drafts(data, &limits, Some("Acme")) {
        assert!(batch.drafts.iter().all(|d| !d.name.trim().is_empty()));
    }
});

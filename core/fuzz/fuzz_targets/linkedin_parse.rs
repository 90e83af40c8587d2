//! Fuzzes the LinkedIn Connections.csv parser: no panic, caps kept.
#![no_main]

use kith_formats::linkedin::{LinkedinLimits, parse_linkedin_csv};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = LinkedinLimits {
        input_size_bytes_max: 1 << 20,
        rows_max: 256,
        preamble_lines_max: 16,
        errors_max: 16,
    };
    if let Ok(r) = parse_linkedin_csv(data, &limits, Some("Acme")) {
        assert!(r.drafts.len() <= limits.rows_max);
        assert!(r.errors.len() <= limits.errors_max);
        assert!(r.drafts.iter().all(|d| !d.name.trim().is_empty()));
    }
});

//! Import figures: a generated 10,000-card vCard file (realistic share of
//! photos, custom labels, quoted-printable 2.1 cards, notes, birthdays).
//! The headline figure is the whole import into a new store, durable:
//! parse + map + plan + apply, with its peak memory (VmHWM from
//! /proc/self/status, reset after generating the file); the phases are
//! printed too.
//!
//! Run: `cargo bench -p kith-core --bench import` (prints figures; goals
//! from issue 7: whole import <= 2 s, peak <= 200 MB).

// A bench binary's output is its result.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use base64::Engine as _;
use kith_core::import::{ApplyOptions, apply_plan, plan_for_store, plan_import};
use kith_formats::{VcardLimits, vcard_drafts};

const CARDS: usize = 10_000;
/// Share of cards with an inline photo (phones sync thumbnails for many contacts).
const PHOTO_EVERY: usize = 4;
/// Photo size, bytes (a typical contact thumbnail).
const PHOTO_SIZE_BYTES: usize = 12 * 1024;

const GIVEN: &[&str] = &[
    "Ana", "José", "Zoë", "Søren", "Li", "Amélie", "Ngozi", "Sven", "Priya", "Mateus", "Ülkü",
    "Chloé",
];
const FAMILY: &[&str] = &[
    "Silva", "Müller", "García", "Nguyễn", "O'Brien", "Dubois", "Kowalski", "Okafor", "Sato",
    "Jensen",
];
const ORGS: &[&str] = &[
    "St Mary's Hospital",
    "Acme, Inc.",
    "University of Lisbon",
    "NHS Trust",
    "Clinique Générale",
];

/// Deterministic xorshift, so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[(self.next() % v.len() as u64) as usize]
    }
}

fn qp(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            }
        })
        .collect()
}

fn generate() -> Vec<u8> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut photo = vec![0u8; PHOTO_SIZE_BYTES];
    for b in photo.iter_mut() {
        *b = rng.next() as u8;
    }
    let photo_b64 = base64::engine::general_purpose::STANDARD.encode(&photo);
    let mut out = String::with_capacity(CARDS * 1200);
    for i in 0..CARDS {
        let given = rng.pick(GIVEN);
        let family = rng.pick(FAMILY);
        let org = rng.pick(ORGS);
        let v21 = i % 10 == 0;
        out.push_str("BEGIN:VCARD\r\n");
        if v21 {
            out.push_str("VERSION:2.1\r\n");
            out.push_str(&format!(
                "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:{};{};;;\r\n",
                qp(family),
                qp(given)
            ));
            out.push_str(&format!(
                "FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:{}\r\n",
                qp(&format!("{given} {family} {i}"))
            ));
            out.push_str(&format!("TEL;CELL;PREF:+351 91{:07}\r\n", i));
        } else {
            out.push_str("VERSION:3.0\r\n");
            out.push_str(&format!(
                "N:{family};{given};;;\r\nFN:{given} {family} {i}\r\n"
            ));
            out.push_str(&format!("UID:bench-{i:05}\r\n"));
            out.push_str(&format!("TEL;TYPE=CELL:+351 91{:07}\r\n", i));
            if i % 3 == 0 {
                out.push_str(&format!(
                    "item1.TEL:+351 21{:07}\r\nitem1.X-ABLabel:_$!<HomeFAX>!$_\r\n",
                    i
                ));
            }
            if i % 5 == 0 {
                out.push_str(&format!(
                    "item2.EMAIL:{}.{i}@private.example\r\nitem2.X-ABLabel:Private\r\n",
                    given.to_lowercase()
                ));
            }
        }
        out.push_str(&format!(
            "EMAIL;TYPE=INTERNET;TYPE=WORK:{}.{}{i}@work.example\r\n",
            given.to_lowercase(),
            family.to_lowercase()
        ));
        out.push_str(&format!(
            "ORG:{};Cardiology\r\nTITLE:Consultant\r\n",
            org.replace(',', "\\,")
        ));
        if i % 3 == 1 {
            out.push_str("NOTE:Met at the regional conference\\, talked about the ward redesign.\\nFollow up in spring.\r\n");
        }
        if i % 5 < 2 {
            out.push_str(&format!(
                "BDAY:19{:02}-{:02}-{:02}\r\n",
                50 + i % 50,
                1 + i % 12,
                1 + i % 28
            ));
        }
        out.push_str("CATEGORIES:Colleagues,Conference 2025\r\n");
        if i % PHOTO_EVERY == 0 {
            out.push_str("PHOTO;ENCODING=b;TYPE=JPEG:");
            // Folded at 75 octets like real exports.
            let mut first = true;
            for chunk in photo_b64.as_bytes().chunks(74) {
                if !first {
                    out.push_str("\r\n ");
                }
                first = false;
                out.push_str(std::str::from_utf8(chunk).unwrap());
            }
            out.push_str("\r\n");
        }
        out.push_str("END:VCARD\r\n");
    }
    out.into_bytes()
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let file = generate();
    let photos = CARDS.div_ceil(PHOTO_EVERY);
    println!(
        "generated {CARDS} cards, {photos} with a {PHOTO_SIZE_BYTES}-byte photo: {:.1} MB",
        file.len() as f64 / 1e6
    );
    // Reset the peak so VmHWM measures the import, not the generator's scratch.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before_kib = status_kib("VmRSS:");

    // The whole import, as `kith import vcard` runs it: parse, plan against
    // the (empty) store, apply in one durable bulk write.
    let dir = tempfile::tempdir().unwrap();
    let mut store = kith_core::Store::open(dir.path()).unwrap();
    let options = ApplyOptions {
        create_likely_duplicates: true,
        now_ms: 1_700_000_000_000,
    };
    let t = Instant::now();
    let batch = vcard_drafts(&file, &VcardLimits::default(), Some("NHS Trust")).unwrap();
    let parse_map = t.elapsed();
    let hwm_parse_kib = status_kib("VmHWM:");
    assert_eq!(batch.drafts.len(), CARDS);
    assert!(
        batch.errors.is_empty(),
        "{:?}",
        &batch.errors[..batch.errors.len().min(3)]
    );
    let t = Instant::now();
    let plan = plan_for_store(&store, batch.drafts).unwrap();
    let plan_empty = t.elapsed();
    assert_eq!(plan.create.len(), CARDS);
    let hwm_plan_kib = status_kib("VmHWM:");
    let t = Instant::now();
    let report = apply_plan(&mut store, &plan, &options).unwrap();
    let apply = t.elapsed();
    assert_eq!(report.created.len(), CARDS);
    drop(plan);
    let hwm_kib = status_kib("VmHWM:");

    // Re-importing the same file: planning against 10,000 stored contacts,
    // then the whole re-import (plan from the store + apply), which creates nothing.
    let drafts = vcard_drafts(&file, &VcardLimits::default(), Some("NHS Trust"))
        .unwrap()
        .drafts;
    let existing = store.all_contacts().unwrap();
    let t = Instant::now();
    let again = plan_import(drafts.clone(), &existing);
    let plan_reimport = t.elapsed();
    assert_eq!(again.already_imported.len(), CARDS);
    drop((again, existing));
    let t = Instant::now();
    let replan = plan_for_store(&store, drafts).unwrap();
    let report = apply_plan(&mut store, &replan, &options).unwrap();
    let reapply = t.elapsed();
    assert!(report.created.is_empty());

    println!("parse+map: {:.3} s", parse_map.as_secs_f64());
    println!(
        "plan against the empty store: {:.3} s",
        plan_empty.as_secs_f64()
    );
    println!("apply to the new redb store: {:.3} s", apply.as_secs_f64());
    println!(
        "WHOLE IMPORT into a new store (parse+map+plan+apply, durable): {:.3} s (goal <= 2 s)",
        (parse_map + plan_empty + apply).as_secs_f64()
    );
    println!(
        "peak memory of the whole import (VmHWM, the file's bytes included): {:.1} MB (goal <= 200 MB); RSS before: {:.1} MB",
        hwm_kib as f64 / 1024.0,
        rss_before_kib as f64 / 1024.0
    );
    println!(
        "  peak by phase end (VmHWM): parse+map {:.1} MB, plan {:.1} MB, apply {:.1} MB",
        hwm_parse_kib as f64 / 1024.0,
        hwm_plan_kib as f64 / 1024.0,
        hwm_kib as f64 / 1024.0
    );
    println!(
        "plan re-import against {CARDS} contacts: {:.3} s",
        plan_reimport.as_secs_f64()
    );
    println!(
        "re-import (plan from store + apply, nothing created): {:.3} s",
        reapply.as_secs_f64()
    );
}

//! Store benchmark (a bench binary printing figures; `cargo bench -p kith-core --bench store`).
//!
//! At 2,000 contacts with 5,000 and with 50,000 interactions (~300-character
//! notes) it measures: building the fixture through the bulk path; store size
//! on disk; cold open to the first screen (20 most recent interactions + the
//! first page of contacts); the phone case (open + first durable write, in a
//! fresh process, with its resident memory); one durable logged interaction
//! (p50/p99); loading the main document and one quarter partition; a full
//! load of every document (fresh process: time and memory); prefix search
//! for a name (p50/p99).
//!
//! Memory figures come from /proc/self/status (VmRSS, VmHWM) of a child
//! process (this binary re-executed with `KITH_BENCH_CHILD`), so the fixture
//! build does not pollute them. "Cold" means a fresh `Store` in a fresh
//! process; the OS page cache is warm.

// A bench binary's job is to print figures; a failed unwrap is a failed bench.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use kith_core::model::{
    Circle, Contact, ContactPoint, Direction, Exchange, ExchangeWhat, FollowUp, Goal, GoalStatus,
    Initiator, Interaction, InteractionKind, Project, ProjectStatus, Seniority,
};
use kith_core::{
    ContactId, ContactQuery, DocId, ExchangeId, FollowUpId, GoalId, InteractionId, NewInteraction,
    ParticipantRef, ProjectId, Store, TimelineQuery,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "KITH_BENCH_CHILD";
const CHILD_DIR_ENV: &str = "KITH_BENCH_DIR";
const CONTACTS: usize = 2_000;
const DAY_MS: i64 = 86_400_000;

/// A synthetic network: the one function to swap for `kith_core::synth`.
fn generate(
    contacts_n: usize,
    interactions_n: usize,
    seed: u64,
) -> (Vec<Contact>, Vec<Interaction>, Vec<Project>, Vec<Goal>) {
    const FIRST: &[&str] = &[
        "Ana", "João", "Maria", "José", "Inês", "Rui", "Sofia", "Miguel", "Zoë", "Chloé", "Liam",
        "Noah", "Emma", "Olivia", "Ava", "Lucas", "Mia", "Amélie", "Søren", "Åsa", "Priya",
        "Arjun", "Wei", "Mei", "Kenji", "Yuki", "Fatima", "Omar", "Leila", "Hugo", "Élodie",
        "Mateus",
    ];
    const LAST: &[&str] = &[
        "Silva",
        "Santos",
        "Ferreira",
        "Pereira",
        "Oliveira",
        "Costa",
        "Rodrigues",
        "Martins",
        "Jensen",
        "Müller",
        "Schmidt",
        "García",
        "López",
        "Martínez",
        "Dubois",
        "Lefèvre",
        "Rossi",
        "Bianchi",
        "Nakamura",
        "Tanaka",
        "Patel",
        "Sharma",
        "Chen",
        "Wang",
        "Kowalski",
        "Nowak",
        "O'Brien",
        "Murphy",
        "Smith",
        "Johnson",
        "Brown",
        "Taylor",
        "Andersson",
        "Nilsson",
    ];
    const ORGS: &[&str] = &[
        "St Mary's Hospital",
        "Royal Infirmary",
        "City Health Trust",
        "University Medical Centre",
        "Northside Clinic",
        "Public Health Agency",
        "MedTech Labs",
        "Nursing College",
        "Regional Ambulance Service",
        "Care Partners",
    ];
    const DISCIPLINES: &[&str] = &[
        "nursing",
        "medicine",
        "pharmacy",
        "physiotherapy",
        "management",
        "finance",
        "IT",
        "research",
        "social work",
        "radiology",
    ];
    const ROLES: &[&str] = &[
        "consultant",
        "charge nurse",
        "registrar",
        "director",
        "analyst",
        "lecturer",
        "manager",
        "coordinator",
        "specialist",
        "chief executive",
    ];
    const TOPICS: &[&str] = &[
        "the ward rota",
        "the quality audit",
        "discharge planning",
        "the new EHR rollout",
        "budget for next year",
        "a research grant",
        "staff wellbeing",
        "the sepsis pathway",
        "mentoring",
        "the conference talk",
        "recruitment",
        "patient flow",
    ];
    const SENTENCES: &[&str] = &[
        "We agreed to meet again after the board decides.",
        "She offered to introduce me to the pharmacy lead.",
        "He was worried about staffing over the winter.",
        "Good insight into how finance prioritises bids.",
        "I shared our audit results and got useful feedback.",
        "They are looking for a clinical partner for the pilot.",
        "Follow up with the slides and the data extract.",
        "Talked about career plans and the leadership course.",
        "Useful view from outside the organisation on our problem.",
        "We could co-author a short paper on the results.",
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    let now = chrono::Utc::now().timestamp_millis();
    let years_ms = 5 * 365 * DAY_MS;

    let mut contacts = Vec::with_capacity(contacts_n);
    for n in 0..contacts_n {
        let first = *FIRST.choose(&mut rng).unwrap();
        let last = *LAST.choose(&mut rng).unwrap();
        let org = *ORGS.choose(&mut rng).unwrap();
        let created = now - rng.gen_range(0..years_ms);
        let mut circles = BTreeSet::new();
        circles.insert(*Circle::ALL.choose(&mut rng).unwrap());
        if rng.gen_bool(0.2) {
            circles.insert(*Circle::ALL.choose(&mut rng).unwrap());
        }
        let slug = |s: &str| s.to_lowercase().replace(['\'', ' '], "");
        contacts.push(Contact {
            id: ContactId::new_at(created),
            name: format!("{first} {last}"),
            given_name: Some(first.into()),
            family_name: Some(last.into()),
            organisation: Some(org.into()),
            role: Some((*ROLES.choose(&mut rng).unwrap()).into()),
            discipline: Some((*DISCIPLINES.choose(&mut rng).unwrap()).into()),
            seniority: *Seniority::ALL.choose(&mut rng).unwrap(),
            inside_org: Some(org == ORGS[0]),
            circles,
            tags: if rng.gen_bool(0.3) {
                ["mentor".to_string()].into()
            } else {
                BTreeSet::new()
            },
            emails: vec![ContactPoint {
                value: format!("{}.{}{n}@example.org", slug(first), slug(last)),
                label: "work".into(),
            }],
            phones: vec![ContactPoint {
                value: format!("+351 9{:08}", rng.gen_range(0..100_000_000u32)),
                label: "mobile".into(),
            }],
            urls: BTreeSet::new(),
            how_we_met: Some(format!("at {}", TOPICS.choose(&mut rng).unwrap())),
            first_met: None,
            birthday: None,
            notes: String::new(),
            cadence_days: if rng.gen_bool(0.1) { Some(30) } else { None },
            created_ms: created,
            updated_ms: created,
            archived: false,
            merged_into: None,
            import_keys: BTreeSet::new(),
        });
    }
    let projects: Vec<Project> = (0..20)
        .map(|n| Project {
            id: ProjectId::new(),
            name: format!("Project {n}: {}", TOPICS[n % TOPICS.len()]),
            description: String::new(),
            status: ProjectStatus::Active,
            created_ms: now,
            updated_ms: now,
        })
        .collect();
    let goals: Vec<Goal> = (0..5)
        .map(|n| Goal {
            id: GoalId::new(),
            title: format!("Goal {n}"),
            priority: 1 + (n % 3) as u8,
            status: GoalStatus::Active,
            contacts: contacts.iter().take(5).map(|c| c.id).collect(),
            created_ms: now,
            updated_ms: now,
        })
        .collect();

    let mut interactions = Vec::with_capacity(interactions_n);
    for _ in 0..interactions_n {
        let at = now - rng.gen_range(0..years_ms);
        // Skewed: a core of contacts is met far more often.
        let k = rng.gen_range(1..=3usize);
        let participants: BTreeSet<ContactId> = (0..k)
            .map(|_| {
                let r: f64 = rng.r#gen();
                contacts[((r * r * r) * contacts_n as f64) as usize % contacts_n].id
            })
            .collect();
        let topic = *TOPICS.choose(&mut rng).unwrap();
        let mut notes = format!("Discussed {topic}. ");
        while notes.len() < 300 {
            notes.push_str(SENTENCES.choose(&mut rng).unwrap());
            notes.push(' ');
        }
        let with = participants.iter().next().copied();
        let exchanges = (0..rng.gen_range(0..3))
            .map(|_| Exchange {
                id: ExchangeId::new(),
                what: *ExchangeWhat::ALL.choose(&mut rng).unwrap(),
                direction: *[Direction::Gave, Direction::Received]
                    .choose(&mut rng)
                    .unwrap(),
                with,
            })
            .collect();
        let mut follow_ups = BTreeMap::new();
        if rng.gen_bool(0.2) {
            let id = FollowUpId::new();
            let due = chrono::DateTime::from_timestamp_millis(at + 14 * DAY_MS)
                .map(|d| d.date_naive())
                .unwrap_or(NaiveDate::MIN);
            follow_ups.insert(
                id,
                FollowUp {
                    id,
                    text: format!("send notes on {topic}"),
                    due: Some(due),
                    done_ms: if rng.gen_bool(0.7) {
                        Some(at + DAY_MS)
                    } else {
                        None
                    },
                },
            );
        }
        interactions.push(Interaction {
            id: InteractionId::new_at(at),
            at_ms: at,
            offset_minutes: 0,
            kind: *InteractionKind::ALL.choose(&mut rng).unwrap(),
            initiator: *Initiator::ALL.choose(&mut rng).unwrap(),
            participants,
            summary: format!("Talked about {topic}"),
            notes,
            notes_conflicts: Vec::new(),
            project: if rng.gen_bool(0.1) {
                Some(projects[rng.gen_range(0..projects.len())].id)
            } else {
                None
            },
            exchanges,
            follow_ups,
            created_ms: at,
            updated_ms: at,
            deleted_ms: None,
        });
    }
    (contacts, interactions, projects, goals)
}

fn status_kb(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn a_contact(store: &Store) -> ContactId {
    store
        .contacts(&ContactQuery {
            limit: 1,
            ..ContactQuery::default()
        })
        .unwrap()[0]
        .id
}

/// Runs in a child process; prints one `key=value ...` line.
fn child(mode: &str, dir: &Path) {
    let t = Instant::now();
    match mode {
        "phone" => {
            let mut store = Store::open(dir).unwrap();
            let who = a_contact(&store);
            store
                .log_interaction(NewInteraction {
                    summary: "Corridor chat after the board".into(),
                    notes: "x".repeat(300),
                    participants: vec![ParticipantRef::Id(who)],
                    ..NewInteraction::default()
                })
                .unwrap();
            let elapsed = t.elapsed();
            println!(
                "ms={:.2} rss_kb={} hwm_kb={}",
                ms(elapsed),
                status_kb("VmRSS:"),
                status_kb("VmHWM:")
            );
        }
        "full" => {
            let mut store = Store::open(dir).unwrap();
            store.load_all().unwrap();
            let elapsed = t.elapsed();
            println!(
                "ms={:.2} rss_kb={} hwm_kb={} docs={}",
                ms(elapsed),
                status_kb("VmRSS:"),
                status_kb("VmHWM:"),
                store.loaded_docs().len()
            );
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn run_child(mode: &str, dir: &Path) -> BTreeMap<String, f64> {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, mode)
        .env(CHILD_DIR_ENV, dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

fn scenario(interactions_n: usize) {
    println!("\n== {CONTACTS} contacts, {interactions_n} interactions ==");
    let dir = tempfile::tempdir().unwrap();
    let (contacts, interactions, projects, goals) = generate(CONTACTS, interactions_n, 42);
    let names: Vec<String> = contacts.iter().map(|c| c.name.clone()).collect();
    let t = Instant::now();
    let mut store = Store::open(dir.path()).unwrap();
    store
        .import_records(contacts, interactions, projects, goals)
        .unwrap();
    for doc in store.doc_ids().unwrap() {
        store.compact(doc).unwrap();
    }
    let imported = store.size_on_disk_bytes().unwrap();
    let t_re = Instant::now();
    store.reindex().unwrap();
    let reindexed_ms = ms(t_re.elapsed());
    let t_file = Instant::now();
    let after = store.compact_file().unwrap();
    println!(
        "after the import {:.1} MB; reindex (sorted rebuild) {:.0} ms + file compaction {:.0} ms -> {:.1} MB",
        imported as f64 / 1e6,
        reindexed_ms,
        ms(t_file.elapsed()),
        after as f64 / 1e6,
    );
    store.close().unwrap();
    println!(
        "build fixture (bulk import, reindex, compaction): {:.0} ms",
        ms(t.elapsed())
    );

    let store = Store::open(dir.path()).unwrap();
    println!(
        "store size on disk: {:.1} MB ({} documents)",
        store.size_on_disk_bytes().unwrap() as f64 / 1e6,
        store.doc_ids().unwrap().len()
    );
    for t in store.table_sizes().unwrap() {
        println!(
            "  table {:<28} {:>9} rows {:>8.1} MB stored {:>7.1} MB meta {:>7.1} MB fragmented",
            t.table,
            t.entries,
            t.stored_bytes as f64 / 1e6,
            t.metadata_bytes as f64 / 1e6,
            t.fragmented_bytes as f64 / 1e6
        );
    }
    let main = store.doc_meta(DocId::Main).unwrap().unwrap();
    let quarter = DocId::for_time(chrono::Utc::now().timestamp_millis());
    let q = store.doc_meta(quarter).unwrap().unwrap();
    println!(
        "document sizes: main {:.0} KB, current quarter {:.0} KB",
        main.full_bytes as f64 / 1e3,
        q.full_bytes as f64 / 1e3
    );
    store.close().unwrap();

    // Cold open to first screen.
    let mut samples = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let store = Store::open(dir.path()).unwrap();
        let recent = store
            .timeline(&TimelineQuery {
                limit: 20,
                ..TimelineQuery::default()
            })
            .unwrap();
        let list = store
            .contacts(&ContactQuery {
                limit: 100,
                ..ContactQuery::default()
            })
            .unwrap();
        samples.push(ms(t.elapsed()));
        assert_eq!((recent.len(), list.len()), (20, 100));
        store.close().unwrap();
    }
    println!(
        "cold open to first screen (20 recent + 100 contacts): p50 {:.2} ms, max {:.2} ms  [goal <= 50 ms]",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 1.0)
    );
    let store = Store::open(dir.path()).unwrap();
    let t = Instant::now();
    let all = store
        .contacts(&ContactQuery {
            limit: 10_000,
            ..ContactQuery::default()
        })
        .unwrap();
    println!(
        "whole contact list ({}): {:.2} ms",
        all.len(),
        ms(t.elapsed())
    );
    store.close().unwrap();

    // Loading single documents.
    let mut main_ms = Vec::new();
    let mut quarter_ms = Vec::new();
    for _ in 0..5 {
        let mut store = Store::open(dir.path()).unwrap();
        let t = Instant::now();
        store.heads(DocId::Main).unwrap();
        main_ms.push(ms(t.elapsed()));
        let t = Instant::now();
        store.heads(quarter).unwrap();
        quarter_ms.push(ms(t.elapsed()));
        store.close().unwrap();
    }
    println!(
        "load main document: p50 {:.1} ms; load current quarter: p50 {:.1} ms",
        percentile(&mut main_ms, 0.5),
        percentile(&mut quarter_ms, 0.5)
    );

    // Phone case, each in a fresh process.
    let mut phone_ms = Vec::new();
    let mut rss = Vec::new();
    let mut hwm = Vec::new();
    for _ in 0..5 {
        let r = run_child("phone", dir.path());
        phone_ms.push(r["ms"]);
        rss.push(r["rss_kb"] / 1024.0);
        hwm.push(r["hwm_kb"] / 1024.0);
    }
    println!(
        "phone case, open + first durable write: p50 {:.1} ms, max {:.1} ms  [goal <= 150 ms]; RSS after {:.1} MB, peak {:.1} MB  [goal <= 150 MB]",
        percentile(&mut phone_ms, 0.5),
        percentile(&mut phone_ms, 1.0),
        percentile(&mut rss, 1.0),
        percentile(&mut hwm, 1.0)
    );

    // Durable single writes, after the document is loaded.
    let mut store = Store::open(dir.path()).unwrap();
    let who: Vec<ContactId> = store
        .contacts(&ContactQuery {
            limit: 200,
            ..ContactQuery::default()
        })
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut rng = StdRng::seed_from_u64(7);
    let mut write_ms = Vec::new();
    for n in 0..301 {
        let t = Instant::now();
        store
            .log_interaction(NewInteraction {
                summary: format!("bench write {n}"),
                notes: "Talked about the rota and the audit. ".repeat(8),
                participants: vec![ParticipantRef::Id(*who.choose(&mut rng).unwrap())],
                ..NewInteraction::default()
            })
            .unwrap();
        if n > 0 {
            write_ms.push(ms(t.elapsed()));
        }
    }
    println!(
        "log one interaction, durable (300 writes, compaction included): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms  [goal p99 <= 10 ms]",
        percentile(&mut write_ms, 0.5),
        percentile(&mut write_ms, 0.99),
        percentile(&mut write_ms, 1.0)
    );

    // Prefix search for a name.
    let mut search_ms = Vec::new();
    let mut hits = 0;
    for n in 0..200 {
        let name = &names[(n * 7919) % names.len()];
        let last = name.split(' ').nth(1).unwrap_or(name);
        let prefix: String = last.chars().take(4).collect();
        let t = Instant::now();
        let r = store.search(&prefix, 20).unwrap();
        search_ms.push(ms(t.elapsed()));
        hits += r.contacts.len();
    }
    println!(
        "prefix search for a name (4 letters, 20 results): p50 {:.2} ms, p99 {:.2} ms  [goal <= 5 ms] ({} contact hits)",
        percentile(&mut search_ms, 0.5),
        percentile(&mut search_ms, 0.99),
        hits
    );
    store.close().unwrap();

    // Full load in a fresh process.
    let r = run_child("full", dir.path());
    println!(
        "full load of all {} documents: {:.0} ms, RSS after {:.1} MB, peak {:.1} MB",
        r["docs"],
        r["ms"],
        r["rss_kb"] / 1024.0,
        r["hwm_kb"] / 1024.0
    );
}

fn main() {
    if let (Ok(mode), Ok(dir)) = (std::env::var(CHILD_ENV), std::env::var(CHILD_DIR_ENV)) {
        child(&mode, Path::new(&dir));
        return;
    }
    // `cargo bench` passes `--bench`; any other argument filters scenarios by size.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    for n in [5_000usize, 50_000] {
        if filter.is_empty() || filter.iter().any(|f| *f == n.to_string()) {
            scenario(n);
        }
    }
}

//! Property: after any sequence of operations (including refused ones), the
//! incrementally maintained index equals the index `reindex` rebuilds from
//! the documents, table by table; and so does it after a close and reopen.

use chrono::NaiveDate;
use kith_core::model::{Circle, Direction, ExchangeWhat, GoalStatus, InteractionKind, Settings};
use kith_core::{
    ContactPatch, InteractionPatch, NewContact, NewExchange, NewFollowUp, NewGoal, NewInteraction,
    ParticipantRef, Store,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
pub(crate) enum Op {
    AddContact(String),
    RenameContact(usize, String),
    Circles(usize, bool),
    Archive(usize, bool),
    Log {
        who: Vec<usize>,
        by_name: Option<String>,
        days_ago: i64,
        summary: String,
        follow_up: bool,
        exchange: bool,
    },
    EditInteraction(usize, Option<usize>, String),
    Delete(usize, bool),
    Complete(usize, bool),
    Merge(usize, usize),
    Unmerge(usize),
    Organisation(usize, Option<String>),
    Goal(Vec<usize>, u8),
    Settings(u32),
}

fn word() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "Ana",
        "ána",
        "Bo",
        "José",
        "Zoë",
        "Lee",
        "ANA",
        "Carla Silva",
        // Folded letters and other spellings (ø, ß, ł; ö as oe; Greek final sigma).
        "Søren",
        "Jörg Großmann",
        "Łukasz",
        "Κώστας",
        "",
    ])
    .prop_map(String::from)
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => word().prop_map(Op::AddContact),
        1 => (any::<usize>(), word()).prop_map(|(i, n)| Op::RenameContact(i, n)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, b)| Op::Circles(i, b)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, b)| Op::Archive(i, b)),
        4 => (proptest::collection::vec(any::<usize>(), 0..3), proptest::option::of(word()), 0i64..800,
              "[a-z ]{0,12}", any::<bool>(), any::<bool>())
            .prop_map(|(who, by_name, days_ago, summary, follow_up, exchange)| Op::Log { who, by_name, days_ago, summary, follow_up, exchange }),
        2 => (any::<usize>(), proptest::option::of(any::<usize>()), "[a-z ]{0,10}").prop_map(|(i, c, s)| Op::EditInteraction(i, c, s)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, b)| Op::Delete(i, b)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, b)| Op::Complete(i, b)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Merge(a, b)),
        1 => any::<usize>().prop_map(Op::Unmerge),
        1 => (any::<usize>(), proptest::option::of(word())).prop_map(|(i, o)| Op::Organisation(i, o)),
        1 => (proptest::collection::vec(any::<usize>(), 0..3), 0u8..5).prop_map(|(c, p)| Op::Goal(c, p)),
        1 => (1u32..100).prop_map(Op::Settings),
    ]
}

fn pick<T: Copy>(v: &[T], i: usize) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        Some(v[i % v.len()])
    }
}

/// How many operations were tried (their target existed) and how many the
/// store accepted.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub(crate) attempted: usize,
    pub(crate) succeeded: usize,
}

impl Tally {
    fn record<T, E>(&mut self, r: Result<T, E>) -> Option<T> {
        self.attempted += 1;
        let ok = r.ok();
        self.succeeded += usize::from(ok.is_some());
        ok
    }
}

/// Applies `ops` to `s`; operations pick among every record already stored.
pub(crate) fn run(s: &mut Store, ops: Vec<Op>) -> Tally {
    let mut t = Tally::default();
    let now = chrono::Utc::now().timestamp_millis();
    let mut contacts: Vec<_> = s
        .all_contacts()
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut interactions: Vec<_> = s
        .all_interactions()
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    for op in ops {
        // Refused operations are part of the property: they must leave no trace.
        match op {
            Op::AddContact(n) => {
                if let Some(c) = t.record(s.add_contact(NewContact::named(n))) {
                    contacts.push(c.id);
                }
            }
            Op::RenameContact(i, n) => {
                if let Some(c) = pick(&contacts, i) {
                    t.record(s.edit_contact(
                        c,
                        ContactPatch {
                            name: Some(n),
                            notes: Some("renamed".into()),
                            ..Default::default()
                        },
                    ));
                }
            }
            Op::Circles(i, b) => {
                if let Some(c) = pick(&contacts, i) {
                    let circles = if b {
                        [Circle::Strategic].into()
                    } else {
                        [Circle::Personal, Circle::Operational].into()
                    };
                    t.record(s.edit_contact(
                        c,
                        ContactPatch {
                            circles: Some(circles),
                            ..Default::default()
                        },
                    ));
                }
            }
            Op::Archive(i, b) => {
                if let Some(c) = pick(&contacts, i) {
                    t.record(if b {
                        s.archive_contact(c)
                    } else {
                        s.unarchive_contact(c)
                    });
                }
            }
            Op::Log {
                who,
                by_name,
                days_ago,
                summary,
                follow_up,
                exchange,
            } => {
                let mut participants: Vec<ParticipantRef> = who
                    .iter()
                    .filter_map(|i| pick(&contacts, *i))
                    .map(ParticipantRef::Id)
                    .collect();
                if let Some(n) = by_name {
                    participants.push(ParticipantRef::Name(n));
                }
                let with = participants.first().cloned();
                let r = s.log_interaction(NewInteraction {
                    at_ms: Some(now - days_ago * 86_400_000),
                    kind: InteractionKind::Call,
                    participants,
                    summary,
                    notes: "some notes about things".into(),
                    follow_ups: if follow_up {
                        vec![NewFollowUp {
                            text: "call back".into(),
                            due: NaiveDate::from_ymd_opt(2026, 1, 1 + (days_ago % 28) as u32),
                        }]
                    } else {
                        vec![]
                    },
                    exchanges: if exchange {
                        vec![NewExchange {
                            what: ExchangeWhat::Insight,
                            direction: Direction::Received,
                            with,
                        }]
                    } else {
                        vec![]
                    },
                    create_missing: days_ago % 2 == 0,
                    ..NewInteraction::default()
                });
                if let Some(i) = t.record(r) {
                    interactions.push(i.id);
                    for c in i.participants {
                        if !contacts.contains(&c) {
                            contacts.push(c);
                        }
                    }
                }
            }
            Op::EditInteraction(i, c, summary) => {
                if let Some(id) = pick(&interactions, i) {
                    let participants = c.and_then(|c| pick(&contacts, c)).map(|c| [c].into());
                    t.record(s.edit_interaction(
                        id,
                        InteractionPatch {
                            summary: Some(summary),
                            participants,
                            at_ms: Some(now - (i % 50) as i64 * 3_600_000),
                            ..Default::default()
                        },
                    ));
                }
            }
            Op::Delete(i, b) => {
                if let Some(id) = pick(&interactions, i) {
                    t.record(if b {
                        s.delete_interaction(id)
                    } else {
                        s.undelete_interaction(id)
                    });
                }
            }
            Op::Complete(i, b) => {
                if let Some(id) = pick(&interactions, i)
                    && let Some(f) = s.interaction(id).unwrap().follow_ups.keys().next().copied()
                {
                    t.record(if b {
                        s.complete_follow_up(id, f)
                    } else {
                        s.reopen_follow_up(id, f)
                    });
                }
            }
            Op::Merge(a, b) => {
                if let (Some(a), Some(b)) = (pick(&contacts, a), pick(&contacts, b)) {
                    t.record(s.merge_contacts(a, b));
                }
            }
            Op::Unmerge(a) => {
                if let Some(a) = pick(&contacts, a) {
                    let _ = s.unmerge_contact(a);
                }
            }
            Op::Organisation(a, o) => {
                if let Some(a) = pick(&contacts, a) {
                    let _ = s.edit_contact(
                        a,
                        ContactPatch {
                            organisation: Some(o),
                            ..Default::default()
                        },
                    );
                }
            }
            Op::Goal(cs, p) => {
                let contacts = cs.iter().filter_map(|i| pick(&contacts, *i)).collect();
                t.record(s.add_goal(NewGoal {
                    title: "goal".into(),
                    priority: p,
                    status: GoalStatus::Active,
                    contacts,
                }));
            }
            Op::Settings(d) => {
                let mut st = Settings::default();
                st.cadence_days.insert(Circle::Personal, d);
                t.record(s.set_settings(st));
            }
        }
    }
    t
}

/// The property over `proptest_cases(20)` random histories, each starting
/// with a few named contacts so that there is something to work on. Across
/// all cases, at least half of the operations that were tried must have
/// succeeded: if operations started failing, "index == reindex" would hold
/// trivially over an empty store.
#[test]
fn rebuilt_index_equals_incremental_index() {
    let total = std::cell::Cell::new(Tally::default());
    let records = std::cell::Cell::new(0usize);
    let first = proptest::collection::vec(
        proptest::sample::select(vec!["Ana Lima", "Bo Chen", "Zoë"])
            .prop_map(|n| Op::AddContact(n.into())),
        1..3,
    );
    let mut runner = proptest::test_runner::TestRunner::new(crate::proptest_cases(20));
    runner
        .run(
            &(first, proptest::collection::vec(op(), 1..30)),
            |(first, ops)| {
                let dir = tempfile::tempdir().unwrap();
                let mut s = Store::open(dir.path()).unwrap();
                let t = run(&mut s, first.into_iter().chain(ops).collect());
                let sum = total.get();
                total.set(Tally {
                    attempted: sum.attempted + t.attempted,
                    succeeded: sum.succeeded + t.succeeded,
                });
                let contacts = s.all_contacts().unwrap().len();
                prop_assert!(contacts > 0, "the seeded contacts are gone");
                records.set(records.get() + contacts + s.all_interactions().unwrap().len());
                let incremental = s.index_dump().unwrap();
                s.close().unwrap();
                let mut s = Store::open(dir.path()).unwrap();
                prop_assert_eq!(&incremental, &s.index_dump().unwrap());
                s.reindex().unwrap();
                let rebuilt = s.index_dump().unwrap();
                for (table, rows) in &incremental {
                    prop_assert_eq!(rows, &rebuilt[table], "table {}", table);
                }
                Ok(())
            },
        )
        .unwrap();
    let t = total.get();
    assert!(
        t.succeeded * 2 >= t.attempted && t.succeeded > 0,
        "only {} of {} operations succeeded",
        t.succeeded,
        t.attempted
    );
    eprintln!(
        "reindex property: {} of {} operations succeeded, {} records in the final stores",
        t.succeeded,
        t.attempted,
        records.get()
    );
}

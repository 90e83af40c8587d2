//! Contact merges across offline devices: opposite merges (a cycle), chains,
//! interactions and edits made against a duplicate while another device
//! merged it, unmerge; and a property test with three devices applying
//! random adds, edits, merges, unmerges and interactions offline, synced in
//! random orders. Devices exchange raw Automerge changes through the
//! remote-merge hook (`apply_remote_changes`), as the sync machines do.

use std::collections::{BTreeMap, BTreeSet};

use kith_core::ids::ContactId;
use kith_core::model::{Contact, GoalStatus};
use kith_core::{
    ContactPatch, NewContact, NewGoal, NewInteraction, OpError, ParticipantRef, Store,
    TimelineQuery,
};
use proptest::prelude::*;

use crate::meeting;

/// Sends every change of every document of `from` to `to`.
fn push(from: &mut Store, to: &mut Store) {
    for doc in from.doc_ids().unwrap() {
        let changes = from.changes_since(doc, &[]).unwrap();
        to.apply_remote_changes(doc, &changes, |_| Ok(())).unwrap();
    }
}

/// Full sync of a set of devices (every pair, both ways).
fn sync_all(devices: &mut [Store]) {
    for _ in 0..2 {
        for i in 0..devices.len() {
            for j in 0..devices.len() {
                if i != j {
                    let (a, b) = two(devices, i, j);
                    push(a, b);
                }
            }
        }
    }
}

fn two(v: &mut [Store], i: usize, j: usize) -> (&mut Store, &mut Store) {
    assert_ne!(i, j);
    if i < j {
        let (l, r) = v.split_at_mut(j);
        (&mut l[i], &mut r[0])
    } else {
        let (l, r) = v.split_at_mut(i);
        (&mut r[0], &mut l[j])
    }
}

fn add(s: &mut Store, name: &str) -> Contact {
    s.add_contact(NewContact::named(name)).unwrap()
}

fn live(s: &Store) -> Vec<Contact> {
    s.all_contacts()
        .unwrap()
        .into_iter()
        .filter(|c| c.merged_into.is_none())
        .collect()
}

fn timeline(s: &Store, c: ContactId) -> Vec<String> {
    s.timeline(&TimelineQuery {
        contact: Some(c),
        limit: 100,
        ..TimelineQuery::default()
    })
    .unwrap()
    .into_iter()
    .map(|i| i.summary)
    .collect()
}

fn assert_index_is_rebuildable(s: &mut Store) {
    let dump = s.index_dump().unwrap();
    s.reindex().unwrap();
    assert_eq!(dump, s.index_dump().unwrap());
}

/// Laptop and phone share two records of one person; the laptop merges
/// Lovelace into King while the phone merges King into Lovelace. After sync
/// the earliest-created record survives on both, live, with both meetings.
#[test]
fn opposite_merges_keep_the_person_once_with_every_interaction() {
    let (_dl, mut laptop) = crate::fresh();
    let (_dp, mut phone) = crate::fresh();
    let lovelace = add(&mut laptop, "Ada Lovelace");
    let king = add(&mut laptop, "Ada King");
    let letter = laptop
        .log_interaction(meeting("Letter", &[lovelace.id]))
        .unwrap();
    let talk = laptop
        .log_interaction(meeting("Talk about engines", &[king.id]))
        .unwrap();
    push(&mut laptop, &mut phone);

    laptop.merge_contacts(king.id, lovelace.id).unwrap();
    phone.merge_contacts(lovelace.id, king.id).unwrap();
    push(&mut laptop, &mut phone);
    push(&mut phone, &mut laptop);

    // Ids are ULIDs: Lovelace was created first, so she survives.
    assert!(lovelace.id < king.id);
    for s in [&mut laptop, &mut phone] {
        let people = live(s);
        assert_eq!(
            people.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![lovelace.id],
            "exactly one Ada is live"
        );
        let ada = &people[0];
        assert!(!ada.archived);
        assert_eq!(ada.merged_from, vec![king.id]);
        assert_eq!(s.contact(king.id).unwrap().merged_into, Some(lovelace.id));
        for i in [letter.id, talk.id] {
            assert_eq!(s.interaction(i).unwrap().participants, [lovelace.id].into());
        }
        assert_eq!(
            timeline(s, lovelace.id),
            vec!["Talk about engines", "Letter"]
        );
        assert_eq!(s.contact_stats(lovelace.id).unwrap().interaction_count, 2);
        let records = s.insights_records().unwrap();
        assert!(
            records
                .interactions
                .iter()
                .all(|i| i.participants == [lovelace.id].into())
        );
        assert_index_is_rebuildable(s);
    }
    assert_eq!(
        laptop.all_contacts().unwrap(),
        phone.all_contacts().unwrap()
    );
}

/// The laptop merges G. Hopper into Grace Hopper while the phone, offline,
/// logs a call with G. Hopper, sets her organisation (Grace has none) and her
/// role (Grace has another). After sync both devices show the call on
/// Grace's timeline and stats, the organisation filled in, and the role as a
/// conflict, which an edit of Grace resolves everywhere. Unmerge gives G.
/// Hopper her call and her organisation back.
#[test]
fn a_meeting_and_edits_made_against_the_duplicate_follow_the_merge() {
    let (_dl, mut laptop) = crate::fresh();
    let (_dp, mut phone) = crate::fresh();
    let grace = laptop
        .add_contact(NewContact {
            role: Some("Admiral".into()),
            ..NewContact::named("Grace Hopper")
        })
        .unwrap();
    let g = add(&mut laptop, "G. Hopper");
    push(&mut laptop, &mut phone);

    laptop.merge_contacts(grace.id, g.id).unwrap();
    let call = phone
        .log_interaction(meeting("Offline call with the duplicate", &[g.id]))
        .unwrap();
    phone
        .edit_contact(
            g.id,
            ContactPatch {
                organisation: Some(Some("US Navy".into())),
                role: Some(Some("Rear Admiral".into())),
                ..ContactPatch::default()
            },
        )
        .unwrap();
    push(&mut laptop, &mut phone);
    push(&mut phone, &mut laptop);

    for s in [&mut laptop, &mut phone] {
        assert_eq!(
            live(s).iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![grace.id]
        );
        let shown = s.contact(grace.id).unwrap();
        assert_eq!(shown.organisation.as_deref(), Some("US Navy"));
        assert_eq!(shown.role.as_deref(), Some("Admiral"));
        assert_eq!(shown.conflicts.len(), 1, "{:?}", shown.conflicts);
        assert_eq!(shown.conflicts[0].field, "role");
        assert_eq!(shown.conflicts[0].value, "Rear Admiral");
        assert_eq!(shown.conflicts[0].from, g.id);
        assert_eq!(
            timeline(s, grace.id),
            vec!["Offline call with the duplicate"]
        );
        let stats = s.contact_stats(grace.id).unwrap();
        assert_eq!(stats.interaction_count, 1);
        assert_eq!(stats.last_interaction_ms, Some(call.at_ms));
        assert_eq!(
            s.search("navy", 5)
                .unwrap()
                .contacts
                .iter()
                .map(|c| c.id)
                .collect::<Vec<_>>(),
            vec![grace.id]
        );
        assert_index_is_rebuildable(s);
    }

    // The user picks a role on the phone: the conflict is gone everywhere.
    phone
        .edit_contact(
            grace.id,
            ContactPatch {
                role: Some(Some("Rear Admiral".into())),
                ..ContactPatch::default()
            },
        )
        .unwrap();
    push(&mut phone, &mut laptop);
    for s in [&mut laptop, &mut phone] {
        let shown = s.contact(grace.id).unwrap();
        assert_eq!(shown.role.as_deref(), Some("Rear Admiral"));
        assert!(shown.conflicts.is_empty(), "{:?}", shown.conflicts);
    }

    // Unmerge on the laptop: G. Hopper is live with her own call and fields.
    let back = laptop.unmerge_contact(g.id).unwrap();
    assert_eq!(back.merged_into, None);
    assert!(!back.archived);
    push(&mut laptop, &mut phone);
    for s in [&mut laptop, &mut phone] {
        assert_eq!(live(s).len(), 2);
        assert_eq!(timeline(s, g.id), vec!["Offline call with the duplicate"]);
        assert!(timeline(s, grace.id).is_empty());
        assert_eq!(s.contact(grace.id).unwrap().organisation, None);
        assert_eq!(
            s.contact(g.id).unwrap().organisation.as_deref(),
            Some("US Navy")
        );
        assert_eq!(s.contact_stats(grace.id).unwrap().interaction_count, 0);
        assert_index_is_rebuildable(s);
    }
    assert!(matches!(
        laptop.unmerge_contact(g.id),
        Err(OpError::NotMerged(_))
    ));
}

/// X into Y on one device while Y into Z on another: everything ends at Z,
/// goals and exchanges included; unmerging Y brings Y and X back together.
#[test]
fn chained_merges_resolve_to_the_end() {
    let (_d1, mut one) = crate::fresh();
    let (_d2, mut two_) = crate::fresh();
    let x = add(&mut one, "X");
    let y = add(&mut one, "Y");
    let z = add(&mut one, "Z");
    let goal = one
        .add_goal(NewGoal {
            title: "meet X".into(),
            priority: 1,
            status: GoalStatus::Active,
            contacts: [x.id].into(),
        })
        .unwrap();
    push(&mut one, &mut two_);
    one.merge_contacts(y.id, x.id).unwrap();
    let met = two_
        .log_interaction(NewInteraction {
            participants: vec![ParticipantRef::Id(x.id), ParticipantRef::Id(y.id)],
            ..meeting("both", &[])
        })
        .unwrap();
    two_.merge_contacts(z.id, y.id).unwrap();
    push(&mut one, &mut two_);
    push(&mut two_, &mut one);
    for s in [&mut one, &mut two_] {
        assert_eq!(live(s).iter().map(|c| c.id).collect::<Vec<_>>(), vec![z.id]);
        assert_eq!(s.contact(x.id).unwrap().merged_into, Some(z.id));
        assert_eq!(s.contact(z.id).unwrap().merged_from, vec![x.id, y.id]);
        assert_eq!(s.goal(goal.id).unwrap().contacts, [z.id].into());
        assert_eq!(s.interaction(met.id).unwrap().participants, [z.id].into());
        assert_index_is_rebuildable(s);
    }
    one.unmerge_contact(y.id).unwrap();
    push(&mut one, &mut two_);
    for s in [&mut one, &mut two_] {
        let ids: BTreeSet<_> = live(s).iter().map(|c| c.id).collect();
        assert_eq!(ids, [y.id, z.id].into());
        assert_eq!(s.contact(x.id).unwrap().merged_into, Some(y.id));
        assert_eq!(s.goal(goal.id).unwrap().contacts, [y.id].into());
        assert_eq!(s.interaction(met.id).unwrap().participants, [y.id].into());
        assert_index_is_rebuildable(s);
    }
}

/// Unmerging the non-survivor of a cycle separates the two: the elected
/// survivor's own pointer is cleared with it.
#[test]
fn unmerge_after_opposite_merges_separates_both() {
    let (_d1, mut a) = crate::fresh();
    let (_d2, mut b) = crate::fresh();
    let p = add(&mut a, "P");
    let q = add(&mut a, "Q");
    a.log_interaction(meeting("with q", &[q.id])).unwrap();
    push(&mut a, &mut b);
    a.merge_contacts(q.id, p.id).unwrap();
    b.merge_contacts(p.id, q.id).unwrap();
    push(&mut a, &mut b);
    push(&mut b, &mut a);
    assert_eq!(a.contact(q.id).unwrap().merged_into, Some(p.id));
    b.unmerge_contact(q.id).unwrap();
    push(&mut b, &mut a);
    for s in [&mut a, &mut b] {
        assert_eq!(live(s).len(), 2);
        assert_eq!(timeline(s, q.id), vec!["with q"]);
        assert!(timeline(s, p.id).is_empty());
        assert_index_is_rebuildable(s);
    }
}

// ------------------------------------------------------------- property test

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    Organisation(usize, Option<u8>),
    Merge(usize, usize),
    Unmerge(usize),
    Log(Vec<usize>, bool),
    Goal(Vec<usize>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u8..4).prop_map(Op::Add),
        2 => (any::<usize>(), proptest::option::of(0u8..3)).prop_map(|(c, o)| Op::Organisation(c, o)),
        4 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Merge(a, b)),
        2 => any::<usize>().prop_map(Op::Unmerge),
        3 => (proptest::collection::vec(any::<usize>(), 1..3), any::<bool>()).prop_map(|(c, e)| Op::Log(c, e)),
        1 => proptest::collection::vec(any::<usize>(), 0..3).prop_map(Op::Goal),
    ]
}

/// Applies `op` on `s`; contacts are picked among every contact `s` knows,
/// merged-away ones included (so merges can be opposite or chained).
fn apply(s: &mut Store, op: &Op) {
    let ids: Vec<ContactId> = s.all_contacts().unwrap().iter().map(|c| c.id).collect();
    let pick = |i: usize| ids.get(i % ids.len().max(1)).copied();
    match op {
        Op::Add(n) => {
            add(s, &format!("Person {n}"));
        }
        Op::Organisation(c, o) => {
            if let Some(c) = pick(*c) {
                let _ = s.edit_contact(
                    c,
                    ContactPatch {
                        organisation: Some(o.map(|o| format!("Org {o}"))),
                        ..ContactPatch::default()
                    },
                );
            }
        }
        Op::Merge(a, b) => {
            if let (Some(a), Some(b)) = (pick(*a), pick(*b)) {
                let _ = s.merge_contacts(a, b);
            }
        }
        Op::Unmerge(a) => {
            if let Some(a) = pick(*a) {
                let _ = s.unmerge_contact(a);
            }
        }
        Op::Log(who, exchange) => {
            let who: Vec<ContactId> = who.iter().filter_map(|i| pick(*i)).collect();
            if who.is_empty() {
                return;
            }
            let exchanges = if *exchange {
                vec![kith_core::NewExchange {
                    what: kith_core::model::ExchangeWhat::Support,
                    direction: kith_core::model::Direction::Gave,
                    with: Some(ParticipantRef::Id(who[0])),
                }]
            } else {
                vec![]
            };
            s.log_interaction(NewInteraction {
                exchanges,
                ..meeting("met", &who)
            })
            .unwrap();
        }
        Op::Goal(cs) => {
            let contacts = cs.iter().filter_map(|i| pick(*i)).collect();
            let _ = s.add_goal(NewGoal {
                title: "goal".into(),
                priority: 2,
                status: GoalStatus::Active,
                contacts,
            });
        }
    }
}

/// Cases: `PROPTEST_CASES` when set (never below the floor), else the floor.
fn cases(floor: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(floor, |n| n.max(floor))
}

/// Every invariant one device must hold on its own after any syncs.
fn check_device(s: &mut Store) -> Result<(), TestCaseError> {
    let contacts: BTreeMap<ContactId, Contact> = s
        .all_contacts()
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let is_live = |c: &ContactId| contacts.get(c).is_some_and(|c| c.merged_into.is_none());
    // Every contact is live or points straight at a live survivor that
    // lists it, so no person is lost without a survivor.
    for c in contacts.values() {
        match c.merged_into {
            None => {
                for m in &c.merged_from {
                    prop_assert_eq!(contacts[m].merged_into, Some(c.id));
                }
            }
            Some(s) => {
                prop_assert!(is_live(&s), "{} -> {} is not live", c.id, s);
                prop_assert!(contacts[&s].merged_from.contains(&c.id));
            }
        }
    }
    let mut counts: BTreeMap<ContactId, u64> = BTreeMap::new();
    for i in s.all_interactions().unwrap() {
        for p in &i.participants {
            prop_assert!(is_live(p), "participant {} of {} is not live", p, i.id);
            *counts.entry(*p).or_default() += 1;
        }
        for e in &i.exchanges {
            if let Some(w) = e.with {
                prop_assert!(is_live(&w), "exchange partner {} is not live", w);
            }
        }
    }
    for g in s.all_goals().unwrap() {
        for c in &g.contacts {
            prop_assert!(is_live(c), "goal contact {} is not live", c);
        }
    }
    // Stats and timelines follow the survivor.
    for c in contacts.keys() {
        let n = counts.get(c).copied().unwrap_or(0);
        prop_assert_eq!(s.contact_stats(*c).unwrap().interaction_count, n);
        prop_assert_eq!(timeline(s, *c).len() as u64, n);
    }
    let dump = s.index_dump().unwrap();
    s.reindex().unwrap();
    let rebuilt = s.index_dump().unwrap();
    for (table, rows) in &dump {
        prop_assert_eq!(
            rows,
            &rebuilt[table],
            "table {} differs from reindex",
            table
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), ..ProptestConfig::default() })]

    /// Three devices share a few contacts, then in two rounds each applies
    /// random operations offline and random one-way syncs happen between
    /// them; finally every device syncs with every other. All converge to
    /// the same records and heads; on each device (also after every partial
    /// sync) every reference resolves to a live contact, every contact ever
    /// seen is live or has a live survivor, stats count what the
    /// interactions say, and the index equals `reindex`.
    #[test]
    fn three_devices_merging_offline_converge(
        start in 2u8..5,
        rounds in proptest::collection::vec(
            (
                [
                    proptest::collection::vec(op(), 0..6),
                    proptest::collection::vec(op(), 0..6),
                    proptest::collection::vec(op(), 0..6),
                ],
                proptest::collection::vec((0usize..3, 0usize..3), 0..4),
            ),
            1..3,
        ),
    ) {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut devices: Vec<Store> = dirs.iter().map(|d| Store::open(d.path()).unwrap()).collect();
        for n in 0..start {
            add(&mut devices[0], &format!("Shared {n}"));
        }
        sync_all(&mut devices);
        let mut ever: BTreeSet<ContactId> = BTreeSet::new();
        for (ops, syncs) in &rounds {
            for (d, ops) in ops.iter().enumerate() {
                for op in ops {
                    apply(&mut devices[d], op);
                }
                ever.extend(devices[d].all_contacts().unwrap().iter().map(|c| c.id));
            }
            for (from, to) in syncs {
                if from != to {
                    let (a, b) = two(&mut devices, *from, *to);
                    push(a, b);
                    check_device(b)?;
                }
            }
        }
        sync_all(&mut devices);
        let first = devices[0].all_contacts().unwrap();
        prop_assert_eq!(
            first.iter().map(|c| c.id).collect::<BTreeSet<_>>(),
            ever,
            "a contact some device knew is missing"
        );
        for d in 1..3 {
            prop_assert_eq!(&devices[d].all_contacts().unwrap(), &first);
            prop_assert_eq!(devices[d].all_interactions().unwrap(), devices[0].all_interactions().unwrap());
            prop_assert_eq!(devices[d].all_goals().unwrap(), devices[0].all_goals().unwrap());
            for doc in devices[0].doc_ids().unwrap() {
                prop_assert_eq!(devices[d].heads(doc).unwrap(), devices[0].heads(doc).unwrap());
            }
        }
        for s in &mut devices {
            check_device(s)?;
        }
    }
}

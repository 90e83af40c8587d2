//! End-to-end tests of the insights on small hand-built networks (every
//! expected number computed by hand in the comments), on synthetic networks,
//! and property tests over arbitrary networks.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::functions::Supply;
use crate::goals::GoalState;
use crate::prepare::DAY_MS;
use crate::reciprocity::Balance;
use kith_model::ids::{ContactId, ExchangeId, FollowUpId, GoalId, InteractionId};
use kith_model::model::{
    Circle, Contact, Direction, Exchange, ExchangeWhat, FollowUp, Goal, GoalStatus, Initiator,
    Interaction, InteractionKind, Seniority, Settings,
};
use kith_synth::{SynthParams, generate};

const NOW: i64 = 1_790_000_000_000;

fn cid(n: u128) -> ContactId {
    ContactId::from_u128(n)
}

fn contact(n: u128) -> Contact {
    Contact {
        id: cid(n),
        name: format!("C{n}"),
        given_name: None,
        family_name: None,
        organisation: None,
        role: None,
        discipline: None,
        seniority: Seniority::Unknown,
        inside_org: None,
        circles: BTreeSet::new(),
        tags: BTreeSet::new(),
        emails: Vec::new(),
        phones: Vec::new(),
        urls: BTreeSet::new(),
        how_we_met: None,
        first_met: None,
        birthday: None,
        notes: String::new(),
        cadence_days: None,
        created_ms: NOW - 1_000 * DAY_MS,
        updated_ms: NOW - 1_000 * DAY_MS,
        archived: false,
        merged_into: None,
        import_keys: BTreeSet::new(),
        merge_base: Default::default(),
        merged_from: Vec::new(),
        conflicts: Vec::new(),
    }
}

fn with(mut c: Contact, f: impl FnOnce(&mut Contact)) -> Contact {
    f(&mut c);
    c
}

fn circle(n: u128, f: Circle) -> Contact {
    with(contact(n), |c| {
        c.circles.insert(f);
    })
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn meeting(days_ago: i64, kind: InteractionKind, who: &[u128]) -> Interaction {
    let at_ms = NOW - days_ago * DAY_MS;
    let n = u128::from(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    Interaction {
        id: InteractionId::from_u128((u128::try_from(at_ms.max(0)).unwrap() << 80) | n),
        at_ms,
        offset_minutes: 0,
        kind,
        initiator: Initiator::Unknown,
        participants: who.iter().map(|&w| cid(w)).collect(),
        summary: "s".to_string(),
        notes: String::new(),
        notes_conflicts: Vec::new(),
        project: None,
        exchanges: Vec::new(),
        follow_ups: BTreeMap::new(),
        created_ms: at_ms,
        updated_ms: at_ms,
        deleted_ms: None,
        event: None,
    }
}

fn exchange(what: ExchangeWhat, direction: Direction, w: Option<u128>) -> Exchange {
    let n = u128::from(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    Exchange {
        id: ExchangeId::from_u128(n),
        what,
        direction,
        with: w.map(cid),
    }
}

fn input<'a>(
    contacts: &'a [Contact],
    interactions: &'a [Interaction],
    goals: &'a [Goal],
    settings: &'a Settings,
) -> InsightsInput<'a> {
    InsightsInput {
        contacts,
        interactions,
        goals,
        settings,
        now_ms: NOW,
        params: InsightsParams::default(),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-3
}

#[test]
fn strength_of_the_issue_example_end_to_end() {
    let contacts = [contact(1), contact(2)];
    let interactions = [
        meeting(30, InteractionKind::ProjectWork, &[1]),
        meeting(200, InteractionKind::Message, &[1]),
        // 2 / sqrt(4) = 1 for contact 2 (3 and 4 are unknown ids, still counted in |P|).
        meeting(0, InteractionKind::Meeting, &[2, 3, 4, 5]),
    ];
    let settings = Settings::default();
    let s = strength::compute(&input(&contacts, &interactions, &[], &settings));
    let s = s.value().unwrap();
    assert_eq!(s.contacts[0].id, cid(1));
    assert!(
        close(s.contacts[0].strength, 2.595),
        "{}",
        s.contacts[0].strength
    );
    assert!(close(s.contacts[1].strength, 1.0));
    // 90 days ago the project work (30 days ago) had not happened yet: only
    // the message, then 110 days old, counts: 2^(-110/90) = 0.4286.
    assert!(close(s.contacts[0].strength_before, 0.4286));
    assert_eq!(s.never_contacted, 0);
}

#[test]
fn circle_balance_6_3_1_with_effort_and_strategic_gap() {
    let mut contacts = Vec::new();
    let mut interactions = Vec::new();
    for n in 0..10u128 {
        let f = match n {
            0..=5 => Circle::Operational,
            6..=8 => Circle::Personal,
            _ => Circle::Strategic,
        };
        contacts.push(circle(n + 1, f));
        interactions.push(meeting(0, InteractionKind::Meeting, &[n + 1]));
    }
    let settings = Settings {
        strategic_target: Some(0.25),
        ..Settings::default()
    };
    let b = circles::compute(&input(&contacts, &interactions, &[], &settings));
    let b = b.value().unwrap();
    let counts: Vec<u32> = b.circles.iter().map(|c| c.count).collect();
    assert_eq!(counts, [6, 3, 1]);
    assert!(close(b.evenness, 0.817));
    // Equal strength (2 each): effort shares equal the count shares.
    assert!(close(b.circles[2].effort_share, 0.1));
    assert!(close(b.strategic_gap.unwrap(), 0.15));
    // No target set: no gap, and no default target is invented.
    let b = circles::compute(&input(&contacts, &interactions, &[], &Settings::default()));
    assert_eq!(b.value().unwrap().strategic_gap, None);
}

#[test]
fn composition_over_active_ties_uses_the_whole_vocabulary() {
    // Active: 4 medicine, 4 nursing. Inactive contacts add pharmacy, IT, HR to
    // the vocabulary: K = 5, so B = 0.5, B* = 0.625, evenness = 0.431.
    let mut contacts = Vec::new();
    let mut interactions = Vec::new();
    for n in 0..8u128 {
        let d = if n < 4 { "medicine" } else { "Nursing " };
        contacts.push(with(contact(n + 1), |c| c.discipline = Some(d.to_string())));
        interactions.push(meeting(10, InteractionKind::Call, &[n + 1]));
    }
    for (n, d) in [
        (20u128, "pharmacy"),
        (21, "IT"),
        (22, "HR"),
        (23, "NURSING"),
    ] {
        contacts.push(with(contact(n), |c| c.discipline = Some(d.to_string())));
    }
    let settings = Settings::default();
    let comp = composition::compute(&input(&contacts, &interactions, &[], &settings));
    let d = comp.active.discipline.value().unwrap();
    assert_eq!(d.k, 5);
    assert!(close(d.blau, 0.5));
    assert!(close(d.blau_normalised.unwrap(), 0.625));
    assert!(close(d.evenness.unwrap(), 0.431));
    assert_eq!(d.range, 2);
    // Seniority unknown for everyone: not enough data, with the coverage.
    match &comp.active.seniority {
        Metric::NotEnoughData { coverage } => assert_eq!((coverage.known, coverage.total), (0, 8)),
        other => panic!("{other:?}"),
    }
    // The core is the 8 active ties (the inactive ones have no strength).
    let core = comp.core.discipline.value().unwrap();
    assert_eq!(core.categories.iter().map(|c| c.count).sum::<u32>(), 8);
}

#[test]
fn core_is_the_strongest_ties_only() {
    // core_size 2: contacts 1 and 2 (meetings now) beat 3 (a message long ago).
    let contacts = [
        with(contact(1), |c| c.seniority = Seniority::Senior),
        with(contact(2), |c| c.seniority = Seniority::Senior),
        with(contact(3), |c| c.seniority = Seniority::Junior),
    ];
    let interactions = [
        meeting(0, InteractionKind::Meeting, &[1]),
        meeting(0, InteractionKind::Meeting, &[2]),
        meeting(100, InteractionKind::Message, &[3]),
    ];
    let settings = Settings {
        core_size: 2,
        ..Settings::default()
    };
    let comp = composition::compute(&input(&contacts, &interactions, &[], &settings));
    let core = comp.core.seniority.value().unwrap();
    assert_eq!(core.range, 1);
    assert_eq!(core.blau, 0.0);
    let active = comp.active.seniority.value().unwrap();
    // (2, 0, 1): B = 1 - (4/9 + 1/9) = 0.444.
    assert!(close(active.blau, 0.444));
}

#[test]
fn reach_and_the_coverage_gate() {
    // 8 inside, 2 outside: EI = -0.6. Disciplines: 3 medicine (mine), 2 other,
    // 5 unknown: coverage 5/10 = 50 % is enough; EI = (2 - 3) / 5 = -0.2.
    // Seniority known for 4 of 10: not enough data.
    let mut contacts = Vec::new();
    let mut interactions = Vec::new();
    for n in 0..10u128 {
        contacts.push(with(contact(n + 1), |c| {
            c.inside_org = Some(n < 8);
            c.discipline = match n {
                0..=2 => Some("Medicine".to_string()),
                3..=4 => Some("nursing".to_string()),
                _ => None,
            };
            c.seniority = if n < 4 {
                Seniority::Peer
            } else {
                Seniority::Unknown
            };
        }));
        interactions.push(meeting(5, InteractionKind::Email, &[n + 1]));
    }
    let settings = Settings {
        my_discipline: Some("medicine".to_string()),
        ..Settings::default()
    };
    let r = reach::compute(&input(&contacts, &interactions, &[], &settings));
    assert!(close(r.organisation.value().unwrap().ei, -0.6));
    assert!(close(r.discipline.value().unwrap().ei, -0.2));
    assert!(matches!(r.seniority, Metric::NotEnoughData { .. }));
    // Without my discipline there is no discipline reach.
    let r = reach::compute(&input(&contacts, &interactions, &[], &Settings::default()));
    assert!(matches!(r.discipline, Metric::NoData { .. }));
}

#[test]
fn grid_counts_cells_and_non_empty_share() {
    // Disciplines {medicine, nursing}: 6 cells. Filled: medicine/senior (2),
    // nursing/junior (1): 2 of 6 non-empty.
    let contacts = [
        with(contact(1), |c| {
            c.discipline = Some("medicine".into());
            c.seniority = Seniority::Senior;
        }),
        with(contact(2), |c| {
            c.discipline = Some("medicine".into());
            c.seniority = Seniority::Senior;
        }),
        with(contact(3), |c| {
            c.discipline = Some("nursing".into());
            c.seniority = Seniority::Junior;
        }),
    ];
    let interactions = [meeting(1, InteractionKind::Meeting, &[1, 2, 3])];
    let settings = Settings::default();
    let g = grid::compute(&input(&contacts, &interactions, &[], &settings));
    let g = g.value().unwrap();
    assert_eq!(g.cells, vec![vec![2, 0, 0], vec![0, 0, 1]]);
    assert_eq!((g.non_empty, g.cells_total), (2, 6));
    assert!(close(g.non_empty_share, 1.0 / 3.0));
}

#[test]
fn reciprocity_per_contact_network_and_initiative() {
    use Direction::{Gave, Received};
    use ExchangeWhat::*;
    let contacts = [contact(1), contact(2), contact(3), contact(4)];
    let mut a = meeting(10, InteractionKind::Meeting, &[1]);
    a.initiator = Initiator::Me;
    a.exchanges = vec![
        exchange(Support, Gave, Some(1)),
        exchange(Insight, Gave, Some(1)),
        exchange(Insight, Gave, Some(1)),
        exchange(Information, Gave, Some(1)),
        exchange(Feedback, Received, Some(1)),
        exchange(Support, Received, Some(1)),
    ];
    let mut b = meeting(20, InteractionKind::Call, &[2]);
    b.initiator = Initiator::Me;
    b.exchanges = (0..5)
        .map(|_| exchange(Information, Gave, None))
        .chain([exchange(Support, Received, None)])
        .collect();
    let mut c = meeting(30, InteractionKind::Call, &[3, 4]);
    c.initiator = Initiator::Them;
    // With nobody named: counts for both 3 and 4. Named absent person 1: ignored.
    c.exchanges = vec![
        exchange(Resources, Gave, None),
        exchange(Resources, Received, Some(3)),
        exchange(Feedback, Received, Some(1)),
    ];
    let mut d = meeting(40, InteractionKind::Call, &[4]);
    d.initiator = Initiator::Mutual;
    let interactions = [a, b, c, d];
    let settings = Settings::default();
    let inp = input(&contacts, &interactions, &[], &settings);
    let r = reciprocity::compute(&inp);
    let r = r.value().unwrap();
    let by: BTreeMap<ContactId, (u32, u32, Balance)> = r
        .contacts
        .iter()
        .map(|c| (c.contact.id, (c.given, c.received, c.balance)))
        .collect();
    assert_eq!(by[&cid(1)], (4, 2, Balance::Balanced));
    assert_eq!(by[&cid(2)], (5, 1, Balance::MostlyGiving));
    assert_eq!(by[&cid(3)], (1, 1, Balance::Undefined));
    assert_eq!(by[&cid(4)], (1, 0, Balance::Undefined));
    // G = 4 + 5 + 1 + 1 = 11, R = 2 + 1 + 1 = 4: (11 - 4) / 15.
    assert_eq!((r.given_total, r.received_total), (11, 4));
    assert!(close(r.network_balance, 7.0 / 15.0));
    let support = &r.by_function[0];
    assert_eq!((support.given, support.received), (1, 2));
    // Initiative: me 2, them 1, mutual 1: (2 - 1) / 3.
    let i = reciprocity::compute_initiative(&inp);
    let i = i.value().unwrap();
    assert_eq!((i.me, i.them, i.mutual, i.unknown), (2, 1, 1, 0));
    assert!(close(i.balance.unwrap(), 1.0 / 3.0));
    // Functions received: support from 1 and 2, feedback from 1 only, resources
    // from 3 only, insight and information from nobody.
    let f = functions::compute(&inp);
    let f = f.value().unwrap();
    let supply: Vec<Supply> = f.iter().map(|s| s.supply).collect();
    assert_eq!(
        supply,
        [
            Supply::Covered,
            Supply::Fragile,
            Supply::Gap,
            Supply::Fragile,
            Supply::Gap
        ]
    );
    assert_eq!(f[1].only_source.as_ref().unwrap().id, cid(1));
    let report = compute_all(&inp);
    let h = headlines(&report);
    assert!(
        h.iter()
            .any(|f| f.message == "feedback comes from one person only (C1)"),
        "{h:#?}"
    );
    assert!(
        h.iter()
            .any(|f| f.message == "no one gave you insight in the last year")
    );
}

#[test]
fn reconnect_lists_rank_by_overdue_ratio_goal_priority_and_strength() {
    let strategic = |n: u128, cadence: Option<u32>| {
        with(circle(n, Circle::Strategic), |c| c.cadence_days = cadence)
    };
    let contacts = [
        strategic(1, Some(30)),
        strategic(2, None),
        strategic(3, None),
        with(strategic(4, None), |c| c.created_ms = NOW - 100 * DAY_MS),
        with(strategic(5, None), |c| c.created_ms = NOW - 10 * DAY_MS),
        circle(6, Circle::Operational),
        contact(7),
    ];
    let interactions = [
        meeting(90, InteractionKind::Meeting, &[1]),
        meeting(90, InteractionKind::Meeting, &[2]),
        meeting(10, InteractionKind::Meeting, &[3]),
        meeting(45, InteractionKind::Meeting, &[6]),
        meeting(400, InteractionKind::Meeting, &[7]),
    ];
    let goals = [
        Goal {
            id: GoalId::from_u128(1),
            title: "Top".into(),
            priority: 1,
            status: GoalStatus::Active,
            contacts: [cid(1)].into(),
            created_ms: NOW,
            updated_ms: NOW,
        },
        Goal {
            id: GoalId::from_u128(2),
            title: "Done".into(),
            priority: 1,
            status: GoalStatus::Achieved,
            contacts: [cid(2)].into(),
            created_ms: NOW,
            updated_ms: NOW,
        },
    ];
    let settings = Settings::default();
    let inp = input(&contacts, &interactions, &goals, &settings);
    let r = reconnect::compute(&inp);
    // 1: o = 90/30 = 3, goal priority 1 -> g = 3, score 9.
    // 2: o = 90/60 = 1.5 (its goal is achieved: g = 1), score 1.5.
    // 4: never contacted, added 100 days ago, strategic default 60: o = 1.667,
    //    listed after the ties with a history despite its higher score.
    // 3: o = 10/60 and 5 (added 10 days ago): not overdue.
    let n = r.neglected_strategic.value().unwrap();
    let ids: Vec<ContactId> = n.iter().map(|t| t.contact.id).collect();
    assert_eq!(ids, [cid(1), cid(2), cid(4)]);
    assert!(close(n[0].score, 9.0));
    assert!(close(n[1].score, 1.5));
    assert!(close(n[2].overdue_ratio, 100.0 / 60.0) && n[2].never);
    // Overdue, all circles: strategic first (by strength), then operational 6
    // (45/30 = 1.5). Contact 7 has no circle and no cadence: not tracked.
    let o = r.overdue.value().unwrap();
    let ids: Vec<ContactId> = o.iter().map(|t| t.contact.id).collect();
    assert_eq!(ids, [cid(1), cid(2), cid(4), cid(6)]);
    // Dormant: 7 (400 days). Coverage of overdue: 6 of 7 tracked.
    let d = r.dormant.value().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].contact.id, d[0].days_since), (cid(7), 400));
    assert_eq!(r.overdue.coverage().unwrap().known, 6);
    let h = headlines(&compute_all(&inp));
    assert_eq!(h[0].code, "strategic_overdue");
    assert_eq!(h[0].severity, Severity::Alert);
    assert_eq!(
        h[0].message,
        "3 strategic ties overdue (1 linked to a priority-1 goal)"
    );
}

#[test]
fn cooling_is_below_its_past_and_below_the_median() {
    // 1: meeting 100 days ago: now 2 * 2^(-100/90) = 0.926, then 2 * 2^(-10/90) = 1.852.
    // 2: meeting now: 2 (then 0). 3: both: now 2.926, then 1.852.
    // Median now = 2: only 1 is cooling.
    let contacts = [contact(1), contact(2), contact(3)];
    let interactions = [
        meeting(100, InteractionKind::Meeting, &[1]),
        meeting(0, InteractionKind::Meeting, &[2]),
        meeting(0, InteractionKind::Meeting, &[3]),
        meeting(100, InteractionKind::Meeting, &[3]),
    ];
    let settings = Settings::default();
    let r = reconnect::compute(&input(&contacts, &interactions, &[], &settings));
    let c = r.cooling.value().unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].contact.id, cid(1));
    assert!(close(c[0].strength, 0.926) && close(c[0].strength_before, 1.852));
}

#[test]
fn goals_states_and_outside_share() {
    let contacts = [
        with(contact(1), |c| c.inside_org = Some(false)),
        with(contact(2), |c| c.inside_org = Some(true)),
        contact(3),
    ];
    let interactions = [
        meeting(10, InteractionKind::Meeting, &[1]),
        meeting(100, InteractionKind::Meeting, &[3]),
    ];
    let goal = |n: u128, priority: u8, links: &[u128]| Goal {
        id: GoalId::from_u128(n),
        title: format!("G{n}"),
        priority,
        status: GoalStatus::Active,
        contacts: links.iter().map(|&l| cid(l)).collect(),
        created_ms: NOW,
        updated_ms: NOW,
    };
    // G1 moving (1 active of 1,2,3; outside 1 of 2 known; coverage 2/3);
    // G2 stalled (3 last seen 100 days ago); G3 no network (unknown id only).
    let goals = [goal(3, 3, &[99]), goal(2, 2, &[3]), goal(1, 1, &[1, 2, 3])];
    let settings = Settings::default();
    let g = goals::compute(&input(&contacts, &interactions, &goals, &settings));
    let g = g.value().unwrap();
    let states: Vec<GoalState> = g.iter().map(|g| g.state).collect();
    assert_eq!(
        states,
        [GoalState::Moving, GoalState::Stalled, GoalState::NoNetwork]
    );
    assert_eq!(g[0].active_linked, 1);
    assert!(close(*g[0].outside_share.value().unwrap(), 0.5));
    assert!(matches!(g[2].outside_share, Metric::NoData { .. }));
}

#[test]
fn together_share_of_strategic_ties() {
    let contacts: Vec<Contact> = (1..=4).map(|n| circle(n, Circle::Strategic)).collect();
    let mut linked = meeting(20, InteractionKind::Meeting, &[2]);
    linked.project = Some(kith_model::ids::ProjectId::from_u128(9));
    let interactions = [
        meeting(10, InteractionKind::ProjectWork, &[1]),
        meeting(400, InteractionKind::ProjectWork, &[3]),
        linked,
        meeting(5, InteractionKind::Call, &[4]),
    ];
    let settings = Settings::default();
    let t = together::compute(&input(&contacts, &interactions, &[], &settings));
    let t = t.value().unwrap();
    // 1 (project work) and 2 (meeting linked to a project) within 365 days; 3 too old.
    assert_eq!((t.strategic.with_shared_work, t.strategic.total), (2, 4));
    assert!(close(t.strategic.share.unwrap(), 0.5));
    assert_eq!(t.contacts.len(), 2);
}

#[test]
fn follow_ups_due_overdue_and_done() {
    let today = chrono::DateTime::from_timestamp_millis(NOW)
        .unwrap()
        .date_naive();
    let fu = |n: u128, due: Option<chrono::NaiveDate>, done: Option<i64>| FollowUp {
        id: FollowUpId::from_u128(n),
        text: format!("F{n}"),
        due,
        done_ms: done,
    };
    let mut a = meeting(5, InteractionKind::Meeting, &[1]);
    for f in [
        fu(1, today.pred_opt(), None),
        fu(2, Some(today), None),
        fu(3, today.succ_opt(), None),
        fu(4, None, None),
        fu(5, today.pred_opt(), Some(NOW - 10 * DAY_MS)),
        fu(6, today.pred_opt(), Some(NOW - 40 * DAY_MS)),
    ] {
        a.follow_ups.insert(f.id, f);
    }
    let mut deleted = meeting(5, InteractionKind::Meeting, &[1]);
    deleted.deleted_ms = Some(NOW);
    deleted
        .follow_ups
        .insert(FollowUpId::from_u128(7), fu(7, today.pred_opt(), None));
    let contacts = [contact(1)];
    let interactions = [a, deleted];
    let settings = Settings::default();
    let f = follow_ups::compute(&input(&contacts, &interactions, &[], &settings));
    let f = f.value().unwrap();
    assert_eq!(f.overdue.len(), 1);
    assert_eq!(
        (f.overdue[0].text.as_str(), f.overdue[0].days_overdue),
        ("F1", 1)
    );
    assert_eq!(f.due_today.len(), 1);
    assert_eq!(
        (f.open_total, f.open_without_due, f.done_recently),
        (4, 1, 1)
    );
    assert_eq!(f.overdue[0].with[0].id, cid(1));
}

#[test]
fn archived_merged_deleted_and_future_records_are_handled() {
    let contacts = [
        contact(1),
        with(contact(2), |c| c.merged_into = Some(cid(1))),
        with(contact(3), |c| c.archived = true),
    ];
    let mut deleted = meeting(0, InteractionKind::ProjectWork, &[1]);
    deleted.deleted_ms = Some(NOW);
    let interactions = [
        // Merged 2 counts for 1; archived 3 does not count (but is in |P|).
        meeting(0, InteractionKind::Meeting, &[2, 3, 5, 6]),
        deleted,
        meeting(-5, InteractionKind::ProjectWork, &[1]),
    ];
    let settings = Settings::default();
    let r = compute_all(&input(&contacts, &interactions, &[], &settings));
    let s = r.strength.value().unwrap();
    assert_eq!(s.contacts.len(), 1);
    assert_eq!(s.contacts[0].id, cid(1));
    assert!(close(s.contacts[0].strength, 1.0));
    let t = &r.totals;
    assert_eq!(
        (t.contacts_live, t.contacts_merged, t.contacts_archived),
        (1, 1, 1)
    );
    assert_eq!((t.interactions_deleted, t.interactions_future), (1, 1));
    assert_eq!(t.interactions_considered, 1);
}

#[test]
fn empty_network_is_no_data_everywhere() {
    let settings = Settings::default();
    let r = compute_all(&input(&[], &[], &[], &settings));
    assert!(matches!(r.strength, Metric::NoData { .. }));
    assert!(matches!(r.circle_balance, Metric::NoData { .. }));
    assert!(matches!(
        r.composition.active.discipline,
        Metric::NoData { .. }
    ));
    assert!(matches!(r.composition.core.circle, Metric::NoData { .. }));
    assert!(matches!(r.reach.organisation, Metric::NoData { .. }));
    assert!(matches!(r.grid, Metric::NoData { .. }));
    assert!(matches!(r.reciprocity, Metric::NoData { .. }));
    assert!(matches!(r.initiative, Metric::NoData { .. }));
    assert!(matches!(r.functions, Metric::NoData { .. }));
    assert!(matches!(r.reconnect.overdue, Metric::NoData { .. }));
    assert!(matches!(r.reconnect.cooling, Metric::NoData { .. }));
    assert!(matches!(r.goals, Metric::NoData { .. }));
    assert!(matches!(r.together, Metric::NoData { .. }));
    assert!(matches!(r.follow_ups, Metric::NoData { .. }));
    let h = headlines(&r);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].code, "no_data");
    let json = serde_json::to_string(&r).unwrap();
    let back: InsightsReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
}

#[test]
fn synthetic_network_gives_a_full_report() {
    let net = generate(&SynthParams::new(400, 8_000, 5, NOW));
    let inp = InsightsInput {
        contacts: &net.contacts,
        interactions: &net.interactions,
        goals: &net.goals,
        settings: &net.settings,
        now_ms: NOW,
        params: InsightsParams::default(),
    };
    let r = compute_all(&inp);
    assert!(r.strength.value().is_some());
    assert!(r.circle_balance.value().is_some());
    assert!(r.composition.active.discipline.value().is_some());
    assert!(r.composition.active.seniority.value().is_some());
    assert!(r.composition.core.organisation.value().is_some());
    assert!(r.reach.discipline.value().is_some());
    assert!(r.grid.value().is_some());
    assert!(r.reciprocity.value().is_some());
    assert!(r.initiative.value().is_some());
    assert!(r.functions.value().is_some());
    assert!(r.reconnect.neglected_strategic.value().is_some());
    assert!(r.goals.value().is_some());
    assert!(r.together.value().is_some());
    assert!(r.follow_ups.value().is_some());
    assert_eq!(
        r.strength
            .value()
            .unwrap()
            .contacts
            .iter()
            .filter(|c| c.in_core)
            .count(),
        15
    );
    let h = headlines(&r);
    assert!(h.iter().any(|f| f.code == "goal_no_network"), "{h:#?}");
    assert!(h.windows(2).all(|w| w[0].severity <= w[1].severity));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["circle_balance"]["state"], "value");
}

// ---------------------------------------------------------------- properties

/// (days ago, kind, initiator, participants, exchanges (what, gave, with),
/// deleted, follow-up (due in days, done)).
type InteractionSpec = (
    i16,
    u8,
    u8,
    Vec<u8>,
    Vec<(u8, bool, Option<u8>)>,
    bool,
    Option<(i16, bool)>,
);

#[derive(Debug, Clone)]
struct Spec {
    contacts: Vec<(u8, u8, u8, u8, u8, Option<u16>)>,
    interactions: Vec<InteractionSpec>,
    goals: Vec<(u8, u8, Vec<u8>)>,
    target: Option<u8>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let contact = (
        0u8..8,
        0u8..4,
        0u8..3,
        0u8..8,
        0u8..20,
        proptest::option::of(0u16..200),
    );
    let interaction = (
        -20i16..800,
        0u8..8,
        0u8..4,
        prop::collection::vec(0u8..14, 0..5),
        prop::collection::vec((0u8..5, any::<bool>(), proptest::option::of(0u8..14)), 0..4),
        prop::bool::weighted(0.05),
        proptest::option::of((-60i16..60, any::<bool>())),
    );
    (
        prop::collection::vec(contact, 0..12),
        prop::collection::vec(interaction, 0..40),
        prop::collection::vec((1u8..4, 0u8..3, prop::collection::vec(0u8..14, 0..4)), 0..3),
        proptest::option::of(0u8..=100),
    )
        .prop_map(|(contacts, interactions, goals, target)| Spec {
            contacts,
            interactions,
            goals,
            target,
        })
}

const DISCIPLINES: [&str; 6] = ["medicine", "nursing", "Nursing", "pharmacy", "IT", " "];

fn build(s: &Spec) -> (Vec<Contact>, Vec<Interaction>, Vec<Goal>, Settings) {
    let contacts = s
        .contacts
        .iter()
        .enumerate()
        .map(|(n, &(d, sen, org, circles, flags, cadence))| {
            with(contact(n as u128 + 1), |c| {
                c.discipline = DISCIPLINES.get(usize::from(d)).map(|d| d.to_string());
                c.seniority = Seniority::ALL[usize::from(sen)];
                c.inside_org = [Some(true), Some(false), None][usize::from(org)];
                for (bit, f) in Circle::ALL.iter().enumerate() {
                    if circles & (1 << bit) != 0 {
                        c.circles.insert(*f);
                    }
                }
                c.archived = flags == 0;
                if flags == 1 {
                    c.merged_into = Some(cid(1));
                }
                c.cadence_days = cadence.map(u32::from);
            })
        })
        .collect();
    let interactions = s
        .interactions
        .iter()
        .enumerate()
        .map(|(n, (days, kind, init, who, ex, del, fu))| {
            let mut i = meeting(
                i64::from(*days),
                InteractionKind::ALL[usize::from(*kind)],
                &[],
            );
            i.id = InteractionId::from_u128(n as u128 + 1);
            i.participants = who.iter().map(|&w| cid(u128::from(w) + 1)).collect();
            i.initiator = Initiator::ALL[usize::from(*init)];
            i.exchanges = ex
                .iter()
                .enumerate()
                .map(|(k, &(what, gave, w))| Exchange {
                    id: ExchangeId::from_u128(k as u128),
                    what: ExchangeWhat::ALL[usize::from(what)],
                    direction: if gave {
                        Direction::Gave
                    } else {
                        Direction::Received
                    },
                    with: w.map(|w| cid(u128::from(w) + 1)),
                })
                .collect();
            if *del {
                i.deleted_ms = Some(NOW);
            }
            if let Some((due, done)) = fu {
                let today = chrono::DateTime::from_timestamp_millis(NOW)
                    .unwrap()
                    .date_naive();
                let due = today.checked_add_signed(chrono::Duration::days(i64::from(*due)));
                let f = FollowUp {
                    id: FollowUpId::from_u128(1),
                    text: "x".into(),
                    due,
                    done_ms: done.then_some(NOW - DAY_MS),
                };
                i.follow_ups.insert(f.id, f);
            }
            i
        })
        .collect();
    let goals = s
        .goals
        .iter()
        .enumerate()
        .map(|(n, (priority, status, links))| Goal {
            id: GoalId::from_u128(n as u128 + 1),
            title: format!("G{n}"),
            priority: *priority,
            status: GoalStatus::ALL[usize::from(*status)],
            contacts: links.iter().map(|&l| cid(u128::from(l) + 1)).collect(),
            created_ms: NOW,
            updated_ms: NOW,
        })
        .collect();
    let settings = Settings {
        my_discipline: Some("nursing".into()),
        strategic_target: s.target.map(|t| f64::from(t) / 100.0),
        core_size: 3,
        ..Settings::default()
    };
    (contacts, interactions, goals, settings)
}

fn unit(x: f64) -> bool {
    (0.0..=1.0 + 1e-12).contains(&x)
}

fn check_coverage<T>(m: &Metric<T>) {
    if let Some(c) = m.coverage() {
        assert!(c.known <= c.total && unit(c.share));
    }
    if let Metric::Value { coverage, .. } = m {
        assert!(coverage.share >= 0.5 && coverage.known > 0);
    }
}

fn check_diversity(m: &Metric<composition::Diversity>) {
    check_coverage(m);
    if let Some(d) = m.value() {
        let k = f64::from(d.k);
        assert!(d.blau >= 0.0 && d.blau <= 1.0 - 1.0 / k + 1e-12, "{d:?}");
        assert!(d.blau_normalised.is_none_or(unit));
        assert!(d.evenness.is_none_or(unit));
        assert!(d.range <= d.k);
        let sum: f64 = d.categories.iter().map(|c| c.share).sum();
        assert!((sum - 1.0).abs() < 1e-9);
    }
}

fn check_bounds(r: &InsightsReport) {
    if let Some(s) = r.strength.value() {
        assert!(
            s.contacts
                .iter()
                .all(|c| c.strength.is_finite() && c.strength >= 0.0)
        );
        assert!(
            s.contacts
                .windows(2)
                .all(|w| w[0].strength >= w[1].strength)
        );
    }
    check_coverage(&r.circle_balance);
    if let Some(b) = r.circle_balance.value() {
        assert!(unit(b.evenness));
        assert!(
            b.circles
                .iter()
                .all(|c| unit(c.share) && unit(c.effort_share))
        );
        assert!(b.strategic_gap.is_none_or(unit));
    }
    for set in [&r.composition.active, &r.composition.core] {
        check_diversity(&set.discipline);
        check_diversity(&set.seniority);
        check_diversity(&set.organisation);
        check_diversity(&set.circle);
    }
    for e in [
        &r.reach.organisation,
        &r.reach.discipline,
        &r.reach.seniority,
    ] {
        check_coverage(e);
        if let Some(e) = e.value() {
            assert!((-1.0..=1.0).contains(&e.ei));
        }
    }
    if let Some(g) = r.grid.value() {
        assert!(unit(g.non_empty_share));
    }
    check_coverage(&r.reciprocity);
    if let Some(x) = r.reciprocity.value() {
        assert!((-1.0..=1.0).contains(&x.network_balance));
    }
    if let Some(i) = r.initiative.value() {
        assert!(i.balance.is_none_or(|b| (-1.0..=1.0).contains(&b)));
    }
    if let Some(list) = r.reconnect.overdue.value() {
        assert!(
            list.iter()
                .all(|t| t.overdue_ratio >= 1.0 && t.score.is_finite())
        );
    }
    if let Some(t) = r.together.value() {
        assert!(t.strategic.share.is_none_or(unit) && t.core.share.is_none_or(unit));
    }
    // A NaN or infinite f64 serialises as null and then fails to deserialise.
    let json = serde_json::to_string(r).unwrap();
    serde_json::from_str::<InsightsReport>(&json).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn metrics_stay_in_bounds_and_never_panic(s in spec()) {
        let (contacts, interactions, goals, settings) = build(&s);
        let r = compute_all(&input(&contacts, &interactions, &goals, &settings));
        check_bounds(&r);
        let _ = headlines(&r);
    }

    #[test]
    fn results_do_not_depend_on_record_order(s in spec(), rot in 0usize..50) {
        let (contacts, interactions, goals, settings) = build(&s);
        let a = compute_all(&input(&contacts, &interactions, &goals, &settings));
        let mut c2 = contacts.clone();
        c2.reverse();
        if !c2.is_empty() {
            let k = rot % c2.len();
            c2.rotate_left(k);
        }
        let mut i2 = interactions.clone();
        i2.reverse();
        if !i2.is_empty() {
            let k = rot % i2.len();
            i2.rotate_left(k);
        }
        let mut g2 = goals.clone();
        g2.reverse();
        let b = compute_all(&input(&c2, &i2, &g2, &settings));
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(headlines(&a), headlines(&b));
    }

    #[test]
    fn each_metric_alone_equals_its_part_of_compute_all(s in spec()) {
        let (contacts, interactions, goals, settings) = build(&s);
        let inp = input(&contacts, &interactions, &goals, &settings);
        let r = compute_all(&inp);
        prop_assert_eq!(&strength::compute(&inp), &r.strength);
        prop_assert_eq!(&circles::compute(&inp), &r.circle_balance);
        prop_assert_eq!(&composition::compute(&inp), &r.composition);
        prop_assert_eq!(&reach::compute(&inp), &r.reach);
        prop_assert_eq!(&grid::compute(&inp), &r.grid);
        prop_assert_eq!(&reciprocity::compute(&inp), &r.reciprocity);
        prop_assert_eq!(&reconnect::compute(&inp), &r.reconnect);
        prop_assert_eq!(&goals::compute(&inp), &r.goals);
        prop_assert_eq!(&together::compute(&inp), &r.together);
        prop_assert_eq!(&follow_ups::compute(&inp), &r.follow_ups);
        prop_assert_eq!(&functions::compute(&inp), &r.functions);
    }

    #[test]
    fn evenness_and_blau_bounds_for_any_counts(counts in prop::collection::vec(0u32..1000, 1..12)) {
        let k = u32::try_from(counts.len()).unwrap();
        if let Some(b) = metric::blau(&counts) {
            prop_assert!(b >= 0.0 && b <= 1.0 - 1.0 / f64::from(k) + 1e-12);
        }
        prop_assert!(metric::blau_normalised(&counts, k).is_none_or(unit));
        prop_assert!(metric::evenness(&counts, k).is_none_or(unit));
        let three = [counts[0], *counts.get(1).unwrap_or(&0), *counts.get(2).unwrap_or(&0)];
        prop_assert!(unit(circles::circle_evenness(three)));
    }

    #[test]
    fn ei_and_reciprocity_bounds(e in any::<u32>(), i in any::<u32>()) {
        if let Some(x) = metric::ei_index(e, i) {
            prop_assert!((-1.0..=1.0).contains(&x));
        }
        let b = reciprocity::classify(e, i);
        let v = u64::from(e) + u64::from(i);
        if v < 3 {
            prop_assert_eq!(b, Balance::Undefined);
        } else if b == Balance::Balanced {
            prop_assert!(3 * u64::from(e.abs_diff(i)) <= v);
        }
    }
}

#[test]
fn extreme_times_and_parameters_do_not_panic() {
    let net = generate(&SynthParams::new(40, 300, 2, NOW));
    for now_ms in [i64::MIN, -1, 0, NOW, i64::MAX] {
        for params in [
            InsightsParams::default(),
            InsightsParams {
                composition_window_days: 0,
                activity_window_days: u32::MAX,
                reciprocity_window_days: u32::MAX,
                half_life_days: 0,
                cooling_lookback_days: u32::MAX,
                dormant_after_days: 0,
                follow_up_done_window_days: u32::MAX,
                coverage_min: f64::NAN,
                utc_offset_minutes: i32::MIN,
            },
        ] {
            let settings = Settings {
                core_size: if now_ms == 0 { 0 } else { u32::MAX },
                strategic_target: Some(f64::INFINITY),
                ..net.settings.clone()
            };
            let inp = InsightsInput {
                contacts: &net.contacts,
                interactions: &net.interactions,
                goals: &net.goals,
                settings: &settings,
                now_ms,
                params,
            };
            let r = compute_all(&inp);
            check_bounds(&r);
            let _ = headlines(&r);
            let html = html::render_html(&r, &HtmlOptions::default());
            assert!(!html.contains("NaN"));
            let _ = text::render_text(&r, 3);
        }
    }
}

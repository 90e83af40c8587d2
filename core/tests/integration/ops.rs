//! Every operation, its effect on queries, and every error case. After an
//! error, the index and the stored chunks are compared to before: nothing
//! may have been written.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use kith_core::model::{
    Circle, ContactPoint, Direction, ExchangeWhat, GoalStatus, InteractionKind, ProjectStatus,
    Seniority, Settings,
};
use kith_core::{
    ContactId, ContactPatch, ContactQuery, ContactSort, DocId, FollowUpFilter, FollowUpId, GoalId,
    GoalPatch, InteractionId, InteractionPatch, NewContact, NewExchange, NewFollowUp, NewGoal,
    NewInteraction, NewProject, OpError, ParticipantRef, ProjectId, ProjectPatch, Store,
    TimelineQuery,
};

use crate::{fresh, meeting, person};

/// Everything observable about the stored state: index rows and chunk metadata.
fn snapshot(store: &Store) -> String {
    let mut s = format!("{:?}", store.index_dump().unwrap());
    for d in store.doc_ids().unwrap() {
        s.push_str(&format!("{d}: {:?}\n", store.doc_meta(d).unwrap()));
    }
    s
}

/// Asserts that `f` fails with an error matching `pred` and writes nothing.
fn refused<T: std::fmt::Debug>(
    store: &mut Store,
    f: impl FnOnce(&mut Store) -> Result<T, OpError>,
    pred: impl FnOnce(&OpError) -> bool,
) {
    let before = snapshot(store);
    let err = f(store).unwrap_err();
    assert!(pred(&err), "unexpected error: {err:?}");
    assert!(!err.to_string().is_empty());
    assert_eq!(before, snapshot(store), "an error wrote something: {err}");
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[test]
fn add_edit_archive_unarchive_contact() {
    let (_d, mut s) = fresh();
    let c = s
        .add_contact(NewContact {
            name: "  Ana Lima ".into(),
            organisation: Some("St Mary".into()),
            circles: [Circle::Operational].into(),
            emails: vec![
                ContactPoint {
                    value: "b@x.org".into(),
                    label: "".into(),
                },
                ContactPoint {
                    value: "a@x.org".into(),
                    label: "work".into(),
                },
                ContactPoint {
                    value: "a@x.org".into(),
                    label: "dup".into(),
                },
            ],
            seniority: Some(Seniority::Senior),
            notes: "met at the audit".into(),
            ..NewContact::default()
        })
        .unwrap();
    assert_eq!(c.name, "Ana Lima");
    assert_eq!(c.emails.len(), 2, "emails are deduplicated by value");
    assert_eq!(c.emails[0].label, "work");
    assert_eq!(s.contact(c.id).unwrap(), c);

    let e = s
        .edit_contact(
            c.id,
            ContactPatch {
                role: Some(Some("Charge nurse".into())),
                organisation: Some(None),
                tags: Some(["audit".to_string()].into()),
                notes: Some("met at the audit, likes data".into()),
                ..ContactPatch::default()
            },
        )
        .unwrap();
    assert_eq!(e.role.as_deref(), Some("Charge nurse"));
    assert_eq!(e.organisation, None);
    assert_eq!(e.notes, "met at the audit, likes data");
    assert!(e.updated_ms >= c.updated_ms);
    assert_eq!(s.contact(c.id).unwrap(), e);
    // A patch that changes nothing writes nothing.
    let before = snapshot(&s);
    s.edit_contact(c.id, ContactPatch::default()).unwrap();
    assert_eq!(before, snapshot(&s));

    let a = s.archive_contact(c.id).unwrap();
    assert!(a.archived);
    assert!(s.contacts(&ContactQuery::default()).unwrap().is_empty());
    let all = ContactQuery {
        include_archived: true,
        ..ContactQuery::default()
    };
    assert_eq!(s.contacts(&all).unwrap().len(), 1);
    let u = s.unarchive_contact(c.id).unwrap();
    assert!(!u.archived);
    assert_eq!(s.contacts(&ContactQuery::default()).unwrap().len(), 1);
}

#[test]
fn contact_errors_write_nothing() {
    let (_d, mut s) = fresh();
    let c = person(&mut s, "Ana");
    refused(
        &mut s,
        |s| s.add_contact(NewContact::named("   ")),
        |e| matches!(e, OpError::EmptyName),
    );
    refused(
        &mut s,
        |s| s.add_contact(NewContact::named("x".repeat(600))),
        |e| matches!(e, OpError::Invalid { field: "name", .. }),
    );
    refused(
        &mut s,
        |s| {
            s.add_contact(NewContact {
                emails: vec![ContactPoint {
                    value: " ".into(),
                    label: "".into(),
                }],
                ..NewContact::named("Bo")
            })
        },
        |e| {
            matches!(
                e,
                OpError::Invalid {
                    field: "emails",
                    ..
                }
            )
        },
    );
    refused(
        &mut s,
        |s| {
            s.add_contact(NewContact {
                birthday: Some(kith_core::model::PartialDate {
                    year: None,
                    month: 2,
                    day: 31,
                }),
                ..NewContact::named("Bo")
            })
        },
        |e| {
            matches!(
                e,
                OpError::Invalid {
                    field: "birthday",
                    ..
                }
            )
        },
    );
    let ghost = ContactId::new();
    refused(
        &mut s,
        |s| {
            s.edit_contact(
                ghost,
                ContactPatch {
                    name: Some("x".into()),
                    ..Default::default()
                },
            )
        },
        |e| matches!(e, OpError::UnknownContact(id) if *id == ghost),
    );
    refused(
        &mut s,
        |s| {
            s.edit_contact(
                c.id,
                ContactPatch {
                    name: Some("".into()),
                    ..Default::default()
                },
            )
        },
        |e| matches!(e, OpError::EmptyName),
    );
    refused(
        &mut s,
        |s| s.archive_contact(ghost),
        |e| matches!(e, OpError::UnknownContact(_)),
    );
    refused(
        &mut s,
        |s| s.unarchive_contact(ghost),
        |e| matches!(e, OpError::UnknownContact(_)),
    );
    assert!(matches!(s.contact(ghost), Err(OpError::UnknownContact(_))));
}

#[test]
fn contact_list_sorts_and_pages() {
    let (_d, mut s) = fresh();
    let carla = person(&mut s, "Carla");
    let ana = person(&mut s, "ána");
    let bo = person(&mut s, "Bo");
    let names =
        |v: Vec<kith_core::model::Contact>| v.into_iter().map(|c| c.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.contacts(&ContactQuery::default()).unwrap()),
        ["ána", "Bo", "Carla"]
    );
    let page = ContactQuery {
        offset: 1,
        limit: 1,
        ..ContactQuery::default()
    };
    assert_eq!(names(s.contacts(&page).unwrap()), ["Bo"]);
    s.log_interaction(NewInteraction {
        at_ms: Some(1_000),
        ..meeting("old", &[bo.id])
    })
    .unwrap();
    s.log_interaction(NewInteraction {
        at_ms: Some(2_000),
        ..meeting("new", &[carla.id])
    })
    .unwrap();
    let by_last = ContactQuery {
        sort: ContactSort::LastInteraction,
        ..ContactQuery::default()
    };
    assert_eq!(names(s.contacts(&by_last).unwrap()), ["Carla", "Bo", "ána"]);
    let st = s.contact_stats(bo.id).unwrap();
    assert_eq!(
        (st.last_interaction_ms, st.interaction_count),
        (Some(1_000), 1)
    );
    assert_eq!(s.contact_stats(ana.id).unwrap().interaction_count, 0);
    assert_eq!(s.contacts_named("ANA").unwrap()[0].id, ana.id);
}

#[test]
fn log_interaction_by_id_and_name_with_exchanges_and_follow_ups() {
    let (_d, mut s) = fresh();
    let ana = person(&mut s, "Ana Lima");
    let p = s
        .add_project(NewProject {
            name: "Rota".into(),
            description: "".into(),
            status: ProjectStatus::Active,
        })
        .unwrap();
    let i = s
        .log_interaction(NewInteraction {
            at_ms: Some(1_700_000_000_000),
            offset_minutes: 60,
            kind: InteractionKind::Meal,
            initiator: kith_core::model::Initiator::Them,
            participants: vec![ParticipantRef::Name("ana  LIMA".into())],
            summary: "Lunch".into(),
            notes: "Talked about the rota".into(),
            project: Some(p.id),
            exchanges: vec![NewExchange {
                what: ExchangeWhat::Feedback,
                direction: Direction::Received,
                with: Some(ParticipantRef::Id(ana.id)),
            }],
            follow_ups: vec![NewFollowUp {
                text: "send draft".into(),
                due: Some(day(2023, 11, 20)),
            }],
            create_missing: false,
        })
        .unwrap();
    assert_eq!(i.participants, [ana.id].into());
    assert_eq!(i.exchanges[0].with, Some(ana.id));
    assert_eq!(i.project, Some(p.id));
    assert_eq!(
        DocId::for_interaction(i.id),
        DocId::for_time(1_700_000_000_000)
    );
    assert_eq!(s.interaction(i.id).unwrap(), i);
    let tl = s
        .timeline(&TimelineQuery {
            contact: Some(ana.id),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(tl, vec![i.clone()]);

    // Unknown names: a typed error listing them, nothing written.
    refused(
        &mut s,
        |s| {
            s.log_interaction(NewInteraction {
                participants: vec![
                    ParticipantRef::Name("Zed".into()),
                    ParticipantRef::Id(ana.id),
                    ParticipantRef::Name("Yan".into()),
                ],
                ..meeting("x", &[])
            })
        },
        |e| matches!(e, OpError::UnknownNames { names } if names == &["Zed", "Yan"]),
    );
    // create_missing: contacts are created in the same write, once per name.
    let j = s
        .log_interaction(NewInteraction {
            participants: vec![
                ParticipantRef::Name("Zed".into()),
                ParticipantRef::Name("zed".into()),
                ParticipantRef::Id(ana.id),
            ],
            create_missing: true,
            ..meeting("team", &[])
        })
        .unwrap();
    assert_eq!(j.participants.len(), 2);
    assert_eq!(s.contacts_named("Zed").unwrap().len(), 1);
}

#[test]
fn log_interaction_errors_write_nothing() {
    let (_d, mut s) = fresh();
    let ana = person(&mut s, "Ana");
    let bo = person(&mut s, "Bo");
    let _twin = person(&mut s, "bo");
    refused(
        &mut s,
        |s| s.log_interaction(meeting(" ", &[ana.id])),
        |e| matches!(e, OpError::EmptySummary),
    );
    refused(
        &mut s,
        |s| s.log_interaction(meeting("x", &[])),
        |e| matches!(e, OpError::NoParticipants),
    );
    let ghost = ContactId::new();
    refused(
        &mut s,
        |s| s.log_interaction(meeting("x", &[ghost])),
        |e| matches!(e, OpError::UnknownContact(id) if *id == ghost),
    );
    refused(
        &mut s,
        |s| {
            s.log_interaction(NewInteraction {
                participants: vec![ParticipantRef::Name("BO".into())],
                ..meeting("x", &[])
            })
        },
        |e| matches!(e, OpError::AmbiguousName { candidates, .. } if candidates.len() == 2),
    );
    refused(
        &mut s,
        |s| {
            s.log_interaction(NewInteraction {
                project: Some(ProjectId::new()),
                ..meeting("x", &[ana.id])
            })
        },
        |e| matches!(e, OpError::UnknownProject(_)),
    );
    refused(
        &mut s,
        |s| {
            s.log_interaction(NewInteraction {
                exchanges: vec![NewExchange {
                    what: ExchangeWhat::Insight,
                    direction: Direction::Gave,
                    with: Some(ParticipantRef::Id(bo.id)),
                }],
                ..meeting("x", &[ana.id])
            })
        },
        |e| matches!(e, OpError::ExchangeWithNonParticipant(id) if *id == bo.id),
    );
    refused(
        &mut s,
        |s| {
            s.log_interaction(NewInteraction {
                follow_ups: vec![NewFollowUp {
                    text: "".into(),
                    due: None,
                }],
                ..meeting("x", &[ana.id])
            })
        },
        |e| matches!(e, OpError::EmptyText { .. }),
    );
    refused(
        &mut s,
        |s| {
            s.log_interaction(NewInteraction {
                notes: "n".repeat(300_000),
                ..meeting("x", &[ana.id])
            })
        },
        |e| matches!(e, OpError::Invalid { field: "notes", .. }),
    );
    // create_missing with a bad name is still refused, and creates nobody.
    refused(
        &mut s,
        |s| {
            s.log_interaction(NewInteraction {
                participants: vec![ParticipantRef::Name("New Person".into())],
                create_missing: true,
                ..meeting(" ", &[])
            })
        },
        |e| matches!(e, OpError::EmptySummary),
    );
    assert!(s.contacts_named("New Person").unwrap().is_empty());
}

#[test]
fn edit_delete_undelete_interaction() {
    let (_d, mut s) = fresh();
    let ana = person(&mut s, "Ana");
    let bo = person(&mut s, "Bo");
    let i = s
        .log_interaction(NewInteraction {
            at_ms: Some(5_000),
            ..meeting("call", &[ana.id])
        })
        .unwrap();
    let e = s
        .edit_interaction(
            i.id,
            InteractionPatch {
                at_ms: Some(9_000),
                kind: Some(InteractionKind::Call),
                participants: Some([ana.id, bo.id].into()),
                summary: Some("long call".into()),
                notes: Some("notes".into()),
                ..InteractionPatch::default()
            },
        )
        .unwrap();
    assert_eq!(e.at_ms, 9_000);
    assert_eq!(e.participants.len(), 2);
    assert_eq!(
        DocId::for_interaction(e.id),
        DocId::for_time(5_000),
        "partition does not move"
    );
    assert_eq!(
        s.contact_stats(bo.id).unwrap().last_interaction_ms,
        Some(9_000)
    );
    assert_eq!(s.search("long", 10).unwrap().interactions.len(), 1);

    let d = s.delete_interaction(i.id).unwrap();
    assert!(d.is_deleted());
    assert!(s.timeline(&TimelineQuery::default()).unwrap().is_empty());
    let with_deleted = TimelineQuery {
        include_deleted: true,
        ..Default::default()
    };
    assert_eq!(s.timeline(&with_deleted).unwrap().len(), 1);
    assert_eq!(s.contact_stats(ana.id).unwrap().interaction_count, 0);
    assert!(s.search("long", 10).unwrap().interactions.is_empty());
    let u = s.undelete_interaction(i.id).unwrap();
    assert!(!u.is_deleted());
    assert_eq!(s.timeline(&TimelineQuery::default()).unwrap().len(), 1);
    assert_eq!(s.contact_stats(ana.id).unwrap().interaction_count, 1);

    let ghost = InteractionId::new();
    refused(
        &mut s,
        |s| s.delete_interaction(ghost),
        |e| matches!(e, OpError::UnknownInteraction(_)),
    );
    refused(
        &mut s,
        |s| s.undelete_interaction(ghost),
        |e| matches!(e, OpError::UnknownInteraction(_)),
    );
    refused(
        &mut s,
        |s| {
            s.edit_interaction(
                i.id,
                InteractionPatch {
                    summary: Some("".into()),
                    ..Default::default()
                },
            )
        },
        |e| matches!(e, OpError::EmptySummary),
    );
    refused(
        &mut s,
        |s| {
            s.edit_interaction(
                i.id,
                InteractionPatch {
                    participants: Some(BTreeSet::new()),
                    ..Default::default()
                },
            )
        },
        |e| matches!(e, OpError::NoParticipants),
    );
    refused(
        &mut s,
        |s| {
            s.edit_interaction(
                i.id,
                InteractionPatch {
                    participants: Some([ContactId::new()].into()),
                    ..Default::default()
                },
            )
        },
        |e| matches!(e, OpError::UnknownContact(_)),
    );
    refused(
        &mut s,
        |s| {
            s.edit_interaction(
                i.id,
                InteractionPatch {
                    project: Some(Some(ProjectId::new())),
                    ..Default::default()
                },
            )
        },
        |e| matches!(e, OpError::UnknownProject(_)),
    );
    assert!(matches!(
        s.timeline(&TimelineQuery {
            contact: Some(ContactId::new()),
            ..Default::default()
        }),
        Err(OpError::UnknownContact(_))
    ));
}

#[test]
fn follow_ups_add_complete_reopen_and_filters() {
    let (_d, mut s) = fresh();
    let ana = person(&mut s, "Ana");
    let i = s
        .log_interaction(NewInteraction {
            follow_ups: vec![
                NewFollowUp {
                    text: "early".into(),
                    due: Some(day(2026, 1, 10)),
                },
                NewFollowUp {
                    text: "undated".into(),
                    due: None,
                },
            ],
            ..meeting("m", &[ana.id])
        })
        .unwrap();
    let late = s
        .add_follow_up(
            i.id,
            NewFollowUp {
                text: "late".into(),
                due: Some(day(2026, 3, 1)),
            },
        )
        .unwrap();
    let texts = |v: Vec<kith_core::FollowUpItem>| {
        v.into_iter().map(|f| f.follow_up.text).collect::<Vec<_>>()
    };
    assert_eq!(
        texts(s.follow_ups(FollowUpFilter::Open).unwrap()),
        ["early", "late", "undated"]
    );
    assert_eq!(
        texts(
            s.follow_ups(FollowUpFilter::DueBy(day(2026, 3, 1)))
                .unwrap()
        ),
        ["early", "late"]
    );
    assert_eq!(
        texts(
            s.follow_ups(FollowUpFilter::Overdue {
                today: day(2026, 3, 1)
            })
            .unwrap()
        ),
        ["early"]
    );
    let done = s.complete_follow_up(i.id, late.id).unwrap();
    assert!(done.done_ms.is_some());
    assert_eq!(
        texts(s.follow_ups(FollowUpFilter::Open).unwrap()),
        ["early", "undated"]
    );
    let again = s.reopen_follow_up(i.id, late.id).unwrap();
    assert!(again.done_ms.is_none());
    assert_eq!(s.follow_ups(FollowUpFilter::Open).unwrap().len(), 3);
    // A deleted interaction's follow-ups are not listed.
    s.delete_interaction(i.id).unwrap();
    assert!(s.follow_ups(FollowUpFilter::Open).unwrap().is_empty());
    s.undelete_interaction(i.id).unwrap();

    let ghost = FollowUpId::new();
    refused(
        &mut s,
        |s| s.complete_follow_up(i.id, ghost),
        |e| matches!(e, OpError::UnknownFollowUp { .. }),
    );
    refused(
        &mut s,
        |s| s.reopen_follow_up(i.id, ghost),
        |e| matches!(e, OpError::UnknownFollowUp { .. }),
    );
    refused(
        &mut s,
        |s| {
            s.add_follow_up(
                InteractionId::new(),
                NewFollowUp {
                    text: "x".into(),
                    due: None,
                },
            )
        },
        |e| matches!(e, OpError::UnknownInteraction(_)),
    );
    refused(
        &mut s,
        |s| {
            s.add_follow_up(
                i.id,
                NewFollowUp {
                    text: " ".into(),
                    due: None,
                },
            )
        },
        |e| matches!(e, OpError::EmptyText { .. }),
    );
}

#[test]
fn projects_goals_and_settings() {
    let (_d, mut s) = fresh();
    let ana = person(&mut s, "Ana");
    let p = s
        .add_project(NewProject {
            name: "Audit".into(),
            description: "d".into(),
            status: ProjectStatus::Active,
        })
        .unwrap();
    let p2 = s
        .edit_project(
            p.id,
            ProjectPatch {
                status: Some(ProjectStatus::Done),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(p2.status, ProjectStatus::Done);
    assert_eq!(s.project(p.id).unwrap(), p2);
    assert_eq!(s.all_projects().unwrap(), vec![p2]);
    refused(
        &mut s,
        |s| {
            s.add_project(NewProject {
                name: "".into(),
                description: "".into(),
                status: ProjectStatus::Active,
            })
        },
        |e| matches!(e, OpError::EmptyText { .. }),
    );
    refused(
        &mut s,
        |s| s.edit_project(ProjectId::new(), ProjectPatch::default()),
        |e| matches!(e, OpError::UnknownProject(_)),
    );

    let g = s
        .add_goal(NewGoal {
            title: "Lead the unit".into(),
            priority: 1,
            status: GoalStatus::Active,
            contacts: [ana.id].into(),
        })
        .unwrap();
    let g2 = s
        .edit_goal(
            g.id,
            GoalPatch {
                priority: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(g2.priority, 3);
    assert_eq!(s.goal(g.id).unwrap(), g2);
    assert_eq!(s.all_goals().unwrap(), vec![g2]);
    for bad in [0u8, 4, 255] {
        refused(
            &mut s,
            |s| {
                s.add_goal(NewGoal {
                    title: "x".into(),
                    priority: bad,
                    status: GoalStatus::Active,
                    contacts: BTreeSet::new(),
                })
            },
            |e| matches!(e, OpError::BadPriority(p) if *p == bad),
        );
        refused(
            &mut s,
            |s| {
                s.edit_goal(
                    g.id,
                    GoalPatch {
                        priority: Some(bad),
                        ..Default::default()
                    },
                )
            },
            |e| matches!(e, OpError::BadPriority(_)),
        );
    }
    refused(
        &mut s,
        |s| {
            s.add_goal(NewGoal {
                title: "x".into(),
                priority: 1,
                status: GoalStatus::Active,
                contacts: [ContactId::new()].into(),
            })
        },
        |e| matches!(e, OpError::UnknownContact(_)),
    );
    refused(
        &mut s,
        |s| s.edit_goal(GoalId::new(), GoalPatch::default()),
        |e| matches!(e, OpError::UnknownGoal(_)),
    );

    assert_eq!(s.settings().unwrap(), Settings::default());
    let mut new = Settings {
        my_organisation: Some("St Mary".into()),
        ..Settings::default()
    };
    new.cadence_days.insert(Circle::Strategic, 45);
    new.strategic_target = Some(0.3);
    let stored = s.set_settings(new.clone()).unwrap();
    assert_eq!(stored, new);
    assert_eq!(s.settings().unwrap(), new);
    refused(
        &mut s,
        |s| {
            s.set_settings(Settings {
                strategic_target: Some(1.5),
                ..Settings::default()
            })
        },
        |e| {
            matches!(
                e,
                OpError::Invalid {
                    field: "strategic_target",
                    ..
                }
            )
        },
    );
    refused(
        &mut s,
        |s| {
            s.set_settings(Settings {
                core_size: 0,
                ..Settings::default()
            })
        },
        |e| {
            matches!(
                e,
                OpError::Invalid {
                    field: "core_size",
                    ..
                }
            )
        },
    );
}

#[test]
fn merge_moves_every_reference_and_combines_fields() {
    let (_d, mut s) = fresh();
    let w = s
        .add_contact(NewContact {
            emails: vec![ContactPoint {
                value: "ana@x.org".into(),
                label: "".into(),
            }],
            circles: [Circle::Operational].into(),
            ..NewContact::named("Ana Lima")
        })
        .unwrap();
    let l = s
        .add_contact(NewContact {
            organisation: Some("St Mary".into()),
            emails: vec![ContactPoint {
                value: "ana@home.org".into(),
                label: "".into(),
            }],
            phones: vec![ContactPoint {
                value: "+351 912 345 678".into(),
                label: "".into(),
            }],
            circles: [Circle::Strategic].into(),
            tags: ["icu".to_string()].into(),
            ..NewContact::named("ana lima")
        })
        .unwrap();
    let bo = person(&mut s, "Bo");
    // Interactions in two different quarters reference the loser.
    let i1 = s
        .log_interaction(NewInteraction {
            at_ms: Some(1_600_000_000_000),
            exchanges: vec![NewExchange {
                what: ExchangeWhat::Support,
                direction: Direction::Gave,
                with: Some(ParticipantRef::Id(l.id)),
            }],
            ..meeting("one", &[l.id, bo.id])
        })
        .unwrap();
    let i2 = s
        .log_interaction(NewInteraction {
            at_ms: Some(1_700_000_000_000),
            ..meeting("two", &[l.id])
        })
        .unwrap();
    let g = s
        .add_goal(NewGoal {
            title: "g".into(),
            priority: 2,
            status: GoalStatus::Active,
            contacts: [l.id].into(),
        })
        .unwrap();
    assert_eq!(s.likely_duplicates().unwrap().len(), 1);

    let merged = s.merge_contacts(w.id, l.id).unwrap();
    assert_eq!(merged.organisation.as_deref(), Some("St Mary"));
    assert_eq!(merged.emails.len(), 2);
    assert_eq!(merged.phones.len(), 1);
    assert_eq!(
        merged.circles,
        [Circle::Operational, Circle::Strategic].into()
    );
    assert!(merged.tags.contains("icu"));
    let loser = s.contact(l.id).unwrap();
    assert_eq!(loser.merged_into, Some(w.id));
    assert!(loser.archived);
    let i1 = s.interaction(i1.id).unwrap();
    assert_eq!(i1.participants, [w.id, bo.id].into());
    assert_eq!(i1.exchanges[0].with, Some(w.id));
    assert_eq!(s.interaction(i2.id).unwrap().participants, [w.id].into());
    assert_eq!(s.goal(g.id).unwrap().contacts, [w.id].into());
    assert_eq!(s.contact_stats(w.id).unwrap().interaction_count, 2);
    assert_eq!(s.contact_stats(l.id).unwrap().interaction_count, 0);
    assert!(
        s.likely_duplicates().unwrap().is_empty(),
        "merged contacts are not duplicates"
    );
    let found: Vec<_> = s
        .search("ana lima", 10)
        .unwrap()
        .contacts
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        found,
        [w.id],
        "the merged-away duplicate is not a search hit"
    );
    // Logging by the shared name now finds the winner only.
    let i3 = s
        .log_interaction(NewInteraction {
            participants: vec![ParticipantRef::Name("Ana Lima".into())],
            ..meeting("3", &[])
        })
        .unwrap();
    assert_eq!(i3.participants, [w.id].into());
    // Logging with the loser's id lands on the winner.
    let i4 = s.log_interaction(meeting("4", &[l.id])).unwrap();
    assert_eq!(i4.participants, [w.id].into());

    refused(
        &mut s,
        |s| s.merge_contacts(w.id, w.id),
        |e| matches!(e, OpError::MergeIntoSelf(_)),
    );
    refused(
        &mut s,
        |s| s.merge_contacts(w.id, l.id),
        |e| matches!(e, OpError::AlreadyMerged { .. }),
    );
    refused(
        &mut s,
        |s| s.merge_contacts(w.id, ContactId::new()),
        |e| matches!(e, OpError::UnknownContact(_)),
    );
    refused(
        &mut s,
        |s| s.unarchive_contact(l.id),
        |e| matches!(e, OpError::AlreadyMerged { .. }),
    );
}

#[test]
fn search_is_prefix_case_and_accent_insensitive() {
    let (_d, mut s) = fresh();
    let jose = s
        .add_contact(NewContact {
            organisation: Some("Hôpital Saint-Éloi".into()),
            ..NewContact::named("José Álvarez")
        })
        .unwrap();
    let bo = person(&mut s, "Bo");
    s.log_interaction(NewInteraction {
        notes: "Discussed the Pädiatrie budget".into(),
        ..meeting("Budget review", &[bo.id])
    })
    .unwrap();
    let r = s.search("jos", 10).unwrap();
    assert_eq!(
        r.contacts.iter().map(|c| c.id).collect::<Vec<_>>(),
        [jose.id]
    );
    assert_eq!(s.search("ALVA", 10).unwrap().contacts.len(), 1);
    assert_eq!(s.search("hopital eloi", 10).unwrap().contacts.len(), 1);
    assert_eq!(s.search("paDIAT", 10).unwrap().interactions.len(), 1);
    assert_eq!(s.search("budget rev", 10).unwrap().interactions.len(), 1);
    assert_eq!(s.search("the budget", 10).unwrap().interactions.len(), 1);
    assert!(s.search("budget zzz", 10).unwrap().interactions.is_empty());
    assert!(s.search("", 10).unwrap().contacts.is_empty());
    let sean = person(&mut s, "Seán O'Brien");
    for q in ["obri", "o'bri", "O’Brien", "sean o'b", "brien"] {
        let ids: Vec<_> = s
            .search(q, 10)
            .unwrap()
            .contacts
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, [sean.id], "query {q:?}");
    }
    assert!(s.search("  ,. ", 10).unwrap().contacts.is_empty());
    // Renaming removes the old tokens.
    s.edit_contact(
        jose.id,
        ContactPatch {
            name: Some("Joe Smith".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(s.search("alvarez", 10).unwrap().contacts.is_empty());
    assert_eq!(s.search("smi", 10).unwrap().contacts.len(), 1);
}

#[test]
fn import_records_bulk_path() {
    let (_d, mut s) = fresh();
    let contacts: Vec<_> = (0..50)
        .map(|n| crate::contact_record(&format!("Person {n}")))
        .collect();
    // Logging against a contact that is not imported yet fails.
    refused(
        &mut s,
        |s| s.log_interaction(meeting("seed", &[contacts[0].id])),
        |e| matches!(e, OpError::UnknownContact(_)),
    );
    let mut interactions = Vec::new();
    for n in 0..300i64 {
        let at = 1_600_000_000_000 + n * 86_400_000;
        interactions.push(kith_core::model::Interaction {
            id: InteractionId::new_at(at),
            at_ms: at,
            offset_minutes: 0,
            kind: InteractionKind::Meeting,
            initiator: kith_core::model::Initiator::Me,
            participants: [contacts[(n % 50) as usize].id].into(),
            summary: format!("meeting {n}"),
            notes: "notes".into(),
            notes_conflicts: vec![],
            project: None,
            exchanges: vec![],
            follow_ups: Default::default(),
            created_ms: at,
            updated_ms: at,
            deleted_ms: None,
            event: None,
        });
    }
    let summary = s
        .import_records(contacts.clone(), interactions.clone(), vec![], vec![])
        .unwrap();
    assert_eq!((summary.contacts, summary.interactions), (50, 300));
    assert_eq!(s.all_interactions().unwrap().len(), 300);
    assert_eq!(
        s.contact_stats(contacts[0].id).unwrap().interaction_count,
        6
    );
    assert!(
        s.doc_ids().unwrap().len() > 3,
        "spread over quarter partitions"
    );
    let before = s.index_dump().unwrap();
    s.reindex().unwrap();
    assert_eq!(before, s.index_dump().unwrap());
    // Re-import is an idempotent upsert.
    s.import_records(contacts.clone(), interactions.clone(), vec![], vec![])
        .unwrap();
    assert_eq!(before, s.index_dump().unwrap());

    let mut bad = interactions[0].clone();
    bad.id = InteractionId::new();
    bad.participants = [ContactId::new()].into();
    refused(
        &mut s,
        |s| s.import_records(vec![], vec![bad], vec![], vec![]),
        |e| matches!(e, OpError::UnknownContact(_)),
    );
    let mut empty = contacts[0].clone();
    empty.name = " ".into();
    refused(
        &mut s,
        |s| s.import_records(vec![empty], vec![], vec![], vec![]),
        |e| matches!(e, OpError::EmptyName),
    );
}

#[test]
fn duplicates_are_reported() {
    let (_d, mut s) = fresh();
    let a = s
        .add_contact(NewContact {
            phones: vec![ContactPoint {
                value: "0912 345 678".into(),
                label: "".into(),
            }],
            ..NewContact::named("A")
        })
        .unwrap();
    let b = s
        .add_contact(NewContact {
            phones: vec![ContactPoint {
                value: "+351912345678".into(),
                label: "".into(),
            }],
            ..NewContact::named("B")
        })
        .unwrap();
    person(&mut s, "C");
    let d = s.likely_duplicates().unwrap();
    assert_eq!(d.len(), 1, "{:?}", s.all_contacts().unwrap());
    assert_eq!((d[0].a, d[0].b), (a.id.min(b.id), a.id.max(b.id)));
    assert!(matches!(
        d[0].reasons[0],
        kith_core::DuplicateReason::SamePhone(_)
    ));
}

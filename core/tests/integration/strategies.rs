//! proptest strategies for the domain model, shared by the export and backup tests.

use std::collections::BTreeMap;

use kith_core::model::*;
use kith_core::{ContactId, ExchangeId, FollowUpId, GoalId, InteractionId, ProjectId};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;

/// Printable text without surrounding whitespace (what vCard text fields keep).
pub(crate) fn trimmed(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("\\PC{{1,{max}}}"))
        .unwrap()
        .prop_map(|s| s.trim().to_string())
        .prop_filter("non-empty after trim", |s| !s.is_empty())
}

fn any_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("(\\PC|\n|\t){0,60}").unwrap()
}

fn notes() -> impl Strategy<Value = String> {
    proptest::string::string_regex("(\\PC|\n){0,120}")
        .unwrap()
        .prop_map(|s| {
            if s.trim().is_empty() {
                String::new()
            } else {
                s
            }
        })
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("home".to_string()),
        Just("work".to_string()),
        Just("mobile".to_string()),
        Just("work fax".to_string()),
        Just("pager".to_string()),
        Just("AssistantPhone".to_string()),
        Just("cell".to_string()),
        Just("voice".to_string()),
        Just("Custom, with; punctuation \\ and: colon".to_string()),
        trimmed(20),
    ]
}

fn points(value: &'static str) -> impl Strategy<Value = Vec<ContactPoint>> {
    vec(
        (proptest::string::string_regex(value).unwrap(), label())
            .prop_map(|(value, label)| ContactPoint { value, label }),
        0..4,
    )
    .prop_map(|v| {
        let mut out: Vec<ContactPoint> = Vec::new();
        for p in v {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    })
}

fn partial_date() -> impl Strategy<Value = PartialDate> {
    (
        prop_oneof![
            Just(None),
            (1000i32..=9999)
                .prop_filter("1604 means no year", |y| *y != 1604)
                .prop_map(Some)
        ],
        1u8..=12,
        1u8..=28,
    )
        .prop_map(|(year, month, day)| PartialDate { year, month, day })
}

pub(crate) fn contact_id() -> impl Strategy<Value = ContactId> {
    any::<u128>().prop_map(ContactId::from_u128)
}

fn ms() -> impl Strategy<Value = TimestampMs> {
    0i64..4_102_444_800_000
}

pub(crate) fn contact() -> impl Strategy<Value = Contact> {
    let vcard_fields = (
        contact_id(),
        trimmed(40),
        proptest::option::of(trimmed(20)),
        proptest::option::of(trimmed(20)),
        proptest::option::of(trimmed(30)),
        proptest::option::of(trimmed(30)),
        points("[a-z0-9._%+-]{1,12}@[a-z0-9.-]{1,12}"),
        points("[+0-9][0-9 ()-]{0,14}[0-9]"),
        btree_set(
            proptest::string::string_regex("https?://[a-z0-9./;,-]{1,30}").unwrap(),
            0..3,
        ),
        notes(),
        btree_set(trimmed(15), 0..4),
        proptest::option::of(partial_date()),
    );
    let other_fields = (
        proptest::option::of(any_text()),
        prop::sample::select(Seniority::ALL),
        proptest::option::of(any::<bool>()),
        btree_set(prop::sample::select(Circle::ALL), 0..3),
        proptest::option::of(any_text()),
        proptest::option::of(
            (2000i32..2030, 1u32..=12, 1u32..=28)
                .prop_map(|(y, m, d)| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()),
        ),
        proptest::option::of(1u32..1000),
        (
            ms(),
            ms(),
            any::<bool>(),
            proptest::option::of(contact_id()),
        ),
        btree_set(any_text(), 0..3),
    );
    (vcard_fields, other_fields).prop_map(
        |(
            (
                id,
                name,
                given_name,
                family_name,
                organisation,
                role,
                emails,
                phones,
                urls,
                notes,
                tags,
                birthday,
            ),
            (
                discipline,
                seniority,
                inside_org,
                circles,
                how_we_met,
                first_met,
                cadence_days,
                (created_ms, updated_ms, archived, merged_into),
                import_keys,
            ),
        )| Contact {
            id,
            name,
            given_name,
            family_name,
            organisation,
            role,
            discipline,
            seniority,
            inside_org,
            circles,
            tags,
            emails,
            phones,
            urls,
            how_we_met,
            first_met,
            birthday,
            notes,
            cadence_days,
            created_ms,
            updated_ms,
            archived,
            merged_into,
            import_keys,
            merge_base: Default::default(),
            merged_from: Vec::new(),
            conflicts: Vec::new(),
        },
    )
}

fn exchange() -> impl Strategy<Value = Exchange> {
    (
        any::<u128>(),
        prop::sample::select(ExchangeWhat::ALL),
        prop::sample::select(Direction::ALL),
        proptest::option::of(contact_id()),
    )
        .prop_map(|(id, what, direction, with)| Exchange {
            id: ExchangeId::from_u128(id),
            what,
            direction,
            with,
        })
}

fn follow_ups() -> impl Strategy<Value = BTreeMap<FollowUpId, FollowUp>> {
    btree_map(
        any::<u128>().prop_map(FollowUpId::from_u128),
        (
            any_text(),
            proptest::option::of((2020i32..2030, 1u32..=12, 1u32..=28)),
            proptest::option::of(ms()),
        ),
        0..3,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(id, (text, due, done_ms))| {
                let due = due.and_then(|(y, mo, d)| chrono::NaiveDate::from_ymd_opt(y, mo, d));
                (
                    id,
                    FollowUp {
                        id,
                        text,
                        due,
                        done_ms,
                    },
                )
            })
            .collect()
    })
}

pub(crate) fn interaction() -> impl Strategy<Value = Interaction> {
    (
        (
            any::<u128>(),
            ms(),
            -720i16..=840,
            prop::sample::select(InteractionKind::ALL),
            prop::sample::select(Initiator::ALL),
        ),
        (
            btree_set(contact_id(), 0..4),
            trimmed(40),
            any_text(),
            vec(any_text(), 0..2),
        ),
        (
            proptest::option::of(any::<u128>().prop_map(ProjectId::from_u128)),
            vec(exchange(), 0..3),
            follow_ups(),
        ),
        (
            ms(),
            ms(),
            proptest::option::of(ms()),
            proptest::option::of(event_ref()),
        ),
    )
        .prop_map(
            |(
                (id, at_ms, offset_minutes, kind, initiator),
                (participants, summary, notes, notes_conflicts),
                (project, exchanges, follow_ups),
                (created_ms, updated_ms, deleted_ms, event),
            )| Interaction {
                id: InteractionId::from_u128(id),
                at_ms,
                offset_minutes,
                kind,
                initiator,
                participants,
                summary,
                notes,
                notes_conflicts,
                project,
                exchanges,
                follow_ups,
                created_ms,
                updated_ms,
                deleted_ms,
                event,
            },
        )
}

/// A calendar event reference (logged meetings), from a small set so that edits hit the same one.
fn event_ref() -> impl Strategy<Value = kith_core::model::EventRef> {
    (
        prop::sample::select(vec!["ics", "Work calendar"]),
        prop::sample::select(vec!["a@x", "b@x", "c@x"]),
        proptest::option::of(prop::sample::select(vec!["20260105T090000Z"])),
    )
        .prop_map(|(source, uid, rec)| kith_core::model::EventRef {
            source: source.into(),
            uid: uid.into(),
            recurrence_id: rec.map(String::from),
        })
}

pub(crate) fn project() -> impl Strategy<Value = Project> {
    (
        any::<u128>(),
        trimmed(30),
        any_text(),
        prop::sample::select(ProjectStatus::ALL),
        ms(),
        ms(),
    )
        .prop_map(
            |(id, name, description, status, created_ms, updated_ms)| Project {
                id: ProjectId::from_u128(id),
                name,
                description,
                status,
                created_ms,
                updated_ms,
            },
        )
}

pub(crate) fn goal() -> impl Strategy<Value = Goal> {
    (
        any::<u128>(),
        trimmed(30),
        1u8..=3,
        prop::sample::select(GoalStatus::ALL),
        btree_set(contact_id(), 0..3),
        ms(),
        ms(),
    )
        .prop_map(
            |(id, title, priority, status, contacts, created_ms, updated_ms)| Goal {
                id: GoalId::from_u128(id),
                title,
                priority,
                status,
                contacts,
                created_ms,
                updated_ms,
            },
        )
}

pub(crate) fn settings() -> impl Strategy<Value = Settings> {
    (
        proptest::option::of(any_text()),
        proptest::option::of(any_text()),
        btree_map(prop::sample::select(Circle::ALL), 1u32..400, 0..3),
        proptest::option::of(0.0f64..=1.0),
        0u32..100,
    )
        .prop_map(
            |(my_organisation, my_discipline, cadence_days, strategic_target, core_size)| {
                Settings {
                    my_organisation,
                    my_discipline,
                    cadence_days,
                    strategic_target,
                    core_size,
                    ..Settings::default()
                }
            },
        )
}

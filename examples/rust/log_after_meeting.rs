//! Right after a meeting: open (or create) a store, log who was there, what
//! kind of meeting, a few lines of notes, what was exchanged and a follow-up,
//! then read the contact's timeline and the open follow-ups back.
//!
//! Run: `cargo run -p kith-examples --example log_after_meeting [DATA_DIR]`
//! (a temporary directory when no DATA_DIR is given).

// An example's whole point is to print what it did.
#![allow(clippy::print_stdout)]

use std::collections::BTreeSet;

use anyhow::Context;
use kith_core::model::{Circle, Direction, ExchangeWhat, Initiator, InteractionKind};
use kith_core::{
    FollowUpFilter, NewContact, NewExchange, NewFollowUp, NewInteraction, ParticipantRef, Store,
    TimelineQuery,
};

fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args().nth(1).map(std::path::PathBuf::from);
    let dir = dir.as_deref().unwrap_or(tmp.path());
    let mut store = Store::open(dir).with_context(|| format!("opening {}", dir.display()))?;

    let zoe = store.add_contact(NewContact {
        organisation: Some("St Mary's".into()),
        role: Some("Head of Pharmacy".into()),
        discipline: Some("pharmacy".into()),
        circles: BTreeSet::from([Circle::Strategic]),
        ..NewContact::named("Zoë Åberg")
    })?;

    let due = chrono::Utc::now().date_naive() + chrono::Days::new(3);
    let logged = store.log_interaction(NewInteraction {
        kind: InteractionKind::Meal,
        initiator: Initiator::Me,
        participants: vec![
            ParticipantRef::Id(zoe.id),
            // Someone new: created in the same durable write.
            ParticipantRef::Name("Bruno Lima".into()),
        ],
        create_missing: true,
        summary: "Coffee about the formulary".into(),
        notes: "Support for a pilot on two wards; present to the committee first.".into(),
        exchanges: vec![
            NewExchange {
                what: ExchangeWhat::Information,
                direction: Direction::Gave,
                with: None,
            },
            NewExchange {
                what: ExchangeWhat::Insight,
                direction: Direction::Received,
                with: Some(ParticipantRef::Id(zoe.id)),
            },
        ],
        follow_ups: vec![NewFollowUp {
            text: "Send the audit deck".into(),
            due: Some(due),
        }],
        ..NewInteraction::default()
    })?;
    // The call above returned, so the interaction is on disk.
    println!(
        "logged {} ({} participants)",
        logged.id,
        logged.participants.len()
    );

    let timeline = store.timeline(&TimelineQuery {
        contact: Some(zoe.id),
        ..TimelineQuery::default()
    })?;
    for i in &timeline {
        println!("timeline of {}: {} [{}]", zoe.name, i.summary, i.kind);
    }
    for f in store.follow_ups(FollowUpFilter::Open)? {
        let due = f
            .follow_up
            .due
            .map(|d| d.to_string())
            .unwrap_or_else(|| "no date".into());
        println!(
            "follow-up: {} (due {due}) from '{}'",
            f.follow_up.text, f.summary
        );
    }
    store.close()?;
    Ok(())
}

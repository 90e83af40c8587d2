//! One pass over the records that every metric reads from.
//!
//! `Prepared::new` filters the input down to what insights look at, resolves
//! references, and accumulates per-contact statistics in a single sweep over
//! the interaction log, so `compute_all` costs one pass plus small per-metric
//! work. Rules applied here, once, for every metric:
//! - archived contacts and contacts merged into another are not ties; an
//!   interaction that names a merged contact counts for the contact it was
//!   merged into (following `merged_into` at most `MERGE_DEPTH_MAX` (16) steps);
//! - deleted (tombstoned) interactions are ignored, and so are interactions
//!   after `now` (planned, or clock skew) except by the follow-up metric;
//! - interactions are processed in a canonical order (time, then id) and
//!   contacts are kept sorted by id, so results do not depend on input order,
//!   down to the last bit of every floating-point sum.

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::{InsightsInput, InsightsParams};
use kith_model::ids::{ContactId, ProjectId};
use kith_model::model::{
    Circle, Contact, Direction, ExchangeWhat, Goal, Initiator, Interaction, InteractionKind,
    Settings, TimestampMs,
};

/// Milliseconds in a day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// How many `merged_into` hops are followed before giving up (a cycle or a
/// pathological chain must not loop).
pub(crate) const MERGE_DEPTH_MAX: usize = 16;

/// Index of an exchange function in [`ExchangeWhat::ALL`] order.
pub(crate) fn what_index(what: ExchangeWhat) -> usize {
    match what {
        ExchangeWhat::Support => 0,
        ExchangeWhat::Feedback => 1,
        ExchangeWhat::Insight => 2,
        ExchangeWhat::Resources => 3,
        ExchangeWhat::Information => 4,
    }
}

/// Index of an initiator in [`Initiator::ALL`] order.
pub(crate) fn initiator_index(who: Initiator) -> usize {
    match who {
        Initiator::Me => 0,
        Initiator::Them => 1,
        Initiator::Mutual => 2,
        Initiator::Unknown => 3,
    }
}

/// Relationship weight of an interaction kind in the strength formula.
pub(crate) fn kind_weight(kind: InteractionKind) -> f64 {
    match kind {
        InteractionKind::ProjectWork => 3.0,
        InteractionKind::Meeting | InteractionKind::Meal => 2.0,
        InteractionKind::Call => 1.5,
        InteractionKind::Message
        | InteractionKind::Email
        | InteractionKind::Event
        | InteractionKind::Other => 1.0,
    }
}

/// Whether an interaction is "doing things together": project work, or any
/// interaction linked to a project.
pub(crate) fn is_together(i: &Interaction) -> bool {
    i.kind == InteractionKind::ProjectWork || i.project.is_some()
}

/// Contribution of one interaction to a participant's strength at time `at_ms`
/// (0 for interactions after `at_ms`).
pub(crate) fn strength_term(
    kind: InteractionKind,
    participants: usize,
    interaction_ms: TimestampMs,
    at_ms: TimestampMs,
    half_life_ms: f64,
) -> f64 {
    if interaction_ms > at_ms || participants == 0 {
        return 0.0;
    }
    let age_ms = at_ms.saturating_sub(interaction_ms) as f64;
    kind_weight(kind) / (participants as f64).sqrt() * (-age_ms / half_life_ms).exp2()
}

/// Per-contact accumulators filled by the single sweep.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContactStats {
    /// Time of the last interaction at or before now.
    pub(crate) last_ms: Option<TimestampMs>,
    /// Strength at now.
    pub(crate) strength_now: f64,
    /// Strength at now minus the cooling look-back.
    pub(crate) strength_then: f64,
    /// Interactions in the composition window (365 days).
    pub(crate) interactions_window: u32,
    /// Interactions in the activity window (90 days).
    pub(crate) interactions_activity: u32,
    /// "Doing things together" interactions in the composition window.
    pub(crate) together_window: u32,
    /// Distinct projects of those interactions.
    pub(crate) projects_window: Vec<ProjectId>,
    /// Exchanges given, per function, in the reciprocity window.
    pub(crate) given: [u32; 5],
    /// Exchanges received, per function, in the reciprocity window.
    pub(crate) received: [u32; 5],
    /// Interactions by initiator (me, them, mutual, unknown) in the reciprocity window.
    pub(crate) initiative: [u32; 4],
}

impl ContactStats {
    pub(crate) fn given_total(&self) -> u32 {
        self.given.iter().sum()
    }
    pub(crate) fn received_total(&self) -> u32 {
        self.received.iter().sum()
    }
}

/// Counts of what was filtered out, reported so a reader can trust the numbers.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    /// Contacts in the input.
    pub contacts_total: u32,
    /// Contacts insights look at (not archived, not merged).
    pub contacts_live: u32,
    /// Archived contacts (excluded).
    pub contacts_archived: u32,
    /// Contacts merged into another (excluded; their interactions count for the target).
    pub contacts_merged: u32,
    /// Interactions in the input.
    pub interactions_total: u32,
    /// Deleted interactions (excluded everywhere).
    pub interactions_deleted: u32,
    /// Interactions after now (excluded except for follow-ups).
    pub interactions_future: u32,
    /// Interactions the metrics look at.
    pub interactions_considered: u32,
    /// Contacts with an interaction in the composition window (A_365).
    pub active_window: u32,
    /// Contacts with an interaction in the activity window (A_90).
    pub active_activity: u32,
}

/// Everything the metrics read, computed once.
#[derive(Debug)]
pub(crate) struct Prepared<'a> {
    pub(crate) settings: &'a Settings,
    pub(crate) goals: &'a [Goal],
    pub(crate) now_ms: TimestampMs,
    pub(crate) params: InsightsParams,
    /// Live contacts, sorted by id.
    pub(crate) contacts: Vec<&'a Contact>,
    /// Stats, parallel to `contacts`.
    pub(crate) stats: Vec<ContactStats>,
    /// Live and merged ids to the index of the live contact they stand for.
    pub(crate) by_id: HashMap<ContactId, usize>,
    /// Non-deleted interactions (including future ones), sorted by (time, id).
    pub(crate) interactions: Vec<&'a Interaction>,
    /// Per function: sorted indices of contacts it was received from in the window.
    pub(crate) received_from: [Vec<usize>; 5],
    /// Network-wide initiator counts (me, them, mutual, unknown) in the window.
    pub(crate) initiative: [u32; 4],
    /// Contacts with at least one interaction up to now, by strength (desc), then id.
    pub(crate) by_strength: Vec<usize>,
    /// The core: the first `core_size` of `by_strength`.
    pub(crate) core: Vec<usize>,
    /// Median strength now over contacts with any interaction up to now.
    pub(crate) median_strength: Option<f64>,
    pub(crate) totals: Totals,
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<'a> Prepared<'a> {
    /// Filters, resolves and sweeps the input once.
    pub(crate) fn new(input: &InsightsInput<'a>) -> Prepared<'a> {
        let params = input.params.sanitised();
        let now_ms = input.now_ms;
        let mut totals = Totals {
            contacts_total: count(input.contacts.len()),
            interactions_total: count(input.interactions.len()),
            ..Totals::default()
        };

        // Live contacts, sorted by id; duplicates of an id keep the first seen.
        let mut contacts: Vec<&Contact> = Vec::with_capacity(input.contacts.len());
        for c in input.contacts {
            if c.merged_into.is_some() {
                totals.contacts_merged += 1;
            } else if c.archived {
                totals.contacts_archived += 1;
            } else {
                contacts.push(c);
            }
        }
        contacts.sort_by_key(|c| c.id);
        contacts.dedup_by_key(|c| c.id);
        totals.contacts_live = count(contacts.len());

        let mut by_id: HashMap<ContactId, usize> = contacts
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();
        let merged_into: HashMap<ContactId, ContactId> = input
            .contacts
            .iter()
            .filter_map(|c| c.merged_into.map(|to| (c.id, to)))
            .collect();
        for (&from, &first) in &merged_into {
            let mut to = first;
            for _ in 0..MERGE_DEPTH_MAX {
                if let Some(&idx) = by_id.get(&to) {
                    by_id.entry(from).or_insert(idx);
                    break;
                }
                match merged_into.get(&to) {
                    Some(&next) => to = next,
                    None => break,
                }
            }
        }

        let mut interactions: Vec<&Interaction> = input
            .interactions
            .iter()
            .filter(|i| !i.is_deleted())
            .collect();
        totals.interactions_deleted = totals.interactions_total - count(interactions.len());
        interactions.sort_by_key(|i| (i.at_ms, i.id));

        let day = |days: u32| i64::from(days).saturating_mul(DAY_MS);
        let window_from = now_ms.saturating_sub(day(params.composition_window_days));
        let activity_from = now_ms.saturating_sub(day(params.activity_window_days));
        let reciprocity_from = now_ms.saturating_sub(day(params.reciprocity_window_days));
        let then_ms = now_ms.saturating_sub(day(params.cooling_lookback_days));
        let half_life_ms = day(params.half_life_days) as f64;

        let mut stats = vec![ContactStats::default(); contacts.len()];
        let mut received_from: [Vec<usize>; 5] = Default::default();
        let mut initiative = [0u32; 4];
        let mut who: Vec<usize> = Vec::with_capacity(8);
        for i in &interactions {
            if i.at_ms > now_ms {
                totals.interactions_future += 1;
                continue;
            }
            totals.interactions_considered += 1;
            who.clear();
            who.extend(i.participants.iter().filter_map(|p| by_id.get(p).copied()));
            who.sort_unstable();
            who.dedup();
            let n = i.participants.len();
            let in_window = i.at_ms >= window_from;
            let in_activity = i.at_ms >= activity_from;
            let in_reciprocity = i.at_ms >= reciprocity_from;
            let together = is_together(i);
            let term_now = strength_term(i.kind, n, i.at_ms, now_ms, half_life_ms);
            let term_then = strength_term(i.kind, n, i.at_ms, then_ms, half_life_ms);
            let init = initiator_index(i.initiator);
            if in_reciprocity {
                initiative[init] += 1;
            }
            for &c in &who {
                let s = &mut stats[c];
                s.last_ms = Some(s.last_ms.map_or(i.at_ms, |l| l.max(i.at_ms)));
                s.strength_now += term_now;
                s.strength_then += term_then;
                if in_window {
                    s.interactions_window += 1;
                    if together {
                        s.together_window += 1;
                        if let Some(p) = i.project {
                            s.projects_window.push(p);
                        }
                    }
                }
                if in_activity {
                    s.interactions_activity += 1;
                }
                if in_reciprocity {
                    s.initiative[init] += 1;
                }
            }
            if !in_reciprocity {
                continue;
            }
            for e in &i.exchanges {
                let w = what_index(e.what);
                let mut credit = |c: usize| {
                    let s = &mut stats[c];
                    match e.direction {
                        Direction::Gave => s.given[w] += 1,
                        Direction::Received => {
                            s.received[w] += 1;
                            received_from[w].push(c);
                        }
                    }
                };
                match e.with {
                    // Credit the named person only if they took part; an exchange
                    // "with" someone absent is a data error and is not counted.
                    Some(with) => {
                        if let Some(&c) = by_id.get(&with)
                            && who.binary_search(&c).is_ok()
                        {
                            credit(c);
                        }
                    }
                    None => who.iter().copied().for_each(&mut credit),
                }
            }
        }
        for r in &mut received_from {
            r.sort_unstable();
            r.dedup();
        }
        for s in &mut stats {
            s.projects_window.sort_unstable();
            s.projects_window.dedup();
            if s.interactions_window > 0 {
                totals.active_window += 1;
            }
            if s.interactions_activity > 0 {
                totals.active_activity += 1;
            }
        }

        let mut by_strength: Vec<usize> = (0..contacts.len())
            .filter(|&c| stats[c].last_ms.is_some())
            .collect();
        by_strength.sort_by(|&a, &b| {
            stats[b]
                .strength_now
                .total_cmp(&stats[a].strength_now)
                .then(contacts[a].id.cmp(&contacts[b].id))
        });
        let core_size = usize::try_from(input.settings.core_size).unwrap_or(usize::MAX);
        let core = by_strength.iter().copied().take(core_size).collect();
        let mut strengths: Vec<f64> = by_strength.iter().map(|&c| stats[c].strength_now).collect();
        let median_strength = super::metric::median(&mut strengths);

        Prepared {
            settings: input.settings,
            goals: input.goals,
            now_ms,
            params,
            contacts,
            stats,
            by_id,
            interactions,
            received_from,
            initiative,
            by_strength,
            core,
            median_strength,
            totals,
        }
    }

    /// Whether contact `c` is in A_365 (an interaction in the composition window).
    pub(crate) fn active(&self, c: usize) -> bool {
        self.stats[c].interactions_window > 0
    }

    /// Indices of A_365, ascending.
    pub(crate) fn active_set(&self) -> Vec<usize> {
        (0..self.contacts.len())
            .filter(|&c| self.active(c))
            .collect()
    }

    /// Today's date in the user's local offset.
    pub(crate) fn today(&self) -> NaiveDate {
        let local_ms = self
            .now_ms
            .saturating_add(i64::from(self.params.utc_offset_minutes) * 60_000);
        chrono::DateTime::from_timestamp_millis(local_ms)
            .map(|d| d.date_naive())
            .unwrap_or_default()
    }

    /// Whether contact `c` is in circle `f`.
    pub(crate) fn in_circle(&self, c: usize, f: Circle) -> bool {
        self.contacts[c].circles.contains(&f)
    }

    /// Summary of contact `c` for lists.
    pub(crate) fn contact_ref(&self, c: usize) -> ContactRef {
        let contact = self.contacts[c];
        ContactRef {
            id: contact.id,
            name: contact.name.clone(),
        }
    }
}

/// A contact as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContactRef {
    /// The contact.
    pub id: ContactId,
    /// Its display name when computed.
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_of_the_issue_example_is_2_595() {
        // Project work 30 days ago alone with c: 3 * 2^(-30/90) = 2.3811;
        // a message 200 days ago alone: 1 * 2^(-200/90) = 0.2143. Sum 2.5954.
        let now = 1_000 * DAY_MS;
        let h = (90 * DAY_MS) as f64;
        let s = strength_term(InteractionKind::ProjectWork, 1, now - 30 * DAY_MS, now, h)
            + strength_term(InteractionKind::Message, 1, now - 200 * DAY_MS, now, h);
        assert!((s - 2.595).abs() < 1e-3, "{s}");
    }

    #[test]
    fn strength_divides_by_the_root_of_the_group_size_and_ignores_the_future() {
        let now = 1_000 * DAY_MS;
        let h = (90 * DAY_MS) as f64;
        // A meeting now with 4 people: 2 / sqrt(4) = 1.
        let s = strength_term(InteractionKind::Meeting, 4, now, now, h);
        assert!((s - 1.0).abs() < 1e-12);
        // A call exactly one half-life ago: 1.5 / 2.
        let s = strength_term(InteractionKind::Call, 1, now - 90 * DAY_MS, now, h);
        assert!((s - 0.75).abs() < 1e-12);
        assert_eq!(
            strength_term(InteractionKind::Call, 1, now + 1, now, h),
            0.0
        );
        assert_eq!(strength_term(InteractionKind::Call, 0, now, now, h), 0.0);
    }
}

//! Goals: is there a network behind each active goal?
//!
//! For every active goal: the linked current contacts (merged ids resolve to
//! the contact they were merged into), those active in the activity window
//! (A_90), and a state: no linked contact -> "no network", none active ->
//! "stalled", else "moving". Plus the share of linked contacts outside my
//! organisation (coverage: linked contacts whose inside/outside flag is known).
//! Goals are listed by priority (1 first), then title.

use serde::{Deserialize, Serialize};

use crate::InsightsInput;
use crate::metric::{Coverage, Metric, ratio};
use crate::prepare::{ContactRef, Prepared};
use kith_model::ids::GoalId;
use kith_model::model::GoalStatus;

/// The state of a goal's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalState {
    /// No contact linked.
    NoNetwork,
    /// Linked contacts, none active in the last 90 days.
    Stalled,
    /// At least one linked contact active in the last 90 days.
    Moving,
}

/// One active goal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoalInsight {
    /// The goal.
    pub id: GoalId,
    /// The goal's title.
    pub title: String,
    /// 1 (highest) to 3.
    pub priority: u8,
    /// Linked contacts that are current (not archived or merged).
    pub linked: Vec<ContactRef>,
    /// How many of `linked` had an interaction in the activity window (A_90).
    pub active_linked: u32,
    /// No network, stalled or moving.
    pub state: GoalState,
    /// Share of linked contacts outside my organisation.
    pub outside_share: Metric<f64>,
}

/// Insights for every active goal.
pub fn compute(input: &InsightsInput<'_>) -> Metric<Vec<GoalInsight>> {
    from_prepared(&Prepared::new(input))
}

pub(crate) fn from_prepared(p: &Prepared<'_>) -> Metric<Vec<GoalInsight>> {
    let mut goals: Vec<_> = p
        .goals
        .iter()
        .filter(|g| g.status == GoalStatus::Active)
        .collect();
    goals.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then_with(|| a.title.cmp(&b.title))
            .then(a.id.cmp(&b.id))
    });
    goals.dedup_by_key(|g| g.id);
    if goals.is_empty() {
        return Metric::no_data("no active goal");
    }
    let list = goals
        .iter()
        .map(|g| {
            let mut linked: Vec<usize> = g
                .contacts
                .iter()
                .filter_map(|id| p.by_id.get(id).copied())
                .collect();
            linked.sort_unstable();
            linked.dedup();
            let active = linked
                .iter()
                .filter(|&&c| p.stats[c].interactions_activity > 0)
                .count();
            let active_linked = u32::try_from(active).unwrap_or(u32::MAX);
            let state = if linked.is_empty() {
                GoalState::NoNetwork
            } else if active == 0 {
                GoalState::Stalled
            } else {
                GoalState::Moving
            };
            let known: Vec<bool> = linked
                .iter()
                .filter_map(|&c| p.contacts[c].inside_org)
                .collect();
            let outside = u32::try_from(known.iter().filter(|&&i| !i).count()).unwrap_or(0);
            let known_n = u32::try_from(known.len()).unwrap_or(u32::MAX);
            let total = u32::try_from(linked.len()).unwrap_or(u32::MAX);
            GoalInsight {
                id: g.id,
                title: g.title.clone(),
                priority: g.priority,
                linked: linked.iter().map(|&c| p.contact_ref(c)).collect(),
                active_linked,
                state,
                outside_share: Metric::gated(
                    Coverage::new(known_n, total),
                    p.params.coverage_min,
                    "no contact linked to this goal",
                    || ratio(outside, known_n).unwrap_or(0.0),
                ),
            }
        })
        .collect();
    Metric::Value {
        coverage: Coverage::full(u32::try_from(goals.len()).unwrap_or(u32::MAX)),
        value: list,
    }
}

//! Relationship strength per contact: recency- and frequency-weighted.
//!
//! `s(c, T) = sum over interactions i with c at or before T of
//! w(kind_i) * |P_i|^(-1/2) * 2^(-(T - t_i) / h)`, h = `half_life_days` (90).
//! The weights and the per-interaction term live in [`super::prepare`]; this
//! module turns the accumulated sums into the ranked list every other view
//! (core, cooling, the network map) builds on.

use serde::{Deserialize, Serialize};

use crate::InsightsInput;
use crate::metric::{Coverage, Metric};
use crate::prepare::Prepared;
use kith_model::ids::ContactId;
use kith_model::model::{Circle, Seniority, TimestampMs};

/// One contact's strength, with the attributes charts colour and place it by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactStrength {
    /// The contact.
    pub id: ContactId,
    /// Its display name.
    pub name: String,
    /// Its circles, in vocabulary order.
    pub circles: Vec<Circle>,
    /// Its discipline, when known.
    pub discipline: Option<String>,
    /// Its seniority.
    pub seniority: Seniority,
    /// Inside my organisation; `None` when not known.
    pub inside_org: Option<bool>,
    /// Strength now.
    pub strength: f64,
    /// Strength `cooling_lookback_days` ago.
    pub strength_before: f64,
    /// Last interaction at or before now.
    pub last_ms: Option<TimestampMs>,
    /// Interactions in the composition window (365 days).
    pub interactions_window: u32,
    /// Among the `core_size` strongest ties.
    pub in_core: bool,
}

/// Every contact with at least one interaction, strongest first (ties by id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrengthReport {
    /// Per contact, strongest first.
    pub contacts: Vec<ContactStrength>,
    /// Live contacts with no interaction at all.
    pub never_contacted: u32,
    /// Median strength over `contacts`.
    pub median: Option<f64>,
}

/// Strength of every tie.
pub fn compute(input: &InsightsInput<'_>) -> Metric<StrengthReport> {
    from_prepared(&Prepared::new(input))
}

pub(crate) fn from_prepared(p: &Prepared<'_>) -> Metric<StrengthReport> {
    let live = u32::try_from(p.contacts.len()).unwrap_or(u32::MAX);
    if p.by_strength.is_empty() {
        return Metric::no_data("no interaction logged with any current contact");
    }
    let core_len = p.core.len();
    let contacts = p
        .by_strength
        .iter()
        .enumerate()
        .map(|(rank, &c)| {
            let contact = p.contacts[c];
            let s = &p.stats[c];
            ContactStrength {
                id: contact.id,
                name: contact.name.clone(),
                circles: contact.circles.iter().copied().collect(),
                discipline: contact.discipline.clone(),
                seniority: contact.seniority,
                inside_org: contact.inside_org,
                strength: s.strength_now,
                strength_before: s.strength_then,
                last_ms: s.last_ms,
                interactions_window: s.interactions_window,
                in_core: rank < core_len,
            }
        })
        .collect::<Vec<_>>();
    let never_contacted = live - u32::try_from(contacts.len()).unwrap_or(u32::MAX);
    Metric::Value {
        coverage: Coverage::full(live),
        value: StrengthReport {
            contacts,
            never_contacted,
            median: p.median_strength,
        },
    }
}

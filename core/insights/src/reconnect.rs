//! The reconnect list: who to get back in touch with, and why.
//!
//! Overdue ratio `o = (now - last interaction) / cadence`, with the contact's
//! own cadence else the shortest default of its circles (settings); contacts
//! with neither are not tracked. A contact never contacted is shown as "never";
//! its clock runs from when it was added, so a contact added yesterday is not
//! overdue yet. The clock resets on every logged interaction and never on a
//! reminder (there is no other input to it). Four lists:
//! - overdue: `o >= 1`, strategic first, then operational, personal; within a
//!   circle the strongest ties first;
//! - neglected strategic ties: strategic circle and `o >= 1`, ranked by
//!   `o * g` where g = 4 - (highest priority among the active goals linked to
//!   the contact) (priority 1 -> 3, 2 -> 2, 3 -> 1) and 1 with no active goal;
//!   ties with a history come before never-contacted ones (a fading
//!   relationship is more actionable than a name never met);
//! - cooling: strength now below strength `cooling_lookback_days` ago and below
//!   the median strength, largest drop first;
//! - dormant: last interaction `dormant_after_days` (365) or more ago, most
//!   recently active first.

use serde::{Deserialize, Serialize};

use crate::InsightsInput;
use crate::metric::{Coverage, Metric};
use crate::prepare::{ContactRef, DAY_MS, Prepared};
use kith_model::model::{Circle, GoalStatus, TimestampMs};

/// A tie past its cadence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverdueTie {
    /// The tie.
    pub contact: ContactRef,
    /// Its circles, in vocabulary order.
    pub circles: Vec<Circle>,
    /// The cadence that applies (its own, else the shortest of its circles').
    pub cadence_days: u32,
    /// Last interaction; `None`: never contacted.
    pub last_ms: Option<TimestampMs>,
    /// Whole days since the last interaction (or since the contact was added).
    pub days_since: i64,
    /// `o`; for a never-contacted tie, measured from when it was added.
    pub overdue_ratio: f64,
    /// Never contacted: no interaction at all.
    pub never: bool,
    /// Strength now (0 when never contacted).
    pub strength: f64,
    /// Highest priority (1 = highest) among active goals linked to the tie.
    pub goal_priority: Option<u8>,
    /// Rank score: `o * g` (see the module docs).
    pub score: f64,
}

/// A tie whose strength is falling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoolingTie {
    /// The tie.
    pub contact: ContactRef,
    /// Strength now, below the median.
    pub strength: f64,
    /// Strength `cooling_lookback_days` ago, above `strength`.
    pub strength_before: f64,
    /// Last interaction at or before now.
    pub last_ms: Option<TimestampMs>,
}

/// A tie without interaction for a long time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DormantTie {
    /// The tie.
    pub contact: ContactRef,
    /// Last interaction.
    pub last_ms: TimestampMs,
    /// Whole days since it; at least `dormant_after_days`.
    pub days_since: i64,
}

/// The four reconnect lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconnect {
    /// Coverage: current contacts with a cadence (own or from a circle).
    pub overdue: Metric<Vec<OverdueTie>>,
    /// Coverage: strategic contacts with a cadence.
    pub neglected_strategic: Metric<Vec<OverdueTie>>,
    /// Coverage: contacts with any interaction (always complete).
    pub cooling: Metric<Vec<CoolingTie>>,
    /// Coverage: contacts with any interaction (always complete).
    pub dormant: Metric<Vec<DormantTie>>,
}

/// The goal weight g for a highest linked priority (see module docs).
pub fn goal_weight(priority: Option<u8>) -> f64 {
    match priority {
        Some(p) => f64::from(4 - p.clamp(1, 3)),
        None => 1.0,
    }
}

/// Overdue ratio of a tie: days since `since_ms` over the cadence.
pub fn overdue_ratio(now_ms: TimestampMs, since_ms: TimestampMs, cadence_days: u32) -> f64 {
    let cadence_ms = i64::from(cadence_days.max(1)).saturating_mul(DAY_MS) as f64;
    (now_ms.saturating_sub(since_ms).max(0) as f64) / cadence_ms
}

fn circle_rank(circles: &[Circle]) -> u8 {
    if circles.contains(&Circle::Strategic) {
        0
    } else if circles.contains(&Circle::Operational) {
        1
    } else if circles.contains(&Circle::Personal) {
        2
    } else {
        3
    }
}

/// The reconnect lists.
pub fn compute(input: &InsightsInput<'_>) -> Reconnect {
    from_prepared(&Prepared::new(input))
}

pub(crate) fn from_prepared(p: &Prepared<'_>) -> Reconnect {
    let n = p.contacts.len();
    // Highest active-goal priority per contact (merged ids resolve to the target).
    let mut priority: Vec<Option<u8>> = vec![None; n];
    for g in p.goals.iter().filter(|g| g.status == GoalStatus::Active) {
        for id in &g.contacts {
            if let Some(&c) = p.by_id.get(id) {
                let pr = g.priority.clamp(1, 3);
                priority[c] = Some(priority[c].map_or(pr, |x| x.min(pr)));
            }
        }
    }

    let mut tracked = 0u32;
    let mut strategic = 0u32;
    let mut strategic_tracked = 0u32;
    let mut overdue = Vec::new();
    for (c, &contact) in p.contacts.iter().enumerate() {
        let is_strategic = p.in_circle(c, Circle::Strategic);
        strategic += u32::from(is_strategic);
        let Some(cadence_days) = p.settings.cadence_for(contact) else {
            continue;
        };
        tracked += 1;
        strategic_tracked += u32::from(is_strategic);
        let s = &p.stats[c];
        let since_ms = s.last_ms.unwrap_or(contact.created_ms);
        let o = overdue_ratio(p.now_ms, since_ms, cadence_days);
        if o < 1.0 {
            continue;
        }
        overdue.push(OverdueTie {
            contact: p.contact_ref(c),
            circles: contact.circles.iter().copied().collect(),
            cadence_days,
            last_ms: s.last_ms,
            days_since: p.now_ms.saturating_sub(since_ms) / DAY_MS,
            overdue_ratio: o,
            never: s.last_ms.is_none(),
            strength: s.strength_now,
            goal_priority: priority[c],
            score: o * goal_weight(priority[c]),
        });
    }
    let mut neglected: Vec<OverdueTie> = overdue
        .iter()
        .filter(|t| t.circles.contains(&Circle::Strategic))
        .cloned()
        .collect();
    neglected.sort_by(|a, b| {
        a.never
            .cmp(&b.never)
            .then(b.score.total_cmp(&a.score))
            .then(a.contact.id.cmp(&b.contact.id))
    });
    overdue.sort_by(|a, b| {
        circle_rank(&a.circles)
            .cmp(&circle_rank(&b.circles))
            .then(b.strength.total_cmp(&a.strength))
            .then(b.overdue_ratio.total_cmp(&a.overdue_ratio))
            .then(a.contact.id.cmp(&b.contact.id))
    });

    let with_history = u32::try_from(p.by_strength.len()).unwrap_or(u32::MAX);
    let history = Coverage::full(with_history);
    let no_history = "no interaction logged with any current contact";
    let cooling = match p.median_strength {
        None => Metric::no_data(no_history),
        Some(median) => {
            let mut list: Vec<CoolingTie> = p
                .by_strength
                .iter()
                .filter(|&&c| {
                    let s = &p.stats[c];
                    s.strength_now < s.strength_then && s.strength_now < median
                })
                .map(|&c| CoolingTie {
                    contact: p.contact_ref(c),
                    strength: p.stats[c].strength_now,
                    strength_before: p.stats[c].strength_then,
                    last_ms: p.stats[c].last_ms,
                })
                .collect();
            list.sort_by(|a, b| {
                (b.strength_before - b.strength)
                    .total_cmp(&(a.strength_before - a.strength))
                    .then(a.contact.id.cmp(&b.contact.id))
            });
            Metric::Value {
                coverage: history,
                value: list,
            }
        }
    };
    let dormant_ms = i64::from(p.params.dormant_after_days).saturating_mul(DAY_MS);
    let dormant = if with_history == 0 {
        Metric::no_data(no_history)
    } else {
        let mut list: Vec<DormantTie> = p
            .by_strength
            .iter()
            .filter_map(|&c| {
                let last = p.stats[c].last_ms?;
                let age = p.now_ms.saturating_sub(last);
                (age >= dormant_ms).then(|| DormantTie {
                    contact: p.contact_ref(c),
                    last_ms: last,
                    days_since: age / DAY_MS,
                })
            })
            .collect();
        list.sort_by(|a, b| {
            b.last_ms
                .cmp(&a.last_ms)
                .then(a.contact.id.cmp(&b.contact.id))
        });
        Metric::Value {
            coverage: history,
            value: list,
        }
    };

    let min = p.params.coverage_min;
    let live = u32::try_from(n).unwrap_or(u32::MAX);
    Reconnect {
        overdue: Metric::gated(Coverage::new(tracked, live), min, "no contacts", || overdue),
        neglected_strategic: Metric::gated(
            Coverage::new(strategic_tracked, strategic),
            min,
            "no contact in the strategic circle",
            || neglected,
        ),
        cooling,
        dormant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overdue_ratio_and_goal_weight_by_hand() {
        let now = 1_000 * DAY_MS;
        // 90 days since, cadence 60: 1.5.
        assert!((overdue_ratio(now, now - 90 * DAY_MS, 60) - 1.5).abs() < 1e-12);
        assert_eq!(overdue_ratio(now, now, 30), 0.0);
        // A future "last" never gives a negative ratio; cadence 0 is treated as 1 day.
        assert_eq!(overdue_ratio(now, now + DAY_MS, 30), 0.0);
        assert!((overdue_ratio(now, now - 2 * DAY_MS, 0) - 2.0).abs() < 1e-12);
        assert_eq!(goal_weight(Some(1)), 3.0);
        assert_eq!(goal_weight(Some(3)), 1.0);
        assert_eq!(goal_weight(Some(9)), 1.0);
        assert_eq!(goal_weight(None), 1.0);
    }
}

//! Circle balance: how active ties and effort spread over the three forms of
//! networking (operational, personal, strategic).
//!
//! Over A_365: `n_f` = active contacts in circle f (a contact in two circles
//! counts in both), `p_f = n_f / sum n`, evenness `J = H / ln 3`. Effort share
//! `e_f` = strength of the contacts in f / strength of all active contacts.
//! Strategic gap = `max(0, target - e_strategic)` when the user set a target.
//! Coverage: active contacts with at least one circle.

use serde::{Deserialize, Serialize};

use crate::InsightsInput;
use crate::metric::{Coverage, Metric, evenness, ratio};
use crate::prepare::Prepared;
use kith_model::model::Circle;

/// One circle's share of ties and of effort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CircleShare {
    /// Which circle.
    pub circle: Circle,
    /// Active contacts in this circle.
    pub count: u32,
    /// `count / sum of counts`.
    pub share: f64,
    /// Share of the strength of all active contacts held by this circle.
    pub effort_share: f64,
}

/// Balance across the three circles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CircleBalance {
    /// Operational, personal, strategic, in that order.
    pub circles: Vec<CircleShare>,
    /// Shannon evenness of the counts, `H / ln 3`, in 0..=1.
    pub evenness: f64,
    /// The user's target effort share for the strategic circle, if set.
    pub strategic_target: Option<f64>,
    /// `max(0, target - effort share of strategic)`, when a target is set.
    pub strategic_gap: Option<f64>,
}

/// Evenness `J = H / ln 3` of circle counts (0 when all counts are 0).
pub fn circle_evenness(counts: [u32; 3]) -> f64 {
    evenness(&counts, 3).unwrap_or(0.0)
}

/// Circle balance over A_365.
pub fn compute(input: &InsightsInput<'_>) -> Metric<CircleBalance> {
    from_prepared(&Prepared::new(input))
}

pub(crate) fn from_prepared(p: &Prepared<'_>) -> Metric<CircleBalance> {
    let active = p.active_set();
    let known = active
        .iter()
        .filter(|&&c| !p.contacts[c].circles.is_empty())
        .count();
    let coverage = Coverage::new(
        u32::try_from(known).unwrap_or(u32::MAX),
        u32::try_from(active.len()).unwrap_or(u32::MAX),
    );
    Metric::gated(
        coverage,
        p.params.coverage_min,
        "no contact with an interaction in the last year",
        || {
            let mut counts = [0u32; 3];
            let mut effort = [0f64; 3];
            let mut effort_total = 0.0;
            for &c in &active {
                let s = p.stats[c].strength_now;
                effort_total += s;
                for (f, circle) in Circle::ALL.iter().enumerate() {
                    if p.in_circle(c, *circle) {
                        counts[f] += 1;
                        effort[f] += s;
                    }
                }
            }
            let total: u32 = counts.iter().sum();
            let circles = Circle::ALL
                .iter()
                .enumerate()
                .map(|(f, &circle)| CircleShare {
                    circle,
                    count: counts[f],
                    share: ratio(counts[f], total).unwrap_or(0.0),
                    effort_share: if effort_total > 0.0 {
                        effort[f] / effort_total
                    } else {
                        0.0
                    },
                })
                .collect::<Vec<_>>();
            let strategic_target = p
                .settings
                .strategic_target
                .filter(|t| t.is_finite())
                .map(|t| t.clamp(0.0, 1.0));
            let strategic_gap = strategic_target.map(|t| (t - circles[2].effort_share).max(0.0));
            CircleBalance {
                circles,
                evenness: circle_evenness(counts),
                strategic_target,
                strategic_gap,
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evenness_matches_the_hand_computed_values() {
        assert_eq!(circle_evenness([10, 0, 0]), 0.0);
        assert!((circle_evenness([5, 5, 5]) - 1.0).abs() < 1e-12);
        // p = (.6,.3,.1): H = .3065 + .3612 + .2303 = .8980; / ln 3 = .8174.
        assert!((circle_evenness([6, 3, 1]) - 0.817).abs() < 1e-3);
        // p = (.5,.5,0): H = ln 2; / ln 3 = .6309.
        assert!((circle_evenness([2, 2, 0]) - 0.631).abs() < 1e-3);
        assert_eq!(circle_evenness([0, 0, 0]), 0.0);
    }
}

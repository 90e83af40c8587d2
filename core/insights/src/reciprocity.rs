//! Reciprocity (given vs received exchanges) and initiative (who starts
//! interactions), per contact and network-wide, over the reciprocity window.
//!
//! Per contact: G = exchanges given, R = received, V = G + R. Defined only when
//! V >= 3; balanced iff `3 * |G - R| <= V` (an exact integer test, i.e. neither
//! side exceeds two thirds), else mostly giving (G > R) or mostly receiving.
//! Network-wide: `(sum G - sum R) / (sum G + sum R)`. An exchange "with" one
//! participant counts for that participant; with nobody named it counts for
//! every participant. Coverage: active ties (A_365) with at least one exchange.
//! Initiative is kept separate: `(me - them) / (me + them)` over interactions
//! in the window; coverage: interactions whose initiator is known.

use serde::{Deserialize, Serialize};

use crate::InsightsInput;
use crate::metric::{Coverage, Metric};
use crate::prepare::{ContactRef, Prepared};
use kith_model::model::ExchangeWhat;

/// Reciprocity class of one tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Neither side above two thirds of the exchanges.
    Balanced,
    /// I gave more than two thirds.
    MostlyGiving,
    /// I received more than two thirds.
    MostlyReceiving,
    /// Fewer than 3 exchanges: too few to judge.
    Undefined,
}

/// Classifies a tie from exchanges given and received.
pub fn classify(given: u32, received: u32) -> Balance {
    let v = u64::from(given) + u64::from(received);
    if v < 3 {
        return Balance::Undefined;
    }
    let diff = u64::from(given.abs_diff(received));
    if 3 * diff <= v {
        Balance::Balanced
    } else if given > received {
        Balance::MostlyGiving
    } else {
        Balance::MostlyReceiving
    }
}

/// One tie's exchanges and initiative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactReciprocity {
    /// The tie.
    pub contact: ContactRef,
    /// Exchanges I gave them in the window.
    pub given: u32,
    /// Exchanges I received from them in the window.
    pub received: u32,
    /// Class of `given` vs `received`.
    pub balance: Balance,
    /// Interactions with them in the window that I started.
    pub initiated_by_me: u32,
    /// Interactions with them in the window that they started.
    pub initiated_by_them: u32,
}

/// Given and received of one function, network-wide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionFlow {
    /// The function.
    pub what: ExchangeWhat,
    /// Exchanges of it I gave, all ties together.
    pub given: u32,
    /// Exchanges of it I received, all ties together.
    pub received: u32,
}

/// Reciprocity across the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reciprocity {
    /// Ties with at least one exchange, most exchanges first (ties by id).
    pub contacts: Vec<ContactReciprocity>,
    /// Ties classed balanced.
    pub balanced: u32,
    /// Ties classed mostly giving.
    pub mostly_giving: u32,
    /// Ties classed mostly receiving.
    pub mostly_receiving: u32,
    /// Ties with too few exchanges to judge (fewer than 3).
    pub undefined: u32,
    /// Exchanges given, all ties together (sum G).
    pub given_total: u32,
    /// Exchanges received, all ties together (sum R).
    pub received_total: u32,
    /// `(sum G - sum R) / (sum G + sum R)`, in -1..=1.
    pub network_balance: f64,
    /// Given and received per function, in vocabulary order.
    pub by_function: Vec<FunctionFlow>,
}

/// Who starts interactions, network-wide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Initiative {
    /// Interactions in the window I started.
    pub me: u32,
    /// Interactions in the window they started.
    pub them: u32,
    /// Interactions in the window started together.
    pub mutual: u32,
    /// Interactions in the window with no initiator recorded.
    pub unknown: u32,
    /// `(me - them) / (me + them)`; `None` when both are 0.
    pub balance: Option<f64>,
}

/// Reciprocity over the window.
pub fn compute(input: &InsightsInput<'_>) -> Metric<Reciprocity> {
    from_prepared(&Prepared::new(input))
}

/// Initiative over the window.
pub fn compute_initiative(input: &InsightsInput<'_>) -> Metric<Initiative> {
    initiative_from_prepared(&Prepared::new(input))
}

/// Coverage shared with function coverage: active ties with an exchange.
pub(crate) fn exchange_coverage(p: &Prepared<'_>) -> Coverage {
    let active = p.active_set();
    let known = active
        .iter()
        .filter(|&&c| p.stats[c].given_total() + p.stats[c].received_total() > 0)
        .count();
    Coverage::new(
        u32::try_from(known).unwrap_or(u32::MAX),
        u32::try_from(active.len()).unwrap_or(u32::MAX),
    )
}

pub(crate) fn from_prepared(p: &Prepared<'_>) -> Metric<Reciprocity> {
    Metric::gated(
        exchange_coverage(p),
        p.params.coverage_min,
        "no contact with an interaction in the last year",
        || {
            let mut r = Reciprocity {
                contacts: Vec::new(),
                balanced: 0,
                mostly_giving: 0,
                mostly_receiving: 0,
                undefined: 0,
                given_total: 0,
                received_total: 0,
                network_balance: 0.0,
                by_function: ExchangeWhat::ALL
                    .iter()
                    .map(|&what| FunctionFlow {
                        what,
                        given: 0,
                        received: 0,
                    })
                    .collect(),
            };
            for (c, s) in p.stats.iter().enumerate() {
                let (g, rc) = (s.given_total(), s.received_total());
                if g + rc == 0 {
                    continue;
                }
                for (w, flow) in r.by_function.iter_mut().enumerate() {
                    flow.given += s.given[w];
                    flow.received += s.received[w];
                }
                let balance = classify(g, rc);
                match balance {
                    Balance::Balanced => r.balanced += 1,
                    Balance::MostlyGiving => r.mostly_giving += 1,
                    Balance::MostlyReceiving => r.mostly_receiving += 1,
                    Balance::Undefined => r.undefined += 1,
                }
                r.given_total += g;
                r.received_total += rc;
                r.contacts.push(ContactReciprocity {
                    contact: p.contact_ref(c),
                    given: g,
                    received: rc,
                    balance,
                    initiated_by_me: s.initiative[0],
                    initiated_by_them: s.initiative[1],
                });
            }
            r.network_balance =
                super::metric::ei_index(r.given_total, r.received_total).unwrap_or(0.0);
            r.contacts.sort_by(|a, b| {
                (b.given + b.received)
                    .cmp(&(a.given + a.received))
                    .then(a.contact.id.cmp(&b.contact.id))
            });
            r
        },
    )
}

pub(crate) fn initiative_from_prepared(p: &Prepared<'_>) -> Metric<Initiative> {
    let [me, them, mutual, unknown] = p.initiative;
    let total = me + them + mutual + unknown;
    Metric::gated(
        Coverage::new(total - unknown, total),
        p.params.coverage_min,
        "no interaction in the last year",
        || Initiative {
            me,
            them,
            mutual,
            unknown,
            balance: super::metric::ei_index(me, them),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_of_the_issue_cases() {
        assert_eq!(classify(4, 2), Balance::Balanced);
        assert_eq!(classify(5, 1), Balance::MostlyGiving);
        assert_eq!(classify(1, 1), Balance::Undefined);
        assert_eq!(classify(1, 5), Balance::MostlyReceiving);
        // 3 * |2 - 1| = 3 <= 3: balanced at the boundary.
        assert_eq!(classify(2, 1), Balance::Balanced);
        // 3 * |3 - 0| = 9 > 3.
        assert_eq!(classify(3, 0), Balance::MostlyGiving);
        // 3 * |7 - 3| = 12 > 10.
        assert_eq!(classify(7, 3), Balance::MostlyGiving);
        assert_eq!(classify(u32::MAX, u32::MAX), Balance::Balanced);
    }
}

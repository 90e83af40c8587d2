//! The common result type of every insight and the small pieces of arithmetic
//! several metrics share (Shannon entropy, Blau's index, the E-I index).
//!
//! A metric is either [`Metric::NoData`] (nothing to compute on: an empty
//! network, no active goal, a setting that is missing), [`Metric::NotEnoughData`]
//! (the attribute it needs is known for fewer than `coverage_min` of the ties it
//! looks at), or [`Metric::Value`]. Every state but "no data" carries the
//! [`Coverage`], so a reader always sees how much of the network a number rests
//! on. None of the helpers here divides by zero or returns NaN: an undefined
//! quantity is `None`.

use serde::{Deserialize, Serialize};

/// How many of the ties a metric looks at have the attribute it needs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Ties for which the attribute is known.
    pub known: u32,
    /// Ties the metric looks at.
    pub total: u32,
    /// `known / total`, in 0..=1 (0 when `total` is 0).
    pub share: f64,
}

impl Coverage {
    /// Coverage of `known` out of `total` (clamped so `known <= total`).
    pub fn new(known: u32, total: u32) -> Coverage {
        let known = known.min(total);
        Coverage {
            known,
            total,
            share: ratio(known, total).unwrap_or(0.0),
        }
    }

    /// Full coverage over `total` ties (metrics that need no optional attribute).
    pub fn full(total: u32) -> Coverage {
        Coverage::new(total, total)
    }
}

/// The outcome of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Metric<T> {
    /// Nothing to compute on; `reason` says why, for the reader.
    NoData {
        /// Why there is nothing, in words for the reader ("no contacts yet").
        reason: String,
    },
    /// The attribute is known for too few ties to give a number.
    NotEnoughData {
        /// How many ties have the attribute, of how many.
        coverage: Coverage,
    },
    /// The computed value.
    Value {
        /// Share of the ties the value rests on; show it beside the value.
        coverage: Coverage,
        /// The metric itself.
        value: T,
    },
}

impl<T> Metric<T> {
    /// "No data" with a reason.
    pub fn no_data(reason: impl Into<String>) -> Metric<T> {
        Metric::NoData {
            reason: reason.into(),
        }
    }

    /// The value when coverage reaches `coverage_min`, else "not enough data";
    /// "no data" when there is nothing to look at (`coverage.total == 0`).
    /// `value` is only called when a value is due.
    pub fn gated(
        coverage: Coverage,
        coverage_min: f64,
        empty_reason: &str,
        value: impl FnOnce() -> T,
    ) -> Metric<T> {
        if coverage.total == 0 {
            Metric::no_data(empty_reason)
        } else if coverage.known == 0 || coverage.share < coverage_min {
            Metric::NotEnoughData { coverage }
        } else {
            Metric::Value {
                coverage,
                value: value(),
            }
        }
    }

    /// The value, if there is one.
    pub fn value(&self) -> Option<&T> {
        match self {
            Metric::Value { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The coverage, unless there was no data at all.
    pub fn coverage(&self) -> Option<Coverage> {
        match self {
            Metric::NoData { .. } => None,
            Metric::NotEnoughData { coverage } | Metric::Value { coverage, .. } => Some(*coverage),
        }
    }
}

/// `a / b` as f64, `None` when `b` is 0.
pub fn ratio(a: u32, b: u32) -> Option<f64> {
    (b != 0).then(|| f64::from(a) / f64::from(b))
}

/// Shannon entropy `H = -sum p ln p` of a count vector (zero counts skipped);
/// `None` when all counts are zero.
pub fn shannon(counts: &[u32]) -> Option<f64> {
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    if total == 0 {
        return None;
    }
    let total = total as f64;
    let h = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / total;
            -p * p.ln()
        })
        .sum::<f64>();
    // Rounding can make a single-category H a tiny negative number.
    Some(h.max(0.0))
}

/// Shannon evenness `H / ln K`, in 0..=1; `None` when there are no counts or
/// `K < 2` (a one-category vocabulary has no evenness).
pub fn evenness(counts: &[u32], k: u32) -> Option<f64> {
    if k < 2 {
        return None;
    }
    shannon(counts).map(|h| (h / f64::from(k).ln()).clamp(0.0, 1.0))
}

/// Blau's index `B = 1 - sum p^2`; `None` when all counts are zero.
pub fn blau(counts: &[u32]) -> Option<f64> {
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    if total == 0 {
        return None;
    }
    let total = total as f64;
    let sum_sq = counts
        .iter()
        .map(|&c| {
            let p = f64::from(c) / total;
            p * p
        })
        .sum::<f64>();
    Some((1.0 - sum_sq).max(0.0))
}

/// Blau's index normalised by its maximum `1 - 1/K`, in 0..=1; `None` when
/// undefined (no counts, or `K < 2`).
pub fn blau_normalised(counts: &[u32], k: u32) -> Option<f64> {
    if k < 2 {
        return None;
    }
    let max = 1.0 - 1.0 / f64::from(k);
    blau(counts).map(|b| (b / max).clamp(0.0, 1.0))
}

/// Krackhardt & Stern's E-I index `(E - I) / (E + I)`, in -1..=1; `None` when
/// `E + I` is 0.
pub fn ei_index(external: u32, internal: u32) -> Option<f64> {
    let sum = u64::from(external) + u64::from(internal);
    if sum == 0 {
        return None;
    }
    Some((f64::from(external) - f64::from(internal)) / sum as f64)
}

/// The median of a list (mean of the two middle values for even length);
/// `None` when empty. NaN-free inputs are assumed (callers only pass strengths).
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn blau_and_evenness_match_the_hand_computed_values() {
        // K = 5, counts (4,4,0,0,0): B = 1 - 2 * 0.25 = 0.5; B* = 0.5 / 0.8;
        // evenness = ln 2 / ln 5.
        let c = [4, 4, 0, 0, 0];
        assert!(close(blau(&c).unwrap(), 0.5));
        assert!(close(blau_normalised(&c, 5).unwrap(), 0.625));
        assert!(close(evenness(&c, 5).unwrap(), 0.431));
        // (2,2,2,2,2): B = 1 - 5 * 0.04 = 0.8 = the maximum, so B* = 1, J = 1.
        let c = [2, 2, 2, 2, 2];
        assert!(close(blau(&c).unwrap(), 0.8));
        assert!(close(blau_normalised(&c, 5).unwrap(), 1.0));
        assert!(close(evenness(&c, 5).unwrap(), 1.0));
        // (3,1) over K = 2: B = 1 - (9+1)/16 = 0.375; B* = 0.75;
        // H = -(.75 ln .75 + .25 ln .25) = 0.5623; / ln 2 = 0.8113.
        assert!(close(blau(&[3, 1]).unwrap(), 0.375));
        assert!(close(blau_normalised(&[3, 1], 2).unwrap(), 0.75));
        assert!(close(evenness(&[3, 1], 2).unwrap(), 0.811));
    }

    #[test]
    fn undefined_quantities_are_none_not_nan() {
        assert_eq!(blau(&[]), None);
        assert_eq!(blau(&[0, 0]), None);
        assert_eq!(evenness(&[3], 1), None);
        assert_eq!(blau_normalised(&[3], 1), None);
        assert_eq!(ei_index(0, 0), None);
        assert_eq!(ratio(1, 0), None);
        assert_eq!(median(&mut []), None);
        assert_eq!(shannon(&[7, 0]), Some(0.0));
    }

    #[test]
    fn ei_index_matches_krackhardt_and_stern() {
        // 8 inside, 2 outside: (2 - 8) / 10.
        assert!(close(ei_index(2, 8).unwrap(), -0.6));
        assert_eq!(ei_index(5, 0), Some(1.0));
        assert_eq!(ei_index(0, 5), Some(-1.0));
    }

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn gating_gives_the_three_states() {
        let m: Metric<u8> = Metric::gated(Coverage::new(0, 0), 0.5, "empty", || 1);
        assert!(matches!(m, Metric::NoData { .. }));
        let m: Metric<u8> = Metric::gated(Coverage::new(4, 10), 0.5, "empty", || 1);
        assert!(matches!(m, Metric::NotEnoughData { .. }));
        let m: Metric<u8> = Metric::gated(Coverage::new(5, 10), 0.5, "empty", || 1);
        assert_eq!(m.value(), Some(&1));
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"state\":\"value\""), "{json}");
    }
}

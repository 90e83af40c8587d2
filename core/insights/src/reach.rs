//! Reach: Krackhardt & Stern's E-I index over A_365, for three boundaries.
//!
//! `EI = (E - I) / (E + I)` in -1..=1 (-1: every tie inside the group, +1:
//! every tie outside). Organisation: E = outside my organisation, I = inside.
//! Discipline: E = a discipline other than mine (settings), I = mine.
//! Seniority: E = senior or junior, I = peer. Coverage: active ties where the
//! attribute is known.

use serde::{Deserialize, Serialize};

use crate::InsightsInput;
use crate::composition::discipline_key;
use crate::metric::{Coverage, Metric, ei_index};
use crate::prepare::Prepared;
use kith_model::model::Seniority;

/// One E-I index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EiIndex {
    /// Ties across the boundary.
    pub external: u32,
    /// Ties within it.
    pub internal: u32,
    /// `(E - I) / (E + I)`.
    pub ei: f64,
}

/// Reach across the three boundaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reach {
    /// External = outside my organisation.
    pub organisation: Metric<EiIndex>,
    /// External = another discipline than mine; no data when mine is not set.
    pub discipline: Metric<EiIndex>,
    /// External = senior or junior, internal = peer.
    pub seniority: Metric<EiIndex>,
}

/// The E-I index of `external` and `internal` ties (0 when both are 0).
pub fn ei(external: u32, internal: u32) -> EiIndex {
    EiIndex {
        external,
        internal,
        ei: ei_index(external, internal).unwrap_or(0.0),
    }
}

fn boundary(
    p: &Prepared<'_>,
    active: &[usize],
    side: impl Fn(usize) -> Option<bool>,
) -> Metric<EiIndex> {
    let (mut e, mut i) = (0u32, 0u32);
    for &c in active {
        match side(c) {
            Some(true) => e += 1,
            Some(false) => i += 1,
            None => {}
        }
    }
    let total = u32::try_from(active.len()).unwrap_or(u32::MAX);
    Metric::gated(
        Coverage::new(e + i, total),
        p.params.coverage_min,
        "no contact with an interaction in the last year",
        || ei(e, i),
    )
}

/// Reach over A_365.
pub fn compute(input: &InsightsInput<'_>) -> Reach {
    from_prepared(&Prepared::new(input))
}

pub(crate) fn from_prepared(p: &Prepared<'_>) -> Reach {
    let active = p.active_set();
    let mine = p
        .settings
        .my_discipline
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_lowercase);
    let discipline = match mine {
        None => Metric::no_data(
            "set your own discipline in settings to measure reach across disciplines",
        ),
        Some(mine) => boundary(p, &active, |c| {
            discipline_key(p.contacts[c]).map(|d| d != mine)
        }),
    };
    Reach {
        organisation: boundary(p, &active, |c| {
            p.contacts[c].inside_org.map(|inside| !inside)
        }),
        discipline,
        seniority: boundary(p, &active, |c| match p.contacts[c].seniority {
            Seniority::Senior | Seniority::Junior => Some(true),
            Seniority::Peer => Some(false),
            Seniority::Unknown => None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ei_by_hand() {
        assert!((ei(2, 8).ei + 0.6).abs() < 1e-12);
        assert_eq!(ei(3, 3).ei, 0.0);
        // 7 outside, 3 inside: (7 - 3) / 10.
        assert!((ei(7, 3).ei - 0.4).abs() < 1e-12);
        assert_eq!(ei(0, 0).ei, 0.0);
    }
}

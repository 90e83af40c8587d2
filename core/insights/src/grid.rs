//! Discipline x seniority grid over A_365: how many active ties sit in each
//! cell (rows: the discipline vocabulary; columns: senior, peer, junior) and
//! the share of cells that are not empty: reaching across disciplines *and*
//! levels is the point in hierarchical, multidisciplinary settings.
//! Coverage: active ties whose discipline and seniority are both known.

use serde::{Deserialize, Serialize};

use crate::InsightsInput;
use crate::composition::{
    SENIORITY_LEVELS, discipline_key, discipline_vocabulary, seniority_index,
};
use crate::metric::{Coverage, Metric, ratio};
use crate::prepare::Prepared;
use kith_model::model::Seniority;

/// The grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// Row labels.
    pub disciplines: Vec<String>,
    /// Column labels: senior, peer, junior.
    pub seniorities: Vec<Seniority>,
    /// `cells[row][column]`: active ties.
    pub cells: Vec<Vec<u32>>,
    /// Cells holding at least one tie.
    pub non_empty: u32,
    /// Rows times 3 columns.
    pub cells_total: u32,
    /// `non_empty / cells_total`.
    pub non_empty_share: f64,
}

/// The discipline x seniority grid over A_365.
pub fn compute(input: &InsightsInput<'_>) -> Metric<Grid> {
    from_prepared(&Prepared::new(input))
}

pub(crate) fn from_prepared(p: &Prepared<'_>) -> Metric<Grid> {
    let vocab = discipline_vocabulary(p);
    let keys: Vec<&String> = vocab.keys().collect();
    let mut cells = vec![vec![0u32; 3]; keys.len()];
    let active = p.active_set();
    let mut known = 0u32;
    for &c in &active {
        let contact = p.contacts[c];
        if let (Some(d), Some(s)) = (discipline_key(contact), seniority_index(contact.seniority))
            && let Ok(row) = keys.binary_search(&&d)
        {
            cells[row][s] += 1;
            known += 1;
        }
    }
    let total = u32::try_from(active.len()).unwrap_or(u32::MAX);
    Metric::gated(
        Coverage::new(known, total),
        p.params.coverage_min,
        "no contact with an interaction in the last year",
        || {
            let non_empty = cells.iter().flatten().filter(|&&n| n > 0).count();
            let non_empty = u32::try_from(non_empty).unwrap_or(u32::MAX);
            let cells_total = u32::try_from(keys.len() * 3).unwrap_or(u32::MAX);
            Grid {
                disciplines: vocab.values().cloned().collect(),
                seniorities: SENIORITY_LEVELS.to_vec(),
                cells,
                non_empty,
                cells_total,
                non_empty_share: ratio(non_empty, cells_total).unwrap_or(0.0),
            }
        },
    )
}

//! Function coverage: for each of the five things a network supplies
//! (support, feedback, insight, resources, information), the people it was
//! *received* from in the reciprocity window. Nobody: a gap. Exactly one
//! person: fragile (one departure and it is gone). Coverage as for
//! reciprocity: active ties with at least one exchange logged.

use serde::{Deserialize, Serialize};

use crate::InsightsInput;
use crate::metric::Metric;
use crate::prepare::{ContactRef, Prepared};
use crate::reciprocity::exchange_coverage;
use kith_model::model::ExchangeWhat;

/// How well one function is supplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Supply {
    /// Received from nobody.
    Gap,
    /// Received from exactly one person.
    Fragile,
    /// Received from two or more people.
    Covered,
}

/// Sources of one function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionSources {
    /// The function.
    pub what: ExchangeWhat,
    /// People it was received from.
    pub sources: u32,
    /// Gap, fragile or covered, from `sources`.
    pub supply: Supply,
    /// The only source, when fragile.
    pub only_source: Option<ContactRef>,
}

/// Supply classification from a number of sources.
pub fn supply(sources: usize) -> Supply {
    match sources {
        0 => Supply::Gap,
        1 => Supply::Fragile,
        _ => Supply::Covered,
    }
}

/// Function coverage over the window.
pub fn compute(input: &InsightsInput<'_>) -> Metric<Vec<FunctionSources>> {
    from_prepared(&Prepared::new(input))
}

pub(crate) fn from_prepared(p: &Prepared<'_>) -> Metric<Vec<FunctionSources>> {
    Metric::gated(
        exchange_coverage(p),
        p.params.coverage_min,
        "no contact with an interaction in the last year",
        || {
            ExchangeWhat::ALL
                .iter()
                .enumerate()
                .map(|(w, &what)| {
                    let from = &p.received_from[w];
                    FunctionSources {
                        what,
                        sources: u32::try_from(from.len()).unwrap_or(u32::MAX),
                        supply: supply(from.len()),
                        only_source: (from.len() == 1).then(|| p.contact_ref(from[0])),
                    }
                })
                .collect()
        },
    )
}

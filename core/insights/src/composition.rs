//! Composition diversity of a set of ties, per attribute: discipline,
//! seniority, inside/outside the organisation, circle.
//!
//! For an attribute with vocabulary size K and category shares p_k over the
//! ties where it is known: Blau `B = 1 - sum p_k^2`, normalised
//! `B* = B / (1 - 1/K)`, Shannon evenness `H / ln K`, and range (categories
//! present). Vocabularies: seniority {senior, peer, junior} (K = 3; "unknown"
//! is not known), organisation {inside, outside} (K = 2), circle (K = 3, a
//! contact in two circles counts in both), discipline = the distinct
//! disciplines (trimmed, case-insensitive) among all current contacts. Computed
//! over A_365 and over the core (the `core_size` strongest ties).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::InsightsInput;
use crate::metric::{Coverage, Metric, blau, blau_normalised, evenness, ratio};
use crate::prepare::Prepared;
use kith_model::model::{Circle, Contact, Seniority};

/// The attributes composition is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    /// Distinct disciplines among current contacts (K varies).
    Discipline,
    /// Senior, peer, junior (K = 3).
    Seniority,
    /// Inside or outside my organisation (K = 2).
    Organisation,
    /// Operational, personal, strategic (K = 3).
    Circle,
}

/// One category's count and share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryCount {
    /// The category's name (a discipline, `senior`, `inside`, a circle).
    pub category: String,
    /// Ties in this category.
    pub count: u32,
    /// `count` over the ties whose attribute is known, in 0..=1.
    pub share: f64,
}

/// Diversity of one attribute over one set of ties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diversity {
    /// The attribute measured.
    pub attribute: Attribute,
    /// Every category of the vocabulary, in vocabulary order (zero counts included).
    pub categories: Vec<CategoryCount>,
    /// Vocabulary size.
    pub k: u32,
    /// Blau's index, in 0..=1 - 1/K.
    pub blau: f64,
    /// Blau / (1 - 1/K), in 0..=1; `None` when K < 2.
    pub blau_normalised: Option<f64>,
    /// Shannon evenness H / ln K, in 0..=1; `None` when K < 2.
    pub evenness: Option<f64>,
    /// Categories present.
    pub range: u32,
}

/// Diversity of every attribute over one set of ties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompositionSet {
    /// Diversity of disciplines.
    pub discipline: Metric<Diversity>,
    /// Diversity of seniority (unknown seniority counts as not known).
    pub seniority: Metric<Diversity>,
    /// Inside vs outside my organisation.
    pub organisation: Metric<Diversity>,
    /// Diversity of circles (a contact in two circles counts twice).
    pub circle: Metric<Diversity>,
}

/// Composition over the active network and over the core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Composition {
    /// Over A_365.
    pub active: CompositionSet,
    /// Over the `core_size` strongest ties.
    pub core: CompositionSet,
}

/// A contact's discipline as a comparison key (trimmed, lower case), if known.
pub(crate) fn discipline_key(c: &Contact) -> Option<String> {
    c.discipline
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_lowercase)
}

/// The discipline vocabulary: key -> display form (first spelling in id order).
pub(crate) fn discipline_vocabulary(p: &Prepared<'_>) -> BTreeMap<String, String> {
    let mut vocab = BTreeMap::new();
    for c in &p.contacts {
        if let Some(key) = discipline_key(c) {
            vocab.entry(key).or_insert_with(|| {
                c.discipline
                    .as_deref()
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_string()
            });
        }
    }
    vocab
}

/// Index of a known seniority in (senior, peer, junior).
pub(crate) fn seniority_index(s: Seniority) -> Option<usize> {
    match s {
        Seniority::Senior => Some(0),
        Seniority::Peer => Some(1),
        Seniority::Junior => Some(2),
        Seniority::Unknown => None,
    }
}

/// The known seniority levels, in grid order.
pub(crate) const SENIORITY_LEVELS: [Seniority; 3] =
    [Seniority::Senior, Seniority::Peer, Seniority::Junior];

/// Diversity figures from a count vector over a vocabulary of size `k`
/// (`names` gives the category labels, same length as `counts`).
pub fn diversity(attribute: Attribute, names: &[String], counts: &[u32], k: u32) -> Diversity {
    let total: u32 = counts.iter().sum();
    Diversity {
        attribute,
        categories: names
            .iter()
            .zip(counts)
            .map(|(n, &count)| CategoryCount {
                category: n.clone(),
                count,
                share: ratio(count, total).unwrap_or(0.0),
            })
            .collect(),
        k,
        blau: blau(counts).unwrap_or(0.0),
        blau_normalised: blau_normalised(counts, k),
        evenness: evenness(counts, k),
        range: u32::try_from(counts.iter().filter(|&&c| c > 0).count()).unwrap_or(u32::MAX),
    }
}

fn u(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Diversity of `attribute` over `members` (indices into `p.contacts`).
pub(crate) fn over(
    p: &Prepared<'_>,
    members: &[usize],
    attribute: Attribute,
    vocab: &BTreeMap<String, String>,
) -> Metric<Diversity> {
    let total = u(members.len());
    let empty = "no ties in this set";
    let min = p.params.coverage_min;
    match attribute {
        Attribute::Discipline => {
            let keys: Vec<&String> = vocab.keys().collect();
            let mut counts = vec![0u32; keys.len()];
            let mut known = 0;
            for &c in members {
                if let Some(k) = discipline_key(p.contacts[c])
                    && let Ok(i) = keys.binary_search(&&k)
                {
                    counts[i] += 1;
                    known += 1;
                }
            }
            let names: Vec<String> = vocab.values().cloned().collect();
            Metric::gated(Coverage::new(known, total), min, empty, || {
                diversity(attribute, &names, &counts, u(names.len()))
            })
        }
        Attribute::Seniority => {
            let mut counts = vec![0u32; 3];
            let mut known = 0;
            for &c in members {
                if let Some(i) = seniority_index(p.contacts[c].seniority) {
                    counts[i] += 1;
                    known += 1;
                }
            }
            let names: Vec<String> = SENIORITY_LEVELS.iter().map(|s| s.to_string()).collect();
            Metric::gated(Coverage::new(known, total), min, empty, || {
                diversity(attribute, &names, &counts, 3)
            })
        }
        Attribute::Organisation => {
            let mut counts = vec![0u32; 2];
            let mut known = 0;
            for &c in members {
                if let Some(inside) = p.contacts[c].inside_org {
                    counts[usize::from(!inside)] += 1;
                    known += 1;
                }
            }
            let names = vec!["inside".to_string(), "outside".to_string()];
            Metric::gated(Coverage::new(known, total), min, empty, || {
                diversity(attribute, &names, &counts, 2)
            })
        }
        Attribute::Circle => {
            let mut counts = vec![0u32; 3];
            let mut known = 0;
            for &c in members {
                let mut any = false;
                for (f, circle) in Circle::ALL.iter().enumerate() {
                    if p.in_circle(c, *circle) {
                        counts[f] += 1;
                        any = true;
                    }
                }
                known += u32::from(any);
            }
            let names: Vec<String> = Circle::ALL.iter().map(|c| c.to_string()).collect();
            Metric::gated(Coverage::new(known, total), min, empty, || {
                diversity(attribute, &names, &counts, 3)
            })
        }
    }
}

fn set(p: &Prepared<'_>, members: &[usize], vocab: &BTreeMap<String, String>) -> CompositionSet {
    CompositionSet {
        discipline: over(p, members, Attribute::Discipline, vocab),
        seniority: over(p, members, Attribute::Seniority, vocab),
        organisation: over(p, members, Attribute::Organisation, vocab),
        circle: over(p, members, Attribute::Circle, vocab),
    }
}

/// Composition over A_365 and over the core.
pub fn compute(input: &InsightsInput<'_>) -> Composition {
    from_prepared(&Prepared::new(input))
}

pub(crate) fn from_prepared(p: &Prepared<'_>) -> Composition {
    let vocab = discipline_vocabulary(p);
    let mut core = p.core.clone();
    core.sort_unstable();
    Composition {
        active: set(p, &p.active_set(), &vocab),
        core: set(p, &core, &vocab),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("d{i}")).collect()
    }

    #[test]
    fn diversity_of_the_issue_examples() {
        let d = diversity(Attribute::Discipline, &names(5), &[4, 4, 0, 0, 0], 5);
        assert!((d.blau - 0.5).abs() < 1e-12);
        assert!((d.blau_normalised.unwrap() - 0.625).abs() < 1e-12);
        assert!((d.evenness.unwrap() - 0.431).abs() < 1e-3);
        assert_eq!(d.range, 2);
        let d = diversity(Attribute::Discipline, &names(5), &[2, 2, 2, 2, 2], 5);
        assert!((d.blau - 0.8).abs() < 1e-12);
        assert!((d.blau_normalised.unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(d.range, 5);
        assert!((d.categories[0].share - 0.2).abs() < 1e-12);
    }

    #[test]
    fn seniority_composition_by_hand() {
        // (senior, peer, junior) = (1, 2, 1): B = 1 - (1+4+1)/16 = 0.625;
        // B* = 0.625 / (2/3) = 0.9375; H = 1.0397, / ln 3 = 0.9464.
        let d = diversity(Attribute::Seniority, &names(3), &[1, 2, 1], 3);
        assert!((d.blau - 0.625).abs() < 1e-12);
        assert!((d.blau_normalised.unwrap() - 0.9375).abs() < 1e-12);
        assert!((d.evenness.unwrap() - 0.946).abs() < 1e-3);
    }
}

//! Doing things together: relationships grow through shared work.
//!
//! An interaction is "together" when its kind is project work or it is linked
//! to a project. Reported: the share of strategic contacts, and of the core,
//! with at least one such interaction in the composition window (365 days),
//! and per contact the number of such interactions and distinct projects.

use serde::{Deserialize, Serialize};

use crate::InsightsInput;
use crate::metric::{Coverage, Metric, ratio};
use crate::prepare::{ContactRef, Prepared};
use kith_model::model::Circle;

/// How many of a set of ties did something together with me.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TogetherShare {
    /// Ties with at least one shared-work interaction in the last 365 days.
    pub with_shared_work: u32,
    /// Ties in the set.
    pub total: u32,
    /// `with_shared_work / total`; `None` when the set is empty.
    pub share: Option<f64>,
}

/// Shared work with one contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactTogether {
    /// The tie.
    pub contact: ContactRef,
    /// Shared-work interactions with them.
    pub interactions: u32,
    /// Distinct projects worked on with them.
    pub projects: u32,
}

/// Doing things together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Together {
    /// Over the strategic circle.
    pub strategic: TogetherShare,
    /// Over the core.
    pub core: TogetherShare,
    /// Contacts with shared work, most first (ties by id).
    pub contacts: Vec<ContactTogether>,
}

/// Doing things together over the window.
pub fn compute(input: &InsightsInput<'_>) -> Metric<Together> {
    from_prepared(&Prepared::new(input))
}

fn share(p: &Prepared<'_>, members: impl Iterator<Item = usize>) -> TogetherShare {
    let (mut with, mut total) = (0u32, 0u32);
    for c in members {
        total += 1;
        with += u32::from(p.stats[c].together_window > 0);
    }
    TogetherShare {
        with_shared_work: with,
        total,
        share: ratio(with, total),
    }
}

pub(crate) fn from_prepared(p: &Prepared<'_>) -> Metric<Together> {
    let strategic = share(
        p,
        (0..p.contacts.len()).filter(|&c| p.in_circle(c, Circle::Strategic)),
    );
    let core = share(p, p.core.iter().copied());
    let total = strategic.total.max(core.total);
    if total == 0 {
        return Metric::no_data("no strategic contact and no interaction yet");
    }
    let mut contacts: Vec<ContactTogether> = (0..p.contacts.len())
        .filter(|&c| p.stats[c].together_window > 0)
        .map(|c| ContactTogether {
            contact: p.contact_ref(c),
            interactions: p.stats[c].together_window,
            projects: u32::try_from(p.stats[c].projects_window.len()).unwrap_or(u32::MAX),
        })
        .collect();
    contacts.sort_by(|a, b| {
        b.interactions
            .cmp(&a.interactions)
            .then(a.contact.id.cmp(&b.contact.id))
    });
    Metric::Value {
        coverage: Coverage::full(total),
        value: Together {
            strategic,
            core,
            contacts,
        },
    }
}

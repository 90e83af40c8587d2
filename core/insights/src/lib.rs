//! Network insights: the shape of a network as the leadership literature
//! describes it (three circles, composition, reach, reciprocity, the five
//! functions), computed from plain records.
//!
//! Every metric is a pure function of [`InsightsInput`] (contacts,
//! interactions, goals, settings, now, parameters) in its own module, defined
//! in docs/INSIGHTS.md. [`compute_all`] prepares the input once
//! ([`prepare`]: filtering, reference resolution and one sweep over the log)
//! and runs every metric on it; [`headlines()`] turns the report into findings,
//! most important first; [`text::render_text`] prints it, and
//! [`html::render_html`] draws it as one self-contained page. Each metric's `compute` does the same preparation for itself, for a
//! caller that needs one number.
//!
//! What is excluded everywhere: archived contacts and contacts merged into
//! another (their interactions count for the surviving contact), deleted
//! interactions, and interactions dated after `now` (except by follow-ups).

#![warn(missing_docs)]

pub mod circles;
pub mod composition;
pub mod follow_ups;
pub mod functions;
pub mod goals;
pub mod grid;
pub mod headlines;
pub mod html;
pub mod metric;
pub mod prepare;
pub mod reach;
pub mod reciprocity;
pub mod reconnect;
pub mod strength;
pub mod text;
pub mod together;

use serde::{Deserialize, Serialize};

pub use kith_model::model::InsightsRecords;
use kith_model::model::{Contact, Goal, Interaction, Settings, TimestampMs};

pub use headlines::{Finding, Severity, headlines};
pub use html::{HtmlOptions, render_html};
pub use metric::{Coverage, Metric};
pub use prepare::{ContactRef, Totals};
pub use text::render_text;

/// Windows and thresholds of the metrics; [`Default`] gives the documented values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InsightsParams {
    /// Window of A_365, composition, reach, grid, shared work (365).
    pub composition_window_days: u32,
    /// Window of A_90, used by goals (90).
    pub activity_window_days: u32,
    /// Window of reciprocity, initiative and function coverage (365).
    pub reciprocity_window_days: u32,
    /// Half-life h of the strength decay (90); at least 1.
    pub half_life_days: u32,
    /// Cooling compares strength now with strength this many days ago (90).
    pub cooling_lookback_days: u32,
    /// A tie is dormant after this many days without interaction (365).
    pub dormant_after_days: u32,
    /// "Done recently" window of follow-ups (30).
    pub follow_up_done_window_days: u32,
    /// Below this coverage a metric says "not enough data" (0.5), in 0..=1.
    pub coverage_min: f64,
    /// The user's UTC offset, for "today" of follow-ups (0).
    pub utc_offset_minutes: i32,
}

impl Default for InsightsParams {
    fn default() -> Self {
        InsightsParams {
            composition_window_days: 365,
            activity_window_days: 90,
            reciprocity_window_days: 365,
            half_life_days: 90,
            cooling_lookback_days: 90,
            dormant_after_days: 365,
            follow_up_done_window_days: 30,
            coverage_min: 0.5,
            utc_offset_minutes: 0,
        }
    }
}

impl InsightsParams {
    /// The parameters with out-of-range values brought into range (a half-life
    /// of at least one day, a coverage threshold in 0..=1, an offset within a day).
    pub fn sanitised(self) -> InsightsParams {
        InsightsParams {
            half_life_days: self.half_life_days.max(1),
            coverage_min: if self.coverage_min.is_finite() {
                self.coverage_min.clamp(0.0, 1.0)
            } else {
                0.5
            },
            utc_offset_minutes: self.utc_offset_minutes.clamp(-24 * 60, 24 * 60),
            ..self
        }
    }
}

/// Everything insights read. Cheap to build: it borrows the records.
#[derive(Debug, Clone, Copy)]
pub struct InsightsInput<'a> {
    /// Every contact; archived and merged ones are filtered out here.
    pub contacts: &'a [Contact],
    /// Every interaction; deleted ones and those after `now_ms` are filtered out here.
    pub interactions: &'a [Interaction],
    /// Every goal; only active ones are reported.
    pub goals: &'a [Goal],
    /// The network's settings (my organisation and discipline, cadences, core size).
    pub settings: &'a Settings,
    /// The instant insights are computed at; windows end here.
    pub now_ms: TimestampMs,
    /// Windows and thresholds.
    pub params: InsightsParams,
}

impl<'a> InsightsInput<'a> {
    /// Input with the default parameters.
    pub fn new(
        contacts: &'a [Contact],
        interactions: &'a [Interaction],
        goals: &'a [Goal],
        settings: &'a Settings,
        now_ms: TimestampMs,
    ) -> Self {
        InsightsInput {
            contacts,
            interactions,
            goals,
            settings,
            now_ms,
            params: InsightsParams::default(),
        }
    }

    /// Input over records read from a store, with these parameters.
    pub fn from_records(
        records: &'a InsightsRecords,
        now_ms: TimestampMs,
        params: InsightsParams,
    ) -> Self {
        InsightsInput {
            contacts: &records.contacts,
            interactions: &records.interactions,
            goals: &records.goals,
            settings: &records.settings,
            now_ms,
            params,
        }
    }
}

/// Every insight, as plain serialisable records (`--json` prints this).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsightsReport {
    /// The instant the report was computed at.
    pub now_ms: TimestampMs,
    /// The parameters it was computed with, as sanitised (clamped to their ranges).
    pub params: InsightsParams,
    /// Record counts the metrics were computed over.
    pub totals: Totals,
    /// Tie strength per contact, and the core.
    pub strength: Metric<strength::StrengthReport>,
    /// Balance across the three circles, ties vs effort.
    pub circle_balance: Metric<circles::CircleBalance>,
    /// Diversity of active ties and of the core.
    pub composition: composition::Composition,
    /// E-I indexes across organisation, discipline and seniority.
    pub reach: reach::Reach,
    /// Discipline x seniority counts.
    pub grid: Metric<grid::Grid>,
    /// Exchanges given and received, per tie and network-wide.
    pub reciprocity: Metric<reciprocity::Reciprocity>,
    /// Who starts interactions.
    pub initiative: Metric<reciprocity::Initiative>,
    /// Sources of each of the five functions, in vocabulary order.
    pub functions: Metric<Vec<functions::FunctionSources>>,
    /// Overdue, neglected strategic, cooling and dormant ties.
    pub reconnect: reconnect::Reconnect,
    /// Every active goal, by priority then title.
    pub goals: Metric<Vec<goals::GoalInsight>>,
    /// Shared work with strategic contacts and the core.
    pub together: Metric<together::Together>,
    /// Open, due and overdue follow-ups.
    pub follow_ups: Metric<follow_ups::FollowUps>,
}

/// Computes every insight in one preparation pass.
pub fn compute_all(input: &InsightsInput<'_>) -> InsightsReport {
    let p = prepare::Prepared::new(input);
    InsightsReport {
        now_ms: p.now_ms,
        params: p.params,
        totals: p.totals.clone(),
        strength: strength::from_prepared(&p),
        circle_balance: circles::from_prepared(&p),
        composition: composition::from_prepared(&p),
        reach: reach::from_prepared(&p),
        grid: grid::from_prepared(&p),
        reciprocity: reciprocity::from_prepared(&p),
        initiative: reciprocity::initiative_from_prepared(&p),
        functions: functions::from_prepared(&p),
        reconnect: reconnect::from_prepared(&p),
        goals: goals::from_prepared(&p),
        together: together::from_prepared(&p),
        follow_ups: follow_ups::from_prepared(&p),
    }
}

#[cfg(test)]
mod tests;

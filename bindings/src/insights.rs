//! Insights through the bindings: the shape of the network an app shows.
//!
//! `Kith::insights` reads every contact, interaction and goal from the store's
//! index, runs `kith_insights::compute_all` once, and flattens the parts
//! a phone screen shows into plain records ([`Insights`]). Every metric keeps
//! the engine's three states (no data / not enough data / a value) in a
//! [`MetricStatus`] next to optional figures, so an app never shows a zero
//! that means "unknown". `insights_json` returns the whole report (headlines
//! and every metric) for apps that want everything; `insights_html` the
//! engine's self-contained HTML report.

use kith_insights as insights;
use kith_insights::{
    HtmlOptions, InsightsParams, InsightsReport, Metric, compute_all, headlines, render_html,
};

use crate::error::{KithError, KithResult};
use crate::guard::guard;
use crate::kith::Kith;
use crate::types::Circle;
use crate::types::to_i32;

/// Longest reconnect list in [`Insights`] (the JSON report has them all).
pub const RECONNECT_TOP_MAX: u32 = 10;

/// How much a finding matters, most important first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Severity {
    /// Act now.
    Alert,
    /// A gap or a risk.
    Warning,
    /// Worth knowing.
    Notice,
    /// Context (data quality, positives).
    Info,
}

impl From<insights::Severity> for Severity {
    fn from(s: insights::Severity) -> Self {
        match s {
            insights::Severity::Alert => Severity::Alert,
            insights::Severity::Warning => Severity::Warning,
            insights::Severity::Notice => Severity::Notice,
            insights::Severity::Info => Severity::Info,
        }
    }
}

/// One headline: a sentence to show, with a stable `code` an app can key on.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Finding {
    /// How much it matters; headlines are sorted by it.
    pub severity: Severity,
    /// Stable machine-readable code, e.g. `strategic_overdue`.
    pub code: String,
    /// One readable sentence.
    pub message: String,
}

/// Whether a metric could be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MetricState {
    /// Nothing to measure yet (`reason` says what is missing).
    NoData,
    /// Some data, but too little of it carries the attribute measured.
    NotEnoughData,
    /// The figures next to the status are set.
    Value,
}

/// The state of one metric and how much of the data it rests on.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct MetricStatus {
    /// Whether the figures are set.
    pub state: MetricState,
    /// Why there is no data (set with `NoData` only).
    pub reason: Option<String>,
    /// Records carrying what the metric needs, of `coverage_total`.
    pub coverage_known: i32,
    /// Records the metric looks at.
    pub coverage_total: i32,
    /// `coverage_known / coverage_total` (0 when there is nothing).
    pub coverage_share: f64,
}

fn status<T>(m: &Metric<T>) -> (MetricStatus, Option<&T>) {
    match m {
        Metric::NoData { reason } => (
            MetricStatus {
                state: MetricState::NoData,
                reason: Some(reason.clone()),
                coverage_known: 0,
                coverage_total: 0,
                coverage_share: 0.0,
            },
            None,
        ),
        Metric::NotEnoughData { coverage } => (
            MetricStatus {
                state: MetricState::NotEnoughData,
                reason: None,
                coverage_known: to_i32(coverage.known),
                coverage_total: to_i32(coverage.total),
                coverage_share: coverage.share,
            },
            None,
        ),
        Metric::Value { coverage, value } => (
            MetricStatus {
                state: MetricState::Value,
                reason: None,
                coverage_known: to_i32(coverage.known),
                coverage_total: to_i32(coverage.total),
                coverage_share: coverage.share,
            },
            Some(value),
        ),
    }
}

/// One circle's contacts and share of effort.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CircleShare {
    /// Which circle.
    pub circle: Circle,
    /// Active contacts (met in the last 365 days) in this circle; a contact
    /// in two circles counts in both.
    pub count: i32,
    /// `count` over the sum of the counts (0 to 1).
    pub share: f64,
    /// Share of the strength of all active ties held by this circle (0 to 1).
    pub effort_share: f64,
}

/// How active ties and effort spread over the three circles.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CircleBalanceInsight {
    /// Whether the balance could be computed, and its coverage.
    pub status: MetricStatus,
    /// Operational, personal, strategic; empty unless `status.state` is `Value`.
    pub circles: Vec<CircleShare>,
    /// 0 (all in one circle) to 1 (even).
    pub evenness: Option<f64>,
    /// The strategic share the settings aim for, when set.
    pub strategic_target: Option<f64>,
    /// `max(0, target - strategic effort share)`, when a target is set.
    pub strategic_gap: Option<f64>,
}

/// The attribute a diversity figure is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Attribute {
    /// Professional discipline.
    Discipline,
    /// Senior, peer, junior.
    Seniority,
    /// Inside or outside my organisation.
    Organisation,
    /// Operational, personal, strategic.
    Circle,
}

impl From<insights::composition::Attribute> for Attribute {
    fn from(a: insights::composition::Attribute) -> Self {
        use insights::composition::Attribute as A;
        match a {
            A::Discipline => Attribute::Discipline,
            A::Seniority => Attribute::Seniority,
            A::Organisation => Attribute::Organisation,
            A::Circle => Attribute::Circle,
        }
    }
}

/// Blau's diversity index of the active network on one attribute.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DiversityInsight {
    /// The attribute measured.
    pub attribute: Attribute,
    /// Whether the figures are set, and the share of ties whose attribute is known.
    pub status: MetricStatus,
    /// 0 (everyone alike) towards 1 (spread over many categories).
    pub blau: Option<f64>,
    /// Blau divided by its maximum for the number of categories.
    pub blau_normalised: Option<f64>,
    /// Categories present.
    pub categories: Option<i32>,
}

/// Give and take over the logged exchanges.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ReciprocityInsight {
    /// Whether the figures are set, and the share of active ties with exchanges.
    pub status: MetricStatus,
    /// Ties where neither side gave more than two thirds.
    pub balanced: Option<i32>,
    /// Ties where I gave more than two thirds.
    pub mostly_giving: Option<i32>,
    /// Ties where I received more than two thirds.
    pub mostly_receiving: Option<i32>,
    /// Exchanges I gave, all ties together.
    pub given_total: Option<i32>,
    /// Exchanges I received, all ties together.
    pub received_total: Option<i32>,
    /// Network-wide balance, -1 (all received) to 1 (all given).
    pub network_balance: Option<f64>,
}

/// A tie past its cadence, most urgent first.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ReconnectTie {
    /// The contact's id.
    pub contact_id: String,
    /// The contact's name.
    pub name: String,
    /// The cadence that applies (its own, else the shortest of its circles').
    pub cadence_days: i32,
    /// Days since the last interaction over the cadence (1 and more is
    /// overdue); for a tie `never` contacted, counted from when it was added.
    pub overdue_ratio: f64,
    /// No interaction was ever logged with this contact.
    pub never: bool,
    /// Days since the last interaction; `None` when `never`.
    pub days_since: Option<i64>,
}

/// Who to get back in touch with.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ReconnectInsight {
    /// Whether the list could be computed, and the share of contacts with a cadence.
    pub status: MetricStatus,
    /// The first [`RECONNECT_TOP_MAX`] overdue ties.
    pub top: Vec<ReconnectTie>,
    /// Overdue ties in all (the list may be longer than `top`).
    pub overdue_total: i32,
}

/// Open follow-ups by urgency.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FollowUpInsight {
    /// Whether the figures are set.
    pub status: MetricStatus,
    /// Open and due today.
    pub due_today: Option<i32>,
    /// Open and due before today.
    pub overdue: Option<i32>,
    /// Every open follow-up, due or not.
    pub open_total: Option<i32>,
}

/// The insights an app shows; `insights_json` has everything.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Insights {
    /// The instant the report was computed for (UTC milliseconds).
    pub now_ms: i64,
    /// Live contacts (not archived, not merged).
    pub contacts_total: i32,
    /// Interactions not deleted.
    pub interactions_total: i32,
    /// Most important first.
    pub headlines: Vec<Finding>,
    /// Balance of active ties and effort across the circles.
    pub circle_balance: CircleBalanceInsight,
    /// Composition of the active network: discipline, seniority,
    /// organisation, circle.
    pub composition: Vec<DiversityInsight>,
    /// Give and take over the logged exchanges.
    pub reciprocity: ReciprocityInsight,
    /// Ties past their cadence.
    pub reconnect: ReconnectInsight,
    /// Open follow-ups by urgency.
    pub follow_ups: FollowUpInsight,
}

fn count(n: usize) -> i32 {
    to_i32(n)
}

fn diversity(
    attribute: insights::composition::Attribute,
    m: &Metric<insights::composition::Diversity>,
) -> DiversityInsight {
    let (status, value) = status(m);
    DiversityInsight {
        attribute: attribute.into(),
        status,
        blau: value.map(|d| d.blau),
        blau_normalised: value.and_then(|d| d.blau_normalised),
        categories: value.map(|d| to_i32(d.k)),
    }
}

impl Insights {
    fn from_report(report: &InsightsReport) -> Insights {
        use insights::composition::Attribute as A;
        let (cb_status, cb) = status(&report.circle_balance);
        let (rc_status, rc) = status(&report.reciprocity);
        let (ro_status, ro) = status(&report.reconnect.overdue);
        let (fu_status, fu) = status(&report.follow_ups);
        let active = &report.composition.active;
        Insights {
            now_ms: report.now_ms,
            contacts_total: to_i32(report.totals.contacts_live),
            interactions_total: to_i32(
                report.totals.interactions_total
                    - report
                        .totals
                        .interactions_deleted
                        .min(report.totals.interactions_total),
            ),
            headlines: headlines(report)
                .into_iter()
                .map(|f| Finding {
                    severity: f.severity.into(),
                    code: f.code,
                    message: f.message,
                })
                .collect(),
            circle_balance: CircleBalanceInsight {
                status: cb_status,
                circles: cb
                    .map(|b| {
                        b.circles
                            .iter()
                            .map(|c| CircleShare {
                                circle: c.circle.into(),
                                count: to_i32(c.count),
                                share: c.share,
                                effort_share: c.effort_share,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                evenness: cb.map(|b| b.evenness),
                strategic_target: cb.and_then(|b| b.strategic_target),
                strategic_gap: cb.and_then(|b| b.strategic_gap),
            },
            composition: vec![
                diversity(A::Discipline, &active.discipline),
                diversity(A::Seniority, &active.seniority),
                diversity(A::Organisation, &active.organisation),
                diversity(A::Circle, &active.circle),
            ],
            reciprocity: ReciprocityInsight {
                status: rc_status,
                balanced: rc.map(|r| to_i32(r.balanced)),
                mostly_giving: rc.map(|r| to_i32(r.mostly_giving)),
                mostly_receiving: rc.map(|r| to_i32(r.mostly_receiving)),
                given_total: rc.map(|r| to_i32(r.given_total)),
                received_total: rc.map(|r| to_i32(r.received_total)),
                network_balance: rc.map(|r| r.network_balance),
            },
            reconnect: ReconnectInsight {
                status: ro_status,
                top: ro
                    .map(|ties| {
                        ties.iter()
                            .take(RECONNECT_TOP_MAX as usize)
                            .map(|t| ReconnectTie {
                                contact_id: t.contact.id.to_string(),
                                name: t.contact.name.clone(),
                                cadence_days: to_i32(t.cadence_days),
                                overdue_ratio: t.overdue_ratio,
                                never: t.never,
                                days_since: (!t.never).then_some(t.days_since),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                overdue_total: ro.map_or(0, |ties| count(ties.len())),
            },
            follow_ups: FollowUpInsight {
                status: fu_status,
                due_today: fu.map(|f| count(f.due_today.len())),
                overdue: fu.map(|f| count(f.overdue.len())),
                open_total: fu.map(|f| to_i32(f.open_total)),
            },
        }
    }
}

/// The current time in UTC milliseconds, or `now_ms` when the app gives one.
fn resolve_now(now_ms: Option<i64>) -> KithResult<i64> {
    match now_ms {
        Some(n) if n < 0 => Err(KithError::invalid(
            "now_ms",
            format!("must be a UTC instant in milliseconds since 1970 (got {n})"),
        )),
        Some(n) => Ok(n),
        None => {
            let since = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| KithError::Internal {
                    reason: format!("the system clock is before 1970: {e}"),
                })?;
            Ok(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
        }
    }
}

impl Kith {
    fn report(&self, now_ms: Option<i64>) -> KithResult<InsightsReport> {
        let now_ms = resolve_now(now_ms)?;
        // The lean index read: every record insights need, interaction notes
        // left out, in one read transaction and without loading a document.
        self.with_store(|store| {
            let records = store.insights_records()?;
            Ok(compute_all(&kith_insights::InsightsInput::from_records(
                &records,
                now_ms,
                InsightsParams::default(),
            )))
        })
    }
}

// Rust API: the blocking implementation. The foreign API (async where this touches the
// disk or the network) is the `ffi_*` façade in crate::api, one method per operation.
impl Kith {
    /// The headline findings and main figures of the network, computed for
    /// `now_ms` (UTC milliseconds; `None`: now). Days are counted in UTC.
    pub fn insights(&self, now_ms: Option<i64>) -> KithResult<Insights> {
        guard("insights", || {
            Ok(Insights::from_report(&self.report(now_ms)?))
        })
    }

    /// The full report as JSON: `{"headlines": [...], "report": {...}}`, every
    /// metric tagged with its `state` (`no_data`, `not_enough_data`, `value`).
    pub fn insights_json(&self, now_ms: Option<i64>) -> KithResult<String> {
        guard("insights_json", || {
            let report = self.report(now_ms)?;
            let view = serde_json::json!({
                "headlines": headlines(&report),
                "report": report,
            });
            serde_json::to_string(&view).map_err(|e| KithError::Internal {
                reason: format!("encoding the insights as JSON: {e}"),
            })
        })
    }

    /// The report as one self-contained HTML page (no scripts, no external
    /// resources): show it in a web view or share it.
    pub fn insights_html(&self, now_ms: Option<i64>) -> KithResult<String> {
        guard("insights_html", || {
            let report = self.report(now_ms)?;
            Ok(render_html(&report, &HtmlOptions::default()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_insights::Coverage;

    #[test]
    fn every_metric_state_survives_the_flattening() {
        let none = Metric::<u32>::no_data("no contacts yet");
        let (s, v) = status(&none);
        assert_eq!(
            (s.state, s.reason.as_deref(), v),
            (MetricState::NoData, Some("no contacts yet"), None)
        );
        let few = Metric::<u32>::NotEnoughData {
            coverage: Coverage::new(1, 10),
        };
        let (s, v) = status(&few);
        assert_eq!(
            (s.state, s.coverage_known, s.coverage_total, v),
            (MetricState::NotEnoughData, 1, 10, None)
        );
        let some = Metric::Value {
            coverage: Coverage::full(4),
            value: 7u32,
        };
        let (s, v) = status(&some);
        assert_eq!(
            (s.state, s.coverage_share, v),
            (MetricState::Value, 1.0, Some(&7))
        );
        assert_eq!(s.reason, None);
    }

    #[test]
    fn a_negative_instant_is_invalid_and_none_is_now() {
        assert!(
            matches!(resolve_now(Some(-1)), Err(KithError::InvalidInput { ref field, .. }) if field == "now_ms")
        );
        assert_eq!(resolve_now(Some(5)), Ok(5));
        assert!(resolve_now(None).is_ok_and(|n| n > 1_700_000_000_000));
    }
}

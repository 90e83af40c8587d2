//! Headline findings: the few sentences worth reading first.
//!
//! [`headlines`] reads a computed [`InsightsReport`] and emits findings with a
//! severity, a stable code (for UIs and tests) and a message. They are ordered
//! by severity, then by a fixed importance of the rule (strategic ties before
//! follow-ups before composition...), then by message, so the order is stable.
//! Thresholds are documented in docs/INSIGHTS.md.

use serde::{Deserialize, Serialize};

use crate::InsightsReport;
use crate::functions::Supply;
use crate::goals::GoalState;
use crate::metric::{Coverage, Metric};

/// How much a finding matters; declaration order is importance order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// One headline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// How urgent; findings are sorted by it.
    pub severity: Severity,
    /// Stable machine-readable code, e.g. `strategic_overdue`.
    pub code: String,
    /// One readable sentence.
    pub message: String,
}

/// Below this normalised Blau index, composition is called concentrated.
pub const CONCENTRATED_BLAU_MAX: f64 = 0.5;
/// At or below this E-I index, reach is called inward.
pub const INWARD_EI_MAX: f64 = -0.6;
/// Beyond this network balance (either side), reciprocity is called one-sided.
pub const ONE_SIDED_BALANCE: f64 = 1.0 / 3.0;
/// Below this circle evenness, circles are called unbalanced.
pub const UNBALANCED_EVENNESS_MAX: f64 = 0.6;
/// Below this share of strategic ties with shared work, it is flagged.
pub const TOGETHER_SHARE_MIN: f64 = 0.25;
/// Above this share of interactions started by me (of me + them), it is flagged.
pub const INITIATIVE_ME_MAX: f64 = 0.5;

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn pct(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

/// The headline findings of a report, most important first.
pub fn headlines(r: &InsightsReport) -> Vec<Finding> {
    // (severity, rule rank, code, message)
    let mut out: Vec<(Severity, u8, &'static str, String)> = Vec::new();

    if let Some(list) = r.reconnect.neglected_strategic.value()
        && !list.is_empty()
    {
        let top = list.iter().filter(|t| t.goal_priority == Some(1)).count();
        let mut msg = format!(
            "{} overdue",
            plural(list.len(), "strategic tie", "strategic ties")
        );
        if top > 0 {
            msg.push_str(&format!(" ({top} linked to a priority-1 goal)"));
        }
        let sev = if top > 0 {
            Severity::Alert
        } else {
            Severity::Warning
        };
        out.push((sev, 0, "strategic_overdue", msg));
    }
    if let Some(f) = r.follow_ups.value() {
        if !f.overdue.is_empty() {
            out.push((
                Severity::Warning,
                1,
                "follow_ups_overdue",
                format!(
                    "{} overdue",
                    plural(f.overdue.len(), "follow-up", "follow-ups")
                ),
            ));
        }
        if !f.due_today.is_empty() {
            out.push((
                Severity::Notice,
                1,
                "follow_ups_due_today",
                format!(
                    "{} due today",
                    plural(f.due_today.len(), "follow-up", "follow-ups")
                ),
            ));
        }
    }
    if let Some(goals) = r.goals.value() {
        for g in goals {
            match g.state {
                GoalState::NoNetwork => out.push((
                    Severity::Warning,
                    2,
                    "goal_no_network",
                    format!("goal \"{}\" has no network: no contact linked", g.title),
                )),
                GoalState::Stalled => out.push((
                    Severity::Warning,
                    2,
                    "goal_stalled",
                    format!(
                        "goal \"{}\" is stalled: none of its {} active in 90 days",
                        g.title,
                        plural(g.linked.len(), "contact", "contacts")
                    ),
                )),
                GoalState::Moving => {}
            }
        }
    }
    if let Some(functions) = r.functions.value() {
        for f in functions {
            match f.supply {
                Supply::Gap => out.push((
                    Severity::Warning,
                    3,
                    "function_gap",
                    format!("no one gave you {} in the last year", f.what),
                )),
                Supply::Fragile => out.push((
                    Severity::Warning,
                    3,
                    "function_fragile",
                    match &f.only_source {
                        Some(c) => format!("{} comes from one person only ({})", f.what, c.name),
                        None => format!("{} comes from one person only", f.what),
                    },
                )),
                Supply::Covered => {}
            }
        }
    }
    if let Some(b) = r.circle_balance.value() {
        let strategic = &b.circles[2];
        match (b.strategic_target, b.strategic_gap) {
            (Some(target), Some(gap)) if gap > 0.0 => out.push((
                Severity::Warning,
                4,
                "strategic_gap",
                format!(
                    "strategic ties get {} of your effort, target {}",
                    pct(strategic.effort_share),
                    pct(target)
                ),
            )),
            (None, _) => out.push((
                Severity::Info,
                4,
                "strategic_target_unset",
                format!(
                    "strategic ties get {} of your effort (set a target in settings)",
                    pct(strategic.effort_share)
                ),
            )),
            _ => {}
        }
        for c in &b.circles {
            if c.count == 0 {
                out.push((
                    Severity::Warning,
                    4,
                    "circle_empty",
                    format!("no active {} ties in the last year", c.circle),
                ));
            }
        }
        if b.evenness < UNBALANCED_EVENNESS_MAX && b.circles.iter().all(|c| c.count > 0) {
            out.push((
                Severity::Notice,
                4,
                "circles_unbalanced",
                format!("circles are unbalanced (evenness {:.2})", b.evenness),
            ));
        }
    }
    if let Some(list) = r.reconnect.cooling.value()
        && !list.is_empty()
    {
        out.push((
            Severity::Notice,
            5,
            "cooling",
            format!("{} cooling", plural(list.len(), "tie is", "ties are")),
        ));
    }
    if let Some(rec) = r.reciprocity.value() {
        if rec.network_balance > ONE_SIDED_BALANCE {
            out.push((
                Severity::Notice,
                6,
                "mostly_giving",
                format!(
                    "you give more than you receive ({} given, {} received)",
                    rec.given_total, rec.received_total
                ),
            ));
        } else if rec.network_balance < -ONE_SIDED_BALANCE {
            out.push((
                Severity::Notice,
                6,
                "mostly_receiving",
                format!(
                    "you receive more than you give ({} received, {} given)",
                    rec.received_total, rec.given_total
                ),
            ));
        }
    }
    if let Some(i) = r.initiative.value()
        && let Some(b) = i.balance
        && b > INITIATIVE_ME_MAX
    {
        let share = f64::from(i.me) / f64::from(i.me + i.them).max(1.0);
        out.push((
            Severity::Notice,
            6,
            "initiative_one_sided",
            format!("you start {} of interactions (me vs them)", pct(share)),
        ));
    }
    if let Some(d) = r.composition.active.discipline.value()
        && let Some(bn) = d.blau_normalised
        && bn < CONCENTRATED_BLAU_MAX
    {
        out.push((
            Severity::Notice,
            7,
            "disciplines_concentrated",
            format!("active ties are concentrated in few disciplines (B* {bn:.2})"),
        ));
    }
    if let Some(e) = r.reach.organisation.value()
        && e.ei <= INWARD_EI_MAX
    {
        let inside = f64::from(e.internal) / f64::from(e.internal + e.external).max(1.0);
        out.push((
            Severity::Notice,
            7,
            "reach_inward",
            format!(
                "{} of active ties are inside your organisation",
                pct(inside)
            ),
        ));
    }
    if let Some(e) = r.reach.seniority.value()
        && e.ei <= INWARD_EI_MAX
    {
        out.push((
            Severity::Notice,
            7,
            "mostly_peers",
            format!(
                "active ties are mostly peers ({} of {}): reach up and down",
                e.internal,
                e.internal + e.external
            ),
        ));
    }
    if let Some(t) = r.together.value()
        && let Some(share) = t.strategic.share
        && share < TOGETHER_SHARE_MIN
    {
        out.push((
            Severity::Notice,
            8,
            "little_shared_work",
            format!(
                "only {} of strategic ties did shared work with you this year",
                pct(share)
            ),
        ));
    }
    if let Some(list) = r.reconnect.dormant.value()
        && !list.is_empty()
    {
        out.push((
            Severity::Info,
            9,
            "dormant",
            format!(
                "{} dormant for a year or more",
                plural(list.len(), "tie has been", "ties have been")
            ),
        ));
    }
    let mut thin = |what: &str, m: Option<Coverage>, is_thin: bool| {
        if let (true, Some(c)) = (is_thin, m) {
            out.push((
                Severity::Info,
                10,
                "not_enough_data",
                format!(
                    "{what} is known for only {} of {} active ties: not enough data",
                    c.known, c.total
                ),
            ));
        }
    };
    let a = &r.composition.active;
    thin(
        "discipline",
        a.discipline.coverage(),
        matches!(a.discipline, Metric::NotEnoughData { .. }),
    );
    thin(
        "seniority",
        a.seniority.coverage(),
        matches!(a.seniority, Metric::NotEnoughData { .. }),
    );
    thin(
        "inside/outside the organisation",
        a.organisation.coverage(),
        matches!(a.organisation, Metric::NotEnoughData { .. }),
    );
    thin(
        "the circle",
        a.circle.coverage(),
        matches!(a.circle, Metric::NotEnoughData { .. }),
    );
    thin(
        "what was exchanged",
        r.reciprocity.coverage(),
        matches!(r.reciprocity, Metric::NotEnoughData { .. }),
    );
    if r.strength.value().is_none() {
        out.push((
            Severity::Info,
            11,
            "no_data",
            "no interaction logged yet: log one to see insights".to_string(),
        ));
    }

    out.sort_by(|a, b| (a.0, a.1, &a.3).cmp(&(b.0, b.1, &b.3)));
    out.dedup();
    out.into_iter()
        .map(|(severity, _, code, message)| Finding {
            severity,
            code: code.to_string(),
            message,
        })
        .collect()
}

//! The insights report as plain text, headline findings first.
//!
//! [`render_text`] is what `kith insights` prints (no colours, no terminal
//! control: the CLI may add those). Every section states its "no data" or
//! "not enough data" state instead of a number, like the HTML page.

use std::fmt::Write as _;

use crate::InsightsReport;
use crate::functions::Supply;
use crate::goals::GoalState;
use crate::headlines::{Severity, headlines};
use crate::metric::Metric;
use crate::reach::EiIndex;

/// Writes to a `String`, which cannot fail.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// "no data: ..." / "not enough data: ..." for a metric without a value.
fn state<T>(m: &Metric<T>) -> String {
    match m {
        Metric::NoData { reason } => format!("no data: {reason}"),
        Metric::NotEnoughData { coverage } => format!(
            "not enough data: known for {} of {} ties ({})",
            coverage.known,
            coverage.total,
            pct(coverage.share)
        ),
        Metric::Value { .. } => String::new(),
    }
}

fn ei(m: &Metric<EiIndex>) -> String {
    match m.value() {
        Some(e) => format!(
            "{:+.2} ({} across, {} within)",
            e.ei, e.external, e.internal
        ),
        None => state(m),
    }
}

/// Renders the report as plain text; lists show at most `rows_max` rows.
pub fn render_text(r: &InsightsReport, rows_max: usize) -> String {
    let mut t = String::with_capacity(8 * 1024);
    w!(t, "HEADLINES");
    let findings = headlines(r);
    if findings.is_empty() {
        w!(t, "  nothing stands out");
    }
    for f in &findings {
        let tag = match f.severity {
            Severity::Alert => "urgent ",
            Severity::Warning => "warning",
            Severity::Notice => "note   ",
            Severity::Info => "info   ",
        };
        w!(t, "  [{tag}] {}", f.message);
    }
    let x = &r.totals;
    w!(
        t,
        "\nNETWORK\n  {} contacts ({} archived, {} merged not counted), {} active in the last year, {} in the last 90 days\n  {} interactions considered ({} deleted, {} dated in the future not counted)",
        x.contacts_live,
        x.contacts_archived,
        x.contacts_merged,
        x.active_window,
        x.active_activity,
        x.interactions_considered,
        x.interactions_deleted,
        x.interactions_future
    );

    w!(t, "\nCIRCLE BALANCE (active in the last year)");
    match r.circle_balance.value() {
        None => w!(t, "  {}", state(&r.circle_balance)),
        Some(b) => {
            for c in &b.circles {
                w!(
                    t,
                    "  {:<12} {:>5} ties {:>5} of ties {:>5} of effort",
                    c.circle.as_str(),
                    c.count,
                    pct(c.share),
                    pct(c.effort_share)
                );
            }
            w!(t, "  evenness J = {:.2}", b.evenness);
            if let (Some(target), Some(gap)) = (b.strategic_target, b.strategic_gap) {
                w!(t, "  strategic target {}: gap {}", pct(target), pct(gap));
            }
        }
    }

    w!(
        t,
        "\nCOMPOSITION (B* normalised Blau, evenness; active / core)"
    );
    let c = &r.composition;
    for (name, a, k) in [
        ("discipline", &c.active.discipline, &c.core.discipline),
        ("seniority", &c.active.seniority, &c.core.seniority),
        ("organisation", &c.active.organisation, &c.core.organisation),
        ("circle", &c.active.circle, &c.core.circle),
    ] {
        let fmt = |m: &Metric<super::composition::Diversity>| match m.value() {
            Some(d) => format!(
                "B* {} evenness {} ({}/{} present)",
                d.blau_normalised.map_or("-".into(), |v| format!("{v:.2}")),
                d.evenness.map_or("-".into(), |v| format!("{v:.2}")),
                d.range,
                d.k
            ),
            None => state(m),
        };
        w!(t, "  {name:<12} {} / {}", fmt(a), fmt(k));
    }

    w!(t, "\nREACH (E-I index, -1 all within .. +1 all across)");
    w!(t, "  organisation {}", ei(&r.reach.organisation));
    w!(t, "  discipline   {}", ei(&r.reach.discipline));
    w!(t, "  seniority    {}", ei(&r.reach.seniority));
    match r.grid.value() {
        Some(g) => w!(
            t,
            "  discipline x seniority: {} of {} cells have an active tie",
            g.non_empty,
            g.cells_total
        ),
        None => w!(t, "  discipline x seniority: {}", state(&r.grid)),
    }

    w!(t, "\nRECIPROCITY (last year)");
    match r.reciprocity.value() {
        None => w!(t, "  {}", state(&r.reciprocity)),
        Some(x) => {
            w!(
                t,
                "  given {}, received {}, balance {:+.2}; ties: {} balanced, {} mostly giving, {} mostly receiving, {} too few",
                x.given_total,
                x.received_total,
                x.network_balance,
                x.balanced,
                x.mostly_giving,
                x.mostly_receiving,
                x.undefined
            );
        }
    }
    if let Some(i) = r.initiative.value() {
        w!(
            t,
            "  initiative: me {}, them {}, mutual {}, unknown {}",
            i.me,
            i.them,
            i.mutual,
            i.unknown
        );
    }
    match r.functions.value() {
        None => w!(t, "  functions: {}", state(&r.functions)),
        Some(list) => {
            for f in list {
                let s = match f.supply {
                    Supply::Gap => "GAP: received from nobody".to_string(),
                    Supply::Fragile => format!(
                        "fragile: only {}",
                        f.only_source
                            .as_ref()
                            .map_or("one person", |c| c.name.as_str())
                    ),
                    Supply::Covered => format!("from {} people", f.sources),
                };
                w!(t, "  {:<12} {s}", f.what.as_str());
            }
        }
    }

    w!(t, "\nRECONNECT");
    match r.reconnect.neglected_strategic.value() {
        None => w!(
            t,
            "  neglected strategic ties: {}",
            state(&r.reconnect.neglected_strategic)
        ),
        Some(list) => {
            w!(t, "  neglected strategic ties: {}", list.len());
            for o in list.iter().take(rows_max) {
                let last = if o.never {
                    "never contacted".to_string()
                } else {
                    format!("{} days ago", o.days_since)
                };
                let goal = o
                    .goal_priority
                    .map_or(String::new(), |p| format!(", goal priority {p}"));
                w!(
                    t,
                    "    {:<28} {last}, cadence {} d, overdue x{:.1}{goal}",
                    o.contact.name,
                    o.cadence_days,
                    o.overdue_ratio
                );
            }
        }
    }
    if let Some(list) = r.reconnect.overdue.value() {
        w!(t, "  overdue (all circles): {}", list.len());
    }
    if let Some(list) = r.reconnect.cooling.value() {
        w!(t, "  cooling: {}", list.len());
        for c in list.iter().take(rows_max) {
            w!(
                t,
                "    {:<28} strength {:.2} (was {:.2})",
                c.contact.name,
                c.strength,
                c.strength_before
            );
        }
    }
    if let Some(list) = r.reconnect.dormant.value() {
        w!(t, "  dormant a year or more: {}", list.len());
    }

    w!(t, "\nGOALS");
    match r.goals.value() {
        None => w!(t, "  {}", state(&r.goals)),
        Some(list) => {
            for g in list {
                let s = match g.state {
                    GoalState::NoNetwork => "no network",
                    GoalState::Stalled => "stalled",
                    GoalState::Moving => "moving",
                };
                w!(
                    t,
                    "  [p{}] {} - {s}: {} linked, {} active in 90 days",
                    g.priority,
                    g.title,
                    g.linked.len(),
                    g.active_linked
                );
            }
        }
    }
    match r.together.value() {
        None => w!(t, "\nDOING THINGS TOGETHER\n  {}", state(&r.together)),
        Some(x) => w!(
            t,
            "\nDOING THINGS TOGETHER (last year)\n  strategic ties with shared work: {} of {}\n  core ties with shared work: {} of {}",
            x.strategic.with_shared_work,
            x.strategic.total,
            x.core.with_shared_work,
            x.core.total
        ),
    }

    w!(t, "\nFOLLOW-UPS");
    match r.follow_ups.value() {
        None => w!(t, "  {}", state(&r.follow_ups)),
        Some(f) => {
            w!(
                t,
                "  {} overdue, {} due today, {} open, {} done in the last {} days",
                f.overdue.len(),
                f.due_today.len(),
                f.open_total,
                f.done_recently,
                r.params.follow_up_done_window_days
            );
            for i in f.due_today.iter().chain(f.overdue.iter()).take(rows_max) {
                let with: Vec<&str> = i.with.iter().map(|c| c.name.as_str()).collect();
                let when = if i.days_overdue == 0 {
                    "today".to_string()
                } else {
                    format!("{} days late", i.days_overdue)
                };
                w!(t, "    {:<36} {when} ({})", i.text, with.join(", "));
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InsightsInput, InsightsParams, compute_all};
    use kith_model::model::Settings;
    use kith_synth::{SynthParams, generate};

    const NOW: i64 = 1_790_000_000_000;

    #[test]
    fn text_report_starts_with_headlines_and_covers_every_section() {
        let net = generate(&SynthParams::new(200, 3_000, 9, NOW));
        let inp = InsightsInput {
            contacts: &net.contacts,
            interactions: &net.interactions,
            goals: &net.goals,
            settings: &net.settings,
            now_ms: NOW,
            params: InsightsParams::default(),
        };
        let report = compute_all(&inp);
        let text = render_text(&report, 5);
        assert!(text.starts_with("HEADLINES\n  ["));
        for s in [
            "CIRCLE BALANCE",
            "COMPOSITION",
            "REACH",
            "RECIPROCITY",
            "RECONNECT",
            "GOALS",
            "DOING THINGS TOGETHER",
            "FOLLOW-UPS",
        ] {
            assert!(text.contains(s), "{s}");
        }
        let first = &headlines(&report)[0].message;
        assert!(text.lines().nth(1).unwrap().ends_with(first.as_str()));
    }

    #[test]
    fn empty_report_says_no_data() {
        let settings = Settings::default();
        let inp = InsightsInput {
            contacts: &[],
            interactions: &[],
            goals: &[],
            settings: &settings,
            now_ms: NOW,
            params: InsightsParams::default(),
        };
        let text = render_text(&compute_all(&inp), 5);
        assert!(text.contains("no data: no contact with an interaction in the last year"));
        assert!(!text.contains("NaN"));
    }
}

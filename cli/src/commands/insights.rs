//! `kith insights` and `kith report --html FILE`: the shape of the network,
//! computed by `kith_insights` from the index (no document load).

use kith_insights::{
    Finding, HtmlOptions, InsightsParams, InsightsReport, Severity, compute_all, headlines,
    render_html, render_text,
};

/// Rows per list in the text report (the JSON has them all).
const INSIGHTS_ROWS_MAX: usize = 10;
use serde::Serialize;

use super::{Ctx, store_failure};
use crate::args::ReportArgs;
use crate::error::{CliError, CliResult};

/// Computes the full report from the store's index (one read transaction,
/// interactions without their notes; no document is loaded).
pub(crate) fn compute(ctx: &Ctx) -> CliResult<InsightsReport> {
    let records = ctx.store.insights_records().map_err(store_failure)?;
    let now_ms = ctx.clock.now_ms();
    let offset = ctx.clock.local_offset_at(now_ms).local_minus_utc() / 60;
    let params = InsightsParams {
        utc_offset_minutes: offset,
        ..InsightsParams::default()
    };
    Ok(compute_all(&kith_insights::InsightsInput::from_records(
        &records, now_ms, params,
    )))
}

fn marker(s: Severity) -> &'static str {
    match s {
        Severity::Alert => "!!",
        Severity::Warning => "! ",
        Severity::Notice => "* ",
        Severity::Info => "- ",
    }
}

/// Prints the headline findings, most important first.
pub(crate) fn print_headlines(ctx: &mut Ctx, findings: &[Finding], max: usize) -> CliResult<()> {
    if findings.is_empty() {
        ctx.out
            .line("No findings yet: log a few interactions first.")?;
    }
    for f in findings.iter().take(max) {
        ctx.out
            .line(format!("{} {}", marker(f.severity), f.message))?;
    }
    if findings.len() > max {
        ctx.out.line(format!(
            "   ... and {} more (kith insights)",
            findings.len() - max
        ))?;
    }
    Ok(())
}

/// JSON of `kith insights`.
#[derive(Debug, Serialize)]
struct InsightsView<'a> {
    headlines: &'a [Finding],
    report: &'a InsightsReport,
}

pub(super) fn insights(ctx: &mut Ctx) -> CliResult<()> {
    let report = compute(ctx)?;
    let findings = headlines(&report);
    if ctx.json {
        ctx.out.json(&InsightsView {
            headlines: &findings,
            report: &report,
        })?;
        return Ok(());
    }
    // The engine's plain-text report: headlines first, then every metric
    // with its "no data" / "not enough data" state.
    for line in render_text(&report, INSIGHTS_ROWS_MAX).lines() {
        ctx.out.line(line)?;
    }
    ctx.out.line("")?;
    ctx.out
        .line("Every number: kith insights --json; a visual report: kith report --html FILE")?;
    Ok(())
}

pub(super) fn report(ctx: &mut Ctx, a: ReportArgs) -> CliResult<()> {
    let report = compute(ctx)?;
    let html = render_html(&report, &HtmlOptions::default());
    std::fs::write(&a.html, html.as_bytes()).map_err(|e| {
        CliError::Failure(anyhow::Error::new(e).context(format!("writing {}", a.html.display())))
    })?;
    if ctx.json {
        ctx.out
            .json(&serde_json::json!({ "html": a.html, "size_bytes": html.len() }))?;
    } else {
        ctx.out.line(format!(
            "Wrote the insights report to {} ({} KB)",
            a.html.display(),
            html.len().div_ceil(1024)
        ))?;
    }
    Ok(())
}

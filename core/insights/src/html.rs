//! The insights report as one self-contained HTML page.
//!
//! [`render_html`] reads a computed [`InsightsReport`] and writes a single
//! HTML document with inline CSS and inline SVG charts: no script, no font,
//! no image and no stylesheet is loaded from anywhere, so the file opens
//! offline and can be mailed as is. Sections, in reading order: headline
//! findings, key figures, circle balance, the network map (contacts placed by
//! circle, strong ties nearer the centre, sized by strength, coloured by
//! discipline), composition per attribute, reach, the discipline x seniority
//! grid, reciprocity per contact, function coverage, the reconnect lists,
//! goals, shared work and follow-ups. Every text that comes from the user's
//! data goes through [`escape`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::InsightsReport;
use crate::composition::{CompositionSet, Diversity};
use crate::functions::Supply;
use crate::goals::GoalState;
use crate::headlines::{Severity, headlines};
use crate::metric::Metric;
use crate::reach::EiIndex;
use crate::reciprocity::Balance;
use crate::strength::ContactStrength;
use kith_model::model::{Circle, TimestampMs};

/// Writes to a `String`, which cannot fail.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

/// Presentation options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtmlOptions {
    /// Page title and heading.
    pub title: String,
    /// Rows shown per list (the JSON report has them all).
    pub list_rows_max: usize,
    /// Contacts drawn on the network map (the strongest ties).
    pub map_nodes_max: usize,
}

impl Default for HtmlOptions {
    fn default() -> Self {
        HtmlOptions {
            title: "Network insights".to_string(),
            list_rows_max: 12,
            map_nodes_max: 180,
        }
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CIRCLE_COLOURS: [&str; 3] = ["#3a6fd8", "#1f9e78", "#e07a1f"];
const PALETTE: [&str; 12] = [
    "#3a6fd8", "#e07a1f", "#1f9e78", "#c94670", "#7a5cc7", "#c9a227", "#2aa7c4", "#8c6d4f",
    "#5f8f2f", "#d45a3a", "#4d5fa8", "#9b4fa8",
];
const UNKNOWN_COLOUR: &str = "#b8bec9";
const SENIORITY_COLOURS: [&str; 3] = ["#7a5cc7", "#3a6fd8", "#2aa7c4"];
const ORG_COLOURS: [&str; 2] = ["#3a6fd8", "#e07a1f"];

fn circle_colour(c: Circle) -> &'static str {
    match c {
        Circle::Operational => CIRCLE_COLOURS[0],
        Circle::Personal => CIRCLE_COLOURS[1],
        Circle::Strategic => CIRCLE_COLOURS[2],
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn date(ms: TimestampMs) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%-d %b %Y").to_string())
        .unwrap_or_else(|| "?".to_string())
}

const CSS: &str = r#"
:root{--bg:#f4f5f8;--card:#fff;--ink:#1d2330;--muted:#667085;--line:#e6e8ee;
--op:#3a6fd8;--pe:#1f9e78;--st:#e07a1f;--alert:#c62f3a;--warn:#c77700;--note:#3a6fd8;--info:#667085}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.page{max-width:1200px;margin:0 auto;padding:28px 28px 48px}
header{display:flex;justify-content:space-between;align-items:flex-end;margin-bottom:18px}
h1{font-size:26px;margin:0;letter-spacing:-.01em}
.sub{color:var(--muted);margin-top:4px}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.08em;color:var(--muted);margin:0 0 12px;font-weight:650}
h3{font-size:14px;margin:14px 0 6px}
.grid{display:grid;grid-template-columns:repeat(12,1fr);gap:16px}
.card{background:var(--card);border-radius:12px;padding:18px 20px;box-shadow:0 1px 2px rgba(16,24,40,.06),0 1px 3px rgba(16,24,40,.04)}
.col{display:flex;flex-direction:column;gap:16px}
.s12{grid-column:span 12}.s8{grid-column:span 8}.s7{grid-column:span 7}.s6{grid-column:span 6}.s5{grid-column:span 5}.s4{grid-column:span 4}
.findings{list-style:none;margin:0;padding:0;display:grid;grid-template-columns:1fr 1fr;gap:8px 16px}
.findings li{display:flex;gap:10px;align-items:flex-start;padding:8px 10px;border-radius:8px;background:#f8f9fb}
.sev{flex:none;font-size:11px;font-weight:700;text-transform:uppercase;letter-spacing:.05em;padding:2px 7px;border-radius:999px;color:#fff;margin-top:1px}
.sev.alert{background:var(--alert)}.sev.warning{background:var(--warn)}.sev.notice{background:var(--note)}.sev.info{background:var(--info)}
.kpis{display:grid;grid-template-columns:repeat(6,1fr);gap:12px}
.kpi{background:var(--card);border-radius:12px;padding:14px 16px;box-shadow:0 1px 2px rgba(16,24,40,.06)}
.kpi b{display:block;font-size:24px;letter-spacing:-.02em}
.kpi span{color:var(--muted);font-size:12px}
.muted{color:var(--muted)}
.small{font-size:12px}
.state{padding:14px;border:1px dashed var(--line);border-radius:8px;color:var(--muted);background:#fafbfc}
table{border-collapse:collapse;width:100%}
th{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);text-align:left;font-weight:650;padding:6px 8px;border-bottom:1px solid var(--line)}
td{padding:6px 8px;border-bottom:1px solid #f0f1f4;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.legend{display:flex;flex-wrap:wrap;gap:6px 14px;margin-top:8px;font-size:12px;color:var(--muted)}
.legend i{display:inline-block;width:10px;height:10px;border-radius:3px;margin-right:5px;vertical-align:-1px}
.pill{display:inline-block;font-size:11px;padding:1px 8px;border-radius:999px;background:#eef1f6;color:#344054;margin:0 4px 2px 0;white-space:nowrap}
.pill.op{background:#e6eefc;color:#2552ad}.pill.pe{background:#e3f5ef;color:#157a5c}.pill.st{background:#fdeedd;color:#a5540f}
.pill.bad{background:#fde7e9;color:#a3202b}.pill.warn{background:#fff2db;color:#8f5600}.pill.ok{background:#e3f5ef;color:#157a5c}
.attr{display:grid;grid-template-columns:120px 1fr 150px;gap:6px 14px;align-items:center;padding:8px 0;border-bottom:1px solid #f0f1f4}
.attr:last-child{border-bottom:0}
.attr .name{font-weight:600}
.fig{font-variant-numeric:tabular-nums;font-size:12px;color:var(--muted)}
.fig b{color:var(--ink);font-size:13px}
.funcs{display:grid;grid-template-columns:repeat(5,1fr);gap:10px}
.func{border-radius:10px;padding:12px;background:#f8f9fb;border-top:4px solid #ccc}
.func.gap{border-color:var(--alert)}.func.fragile{border-color:var(--warn)}.func.covered{border-color:var(--pe)}
.func b{display:block;text-transform:capitalize}
.goal{display:flex;justify-content:space-between;gap:12px;padding:10px 0;border-bottom:1px solid #f0f1f4}
.goal:last-child{border-bottom:0}
svg text{font-family:inherit}
footer{margin-top:22px;color:var(--muted);font-size:12px;text-align:center}
"#;

/// Renders the report as one self-contained HTML page.
pub fn render_html(report: &InsightsReport, options: &HtmlOptions) -> String {
    let mut h = String::with_capacity(256 * 1024);
    let title = escape(&options.title);
    w!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{CSS}</style></head><body><div class=\"page\">"
    );
    w!(
        h,
        "<header><div><h1>{title}</h1><div class=\"sub\">The shape of your network on {} \
         &middot; three circles, composition, reciprocity, reconnects</div></div></header>",
        date(report.now_ms)
    );
    let palette = discipline_palette(report);

    findings_section(&mut h, report);
    kpis(&mut h, report);

    h.push_str("<div class=\"grid\" style=\"margin-top:16px\">");
    column(&mut h, "s5", |h| {
        card(h, "", "Circle balance", |h| circle_balance(h, report));
        card(h, "", "Reach (E-I index)", |h| reach(h, report));
    });
    card(&mut h, "s7", "Network map", |h| {
        network_map(h, report, options, &palette)
    });
    card(
        &mut h,
        "s12",
        "Composition of active ties and of the core",
        |h| composition(h, report, &palette),
    );
    card(&mut h, "s12", "What your network supplies", |h| {
        functions(h, report)
    });
    card(&mut h, "s7", "Reciprocity per contact", |h| {
        reciprocity(h, report, options)
    });
    card(&mut h, "s5", "Who starts interactions", |h| {
        initiative(h, report)
    });
    card(&mut h, "s12", "Reconnect", |h| {
        reconnect(h, report, options)
    });
    card(&mut h, "s6", "Disciplines x seniority", |h| grid(h, report));
    column(&mut h, "s6", |h| {
        card(h, "", "Goals", |h| goals(h, report));
        card(h, "", "Doing things together", |h| {
            together(h, report, options)
        });
    });
    card(&mut h, "s12", "Follow-ups", |h| {
        follow_ups(h, report, options)
    });
    h.push_str("</div>");
    w!(
        h,
        "<footer>Generated by Kith from {} contacts and {} interactions. \
         Every metric, window and threshold is defined in docs/INSIGHTS.md.</footer>",
        report.totals.contacts_live,
        report.totals.interactions_considered
    );
    h.push_str("</div></body></html>\n");
    h
}

fn column(h: &mut String, span: &str, body: impl FnOnce(&mut String)) {
    w!(h, "<div class=\"{span} col\">");
    body(h);
    h.push_str("</div>");
}

fn card(h: &mut String, span: &str, title: &str, body: impl FnOnce(&mut String)) {
    w!(
        h,
        "<section class=\"card {span}\"><h2>{}</h2>",
        escape(title)
    );
    body(h);
    h.push_str("</section>");
}

/// The "no data" / "not enough data" box of a metric without a value.
fn state<T>(h: &mut String, m: &Metric<T>) {
    match m {
        Metric::NoData { reason } => {
            w!(h, "<div class=\"state\">No data: {}.</div>", escape(reason))
        }
        Metric::NotEnoughData { coverage } => w!(
            h,
            "<div class=\"state\">Not enough data: known for {} of {} ties ({}).</div>",
            coverage.known,
            coverage.total,
            pct(coverage.share)
        ),
        Metric::Value { .. } => {}
    }
}

fn coverage_note<T>(h: &mut String, m: &Metric<T>) {
    coverage_note_of(h, m, "ties");
}

fn coverage_note_of<T>(h: &mut String, m: &Metric<T>, noun: &str) {
    if let Some(c) = m.coverage()
        && c.known < c.total
    {
        w!(
            h,
            "<div class=\"muted small\">Based on {} of {} {noun} ({} coverage).</div>",
            c.known,
            c.total,
            pct(c.share)
        );
    }
}

/// Display name and colour per discipline key (trimmed, lower case), in vocabulary order.
type Palette = BTreeMap<String, (String, &'static str)>;

fn discipline_palette(r: &InsightsReport) -> Palette {
    let mut names: Vec<String> = Vec::new();
    if let Some(g) = r.grid.value() {
        names.extend(g.disciplines.iter().cloned());
    } else if let Some(d) = r.composition.active.discipline.value() {
        names.extend(d.categories.iter().map(|c| c.category.clone()));
    } else if let Some(s) = r.strength.value() {
        names.extend(s.contacts.iter().filter_map(|c| c.discipline.clone()));
    }
    let mut map = Palette::new();
    for n in names {
        let key = n.trim().to_lowercase();
        let next = PALETTE[map.len() % PALETTE.len()];
        map.entry(key).or_insert((n.trim().to_string(), next));
    }
    map
}

fn discipline_colour(palette: &Palette, d: Option<&str>) -> &'static str {
    d.map(|d| d.trim().to_lowercase())
        .and_then(|k| palette.get(&k).map(|(_, c)| *c))
        .unwrap_or(UNKNOWN_COLOUR)
}

/// Two decimals, without a "-0.00".
fn f2(x: f64) -> String {
    let x = if x.abs() < 0.005 { 0.0 } else { x };
    format!("{x:.2}")
}

fn findings_section(h: &mut String, r: &InsightsReport) {
    let findings = headlines(r);
    h.push_str("<section class=\"card\" style=\"margin-bottom:16px\"><h2>Headlines</h2>");
    if findings.is_empty() {
        h.push_str("<div class=\"muted\">Nothing stands out: a balanced, well-kept network.</div>");
    } else {
        h.push_str("<ul class=\"findings\">");
        for f in &findings {
            let (class, label) = match f.severity {
                Severity::Alert => ("alert", "urgent"),
                Severity::Warning => ("warning", "warning"),
                Severity::Notice => ("notice", "note"),
                Severity::Info => ("info", "info"),
            };
            w!(
                h,
                "<li><span class=\"sev {class}\">{label}</span><span>{}</span></li>",
                escape(&f.message)
            );
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>");
}

fn kpis(h: &mut String, r: &InsightsReport) {
    let t = &r.totals;
    let evenness = r
        .circle_balance
        .value()
        .map_or("–".to_string(), |b| format!("{:.2}", b.evenness));
    let balance = r
        .reciprocity
        .value()
        .map_or("–".to_string(), |x| format!("{:+.2}", x.network_balance));
    let overdue = r
        .reconnect
        .neglected_strategic
        .value()
        .map_or("–".to_string(), |l| l.len().to_string());
    let items = [
        (t.contacts_live.to_string(), "contacts"),
        (t.active_window.to_string(), "active in the last year"),
        (t.active_activity.to_string(), "active in the last 90 days"),
        (evenness, "circle evenness (0-1)"),
        (balance, "give (+) / receive (-) balance"),
        (overdue, "strategic ties overdue"),
    ];
    h.push_str("<div class=\"kpis\">");
    for (v, label) in items {
        w!(h, "<div class=\"kpi\"><b>{v}</b><span>{label}</span></div>");
    }
    h.push_str("</div>");
}

fn circle_balance(h: &mut String, r: &InsightsReport) {
    let Some(b) = r.circle_balance.value() else {
        return state(h, &r.circle_balance);
    };
    let (width, label_w, row_h) = (440.0, 92.0, 64.0);
    let bar_w = width - label_w - 82.0;
    let height = row_h * 3.0 + 8.0;
    w!(
        h,
        "<svg viewBox=\"0 0 {width} {height}\" width=\"100%\" role=\"img\" \
         aria-label=\"Circle balance\">"
    );
    for (i, c) in b.circles.iter().enumerate() {
        let y = i as f64 * row_h + 6.0;
        let colour = circle_colour(c.circle);
        w!(
            h,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"13\" font-weight=\"600\" fill=\"#1d2330\" \
             style=\"text-transform:capitalize\">{}</text>",
            y + 22.0,
            c.circle
        );
        w!(
            h,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"11\" fill=\"#667085\">{} ties</text>",
            y + 38.0,
            c.count
        );
        for (k, (share, label, opacity)) in
            [(c.share, "ties", "1"), (c.effort_share, "effort", "0.45")]
                .into_iter()
                .enumerate()
        {
            let by = y + 8.0 + k as f64 * 22.0;
            w!(
                h,
                "<rect x=\"{label_w}\" y=\"{by:.1}\" width=\"{bar_w:.1}\" height=\"16\" rx=\"4\" fill=\"#eef0f4\"/>\
                 <rect x=\"{label_w}\" y=\"{by:.1}\" width=\"{:.1}\" height=\"16\" rx=\"4\" fill=\"{colour}\" fill-opacity=\"{opacity}\">\
                 <title>{} share of {label}: {}</title></rect>\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#344054\">{} {label}</text>",
                (share * bar_w).max(0.0),
                c.circle,
                pct(share),
                label_w + bar_w + 6.0,
                by + 12.0,
                pct(share)
            );
        }
        if c.circle == Circle::Strategic
            && let Some(t) = b.strategic_target
        {
            let x = label_w + t * bar_w;
            let by = y + 30.0;
            w!(
                h,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#1d2330\" \
                 stroke-width=\"2\" stroke-dasharray=\"3 2\"><title>target {}</title></line>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#1d2330\">target</text>",
                by - 3.0,
                by + 19.0,
                pct(t),
                by + 30.0
            );
        }
    }
    h.push_str("</svg>");
    w!(
        h,
        "<div class=\"legend\"><span><i style=\"background:#667085\"></i>share of active ties</span>\
         <span><i style=\"background:#667085;opacity:.45\"></i>share of effort (strength)</span>\
         <span>evenness J = <b>{:.2}</b></span></div>",
        b.evenness
    );
    if let (Some(t), Some(gap)) = (b.strategic_target, b.strategic_gap) {
        w!(
            h,
            "<div class=\"small\" style=\"margin-top:6px\">Strategic effort {} against a target of {}{}</div>",
            pct(b.circles[2].effort_share),
            pct(t),
            if gap > 0.0 {
                format!(": <b style=\"color:var(--warn)\">{} short</b>.", pct(gap))
            } else {
                ": on target.".to_string()
            }
        );
    }
    coverage_note(h, &r.circle_balance);
}

/// Deterministic spread in 0..1 from a contact's rank within its sector.
fn spread(i: usize) -> f64 {
    (i as f64 * 0.618_033_988_749_895).fract()
}

fn network_map(h: &mut String, r: &InsightsReport, options: &HtmlOptions, palette: &Palette) {
    let Some(s) = r.strength.value() else {
        return state(h, &r.strength);
    };
    let nodes: Vec<&ContactStrength> = s
        .contacts
        .iter()
        .filter(|c| !c.circles.is_empty())
        .take(options.map_nodes_max)
        .collect();
    let size = 560.0;
    let (cx, cy) = (size / 2.0, size / 2.0 + 4.0);
    let (r_min, r_max) = (46.0, 238.0);
    let s_max = nodes
        .iter()
        .map(|c| c.strength)
        .fold(0.0f64, f64::max)
        .max(1e-9);
    w!(
        h,
        "<svg viewBox=\"-80 0 {:.0} {:.0}\" width=\"100%\" role=\"img\" aria-label=\"Network map\">",
        size + 160.0,
        size + 8.0
    );
    // Sectors: operational from -90 deg, personal, strategic, 120 deg each.
    let sector_start = |f: usize| -90.0 + 120.0 * f as f64;
    for (f, circle) in Circle::ALL.iter().enumerate() {
        let a0 = sector_start(f).to_radians();
        let a1 = (sector_start(f) + 120.0).to_radians();
        let (x0, y0) = (cx + r_max * a0.cos(), cy + r_max * a0.sin());
        let (x1, y1) = (cx + r_max * a1.cos(), cy + r_max * a1.sin());
        w!(
            h,
            "<path d=\"M{cx:.1},{cy:.1} L{x0:.1},{y0:.1} A{r_max},{r_max} 0 0 1 {x1:.1},{y1:.1} Z\" \
             fill=\"{}\" fill-opacity=\"0.06\" stroke=\"#fff\" stroke-width=\"3\"/>",
            circle_colour(*circle)
        );
        let mid = (sector_start(f) + 60.0).to_radians();
        let lr = r_max + 14.0;
        let (lx, ly) = (cx + lr * mid.cos(), cy + lr * mid.sin());
        let anchor = if mid.cos() > 0.3 {
            "start"
        } else if mid.cos() < -0.3 {
            "end"
        } else {
            "middle"
        };
        w!(
            h,
            "<text x=\"{lx:.1}\" y=\"{:.1}\" font-size=\"12\" font-weight=\"700\" text-anchor=\"{anchor}\" \
             fill=\"{}\" style=\"text-transform:uppercase;letter-spacing:.06em\">{circle}</text>",
            ly + 4.0,
            circle_colour(*circle)
        );
    }
    for k in 1..=3 {
        let rr = r_min + (r_max - r_min) * f64::from(k) / 3.0;
        w!(
            h,
            "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{rr:.1}\" fill=\"none\" stroke=\"#dfe3ea\" stroke-dasharray=\"2 4\"/>"
        );
    }
    // Strong ties near the centre: distance by strength rank.
    let n = nodes.len().max(1);
    let mut per_sector = [0usize; 4];
    let mut placed = Vec::with_capacity(nodes.len());
    for (rank, c) in nodes.iter().enumerate() {
        let idx: Vec<usize> = Circle::ALL
            .iter()
            .enumerate()
            .filter(|(_, f)| c.circles.contains(f))
            .map(|(i, _)| i)
            .collect();
        let angle = if idx.len() >= 2 {
            // On the border between its two circles (strategic/operational wrap around).
            let border = if idx == [0, 2] {
                -90.0
            } else {
                sector_start(idx[1])
            };
            let k = per_sector[3];
            per_sector[3] += 1;
            border + (spread(k) - 0.5) * 16.0
        } else {
            let f = idx.first().copied().unwrap_or(0);
            let k = per_sector[f];
            per_sector[f] += 1;
            sector_start(f) + 12.0 + spread(k) * 96.0
        };
        let dist = r_min + (r_max - r_min - 10.0) * (rank as f64 / n as f64).powf(0.8);
        let a = angle.to_radians();
        let (x, y) = (cx + dist * a.cos(), cy + dist * a.sin());
        let radius = 3.0 + 10.0 * (c.strength / s_max).sqrt();
        placed.push((x, y, radius, *c));
    }
    // Weakest first so strong ties are drawn on top.
    for &(x, y, radius, c) in placed.iter().rev() {
        let colour = discipline_colour(palette, c.discipline.as_deref());
        let stroke = if c.in_core { "#1d2330" } else { "#fff" };
        w!(
            h,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{radius:.1}\" fill=\"{colour}\" fill-opacity=\"0.85\" \
             stroke=\"{stroke}\" stroke-width=\"{}\"><title>{} · {} · strength {:.2}</title></circle>",
            if c.in_core { 1.5 } else { 1.0 },
            escape(&c.name),
            escape(c.discipline.as_deref().unwrap_or("discipline unknown")),
            c.strength
        );
    }
    // Name the strongest ties, skipping a label that would overlap one already
    // drawn (or the "me" disc), so the centre stays readable.
    let mut labels: Vec<(f64, f64, f64)> = vec![(cx - 18.0, cy - 8.0, 36.0)];
    for &(x, y, radius, c) in placed.iter().take(24) {
        if labels.len() > 10 {
            break;
        }
        let first = c.name.split_whitespace().next().unwrap_or(&c.name);
        let (lx, ly) = (x + radius + 3.0, y + 4.0);
        let lw = 6.5 * first.chars().count() as f64;
        let overlaps = labels.iter().any(|&(ox, oy, ow)| {
            (ly - oy).abs() < 13.0 && lx < ox + ow + 4.0 && ox < lx + lw + 4.0
        });
        if overlaps {
            continue;
        }
        labels.push((lx, ly, lw));
        w!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" font-weight=\"600\" fill=\"#1d2330\" \
             stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text>",
            x + radius + 3.0,
            y + 4.0,
            escape(first)
        );
    }
    w!(
        h,
        "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"16\" fill=\"#1d2330\"/>\
         <text x=\"{cx:.1}\" y=\"{:.1}\" font-size=\"11\" font-weight=\"700\" fill=\"#fff\" text-anchor=\"middle\">me</text></svg>",
        cy + 4.0
    );
    h.push_str("<div class=\"legend\">");
    for (name, colour) in palette.values() {
        w!(
            h,
            "<span><i style=\"background:{colour}\"></i>{}</span>",
            escape(name)
        );
    }
    w!(
        h,
        "<span><i style=\"background:{UNKNOWN_COLOUR}\"></i>unknown</span></div>\
         <div class=\"muted small\" style=\"margin-top:4px\">The {} strongest ties with a circle; nearer the centre and larger = stronger; \
         dark outline = the core; on a border = in two circles.</div>",
        nodes.len()
    );
}

fn stacked_bar(h: &mut String, d: &Diversity, colours: &dyn Fn(usize, &str) -> &'static str) {
    let total: u32 = d.categories.iter().map(|c| c.count).sum();
    let width = 560.0;
    w!(
        h,
        "<svg viewBox=\"0 0 {width} 18\" width=\"100%\" height=\"18\" preserveAspectRatio=\"none\" role=\"img\">\
         <rect width=\"{width}\" height=\"18\" rx=\"4\" fill=\"#eef0f4\"/>"
    );
    let mut x = 0.0;
    for (i, c) in d.categories.iter().enumerate() {
        if c.count == 0 || total == 0 {
            continue;
        }
        let wdt = c.share * width;
        w!(
            h,
            "<rect x=\"{x:.2}\" width=\"{wdt:.2}\" height=\"18\" fill=\"{}\" stroke=\"#fff\" stroke-width=\"1\">\
             <title>{}: {} ({})</title></rect>",
            colours(i, &c.category),
            escape(&c.category),
            c.count,
            pct(c.share)
        );
        x += wdt;
    }
    h.push_str("</svg>");
}

fn composition(h: &mut String, r: &InsightsReport, palette: &Palette) {
    let c = &r.composition;
    type Pick = fn(&CompositionSet) -> &Metric<Diversity>;
    let rows: [(&str, Pick); 4] = [
        ("Discipline", |s| &s.discipline),
        ("Seniority", |s| &s.seniority),
        ("Organisation", |s| &s.organisation),
        ("Circle", |s| &s.circle),
    ];
    for (name, get) in rows {
        let colour: &dyn Fn(usize, &str) -> &'static str = match name {
            "Discipline" => &|_, cat| discipline_colour(palette, Some(cat)),
            "Seniority" => &|i, _| SENIORITY_COLOURS[i % 3],
            "Organisation" => &|i, _| ORG_COLOURS[i % 2],
            _ => &|i, _| CIRCLE_COLOURS[i % 3],
        };
        w!(h, "<h3>{name}</h3>");
        for (set_name, set) in [("Active", &c.active), ("Core", &c.core)] {
            let m = get(set);
            w!(h, "<div class=\"attr\"><div class=\"muted\">{set_name}");
            if let Some(cov) = m.coverage() {
                w!(h, " <span class=\"small\">({} ties)</span>", cov.total);
            }
            h.push_str("</div><div>");
            match m.value() {
                Some(d) => stacked_bar(h, d, colour),
                None => state(h, m),
            }
            h.push_str("</div><div class=\"fig\">");
            if let Some(d) = m.value() {
                w!(
                    h,
                    "B* <b>{}</b> · evenness <b>{}</b> · {}/{} present",
                    d.blau_normalised.map_or("–".into(), f2),
                    d.evenness.map_or("–".into(), f2),
                    d.range,
                    d.k
                );
            }
            h.push_str("</div></div>");
        }
        if let Some(d) = get(&c.active).value() {
            h.push_str("<div class=\"legend\" style=\"margin:2px 0 6px 134px\">");
            for (i, cat) in d.categories.iter().enumerate() {
                w!(
                    h,
                    "<span><i style=\"background:{}\"></i>{} {}</span>",
                    colour(i, &cat.category),
                    escape(&cat.category),
                    pct(cat.share)
                );
            }
            h.push_str("</div>");
        }
    }
    h.push_str(
        "<div class=\"muted small\" style=\"margin-top:8px\">B* = Blau's index 1 − Σp² divided by its maximum 1 − 1/K \
         (0 = everyone alike, 1 = spread evenly over all K categories). Core = your strongest ties.</div>",
    );
}

fn gauge(h: &mut String, label: &str, m: &Metric<EiIndex>, inside: &str, outside: &str) {
    w!(h, "<h3>{label}</h3>");
    let Some(e) = m.value() else {
        return state(h, m);
    };
    let gid = label.to_ascii_lowercase();
    let (width, pad) = (400.0, 10.0);
    let x = pad + (e.ei + 1.0) / 2.0 * (width - 2.0 * pad);
    let mid = width / 2.0;
    w!(
        h,
        "<svg viewBox=\"0 0 {width} 44\" width=\"100%\" role=\"img\">\
         <defs><linearGradient id=\"eig-{gid}\" x1=\"0\" x2=\"1\"><stop offset=\"0\" stop-color=\"#c7d4f3\"/>\
         <stop offset=\"1\" stop-color=\"#f9d9bb\"/></linearGradient></defs>\
         <rect x=\"{pad}\" y=\"10\" width=\"{:.1}\" height=\"10\" rx=\"5\" fill=\"url(#eig-{gid})\"/>\
         <line x1=\"{mid}\" x2=\"{mid}\" y1=\"6\" y2=\"24\" stroke=\"#98a2b3\"/>\
         <circle cx=\"{x:.1}\" cy=\"15\" r=\"8\" fill=\"#1d2330\" stroke=\"#fff\" stroke-width=\"2\"/>\
         <text x=\"{pad}\" y=\"38\" font-size=\"11\" fill=\"#667085\">−1 all {inside}</text>\
         <text x=\"{:.1}\" y=\"38\" font-size=\"11\" fill=\"#667085\" text-anchor=\"end\">all {outside} +1</text></svg>",
        width - 2.0 * pad,
        width - pad
    );
    w!(
        h,
        "<div class=\"small\">EI = <b>{:+.2}</b> · {} {outside}, {} {inside}</div>",
        e.ei,
        e.external,
        e.internal
    );
    coverage_note(h, m);
}

fn reach(h: &mut String, r: &InsightsReport) {
    gauge(
        h,
        "Organisation",
        &r.reach.organisation,
        "inside",
        "outside",
    );
    gauge(
        h,
        "Discipline",
        &r.reach.discipline,
        "my discipline",
        "other disciplines",
    );
    gauge(
        h,
        "Seniority",
        &r.reach.seniority,
        "peers",
        "senior or junior",
    );
}

fn grid(h: &mut String, r: &InsightsReport) {
    let Some(g) = r.grid.value() else {
        return state(h, &r.grid);
    };
    let max = g.cells.iter().flatten().copied().max().unwrap_or(0).max(1);
    h.push_str("<table><tr><th>Discipline</th>");
    for s in &g.seniorities {
        w!(
            h,
            "<th class=\"num\" style=\"text-transform:capitalize\">{s}</th>"
        );
    }
    h.push_str("</tr>");
    for (d, row) in g.disciplines.iter().zip(&g.cells) {
        w!(h, "<tr><td>{}</td>", escape(d));
        for &n in row {
            let alpha = if n == 0 {
                0.0
            } else {
                0.12 + 0.78 * f64::from(n) / f64::from(max)
            };
            let ink = if alpha > 0.55 { "#fff" } else { "#1d2330" };
            w!(
                h,
                "<td class=\"num\" style=\"background:rgba(58,111,216,{alpha:.2});color:{ink};\
                 border:2px solid #fff;border-radius:6px\">{}</td>",
                if n == 0 {
                    "·".to_string()
                } else {
                    n.to_string()
                }
            );
        }
        h.push_str("</tr>");
    }
    w!(
        h,
        "</table><div class=\"small\" style=\"margin-top:8px\"><b>{}</b> of {} cells have at least one active tie ({}).</div>",
        g.non_empty,
        g.cells_total,
        pct(g.non_empty_share)
    );
    coverage_note(h, &r.grid);
}

fn reciprocity(h: &mut String, r: &InsightsReport, options: &HtmlOptions) {
    let Some(x) = r.reciprocity.value() else {
        return state(h, &r.reciprocity);
    };
    let rows: Vec<_> = x.contacts.iter().take(options.list_rows_max).collect();
    let max = rows
        .iter()
        .map(|c| c.given.max(c.received))
        .max()
        .unwrap_or(1)
        .max(1);
    let (width, name_w, row_h) = (620.0, 150.0, 22.0);
    let label_w = 96.0;
    let half = (width - name_w - label_w) / 2.0;
    let axis = name_w + half;
    let height = rows.len() as f64 * row_h + 26.0;
    w!(
        h,
        "<svg viewBox=\"0 0 {width} {height:.0}\" width=\"100%\" role=\"img\">\
         <text x=\"{:.1}\" y=\"12\" font-size=\"11\" fill=\"#7a5cc7\" text-anchor=\"end\">◀ received</text>\
         <text x=\"{:.1}\" y=\"12\" font-size=\"11\" fill=\"#1f9e78\">given ▶</text>",
        axis - 6.0,
        axis + 6.0
    );
    for (i, c) in rows.iter().enumerate() {
        let y = 20.0 + i as f64 * row_h;
        let gw = f64::from(c.given) / f64::from(max) * (half - 34.0);
        let rw = f64::from(c.received) / f64::from(max) * (half - 34.0);
        let (tag, colour) = match c.balance {
            Balance::Balanced => ("balanced", "#157a5c"),
            Balance::MostlyGiving => ("mostly giving", "#a5540f"),
            Balance::MostlyReceiving => ("mostly receiving", "#7a5cc7"),
            Balance::Undefined => ("too few", "#98a2b3"),
        };
        w!(
            h,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"12\" fill=\"#1d2330\">{}</text>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{rw:.1}\" height=\"14\" rx=\"3\" fill=\"#7a5cc7\" fill-opacity=\"0.75\"><title>received {}</title></rect>\
             <rect x=\"{axis:.1}\" y=\"{:.1}\" width=\"{gw:.1}\" height=\"14\" rx=\"3\" fill=\"#1f9e78\" fill-opacity=\"0.8\"><title>given {}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#667085\" text-anchor=\"end\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#667085\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"{colour}\">{tag}</text>",
            y + 11.0,
            escape(&truncate(&c.contact.name, 22)),
            axis - rw,
            y,
            c.received,
            y,
            c.given,
            axis - rw - 3.0,
            y + 11.0,
            c.received,
            axis + gw + 3.0,
            y + 11.0,
            c.given,
            width - label_w + 12.0,
            y + 11.0
        );
    }
    w!(
        h,
        "<line x1=\"{axis:.1}\" x2=\"{axis:.1}\" y1=\"16\" y2=\"{:.1}\" stroke=\"#98a2b3\"/></svg>",
        height - 4.0
    );
    w!(
        h,
        "<div class=\"small\" style=\"margin-top:6px\">Network: <b>{}</b> given, <b>{}</b> received \
         (balance {:+.2}). Ties: <span class=\"pill ok\">{} balanced</span><span class=\"pill warn\">{} mostly giving</span>\
         <span class=\"pill\">{} mostly receiving</span><span class=\"pill\">{} too few to judge</span></div>",
        x.given_total,
        x.received_total,
        x.network_balance,
        x.balanced,
        x.mostly_giving,
        x.mostly_receiving,
        x.undefined
    );
    coverage_note(h, &r.reciprocity);
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn initiative(h: &mut String, r: &InsightsReport) {
    let Some(i) = r.initiative.value() else {
        return state(h, &r.initiative);
    };
    let total = f64::from((i.me + i.them + i.mutual + i.unknown).max(1));
    let parts = [
        ("me", i.me, "#e07a1f"),
        ("them", i.them, "#3a6fd8"),
        ("mutual", i.mutual, "#1f9e78"),
        ("unknown", i.unknown, UNKNOWN_COLOUR),
    ];
    let width = 400.0;
    w!(
        h,
        "<svg viewBox=\"0 0 {width} 26\" width=\"100%\" role=\"img\"><rect width=\"{width}\" height=\"26\" rx=\"6\" fill=\"#eef0f4\"/>"
    );
    let mut x = 0.0;
    for (name, n, colour) in parts {
        let wdt = f64::from(n) / total * width;
        if n > 0 {
            w!(
                h,
                "<rect x=\"{x:.1}\" width=\"{wdt:.1}\" height=\"26\" fill=\"{colour}\" stroke=\"#fff\"><title>{name}: {n}</title></rect>"
            );
            if wdt > 44.0 {
                w!(
                    h,
                    "<text x=\"{:.1}\" y=\"17\" font-size=\"11\" fill=\"#fff\" font-weight=\"600\">{name} {}</text>",
                    x + 6.0,
                    pct(f64::from(n) / total)
                );
            }
        }
        x += wdt;
    }
    h.push_str("</svg><div class=\"legend\">");
    for (name, n, colour) in parts {
        w!(
            h,
            "<span><i style=\"background:{colour}\"></i>{name} {n}</span>"
        );
    }
    h.push_str("</div>");
    if let Some(b) = i.balance {
        w!(
            h,
            "<div class=\"small\" style=\"margin-top:6px\">Initiative balance (me − them) / (me + them) = <b>{b:+.2}</b></div>"
        );
    }
    if let Some(x) = r.reciprocity.value() {
        h.push_str("<h3>Exchanges by function</h3><table><tr><th>Function</th><th class=\"num\">Given</th><th class=\"num\">Received</th></tr>");
        for f in &x.by_function {
            w!(
                h,
                "<tr><td style=\"text-transform:capitalize\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                f.what,
                f.given,
                f.received
            );
        }
        h.push_str("</table>");
    }
    coverage_note_of(h, &r.initiative, "interactions (initiator known)");
}

fn functions(h: &mut String, r: &InsightsReport) {
    let Some(list) = r.functions.value() else {
        return state(h, &r.functions);
    };
    h.push_str("<div class=\"funcs\">");
    for f in list {
        let (class, text) = match f.supply {
            Supply::Gap => (
                "gap",
                "Gap: received from nobody in the last year".to_string(),
            ),
            Supply::Fragile => (
                "fragile",
                format!(
                    "Fragile: only from {}",
                    escape(
                        f.only_source
                            .as_ref()
                            .map_or("one person", |c| c.name.as_str())
                    )
                ),
            ),
            Supply::Covered => ("covered", format!("Received from {} people", f.sources)),
        };
        w!(
            h,
            "<div class=\"func {class}\"><b>{}</b><span class=\"small\">{text}</span></div>",
            f.what
        );
    }
    h.push_str("</div>");
    coverage_note(h, &r.functions);
}

fn circle_pills(circles: &[Circle]) -> String {
    circles
        .iter()
        .map(|c| {
            let class = match c {
                Circle::Operational => "op",
                Circle::Personal => "pe",
                Circle::Strategic => "st",
            };
            format!("<span class=\"pill {class}\">{c}</span>")
        })
        .collect()
}

fn reconnect(h: &mut String, r: &InsightsReport, options: &HtmlOptions) {
    let rc = &r.reconnect;
    h.push_str("<div class=\"grid\"><div class=\"s7\">");
    h.push_str("<h3>Neglected strategic ties</h3>");
    match rc.neglected_strategic.value() {
        None => state(h, &rc.neglected_strategic),
        Some(list) if list.is_empty() => {
            h.push_str("<div class=\"muted\">Every strategic tie is within its cadence.</div>")
        }
        Some(list) => {
            h.push_str(
                "<table><tr><th>Contact</th><th class=\"num\">Last</th><th class=\"num\">Cadence</th>\
                 <th class=\"num\">Overdue ×</th><th>Goal</th></tr>",
            );
            for t in list.iter().take(options.list_rows_max) {
                w!(
                    h,
                    "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{} d</td><td class=\"num\"><b>{:.1}</b></td><td>{}</td></tr>",
                    escape(&t.contact.name),
                    if t.never {
                        "<span class=\"pill bad\">never</span>".to_string()
                    } else {
                        format!("{} d ago", t.days_since)
                    },
                    t.cadence_days,
                    t.overdue_ratio,
                    t.goal_priority.map_or(String::new(), |p| format!(
                        "<span class=\"pill warn\">priority {p}</span>"
                    ))
                );
            }
            h.push_str("</table>");
            more(h, list.len(), options.list_rows_max);
        }
    }
    h.push_str("<h3>Overdue, by circle and strength</h3>");
    match rc.overdue.value() {
        None => state(h, &rc.overdue),
        Some(list) => {
            h.push_str(
                "<table><tr><th>Contact</th><th>Circles</th><th class=\"num\">Strength</th><th class=\"num\">Last</th><th class=\"num\">Overdue ×</th></tr>",
            );
            for t in list.iter().filter(|t| !t.never).take(options.list_rows_max) {
                w!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=\"num\">{:.2}</td><td class=\"num\">{} d ago</td><td class=\"num\">{:.1}</td></tr>",
                    escape(&t.contact.name),
                    circle_pills(&t.circles),
                    t.strength,
                    t.days_since,
                    t.overdue_ratio
                );
            }
            h.push_str("</table>");
            let never = list.iter().filter(|t| t.never).count();
            w!(
                h,
                "<div class=\"muted small\">{} overdue in all{}.</div>",
                list.len(),
                if never > 0 {
                    format!(", of which {never} never contacted")
                } else {
                    String::new()
                }
            );
        }
    }
    h.push_str("</div><div class=\"s5\"><h3>Cooling</h3>");
    match rc.cooling.value() {
        None => state(h, &rc.cooling),
        Some(list) if list.is_empty() => {
            h.push_str("<div class=\"muted\">No tie is cooling.</div>")
        }
        Some(list) => {
            h.push_str("<table><tr><th>Contact</th><th class=\"num\">90 d ago</th><th class=\"num\">Now</th></tr>");
            for t in list.iter().take(options.list_rows_max) {
                w!(
                    h,
                    "<tr><td>{}</td><td class=\"num\">{:.2}</td><td class=\"num\">{:.2} <span style=\"color:var(--alert)\">▼</span></td></tr>",
                    escape(&t.contact.name),
                    t.strength_before,
                    t.strength
                );
            }
            h.push_str("</table>");
            more(h, list.len(), options.list_rows_max);
        }
    }
    h.push_str("<h3>Dormant (a year or more)</h3>");
    match rc.dormant.value() {
        None => state(h, &rc.dormant),
        Some(list) if list.is_empty() => h.push_str("<div class=\"muted\">No dormant tie.</div>"),
        Some(list) => {
            h.push_str("<table>");
            for t in list.iter().take(options.list_rows_max / 2) {
                w!(
                    h,
                    "<tr><td>{}</td><td class=\"num muted\">last {}</td></tr>",
                    escape(&t.contact.name),
                    date(t.last_ms)
                );
            }
            h.push_str("</table>");
            more(h, list.len(), options.list_rows_max / 2);
        }
    }
    h.push_str("</div></div>");
}

fn more(h: &mut String, len: usize, shown: usize) {
    if len > shown {
        w!(
            h,
            "<div class=\"muted small\">… and {} more (kith insights --json lists all).</div>",
            len - shown
        );
    }
}

fn goals(h: &mut String, r: &InsightsReport) {
    let Some(list) = r.goals.value() else {
        return state(h, &r.goals);
    };
    for g in list {
        let (class, label) = match g.state {
            GoalState::NoNetwork => ("bad", "no network"),
            GoalState::Stalled => ("warn", "stalled"),
            GoalState::Moving => ("ok", "moving"),
        };
        let outside = g.outside_share.value().map_or(String::new(), |s| {
            format!(" · {} outside the organisation", pct(*s))
        });
        let names: Vec<String> = g.linked.iter().take(4).map(|c| escape(&c.name)).collect();
        w!(
            h,
            "<div class=\"goal\"><div><b>{}</b> <span class=\"pill\">priority {}</span><div class=\"muted small\">\
             {} linked, {} active in 90 days{outside}{}</div></div><div><span class=\"pill {class}\">{label}</span></div></div>",
            escape(&g.title),
            g.priority,
            g.linked.len(),
            g.active_linked,
            if names.is_empty() {
                String::new()
            } else {
                format!(
                    " · {}{}",
                    names.join(", "),
                    if g.linked.len() > 4 { ", …" } else { "" }
                )
            }
        );
    }
}

fn share_bar(h: &mut String, label: &str, with: u32, total: u32, share: Option<f64>) {
    let s = share.unwrap_or(0.0);
    w!(
        h,
        "<div style=\"margin:8px 0\"><div class=\"small\">{label}: <b>{with}</b> of {total} ({})</div>\
         <svg viewBox=\"0 0 400 12\" width=\"100%\" height=\"12\" preserveAspectRatio=\"none\">\
         <rect width=\"400\" height=\"12\" rx=\"6\" fill=\"#eef0f4\"/>\
         <rect width=\"{:.1}\" height=\"12\" rx=\"6\" fill=\"#1f9e78\"/></svg></div>",
        pct(s),
        s * 400.0
    );
}

fn together(h: &mut String, r: &InsightsReport, options: &HtmlOptions) {
    let Some(t) = r.together.value() else {
        return state(h, &r.together);
    };
    share_bar(
        h,
        "Strategic ties with shared work this year",
        t.strategic.with_shared_work,
        t.strategic.total,
        t.strategic.share,
    );
    share_bar(
        h,
        "Core ties with shared work this year",
        t.core.with_shared_work,
        t.core.total,
        t.core.share,
    );
    if !t.contacts.is_empty() {
        h.push_str("<table><tr><th>Contact</th><th class=\"num\">Shared sessions</th><th class=\"num\">Projects</th></tr>");
        for c in t.contacts.iter().take(options.list_rows_max / 2) {
            w!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&c.contact.name),
                c.interactions,
                c.projects
            );
        }
        h.push_str("</table>");
    }
}

fn follow_ups(h: &mut String, r: &InsightsReport, options: &HtmlOptions) {
    let Some(f) = r.follow_ups.value() else {
        return state(h, &r.follow_ups);
    };
    w!(
        h,
        "<div style=\"margin-bottom:8px\"><span class=\"pill bad\">{} overdue</span><span class=\"pill warn\">{} due today</span>\
         <span class=\"pill\">{} open</span><span class=\"pill ok\">{} done in the last {} days</span></div>",
        f.overdue.len(),
        f.due_today.len(),
        f.open_total,
        f.done_recently,
        r.params.follow_up_done_window_days
    );
    let items: Vec<_> = f
        .due_today
        .iter()
        .chain(f.overdue.iter().rev())
        .take(options.list_rows_max)
        .collect();
    if !items.is_empty() {
        h.push_str("<table><tr><th>Follow-up</th><th>With</th><th>From</th><th class=\"num\">Due</th></tr>");
        for i in items {
            let with: Vec<String> = i.with.iter().map(|c| escape(&c.name)).collect();
            w!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"muted\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&i.text),
                with.join(", "),
                escape(&i.summary),
                if i.days_overdue == 0 {
                    "<span class=\"pill warn\">today</span>".to_string()
                } else {
                    format!("<span class=\"pill bad\">{} d late</span>", i.days_overdue)
                }
            );
        }
        h.push_str("</table>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InsightsInput, InsightsParams, compute_all};
    use kith_model::model::Settings;
    use kith_synth::{SynthParams, generate};

    const NOW: i64 = 1_790_000_000_000;

    fn sample(name_of_first: Option<&str>) -> String {
        let mut net = generate(&SynthParams::new(300, 6_000, 3, NOW));
        if let Some(n) = name_of_first {
            // Rename the strongest tie so it is drawn and listed everywhere.
            let inp = InsightsInput {
                contacts: &net.contacts,
                interactions: &net.interactions,
                goals: &net.goals,
                settings: &net.settings,
                now_ms: NOW,
                params: InsightsParams::default(),
            };
            let top = compute_all(&inp).strength.value().unwrap().contacts[0].id;
            net.contacts.iter_mut().find(|c| c.id == top).unwrap().name = n.to_string();
        }
        let inp = InsightsInput {
            contacts: &net.contacts,
            interactions: &net.interactions,
            goals: &net.goals,
            settings: &net.settings,
            now_ms: NOW,
            params: InsightsParams::default(),
        };
        render_html(&compute_all(&inp), &HtmlOptions::default())
    }

    #[test]
    fn page_is_self_contained_with_svg_charts() {
        let html = sample(None);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("http://") && !html.contains("https://"));
        for banned in ["<script", "<link", "<img", "@import", "url(http", "src="] {
            assert!(!html.contains(banned), "{banned}");
        }
        assert!(
            html.matches("<svg").count() >= 8,
            "{}",
            html.matches("<svg").count()
        );
        for section in [
            "Circle balance",
            "Network map",
            "Composition of active ties",
            "Reciprocity per contact",
            "Reconnect",
            "Headlines",
        ] {
            assert!(html.contains(section), "{section}");
        }
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    }

    #[test]
    fn names_are_escaped() {
        let html = sample(Some("<script>alert('x')</script> & Co"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co"));
    }

    #[test]
    fn empty_report_renders_states_not_charts() {
        let settings = Settings::default();
        let inp = InsightsInput {
            contacts: &[],
            interactions: &[],
            goals: &[],
            settings: &settings,
            now_ms: NOW,
            params: InsightsParams::default(),
        };
        let html = render_html(&compute_all(&inp), &HtmlOptions::default());
        assert!(html.contains("No data:"));
        assert!(!html.contains("NaN"));
        assert!(html.ends_with("</html>\n"));
    }

    proptest::proptest! {
        #[test]
        fn escaped_text_cannot_open_markup(s in "\\PC{0,40}") {
            let e = escape(&s);
            proptest::prop_assert!(!e.contains(['<', '>', '"', '\'']));
            // Every '&' starts one of the five entities, so unescaping is exact.
            let back = e
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&");
            proptest::prop_assert_eq!(back, s);
        }
    }

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}

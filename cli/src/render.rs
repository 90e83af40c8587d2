//! Terminal output: aligned tables, truncated cells, relative times, JSON.
//!
//! Commands build [`Table`]s or serialisable values and hand them to the
//! [`Out`] writer, which owns stdout. Nothing else in the CLI prints, so the
//! human format and the `--json` format stay in one place and output errors
//! (a closed pipe) surface as ordinary errors instead of panics.

use std::io::{self, Write};

use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use crate::when::Clock;

/// Widest a table cell may be before it is truncated with an ellipsis.
pub(crate) const CELL_WIDTH_MAX: usize = 48;

/// Where command output goes (stdout, or nowhere), with JSON and table helpers.
#[derive(Debug)]
pub(crate) struct Out {
    buf: Target,
}

#[derive(Debug)]
enum Target {
    Stdout(io::BufWriter<io::Stdout>),
    /// Discards output (the demo's steps under `--json`).
    Sink(io::Sink),
}

impl Write for Target {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Target::Stdout(w) => w.write(b),
            Target::Sink(w) => w.write(b),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Target::Stdout(w) => w.flush(),
            Target::Sink(w) => w.flush(),
        }
    }
}

impl Out {
    pub(crate) fn stdout() -> Out {
        Out {
            buf: Target::Stdout(io::BufWriter::new(io::stdout())),
        }
    }

    pub(crate) fn sink() -> Out {
        Out {
            buf: Target::Sink(io::sink()),
        }
    }

    /// Writes raw bytes (an export to stdout).
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.write_all(bytes)
    }

    /// Writes one line.
    pub(crate) fn line(&mut self, text: impl AsRef<str>) -> io::Result<()> {
        writeln!(self.buf, "{}", text.as_ref())
    }

    /// Writes a value as pretty JSON followed by a newline.
    pub(crate) fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        // Serialise first, so a closed stdout surfaces as the io error it is.
        let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
        self.buf.write_all(&bytes)?;
        writeln!(self.buf)
    }

    pub(crate) fn table(&mut self, table: &Table) -> io::Result<()> {
        for line in table.render() {
            self.line(line)?;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.buf.flush()
    }
}

/// A table of text cells printed with aligned columns.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    width_max: usize,
}

impl Table {
    pub(crate) fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            width_max: CELL_WIDTH_MAX,
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The lines of the table: a header, then one line per row. Cells are
    /// single-line (newlines become spaces) and truncated to the width limit.
    pub(crate) fn render(&self) -> Vec<String> {
        let ncols = self.headers.len();
        let clean = |cell: &str| truncate(&one_line(cell), self.width_max);
        let header: Vec<String> = self.headers.iter().map(|h| clean(h)).collect();
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                (0..ncols)
                    .map(|i| clean(r.get(i).map_or("", String::as_str)))
                    .collect()
            })
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let fmt_row = |cells: &[String]| {
            let mut line = String::new();
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                line.push_str(c);
                if i + 1 < ncols {
                    line.extend(std::iter::repeat_n(' ', w - c.chars().count() + 2));
                }
            }
            line.trim_end().to_string()
        };
        let mut out = vec![fmt_row(&header)];
        out.extend(rows.iter().map(|r| fmt_row(r)));
        out
    }
}

/// Replaces line breaks and tabs by spaces.
pub(crate) fn one_line(s: &str) -> String {
    s.split(['\n', '\r', '\t'])
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cuts `s` to at most `max` characters, ending with an ellipsis when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// "3 days ago", "in 2 weeks", "just now": the distance from now in words.
pub(crate) fn relative_time(at_ms: i64, now_ms: i64) -> String {
    // Saturating: times come from synced data and may be absurd.
    let delta_s = now_ms.saturating_sub(at_ms) / 1000;
    let past = delta_s >= 0;
    let s = delta_s.abs();
    let (n, unit) = if s < 60 {
        return "just now".to_string();
    } else if s < 3600 {
        (s / 60, "minute")
    } else if s < 86_400 {
        (s / 3600, "hour")
    } else if s < 2 * 86_400 {
        return if past { "yesterday" } else { "tomorrow" }.to_string();
    } else if s < 14 * 86_400 {
        (s / 86_400, "day")
    } else if s < 60 * 86_400 {
        (s / (7 * 86_400), "week")
    } else if s < 365 * 86_400 {
        (s / (30 * 86_400), "month")
    } else {
        (s / (365 * 86_400), "year")
    };
    let plural = if n == 1 { "" } else { "s" };
    if past {
        format!("{n} {unit}{plural} ago")
    } else {
        format!("in {n} {unit}{plural}")
    }
}

/// A due date relative to today: "today", "tomorrow", "3 days overdue", "in 5 days".
pub(crate) fn relative_due(due: NaiveDate, today: NaiveDate) -> String {
    let days = (due - today).num_days();
    match days {
        0 => "today".to_string(),
        1 => "tomorrow".to_string(),
        -1 => "1 day overdue".to_string(),
        d if d < 0 => format!("{} days overdue", -d),
        d => format!("in {d} days"),
    }
}

/// `2026-11-26 10:00` in the local zone (or the given offset).
pub(crate) fn local_time(at_ms: i64, offset: FixedOffset) -> String {
    match Utc.timestamp_millis_opt(at_ms) {
        chrono::LocalResult::Single(t) => t
            .with_timezone(&offset)
            .format("%Y-%m-%d %H:%M")
            .to_string(),
        _ => format!("@{at_ms}ms"),
    }
}

/// A time shown in the user's local zone.
pub(crate) fn when_local(at_ms: i64, clock: &Clock) -> String {
    local_time(at_ms, clock.local_offset_at(at_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_truncate() {
        let mut t = Table::new(&["NAME", "ORG"]);
        t.row(vec!["Ana".into(), "St Mary's".into()]);
        t.row(vec!["Bartholomew".into(), "x".repeat(60)]);
        t.row(vec!["Multi\nline".into()]);
        let lines = t.render();
        assert_eq!(lines[0], "NAME         ORG");
        assert_eq!(lines[1], "Ana          St Mary's");
        assert!(lines[2].starts_with("Bartholomew  xxx"));
        assert!(lines[2].ends_with('…'));
        assert_eq!(lines[2].chars().count(), 13 + CELL_WIDTH_MAX);
        assert_eq!(lines[3], "Multi line");
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = 1_000_000_000_000;
        let day = 86_400_000;
        assert_eq!(relative_time(now - 10_000, now), "just now");
        assert_eq!(relative_time(now - 5 * 60_000, now), "5 minutes ago");
        assert_eq!(relative_time(now - 3_600_000, now), "1 hour ago");
        assert_eq!(relative_time(now - day, now), "yesterday");
        assert_eq!(relative_time(now - 3 * day, now), "3 days ago");
        assert_eq!(relative_time(now - 21 * day, now), "3 weeks ago");
        assert_eq!(relative_time(now - 90 * day, now), "3 months ago");
        assert_eq!(relative_time(now - 800 * day, now), "2 years ago");
        assert_eq!(relative_time(now + 3 * day, now), "in 3 days");
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            relative_due(d("2026-01-01"), d("2026-01-04")),
            "3 days overdue"
        );
        assert_eq!(relative_due(d("2026-01-05"), d("2026-01-04")), "tomorrow");
        assert_eq!(relative_due(d("2026-01-14"), d("2026-01-04")), "in 10 days");
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate("Zoë Åberg", 5), "Zoë …");
        assert_eq!(truncate("short", 5), "short");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn table_lines_are_single_and_bounded(rows in prop::collection::vec(prop::collection::vec("\\PC{0,80}", 3), 0..10)) {
                let mut t = Table::new(&["A", "B", "C"]);
                for r in &rows {
                    t.row(r.clone());
                }
                let lines = t.render();
                prop_assert_eq!(lines.len(), rows.len() + 1);
                for l in &lines {
                    prop_assert!(!l.contains('\n'));
                    prop_assert!(l.chars().count() <= 3 * CELL_WIDTH_MAX + 4);
                }
            }

            #[test]
            fn relative_time_never_panics(a in any::<i64>(), b in any::<i64>()) {
                let _ = relative_time(a, b);
            }
        }
    }
}

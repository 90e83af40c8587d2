//! LinkedIn `Connections.csv` import.
//!
//! The export starts with a short "Notes:" preamble, then a header row (First
//! Name, Last Name, URL, Email Address, Company, Position, Connected On; older
//! exports lack URL) and one row per connection. Columns are found by header
//! name, so their order does not matter. Each row becomes a [`ContactDraft`]:
//! Company -> organisation, Position -> role, URL -> urls, Connected On
//! ("07 Dec 2025") -> first met. Import keys: `linkedin:<profile url>` when there
//! is a URL, and `linkedin-hash:<hex>` of the mapped fields always. A bad row is
//! reported with its line number and the rest is imported.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use kith_model::model::ContactPoint;

use super::vcard::{decode_input, decode_lossy};
use super::{ContactDraft, inside_org_suggestion, non_empty};

/// Caps for a LinkedIn export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedinLimits {
    /// Largest file accepted, in bytes; larger is [`LinkedinError::TooLarge`].
    pub input_size_bytes_max: usize,
    /// Most data rows accepted; more is [`LinkedinError::TooManyRows`].
    pub rows_max: usize,
    /// Lines searched for the header row before giving up.
    pub preamble_lines_max: usize,
    /// Row errors kept; further ones are only counted
    /// ([`LinkedinImport::errors_dropped`]).
    pub errors_max: usize,
}

impl Default for LinkedinLimits {
    fn default() -> Self {
        LinkedinLimits {
            input_size_bytes_max: 64 * 1024 * 1024,
            rows_max: 200_000,
            preamble_lines_max: 100,
            errors_max: 10_000,
        }
    }
}

/// A file-level failure: nothing is imported.
#[derive(Debug, thiserror::Error)]
pub enum LinkedinError {
    /// The file is over [`LinkedinLimits::input_size_bytes_max`].
    #[error("the file is {size_bytes} bytes, more than the {size_bytes_max} bytes accepted")]
    TooLarge {
        /// Size of the file given.
        size_bytes: usize,
        /// The limit it exceeds.
        size_bytes_max: usize,
    },
    /// No header row was found: most likely not a LinkedIn Connections.csv.
    #[error(
        "no header row starting with 'First Name' in the first {lines} lines: is this LinkedIn's Connections.csv?"
    )]
    NoHeader {
        /// How many lines were searched ([`LinkedinLimits::preamble_lines_max`]).
        lines: usize,
    },
    /// The header row lacks a column the import needs (named in the field).
    #[error("the header row has no '{0}' column")]
    MissingColumn(&'static str),
    /// The file is over [`LinkedinLimits::rows_max`]; split it.
    #[error("the file holds more than {rows_max} rows")]
    TooManyRows {
        /// The limit it exceeds.
        rows_max: usize,
    },
}

/// A row that could not be imported (or only partly), by line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line of the row in the file.
    pub line: usize,
    /// What was wrong, for the user.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The drafts of one export and the row errors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkedinImport {
    /// One draft per usable row, in file order.
    pub drafts: Vec<ContactDraft>,
    /// Rows skipped or partly imported, at most [`LinkedinLimits::errors_max`].
    pub errors: Vec<RowError>,
    /// Errors beyond [`LinkedinLimits::errors_max`], counted but not kept.
    pub errors_dropped: usize,
}

/// Parses "07 Dec 2025" (and the ISO and US forms older exports used).
pub fn parse_connected_on(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    ["%d %b %Y", "%d %B %Y", "%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
}

/// `linkedin:` key of a profile URL: lower case, without scheme, `www.` or a trailing slash.
pub fn profile_key(url: &str) -> Option<String> {
    let mut u = url.trim().to_lowercase();
    for p in ["https://", "http://"] {
        if let Some(r) = u.strip_prefix(p) {
            u = r.to_string();
        }
    }
    if let Some(r) = u.strip_prefix("www.") {
        u = r.to_string();
    }
    let u = u.trim_end_matches('/');
    (!u.is_empty()).then(|| format!("linkedin:{u}"))
}

/// Parses a LinkedIn Connections.csv export.
pub fn parse_linkedin_csv(
    input: &[u8],
    limits: &LinkedinLimits,
    my_organisation: Option<&str>,
) -> Result<LinkedinImport, LinkedinError> {
    if input.len() > limits.input_size_bytes_max {
        return Err(LinkedinError::TooLarge {
            size_bytes: input.len(),
            size_bytes_max: limits.input_size_bytes_max,
        });
    }
    let decoded = decode_input(input);
    let text = decode_lossy(&decoded.bytes);

    // Find the header row: the preamble is free text (sometimes quoted).
    let mut offset = 0;
    let mut header_line = None;
    for (i, line) in text
        .split_inclusive('\n')
        .enumerate()
        .take(limits.preamble_lines_max)
    {
        let t = line.trim_start().trim_start_matches('"');
        if t.len() >= 10 && t.is_char_boundary(10) && t[..10].eq_ignore_ascii_case("first name") {
            header_line = Some(i + 1);
            break;
        }
        offset += line.len();
    }
    let header_line = header_line.ok_or(LinkedinError::NoHeader {
        lines: limits.preamble_lines_max,
    })?;

    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(&text.as_bytes()[offset..]);
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|h| h.trim().to_ascii_lowercase()).collect(),
        Err(_) => return Err(LinkedinError::NoHeader { lines: header_line }),
    };
    let col = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
    let first = col(&["first name"]).ok_or(LinkedinError::MissingColumn("First Name"))?;
    let last = col(&["last name"]).ok_or(LinkedinError::MissingColumn("Last Name"))?;
    let url = col(&["url", "profile url"]);
    let email = col(&["email address", "email"]);
    let company = col(&["company"]);
    let position = col(&["position"]);
    let connected = col(&["connected on"]);

    let mut out = LinkedinImport::default();
    let push_error = |out: &mut LinkedinImport, line: usize, message: String| {
        if out.errors.len() < limits.errors_max {
            out.errors.push(RowError { line, message });
        } else {
            out.errors_dropped += 1;
        }
    };
    let mut record = csv::StringRecord::new();
    let mut rows = 0usize;
    let body = &text.as_bytes()[offset..];
    // csv counts lines lazily around CRLF, so lines are counted here from byte
    // offsets, with a cursor so the whole file is scanned once.
    let mut cursor = LineCursor::default();
    loop {
        let line = header_line + cursor.line_at(body, reader.position().byte());
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // The row is consumed by the error; move on to the next.
                push_error(&mut out, line, format!("unreadable row: {e}"));
                continue;
            }
        }
        rows += 1;
        if rows > limits.rows_max {
            return Err(LinkedinError::TooManyRows {
                rows_max: limits.rows_max,
            });
        }
        let field = |i: Option<usize>| i.and_then(|i| record.get(i)).and_then(non_empty);
        let given = field(Some(first));
        let family = field(Some(last));
        let name = [given.as_deref(), family.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if name.is_empty() {
            if record.iter().any(|f| !f.trim().is_empty()) {
                push_error(
                    &mut out,
                    line,
                    "row without first or last name skipped".to_string(),
                );
            }
            continue;
        }
        let first_met = match field(connected) {
            Some(d) => {
                let parsed = parse_connected_on(&d);
                if parsed.is_none() {
                    push_error(
                        &mut out,
                        line,
                        format!("'Connected On' value '{d}' is not a date; imported without it"),
                    );
                }
                parsed
            }
            None => None,
        };
        let organisation = field(company);
        let profile = field(url);
        let mut draft = ContactDraft {
            name,
            given_name: given,
            family_name: family,
            inside_org: inside_org_suggestion(organisation.as_deref(), my_organisation),
            organisation,
            role: field(position),
            emails: field(email)
                .map(|e| ContactPoint {
                    value: e,
                    label: String::new(),
                })
                .into_iter()
                .collect(),
            phones: Vec::new(),
            urls: profile.iter().cloned().collect(),
            notes: String::new(),
            tags: BTreeSet::new(),
            birthday: None,
            first_met,
            import_keys: BTreeSet::new(),
            source_line: line,
        };
        if let Some(key) = profile.as_deref().and_then(profile_key) {
            draft.import_keys.insert(key);
        }
        let hash = draft.content_hash();
        draft.import_keys.insert(format!("linkedin-hash:{hash}"));
        out.drafts.push(draft);
    }
    Ok(out)
}

/// Counts newlines up to a byte offset, then past the blank lines csv skips.
#[derive(Debug, Default)]
struct LineCursor {
    byte: usize,
    newlines: usize,
}

impl LineCursor {
    /// Newlines before the first content byte at or after `byte` (0-based offset).
    fn line_at(&mut self, body: &[u8], byte: u64) -> usize {
        let mut target = usize::try_from(byte).unwrap_or(usize::MAX).min(body.len());
        while target < body.len() && matches!(body[target], b'\r' | b'\n') {
            target += 1;
        }
        if target >= self.byte {
            self.newlines += body[self.byte..target]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.byte = target;
        }
        self.newlines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_on_forms() {
        assert_eq!(
            parse_connected_on("07 Dec 2025"),
            NaiveDate::from_ymd_opt(2025, 12, 7)
        );
        assert_eq!(
            parse_connected_on("2019-03-01"),
            NaiveDate::from_ymd_opt(2019, 3, 1)
        );
        assert_eq!(parse_connected_on("yesterday"), None);
    }

    #[test]
    fn profile_keys_ignore_scheme_case_and_slash() {
        assert_eq!(
            profile_key("https://www.linkedin.com/in/Jane-Doe/"),
            profile_key("http://linkedin.com/in/jane-doe")
        );
        assert_eq!(profile_key("  "), None);
    }
}

//! vCard 4.0 writer.
//!
//! Output is valid RFC 6350: `BEGIN:VCARD`, then `VERSION:4.0` first, CRLF line
//! ends, lines folded at 75 octets (never inside a UTF-8 sequence), text
//! escaped (`\\`, `\n`, `\,`, `\;`). Labels that read back as TYPE values
//! (`work`, `mobile`, `work fax`) are written as TYPE; any other label is
//! written Apple/Google style as a group with `X-ABLabel`, which the importer
//! attaches back. The UID is the contact id (`VALUE=text`), so re-importing an
//! export into the same network matches the contacts it came from.

use chrono::{DateTime, Utc};

use crate::vcard_map::{LabelKind, types_for_label};
use kith_model::model::{Contact, ContactPoint, PartialDate};

/// Longest line in octets, CRLF excluded (RFC 6350 section 3.2).
pub const LINE_OCTETS_MAX: usize = 75;

/// Writes contacts as one vCard 4.0 file.
pub fn write_vcards<'a>(contacts: impl IntoIterator<Item = &'a Contact>) -> String {
    let mut out = String::new();
    for c in contacts {
        write_vcard(c, &mut out);
    }
    out
}

/// Appends one contact as a vCard 4.0 card.
pub fn write_vcard(c: &Contact, out: &mut String) {
    let mut w = CardWriter { out, group: 0 };
    w.line("BEGIN:VCARD");
    w.line("VERSION:4.0");
    w.line("PRODID:-//Kith//Kith//EN");
    w.line(&format!("UID;VALUE=text:{}", escape(&c.id.to_string())));
    w.line(&format!("FN:{}", escape(&c.name)));
    if c.given_name.is_some() || c.family_name.is_some() {
        w.line(&format!(
            "N:{};{};;;",
            escape(c.family_name.as_deref().unwrap_or("")),
            escape(c.given_name.as_deref().unwrap_or(""))
        ));
    }
    if let Some(org) = &c.organisation {
        w.line(&format!("ORG:{}", escape(org)));
    }
    if let Some(role) = &c.role {
        w.line(&format!("TITLE:{}", escape(role)));
    }
    for e in &c.emails {
        w.labelled("EMAIL", LabelKind::Email, e);
    }
    for p in &c.phones {
        w.labelled("TEL", LabelKind::Phone, p);
    }
    for u in &c.urls {
        w.line(&format!("URL:{}", escape(u)));
    }
    if !c.notes.trim().is_empty() {
        w.line(&format!("NOTE:{}", escape(&c.notes)));
    }
    if !c.tags.is_empty() {
        let tags: Vec<String> = c.tags.iter().map(|t| escape(t)).collect();
        w.line(&format!("CATEGORIES:{}", tags.join(",")));
    }
    if let Some(b) = c.birthday {
        w.line(&format!("BDAY:{}", format_date(b)));
    }
    if let Some(rev) = DateTime::<Utc>::from_timestamp_millis(c.updated_ms) {
        w.line(&format!("REV:{}", rev.format("%Y%m%dT%H%M%SZ")));
    }
    w.line("END:VCARD");
}

/// `YYYYMMDD`, or `--MMDD` when the year is unknown (or not writable in four
/// digits, or Apple's 1604 "no year" marker).
fn format_date(d: PartialDate) -> String {
    match d.year {
        Some(y) if (0..=9999).contains(&y) && y != 1604 => {
            format!("{y:04}{:02}{:02}", d.month, d.day)
        }
        _ => format!("--{:02}{:02}", d.month, d.day),
    }
}

/// vCard text escaping; line breaks of any kind become `\n`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            _ => out.push(c),
        }
    }
    out
}

struct CardWriter<'a> {
    out: &'a mut String,
    group: usize,
}

impl CardWriter<'_> {
    fn labelled(&mut self, name: &str, kind: LabelKind, p: &ContactPoint) {
        match types_for_label(kind, &p.label) {
            Some(types) if types.is_empty() => self.line(&format!("{name}:{}", escape(&p.value))),
            Some(types) => self.line(&format!(
                "{name};TYPE={}:{}",
                types.join(","),
                escape(&p.value)
            )),
            None => {
                self.group += 1;
                let g = self.group;
                self.line(&format!("item{g}.{name}:{}", escape(&p.value)));
                self.line(&format!("item{g}.X-ABLabel:{}", escape(&p.label)));
            }
        }
    }

    /// Writes one content line, folded at [`LINE_OCTETS_MAX`] octets.
    fn line(&mut self, line: &str) {
        let mut width = 0;
        for c in line.chars() {
            let n = c.len_utf8();
            if width + n > LINE_OCTETS_MAX {
                self.out.push_str("\r\n ");
                width = 1;
            }
            self.out.push(c);
            width += n;
        }
        self.out.push_str("\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_at_75_octets_without_splitting_characters() {
        let mut out = String::new();
        let mut w = CardWriter {
            out: &mut out,
            group: 0,
        };
        let long = format!("NOTE:{}", "é".repeat(100));
        w.line(&long);
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= LINE_OCTETS_MAX, "{} octets", l.len());
        }
        let unfolded = out.trim_end_matches("\r\n").replace("\r\n ", "");
        assert_eq!(unfolded, long);
    }

    #[test]
    fn escapes_text() {
        assert_eq!(escape("a,b;c\\d\ne\r\nf"), "a\\,b\\;c\\\\d\\ne\\nf");
    }

    #[test]
    fn writes_a_known_contact_exactly() {
        use kith_model::ids::ContactId;
        use std::collections::BTreeSet;
        let c = Contact {
            id: "01J0000000000000000000000A".parse::<ContactId>().unwrap(),
            name: "Ada Lovelace".into(),
            given_name: Some("Ada".into()),
            family_name: Some("Lovelace".into()),
            organisation: Some("Engines; Ltd".into()),
            role: Some("Programmer".into()),
            discipline: None,
            seniority: kith_model::model::Seniority::Peer,
            inside_org: None,
            circles: BTreeSet::new(),
            tags: ["a,b".to_string(), "math".to_string()].into(),
            emails: vec![ContactPoint {
                value: "ada@x.org".into(),
                label: "work".into(),
            }],
            phones: vec![
                ContactPoint {
                    value: "+44 1".into(),
                    label: "mobile".into(),
                },
                ContactPoint {
                    value: "+44 2".into(),
                    label: "Lab, line".into(),
                },
            ],
            urls: ["https://ada.org".to_string()].into(),
            how_we_met: None,
            first_met: None,
            birthday: Some(PartialDate {
                year: None,
                month: 12,
                day: 10,
            }),
            notes: "line 1\nline 2".into(),
            cadence_days: None,
            created_ms: 0,
            updated_ms: 0,
            archived: false,
            merged_into: None,
            import_keys: BTreeSet::new(),
            merge_base: Default::default(),
            merged_from: Vec::new(),
            conflicts: Vec::new(),
        };
        let expected = "BEGIN:VCARD\r\nVERSION:4.0\r\nPRODID:-//Kith//Kith//EN\r\n\
            UID;VALUE=text:01J0000000000000000000000A\r\nFN:Ada Lovelace\r\nN:Lovelace;Ada;;;\r\n\
            ORG:Engines\\; Ltd\r\nTITLE:Programmer\r\nEMAIL;TYPE=work:ada@x.org\r\n\
            TEL;TYPE=cell:+44 1\r\nitem1.TEL:+44 2\r\nitem1.X-ABLabel:Lab\\, line\r\n\
            URL:https://ada.org\r\nNOTE:line 1\\nline 2\r\nCATEGORIES:a\\,b,math\r\n\
            BDAY:--1210\r\nREV:19700101T000000Z\r\nEND:VCARD\r\n";
        assert_eq!(write_vcards([&c]), expected);
    }

    #[test]
    fn dates() {
        let d = |year, month, day| PartialDate { year, month, day };
        assert_eq!(format_date(d(Some(1980), 3, 2)), "19800302");
        assert_eq!(format_date(d(None, 2, 29)), "--0229");
        assert_eq!(format_date(d(Some(1604), 2, 29)), "--0229");
    }
}

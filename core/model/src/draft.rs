//! Drafts: the fields of a contact to create from an external record (a
//! vCard, a LinkedIn row), produced by kith-formats' parsers and consumed by
//! kith-core's import planning. Pure values: no store, no document.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::NaiveDate;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ids::ContactId;
use crate::model::{Contact, ContactPoint, PartialDate, Seniority, TimestampMs};
use crate::text::{normalise_name, normalise_name_unfolded};

/// The fields of a contact to create from an external record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactDraft {
    /// Display name; never empty.
    pub name: String,
    /// Given name (vCard N), when the source has it separately.
    pub given_name: Option<String>,
    /// Family name (vCard N), when the source has it separately.
    pub family_name: Option<String>,
    /// Organisation (vCard ORG, LinkedIn "Company"); `None` when absent.
    pub organisation: Option<String>,
    /// Job title (vCard TITLE or ROLE, LinkedIn "Position"); `None` when absent.
    pub role: Option<String>,
    /// Suggested inside/outside my organisation (from settings.my_organisation).
    pub inside_org: Option<bool>,
    /// Email addresses with their labels.
    pub emails: Vec<ContactPoint>,
    /// Phone numbers as written in the source, with their labels.
    pub phones: Vec<ContactPoint>,
    /// Web addresses (vCard URL, LinkedIn profile URL).
    pub urls: BTreeSet<String>,
    /// Notes carried over from the source; empty when none.
    pub notes: String,
    /// Tags (vCard CATEGORIES); empty when none.
    pub tags: BTreeSet<String>,
    /// Birthday, possibly without a year (vCard BDAY).
    pub birthday: Option<PartialDate>,
    /// The day we first met (LinkedIn "Connected On").
    pub first_met: Option<NaiveDate>,
    /// `vcard-uid:...`, `vcard-hash:...`, `linkedin:...`: matched on re-import.
    pub import_keys: BTreeSet<String>,
    /// Line of the source record (BEGIN:VCARD, or the CSV row), for messages.
    pub source_line: usize,
}

impl ContactDraft {
    /// A new contact with these fields.
    pub fn into_contact(self, id: ContactId, now_ms: TimestampMs) -> Contact {
        Contact {
            id,
            name: self.name,
            given_name: self.given_name,
            family_name: self.family_name,
            organisation: self.organisation,
            role: self.role,
            discipline: None,
            seniority: Seniority::Unknown,
            inside_org: self.inside_org,
            circles: BTreeSet::new(),
            tags: self.tags,
            emails: self.emails,
            phones: self.phones,
            urls: self.urls,
            how_we_met: None,
            first_met: self.first_met,
            birthday: self.birthday,
            notes: self.notes,
            cadence_days: None,
            created_ms: now_ms,
            updated_ms: now_ms,
            archived: false,
            merged_into: None,
            import_keys: self.import_keys,
            merge_base: Default::default(),
            merged_from: Vec::new(),
            conflicts: Vec::new(),
        }
    }

    /// Hex SHA-256 of the normalised content fields (not the import keys nor
    /// the line): the same person exported twice by the same tool hashes equal.
    pub fn content_hash(&self) -> String {
        #[derive(Serialize)]
        struct Canonical<'a> {
            name: String,
            given: Option<String>,
            family: Option<String>,
            organisation: Option<String>,
            role: Option<&'a str>,
            emails: BTreeSet<(String, &'a str)>,
            phones: BTreeSet<(String, &'a str)>,
            urls: &'a BTreeSet<String>,
            notes: &'a str,
            tags: &'a BTreeSet<String>,
            birthday: Option<PartialDate>,
            first_met: Option<NaiveDate>,
        }
        // The hash is stored as an import key: its normalisation is frozen
        // (letter folding, added later, would make a re-import hash anew).
        let c = Canonical {
            name: normalise_name_unfolded(&self.name),
            given: self.given_name.as_deref().map(normalise_name_unfolded),
            family: self.family_name.as_deref().map(normalise_name_unfolded),
            organisation: self.organisation.as_deref().map(normalise_name_unfolded),
            role: self.role.as_deref(),
            emails: self
                .emails
                .iter()
                .map(|e| (e.value.trim().to_lowercase(), e.label.as_str()))
                .collect(),
            phones: self
                .phones
                .iter()
                .map(|p| {
                    let digits: String = p
                        .value
                        .chars()
                        .filter(char::is_ascii_alphanumeric)
                        .collect();
                    (digits, p.label.as_str())
                })
                .collect(),
            urls: &self.urls,
            notes: self.notes.trim(),
            tags: &self.tags,
            birthday: self.birthday,
            first_met: self.first_met,
        };
        // Serialising plain strings, options and sets cannot fail; an empty
        // fallback would still be deterministic.
        let bytes = serde_json::to_vec(&c).unwrap_or_default();
        let mut hex = String::with_capacity(64);
        for b in Sha256::digest(&bytes) {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }
}

/// Trims and turns an empty string into `None`.
pub fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Whether `organisation` is my organisation (`None` when either is unknown).
pub fn inside_org_suggestion(
    organisation: Option<&str>,
    my_organisation: Option<&str>,
) -> Option<bool> {
    let mine = normalise_name(my_organisation?);
    let theirs = normalise_name(organisation?);
    if mine.is_empty() || theirs.is_empty() {
        return None;
    }
    Some(mine == theirs)
}

//! Import planning: a pure comparison of drafts with the existing contacts.
//!
//! Each draft lands in exactly one bucket, checked in this order:
//! 1. `already_imported`: one of its import keys (`vcard-uid:`, then the
//!    content hash) is on an existing contact (following `merged_into` to the
//!    surviving contact), or a `vcard-uid:` equals an existing contact id (a
//!    Kith vCard export re-imported). Re-importing a file therefore creates nothing.
//! 2. `repeated_in_input`: an earlier draft of the same input has one of its keys.
//! 3. `likely_duplicates`: an existing, unmerged contact has the same normalised
//!    email, the same phone (last 9 digits) or the same normalised name; the
//!    suggested merge target is the candidate with the strongest evidence
//!    (email > phone > name, then most reasons, then oldest id).
//! 4. `create`: everything else.

use std::collections::HashMap;

use crate::ids::ContactId;
use crate::model::Contact;

use super::ContactDraft;
use super::normalise::{normalise_email, normalise_name, phone_key};

/// Longest `merged_into` chain followed (merges of merges); longer is a loop.
const MERGE_CHAIN_HOPS_MAX: usize = 32;

/// What an import would do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportPlan {
    pub create: Vec<ContactDraft>,
    pub already_imported: Vec<AlreadyImported>,
    pub likely_duplicates: Vec<LikelyDuplicate>,
    pub repeated_in_input: Vec<RepeatedInInput>,
}

/// A draft whose record was imported before.
#[derive(Debug, Clone, PartialEq)]
pub struct AlreadyImported {
    pub draft: ContactDraft,
    pub existing: ContactId,
    /// The import key that matched.
    pub key: String,
}

/// A draft that looks like an existing contact.
#[derive(Debug, Clone, PartialEq)]
pub struct LikelyDuplicate {
    pub draft: ContactDraft,
    /// The suggested contact to merge the draft into.
    pub merge_into: ContactId,
    /// Why `merge_into` was suggested.
    pub reasons: Vec<DuplicateReason>,
    /// Other existing contacts that also matched, best first.
    pub other_candidates: Vec<ContactId>,
}

/// A draft that repeats an earlier draft of the same input.
#[derive(Debug, Clone, PartialEq)]
pub struct RepeatedInInput {
    pub draft: ContactDraft,
    /// Source line of the earlier draft.
    pub same_as_line: usize,
}

/// Evidence that two records are the same person.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DuplicateReason {
    SameEmail(String),
    SamePhone(String),
    SameName(String),
}

impl DuplicateReason {
    fn weight(&self) -> u32 {
        match self {
            DuplicateReason::SameEmail(_) => 100,
            DuplicateReason::SamePhone(_) => 10,
            DuplicateReason::SameName(_) => 1,
        }
    }
}

impl ImportPlan {
    /// Number of drafts the plan accounts for.
    pub fn len(&self) -> usize {
        self.create.len()
            + self.already_imported.len()
            + self.likely_duplicates.len()
            + self.repeated_in_input.len()
    }

    /// Whether the plan holds no draft at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sorts drafts into create / already imported / repeated / likely duplicate.
pub fn plan_import(drafts: Vec<ContactDraft>, existing: &[Contact]) -> ImportPlan {
    let by_id: HashMap<ContactId, &Contact> = existing.iter().map(|c| (c.id, c)).collect();
    let survivor = |mut id: ContactId| {
        for _ in 0..MERGE_CHAIN_HOPS_MAX {
            match by_id.get(&id).and_then(|c| c.merged_into) {
                Some(next) if next != id => id = next,
                _ => break,
            }
        }
        id
    };

    let mut by_key: HashMap<&str, ContactId> = HashMap::new();
    let mut by_email: HashMap<String, Vec<ContactId>> = HashMap::new();
    let mut by_phone: HashMap<String, Vec<ContactId>> = HashMap::new();
    let mut by_name: HashMap<String, Vec<ContactId>> = HashMap::new();
    for c in existing {
        for k in &c.import_keys {
            by_key.entry(k.as_str()).or_insert(c.id);
        }
        if c.merged_into.is_some() {
            continue;
        }
        for e in &c.emails {
            if let Some(k) = normalise_email(&e.value) {
                by_email.entry(k).or_default().push(c.id);
            }
        }
        for p in &c.phones {
            if let Some(k) = phone_key(&p.value) {
                by_phone.entry(k).or_default().push(c.id);
            }
        }
        let n = normalise_name(&c.name);
        if !n.is_empty() {
            by_name.entry(n).or_default().push(c.id);
        }
    }

    let mut plan = ImportPlan::default();
    let mut seen_keys: HashMap<String, usize> = HashMap::new();
    for draft in drafts {
        if let Some((key, id)) = match_key(&draft, &by_key, &by_id) {
            plan.already_imported.push(AlreadyImported {
                existing: survivor(id),
                key,
                draft,
            });
            continue;
        }
        if let Some(line) = draft
            .import_keys
            .iter()
            .find_map(|k| seen_keys.get(k).copied())
        {
            plan.repeated_in_input.push(RepeatedInInput {
                draft,
                same_as_line: line,
            });
            continue;
        }
        for k in &draft.import_keys {
            seen_keys.insert(k.clone(), draft.source_line);
        }

        let mut evidence: HashMap<ContactId, Vec<DuplicateReason>> = HashMap::new();
        let mut add = |ids: Option<&Vec<ContactId>>, reason: DuplicateReason| {
            for id in ids.into_iter().flatten() {
                let reasons = evidence.entry(*id).or_default();
                if !reasons.contains(&reason) {
                    reasons.push(reason.clone());
                }
            }
        };
        for e in &draft.emails {
            if let Some(k) = normalise_email(&e.value) {
                add(by_email.get(&k), DuplicateReason::SameEmail(k.clone()));
            }
        }
        for p in &draft.phones {
            if let Some(k) = phone_key(&p.value) {
                add(
                    by_phone.get(&k),
                    DuplicateReason::SamePhone(p.value.clone()),
                );
            }
        }
        let n = normalise_name(&draft.name);
        if !n.is_empty() {
            add(
                by_name.get(&n),
                DuplicateReason::SameName(draft.name.clone()),
            );
        }
        if evidence.is_empty() {
            plan.create.push(draft);
            continue;
        }
        let mut ranked: Vec<(u32, ContactId, Vec<DuplicateReason>)> = evidence
            .into_iter()
            .map(|(id, mut reasons)| {
                reasons.sort();
                (
                    reasons.iter().map(DuplicateReason::weight).sum(),
                    id,
                    reasons,
                )
            })
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut ranked = ranked.into_iter();
        if let Some((_, merge_into, reasons)) = ranked.next() {
            plan.likely_duplicates.push(LikelyDuplicate {
                draft,
                merge_into,
                reasons,
                other_candidates: ranked.map(|(_, id, _)| id).collect(),
            });
        }
    }
    plan
}

/// The first import key of the draft that an existing contact carries: UIDs
/// before content hashes.
fn match_key(
    draft: &ContactDraft,
    by_key: &HashMap<&str, ContactId>,
    by_id: &HashMap<ContactId, &Contact>,
) -> Option<(String, ContactId)> {
    let mut keys: Vec<&String> = draft.import_keys.iter().collect();
    keys.sort_by_key(|k| if k.contains("-hash:") { 1 } else { 0 });
    for k in keys {
        if let Some(id) = by_key.get(k.as_str()) {
            return Some((k.clone(), *id));
        }
        if let Some(uid) = k.strip_prefix("vcard-uid:")
            && let Ok(id) = uid.parse::<ContactId>()
            && by_id.contains_key(&id)
        {
            return Some((k.clone(), id));
        }
    }
    None
}

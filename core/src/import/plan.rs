//! Import planning: a pure comparison of drafts with the existing contacts.
//!
//! Each draft lands in exactly one bucket, checked in this order:
//! 1. `already_imported`: one of its import keys (`vcard-uid:`, then the
//!    content hash) is on an existing contact (following `merged_into` to the
//!    surviving contact), or a `vcard-uid:` equals an existing contact id (a
//!    Kith vCard export re-imported). Re-importing a file therefore creates nothing.
//! 2. `repeated_in_input`: an earlier draft of the same input has one of its keys.
//! 3. `likely_duplicates`: an existing, unmerged contact has the same normalised
//!    email, the same phone (in E.164-like form, "020 7946 0958" meeting
//!    "+44 20 7946 0958", see [`super::phone`]: one number's digits end the
//!    other's, 9 digits at least; the digits as written also count, so
//!    normalising never loses a match) or the same normalised name: the rules of [`crate::dedup`], with
//!    its normalisation, so import and the store's duplicate list agree. The
//!    suggested merge target is the candidate with the strongest evidence
//!    (email > phone > name, then most reasons, then oldest id).
//! 4. `create`: everything else.

use std::collections::HashMap;

use crate::ids::ContactId;
use crate::model::Contact;

use super::ContactDraft;
use super::phone::default_calling_code;
use crate::dedup::{DuplicateReason, PHONE_DIGITS_MIN, phone_match_digits};
use crate::index::text::{normalise_email, normalise_name, phone_digits};

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

fn weight(reason: &DuplicateReason) -> u32 {
    match reason {
        DuplicateReason::SameEmail(_) => 100,
        DuplicateReason::SamePhone(_) => 10,
        DuplicateReason::SameName(_) => 1,
    }
}

/// A phone number as compared: the last [`PHONE_DIGITS_MIN`] digits of its
/// E.164-like form ([`crate::dedup::phone_match_digits`]), that form, and
/// its digits as written.
struct PhoneKey {
    tail: String,
    normalised: String,
    written: String,
}

fn phone_key(phone: &str, default_cc: Option<&str>) -> Option<PhoneKey> {
    let normalised = phone_match_digits(phone, default_cc)?;
    Some(PhoneKey {
        tail: normalised[normalised.len() - PHONE_DIGITS_MIN..].to_string(),
        written: phone_digits(phone),
        normalised,
    })
}

/// The digits two numbers share when one ends the other: in E.164-like form
/// first, else as written (so a number written nationally still meets its
/// international form when the default calling code is another country's).
fn shared_phone(a: &PhoneKey, b: &PhoneKey) -> Option<String> {
    let suffix = |x: &String, y: &String| {
        let (short, long) = if x.len() <= y.len() { (x, y) } else { (y, x) };
        long.ends_with(short.as_str()).then(|| short.clone())
    };
    suffix(&a.normalised, &b.normalised).or_else(|| {
        (a.written.len() >= PHONE_DIGITS_MIN && b.written.len() >= PHONE_DIGITS_MIN)
            .then(|| suffix(&a.written, &b.written))
            .flatten()
    })
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

    // Numbers written nationally ("020 ...") take the calling code most
    // international numbers of the store and the input use.
    let default_cc = default_calling_code(
        existing
            .iter()
            .flat_map(|c| &c.phones)
            .chain(drafts.iter().flat_map(|d| &d.phones))
            .map(|p| p.value.as_str()),
    );
    let default_cc = default_cc.as_deref();
    let mut by_key: HashMap<&str, ContactId> = HashMap::new();
    let mut by_email: HashMap<String, Vec<ContactId>> = HashMap::new();
    let mut by_phone: HashMap<String, Vec<(PhoneKey, ContactId)>> = HashMap::new();
    let mut by_name: HashMap<String, Vec<ContactId>> = HashMap::new();
    for c in existing {
        for k in &c.import_keys {
            by_key.entry(k.as_str()).or_insert(c.id);
        }
        if c.merged_into.is_some() {
            continue;
        }
        for e in &c.emails {
            let k = normalise_email(&e.value);
            if !k.is_empty() {
                by_email.entry(k).or_default().push(c.id);
            }
        }
        for p in &c.phones {
            if let Some(k) = phone_key(&p.value, default_cc) {
                by_phone.entry(k.tail.clone()).or_default().push((k, c.id));
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
        let mut add = |ids: &mut dyn Iterator<Item = ContactId>, reason: DuplicateReason| {
            for id in ids {
                let reasons = evidence.entry(id).or_default();
                if !reasons.contains(&reason) {
                    reasons.push(reason.clone());
                }
            }
        };
        for e in &draft.emails {
            let k = normalise_email(&e.value);
            if !k.is_empty() {
                let ids = by_email.get(&k).into_iter().flatten().copied();
                add(&mut ids.into_iter(), DuplicateReason::SameEmail(k.clone()));
            }
        }
        for p in &draft.phones {
            let Some(mine) = phone_key(&p.value, default_cc) else {
                continue;
            };
            for (theirs, id) in by_phone.get(&mine.tail).into_iter().flatten() {
                if let Some(shared) = shared_phone(&mine, theirs) {
                    add(
                        &mut std::iter::once(*id),
                        DuplicateReason::SamePhone(shared),
                    );
                }
            }
        }
        let n = normalise_name(&draft.name);
        if !n.is_empty() {
            let ids = by_name.get(&n).into_iter().flatten().copied();
            add(&mut ids.into_iter(), DuplicateReason::SameName(n.clone()));
        }
        if evidence.is_empty() {
            plan.create.push(draft);
            continue;
        }
        let mut ranked: Vec<(u32, ContactId, Vec<DuplicateReason>)> = evidence
            .into_iter()
            .map(|(id, mut reasons)| {
                reasons.sort();
                (reasons.iter().map(weight).sum(), id, reasons)
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

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
//!    "+44 20 7946 0958", see [`kith_model::phone`]: one number's digits end the
//!    other's, 9 digits at least; the digits as written also count, so
//!    normalising never loses a match) or the same normalised name: the rules of [`crate::dedup`], with
//!    its normalisation, so import and the store's duplicate list agree. The
//!    suggested merge target is the candidate with the strongest evidence
//!    (email > phone > name, then most reasons, then oldest id).
//!    An EARLIER draft of the same input that will be created counts as a
//!    candidate too, by the same rules ([`MergeTarget::EarlierDraft`]): the
//!    look-alike cards of one person in one file (the same person exported by
//!    two clients) are reported, not silently doubled. A draft that is itself
//!    a likely duplicate passes its own target on, so three look-alikes all
//!    point at the first. On equal evidence an existing contact wins. A
//!    re-import of the same file still creates nothing: the first card is
//!    then already imported and the others look like the contact it became.
//! 4. `create`: everything else.

use std::collections::{HashMap, HashSet};

use crate::ids::ContactId;
use crate::model::{Contact, ContactPoint};

use super::ContactDraft;
use crate::dedup::{DuplicateReason, PHONE_DIGITS_MIN, phone_match_digits};
use crate::index::text::{name_keys, normalise_email, phone_digits};
use kith_model::phone::default_calling_code;

/// Longest `merged_into` chain followed (merges of merges); longer is a loop.
const MERGE_CHAIN_HOPS_MAX: usize = 32;

/// What an import would do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportPlan {
    /// Drafts that become new contacts, in input order.
    pub create: Vec<ContactDraft>,
    /// Drafts whose import key a contact already carries; skipped.
    pub already_imported: Vec<AlreadyImported>,
    /// Drafts that look like a contact; created only if the user says so.
    pub likely_duplicates: Vec<LikelyDuplicate>,
    /// Drafts that repeat an earlier one of the same input; skipped.
    pub repeated_in_input: Vec<RepeatedInInput>,
}

/// A draft whose record was imported before.
#[derive(Debug, Clone, PartialEq)]
pub struct AlreadyImported {
    /// The draft skipped.
    pub draft: ContactDraft,
    /// The contact that carries its import key.
    pub existing: ContactId,
    /// The import key that matched.
    pub key: String,
}

/// A draft that looks like an existing contact, or like an earlier draft of
/// the same input that the import creates.
#[derive(Debug, Clone, PartialEq)]
pub struct LikelyDuplicate {
    /// The draft held back.
    pub draft: ContactDraft,
    /// The suggested contact to merge the draft into.
    pub merge_into: MergeTarget,
    /// Why `merge_into` was suggested.
    pub reasons: Vec<DuplicateReason>,
    /// Other existing contacts that also matched, best first.
    pub other_candidates: Vec<ContactId>,
}

/// The contact a likely duplicate should be merged into.
///
/// Ordered existing contacts first (by id), then earlier drafts in input
/// order: the tie-break of equal evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MergeTarget {
    /// A contact already in the store.
    Existing(ContactId),
    /// The contact that `plan.create[create_index]` becomes; that draft's
    /// record starts at `source_line` of the input. It has an id only once the
    /// plan is applied: [`super::ApplyReport::merge_target`].
    EarlierDraft {
        /// Index of the draft in [`ImportPlan::create`].
        create_index: usize,
        /// Line of that draft's record in the input.
        source_line: usize,
    },
}

impl MergeTarget {
    /// The existing contact, if the target is one.
    pub fn existing(&self) -> Option<ContactId> {
        match self {
            MergeTarget::Existing(id) => Some(*id),
            MergeTarget::EarlierDraft { .. } => None,
        }
    }

    /// The source line of the earlier draft, if the target is one.
    pub fn same_as_line(&self) -> Option<usize> {
        match self {
            MergeTarget::Existing(_) => None,
            MergeTarget::EarlierDraft { source_line, .. } => Some(*source_line),
        }
    }
}

/// A draft that repeats an earlier draft of the same input.
#[derive(Debug, Clone, PartialEq)]
pub struct RepeatedInInput {
    /// The repeating draft.
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

/// Email, phone and name lookups of the candidates a draft may look like.
#[derive(Default)]
struct LookAlikes {
    by_email: HashMap<String, Vec<MergeTarget>>,
    by_phone: HashMap<String, Vec<(PhoneKey, MergeTarget)>>,
    by_name: HashMap<String, Vec<MergeTarget>>,
}

impl LookAlikes {
    fn add(
        &mut self,
        emails: &[ContactPoint],
        phones: &[ContactPoint],
        name: &str,
        target: MergeTarget,
        default_cc: Option<&str>,
    ) {
        for e in emails {
            let k = normalise_email(&e.value);
            if !k.is_empty() {
                self.by_email.entry(k).or_default().push(target);
            }
        }
        for p in phones {
            if let Some(k) = phone_key(&p.value, default_cc) {
                self.by_phone
                    .entry(k.tail.clone())
                    .or_default()
                    .push((k, target));
            }
        }
        for n in name_keys(name) {
            self.by_name.entry(n).or_default().push(target);
        }
    }

    /// Adds to `evidence` every candidate `draft` looks like, with why.
    fn evidence(
        &self,
        draft: &ContactDraft,
        default_cc: Option<&str>,
        evidence: &mut HashMap<MergeTarget, Vec<DuplicateReason>>,
    ) {
        let mut add = |target: MergeTarget, reason: &DuplicateReason| {
            let reasons = evidence.entry(target).or_default();
            if !reasons.contains(reason) {
                reasons.push(reason.clone());
            }
        };
        for e in &draft.emails {
            let k = normalise_email(&e.value);
            if k.is_empty() {
                continue;
            }
            let reason = DuplicateReason::SameEmail(k.clone());
            for t in self.by_email.get(&k).into_iter().flatten() {
                add(*t, &reason);
            }
        }
        for p in &draft.phones {
            let Some(mine) = phone_key(&p.value, default_cc) else {
                continue;
            };
            for (theirs, t) in self.by_phone.get(&mine.tail).into_iter().flatten() {
                if let Some(shared) = shared_phone(&mine, theirs) {
                    add(*t, &DuplicateReason::SamePhone(shared));
                }
            }
        }
        // Every spelling of the name, the primary first; a candidate met by
        // several spellings gets one SameName reason.
        let mut named: HashSet<MergeTarget> = HashSet::new();
        for n in name_keys(&draft.name) {
            let reason = DuplicateReason::SameName(n.clone());
            for t in self.by_name.get(&n).into_iter().flatten() {
                if named.insert(*t) {
                    add(*t, &reason);
                }
            }
        }
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
    let mut stored = LookAlikes::default();
    for c in existing {
        for k in &c.import_keys {
            by_key.entry(k.as_str()).or_insert(c.id);
        }
        if c.merged_into.is_none() {
            stored.add(
                &c.emails,
                &c.phones,
                &c.name,
                MergeTarget::Existing(c.id),
                default_cc,
            );
        }
    }
    // Drafts of this input that the plan creates or reports, each under the
    // target a look-alike of it should be merged into.
    let mut earlier = LookAlikes::default();

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

        let mut evidence: HashMap<MergeTarget, Vec<DuplicateReason>> = HashMap::new();
        stored.evidence(&draft, default_cc, &mut evidence);
        earlier.evidence(&draft, default_cc, &mut evidence);
        let mut ranked: Vec<(u32, MergeTarget, Vec<DuplicateReason>)> = evidence
            .into_iter()
            .map(|(target, mut reasons)| {
                reasons.sort();
                (reasons.iter().map(weight).sum(), target, reasons)
            })
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut ranked = ranked.into_iter();
        let Some((_, merge_into, reasons)) = ranked.next() else {
            earlier.add(
                &draft.emails,
                &draft.phones,
                &draft.name,
                MergeTarget::EarlierDraft {
                    create_index: plan.create.len(),
                    source_line: draft.source_line,
                },
                default_cc,
            );
            plan.create.push(draft);
            continue;
        };
        earlier.add(
            &draft.emails,
            &draft.phones,
            &draft.name,
            merge_into,
            default_cc,
        );
        plan.likely_duplicates.push(LikelyDuplicate {
            draft,
            merge_into,
            reasons,
            other_candidates: ranked.filter_map(|(_, t, _)| t.existing()).collect(),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(line: usize, name: &str, email: Option<&str>, phone: Option<&str>) -> ContactDraft {
        let point = |v: &str| ContactPoint {
            value: v.to_string(),
            label: String::new(),
        };
        ContactDraft {
            name: name.to_string(),
            given_name: None,
            family_name: None,
            organisation: None,
            role: None,
            inside_org: None,
            emails: email.map(point).into_iter().collect(),
            phones: phone.map(point).into_iter().collect(),
            urls: Default::default(),
            notes: String::new(),
            tags: Default::default(),
            birthday: None,
            first_met: None,
            import_keys: [format!("vcard-hash:{line}")].into(),
            source_line: line,
        }
    }

    fn earlier(create_index: usize, source_line: usize) -> MergeTarget {
        MergeTarget::EarlierDraft {
            create_index,
            source_line,
        }
    }

    #[test]
    fn same_email_as_an_earlier_card_of_the_input() {
        let plan = plan_import(
            vec![
                draft(1, "Ana Lima", Some("ana@x.org"), None),
                draft(9, "A. Lima", Some(" ANA@x.org "), None),
            ],
            &[],
        );
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0].source_line, 1, "the earlier card wins");
        assert_eq!(plan.likely_duplicates.len(), 1);
        let dup = &plan.likely_duplicates[0];
        assert_eq!(dup.draft.source_line, 9);
        assert_eq!(dup.merge_into, earlier(0, 1));
        assert_eq!(dup.merge_into.same_as_line(), Some(1));
        assert_eq!(dup.merge_into.existing(), None);
        assert_eq!(
            dup.reasons,
            vec![DuplicateReason::SameEmail("ana@x.org".into())]
        );
        assert!(dup.other_candidates.is_empty());
    }

    #[test]
    fn same_phone_in_trunk_prefix_form_as_an_earlier_card() {
        let plan = plan_import(
            vec![
                draft(1, "Zed One", None, Some("+44 (0)20 7946 0958")),
                draft(5, "Somebody", None, None),
                draft(7, "Zed Two", None, Some("020 7946 0958")),
            ],
            &[],
        );
        assert_eq!(plan.create.len(), 2, "{plan:?}");
        assert_eq!(plan.likely_duplicates.len(), 1);
        let dup = &plan.likely_duplicates[0];
        assert_eq!(dup.draft.source_line, 7);
        assert_eq!(dup.merge_into, earlier(0, 1));
        assert_eq!(
            dup.reasons,
            vec![DuplicateReason::SamePhone("442079460958".into())]
        );
    }

    #[test]
    fn same_normalised_name_as_an_earlier_card() {
        let plan = plan_import(
            vec![
                draft(1, "Someone Else", None, None),
                draft(4, "José  Müller", Some("a@x.org"), None),
                draft(8, "jose muller", Some("b@y.org"), None),
            ],
            &[],
        );
        assert_eq!(plan.create.len(), 2);
        let dup = &plan.likely_duplicates[0];
        assert_eq!(dup.draft.source_line, 8);
        assert_eq!(dup.merge_into, earlier(1, 4));
        assert_eq!(
            dup.reasons,
            vec![DuplicateReason::SameName("jose muller".into())]
        );
    }

    #[test]
    fn three_look_alikes_all_point_at_the_first() {
        // The third shares nothing with the first, only a phone with the
        // second: it still goes where the second goes.
        let plan = plan_import(
            vec![
                draft(1, "Ana Lima", Some("ana@x.org"), None),
                draft(6, "Ana Lima", Some("ana@x.org"), Some("+351 912 345 678")),
                draft(11, "A L", None, Some("912 345 678")),
            ],
            &[],
        );
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.likely_duplicates.len(), 2);
        for d in &plan.likely_duplicates {
            assert_eq!(d.merge_into, earlier(0, 1), "{d:?}");
        }
        assert_eq!(
            plan.likely_duplicates[0].reasons,
            vec![
                DuplicateReason::SameEmail("ana@x.org".into()),
                DuplicateReason::SameName("ana lima".into()),
            ]
        );
    }

    #[test]
    fn existing_contact_wins_over_an_earlier_card_on_equal_evidence() {
        let stored = draft(0, "Ana Lima", None, None).into_contact(ContactId::new(), 1);
        let plan = plan_import(
            vec![
                draft(1, "Bea Costa", Some("ana@x.org"), None),
                draft(3, "Ana Lima", None, None),
                draft(5, "Bea Costa", None, None),
            ],
            std::slice::from_ref(&stored),
        );
        assert_eq!(plan.create.len(), 1);
        // Line 3 looks like the stored contact only (line 1 has another name).
        assert_eq!(
            plan.likely_duplicates[0].merge_into,
            MergeTarget::Existing(stored.id)
        );
        // Line 5 looks like line 1 by name.
        assert_eq!(plan.likely_duplicates[1].merge_into, earlier(0, 1));
        // A card that looks like both, equally, is suggested the stored contact.
        let plan = plan_import(
            vec![
                draft(1, "Ana Lima", Some("z@x.org"), None),
                draft(3, "Ana Lima", None, None),
            ],
            std::slice::from_ref(&stored),
        );
        assert!(plan.create.is_empty(), "{plan:?}");
        for d in &plan.likely_duplicates {
            assert_eq!(d.merge_into, MergeTarget::Existing(stored.id));
        }
    }

    #[test]
    fn stronger_evidence_of_an_earlier_card_beats_a_stored_name() {
        let stored = draft(0, "Ana Lima", None, None).into_contact(ContactId::new(), 1);
        let plan = plan_import(
            vec![
                draft(1, "Bea Costa", Some("ana@x.org"), None),
                draft(3, "Ana Lima", Some("ana@x.org"), None),
            ],
            std::slice::from_ref(&stored),
        );
        let dup = &plan.likely_duplicates[0];
        assert_eq!(dup.merge_into, earlier(0, 1));
        assert_eq!(dup.other_candidates, vec![stored.id]);
    }

    #[test]
    fn a_reimport_creates_nothing_and_points_at_the_contact_created() {
        let input = vec![
            draft(1, "Ana Lima", Some("ana@x.org"), None),
            draft(6, "A. Lima", Some("ana@x.org"), None),
        ];
        let first = plan_import(input.clone(), &[]);
        let stored: Vec<Contact> = first
            .create
            .iter()
            .map(|d| d.clone().into_contact(ContactId::new(), 1))
            .collect();
        let again = plan_import(input, &stored);
        assert!(again.create.is_empty());
        assert_eq!(again.already_imported.len(), 1);
        assert_eq!(
            again.likely_duplicates[0].merge_into,
            MergeTarget::Existing(stored[0].id)
        );
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        /// Drafts drawn from small pools, so look-alikes are frequent; the
        /// lines increase and the keys are unique (no repeats by key).
        fn input() -> impl Strategy<Value = Vec<ContactDraft>> {
            let names =
                prop::sample::select(vec!["Ana Lima", "ana  LIMA", "Bo Chen", "Cy Dee", "Di"]);
            let emails = prop::option::of(prop::sample::select(vec![
                "ana@x.org",
                "ANA@x.org ",
                "bo@y.org",
                "cy@z.org",
            ]));
            let phones = prop::option::of(prop::sample::select(vec![
                "+44 20 7946 0958",
                "020 7946 0958",
                "+44 7700 900123",
                "07700 900123",
                "555 1234",
            ]));
            prop::collection::vec((names, emails, phones), 0..12).prop_map(|rows| {
                rows.into_iter()
                    .enumerate()
                    .map(|(i, (n, e, p))| draft(1 + 5 * i, n, e, p))
                    .collect()
            })
        }

        proptest! {
            #[test]
            fn look_alikes_of_one_input_point_at_an_earlier_created_draft(drafts in input()) {
                let n = drafts.len();
                let plan = plan_import(drafts.clone(), &[]);
                prop_assert_eq!(plan.len(), n);
                prop_assert!(plan.already_imported.is_empty() && plan.repeated_in_input.is_empty());
                // No two created drafts look alike: each one planned alone
                // against the others (as contacts) is a duplicate of none.
                for (i, d) in plan.create.iter().enumerate() {
                    let others: Vec<Contact> = plan.create.iter().enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, o)| o.clone().into_contact(ContactId::new(), 1))
                        .collect();
                    let alone = plan_import(vec![d.clone()], &others);
                    // One country only, so the default calling code cannot
                    // change between the two plans.
                    prop_assert_eq!(alone.create.len(), 1, "{:?} looks like another created draft", d);
                }
                for l in &plan.likely_duplicates {
                    let MergeTarget::EarlierDraft { create_index, source_line } = l.merge_into else {
                        return Err(TestCaseError::fail("no stored contact to look like"));
                    };
                    let target = &plan.create[create_index];
                    prop_assert_eq!(target.source_line, source_line);
                    prop_assert!(source_line < l.draft.source_line);
                    prop_assert!(!l.reasons.is_empty());
                }
                // Applied (the created drafts become contacts), the same input
                // creates nothing.
                let stored: Vec<Contact> = plan.create.iter()
                    .map(|d| d.clone().into_contact(ContactId::new(), 1))
                    .collect();
                let again = plan_import(drafts, &stored);
                prop_assert!(again.create.is_empty(), "{:?}", again);
                prop_assert_eq!(again.already_imported.len(), plan.create.len());
                prop_assert_eq!(again.likely_duplicates.len(), plan.likely_duplicates.len());
            }
        }
    }
}

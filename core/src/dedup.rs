//! Likely duplicates: contacts that are probably the same person.
//!
//! Two live (not merged-away) contacts are likely duplicates when they share a
//! normalised email (trimmed, lowercased), a phone number (in E.164-like form,
//! equal on the last 9 digits, so "+351 912 345 678", "0912 345 678" and
//! "912345678" all meet, and so do "+44 20 7946 0958", "020 7946 0958" and
//! "0044 20 7946 0958": see [`kith_model::phone`] for the trunk prefixes
//! and the default calling code; numbers with fewer than 9 digits never
//! match), or a
//! normalised name (case, accents, punctuation and spacing ignored, letters
//! folded and spelt every way a person types them: "Łukasz Wiśniewski" and
//! "Lukasz Wisniewski", "Jörg Großmann" and "Joerg Grossmann" meet; see
//! [`text::name_keys`]). The user then merges them with
//! [`crate::Store::merge_contacts`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::ids::ContactId;
use crate::index::text;
use crate::model::Contact;
use crate::store::Store;

/// Shortest digit suffix two phone numbers must share.
pub const PHONE_DIGITS_MIN: usize = 9;

/// The digits a phone number is compared by: its E.164-like form under
/// `default_cc` ([`kith_model::phone::normalise`]), or `None` when the
/// number as written has fewer than [`PHONE_DIGITS_MIN`] digits (short codes
/// and extensions never match, even once a calling code is added).
pub fn phone_match_digits(raw: &str, default_cc: Option<&str>) -> Option<String> {
    if text::phone_digits(raw).len() < PHONE_DIGITS_MIN {
        return None;
    }
    let digits = kith_model::phone::normalise(raw, default_cc);
    (digits.len() >= PHONE_DIGITS_MIN).then_some(digits)
}

/// Why two contacts look like the same person.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DuplicateReason {
    /// The normalised email both have.
    SameEmail(String),
    /// The shared trailing digits of their phone numbers.
    SamePhone(String),
    /// The normalised name both have.
    SameName(String),
}

/// Two contacts (`a < b`) that are likely the same person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicatePair {
    /// The contact with the smaller id.
    pub a: ContactId,
    /// The contact with the larger id.
    pub b: ContactId,
    /// Why they look alike; never empty.
    pub reasons: Vec<DuplicateReason>,
}

/// Finds likely duplicate pairs among `contacts`, sorted by (a, b).
pub fn likely_duplicates(contacts: &[Contact]) -> Vec<DuplicatePair> {
    let live: Vec<&Contact> = contacts
        .iter()
        .filter(|c| c.merged_into.is_none())
        .collect();
    let mut pairs: BTreeMap<(ContactId, ContactId), BTreeSet<DuplicateReason>> = BTreeMap::new();
    let mut add = |x: ContactId, y: ContactId, r: DuplicateReason| {
        if x != y {
            pairs.entry((x.min(y), x.max(y))).or_default().insert(r);
        }
    };
    let mut by_email: BTreeMap<String, BTreeSet<ContactId>> = BTreeMap::new();
    let mut by_name: BTreeMap<String, BTreeSet<ContactId>> = BTreeMap::new();
    let mut by_phone_tail: BTreeMap<String, Vec<(String, ContactId)>> = BTreeMap::new();
    let default_cc = kith_model::phone::default_calling_code(
        live.iter()
            .flat_map(|c| &c.phones)
            .map(|p| p.value.as_str()),
    );
    for c in &live {
        for e in &c.emails {
            let e = text::normalise_email(&e.value);
            if !e.is_empty() {
                by_email.entry(e).or_default().insert(c.id);
            }
        }
        for n in text::name_keys(&c.name) {
            by_name.entry(n).or_default().insert(c.id);
        }
        for p in &c.phones {
            if let Some(d) = phone_match_digits(&p.value, default_cc.as_deref()) {
                let tail = d[d.len() - PHONE_DIGITS_MIN..].to_string();
                by_phone_tail.entry(tail).or_default().push((d, c.id));
            }
        }
    }
    for (key, ids) in by_email {
        let ids: Vec<ContactId> = ids.into_iter().collect();
        for (i, x) in ids.iter().enumerate() {
            for y in &ids[i + 1..] {
                add(*x, *y, DuplicateReason::SameEmail(key.clone()));
            }
        }
    }
    // Two names may share several spellings ("Jörg Großmann" twice): one
    // SameName reason per pair, the first key in order.
    let mut named: BTreeSet<(ContactId, ContactId)> = BTreeSet::new();
    for (key, ids) in by_name {
        let ids: Vec<ContactId> = ids.into_iter().collect();
        for (i, x) in ids.iter().enumerate() {
            for y in &ids[i + 1..] {
                if named.insert((*x.min(y), *x.max(y))) {
                    add(*x, *y, DuplicateReason::SameName(key.clone()));
                }
            }
        }
    }
    for (_, nums) in by_phone_tail {
        for (i, (dx, x)) in nums.iter().enumerate() {
            for (dy, y) in &nums[i + 1..] {
                let shared = dx
                    .bytes()
                    .rev()
                    .zip(dy.bytes().rev())
                    .take_while(|(a, b)| a == b)
                    .count();
                let tail = dx[dx.len() - shared..].to_string();
                add(*x, *y, DuplicateReason::SamePhone(tail));
            }
        }
    }
    pairs
        .into_iter()
        .map(|((a, b), reasons)| DuplicatePair {
            a,
            b,
            reasons: reasons.into_iter().collect(),
        })
        .collect()
}

impl Store {
    /// Likely duplicate contacts (see the module docs), from the index.
    pub fn likely_duplicates(&self) -> Result<Vec<DuplicatePair>, StoreError> {
        Ok(likely_duplicates(&self.all_contacts()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContactPoint, Seniority};

    fn contact(name: &str, emails: &[&str], phones: &[&str]) -> Contact {
        let pt = |v: &&str| ContactPoint {
            value: v.to_string(),
            label: String::new(),
        };
        Contact {
            id: ContactId::new(),
            name: name.into(),
            given_name: None,
            family_name: None,
            organisation: None,
            role: None,
            discipline: None,
            seniority: Seniority::Unknown,
            inside_org: None,
            circles: BTreeSet::new(),
            tags: BTreeSet::new(),
            emails: emails.iter().map(pt).collect(),
            phones: phones.iter().map(pt).collect(),
            urls: BTreeSet::new(),
            how_we_met: None,
            first_met: None,
            birthday: None,
            notes: String::new(),
            cadence_days: None,
            created_ms: 0,
            updated_ms: 0,
            archived: false,
            merged_into: None,
            import_keys: BTreeSet::new(),
            merge_base: Default::default(),
            merged_from: Vec::new(),
            conflicts: Vec::new(),
        }
    }

    #[test]
    fn finds_email_phone_and_name_duplicates_only() {
        let a = contact(
            "José  Álvarez",
            &["Jose@Example.org "],
            &["+351 912 345 678"],
        );
        let b = contact("jose alvarez", &[], &[]);
        let c = contact("Someone Else", &["jose@example.org"], &[]);
        let d = contact("Third", &[], &["912-345-678"]);
        let e = contact("Short", &[], &["12345678"]);
        let f = contact("Short Two", &[], &["912345678"]);
        let mut merged = contact("jose alvarez", &[], &[]);
        merged.merged_into = Some(a.id);
        let all = vec![
            a.clone(),
            b.clone(),
            c.clone(),
            d.clone(),
            e.clone(),
            f.clone(),
            merged,
        ];
        let pairs = likely_duplicates(&all);
        let find = |x: &Contact, y: &Contact| {
            pairs
                .iter()
                .find(|p| (p.a, p.b) == (x.id.min(y.id), x.id.max(y.id)))
                .map(|p| p.reasons.clone())
        };
        assert_eq!(
            find(&a, &b),
            Some(vec![DuplicateReason::SameName("jose alvarez".into())])
        );
        assert_eq!(
            find(&a, &c),
            Some(vec![DuplicateReason::SameEmail("jose@example.org".into())])
        );
        assert_eq!(
            find(&a, &d),
            Some(vec![DuplicateReason::SamePhone("351912345678".into())])
        );
        assert!(find(&d, &f).is_some());
        assert!(find(&e, &f).is_none(), "8 digits are too few to match");
        assert_eq!(pairs.len(), 5, "{pairs:?}");
    }

    #[test]
    fn trunk_and_international_prefixes_are_the_same_phone() {
        // The calling code of the nationally written numbers comes from the
        // internationally written ones (44 here).
        let a = contact("A", &[], &["+44 20 7946 0958"]);
        let b = contact("B", &[], &["020 7946 0958"]);
        let c = contact("C", &[], &["0044 20 7946 0958"]);
        let d = contact("D", &[], &["+44 (0)20 7946 0958"]);
        let other = contact("E", &[], &["+44 20 7946 0959"]);
        let all = vec![a, b, c, d, other.clone()];
        let pairs = likely_duplicates(&all);
        assert_eq!(pairs.len(), 6, "every pair of the four forms: {pairs:?}");
        for p in &pairs {
            assert_eq!(
                p.reasons,
                vec![DuplicateReason::SamePhone("442079460958".into())]
            );
            assert!(p.a != other.id && p.b != other.id);
        }
        // Without any international number the national form still meets
        // nothing wrongly, and two national forms meet each other.
        let x = contact("X", &[], &["020 7946 0958"]);
        let y = contact("Y", &[], &["(020) 7946-0958"]);
        let pairs = likely_duplicates(&[x, y]);
        assert_eq!(pairs.len(), 1);
    }
}

//! Likely duplicates: contacts that are probably the same person.
//!
//! Two live (not merged-away) contacts are likely duplicates when they share a
//! normalised email (trimmed, lowercased), a phone number (digits only, equal
//! on the last 9 digits, so "+351 912 345 678", "0912 345 678" and
//! "912345678" all meet; numbers with fewer than 9 digits never match), or a
//! normalised name (case, accents, punctuation and spacing ignored). The user
//! then merges them with [`crate::Store::merge_contacts`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::ids::ContactId;
use crate::index::text;
use crate::model::Contact;
use crate::store::Store;

/// Shortest digit suffix two phone numbers must share.
pub const PHONE_DIGITS_MIN: usize = 9;

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
    pub a: ContactId,
    pub b: ContactId,
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
    for c in &live {
        for e in &c.emails {
            let e = text::normalise_email(&e.value);
            if !e.is_empty() {
                by_email.entry(e).or_default().insert(c.id);
            }
        }
        let n = text::normalise_name(&c.name);
        if !n.is_empty() {
            by_name.entry(n).or_default().insert(c.id);
        }
        for p in &c.phones {
            let d = text::phone_digits(&p.value);
            if d.len() >= PHONE_DIGITS_MIN {
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
    for (key, ids) in by_name {
        let ids: Vec<ContactId> = ids.into_iter().collect();
        for (i, x) in ids.iter().enumerate() {
            for y in &ids[i + 1..] {
                add(*x, *y, DuplicateReason::SameName(key.clone()));
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
            Some(vec![DuplicateReason::SamePhone("912345678".into())])
        );
        assert!(find(&d, &f).is_some());
        assert!(find(&e, &f).is_none(), "8 digits are too few to match");
        assert_eq!(pairs.len(), 5, "{pairs:?}");
    }
}

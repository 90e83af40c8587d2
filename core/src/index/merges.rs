//! Contact merges resolved at indexing time.
//!
//! A merge writes one thing into the document: the duplicate's `merged_into`
//! pointer (plus its `merge_base`, the values the merge took into account).
//! References are never rewritten: interactions, exchanges and goals keep the
//! ids they were written with. This module turns those raw records into the
//! records every query reads:
//!
//! - [`survivors`] resolves the pointers, a forest with possible cycles (two
//!   devices merging A into B and B into A offline), into one live survivor
//!   per group: follow `merged_into` until a contact without a (valid)
//!   pointer; a cycle elects its smallest id (ULIDs sort by creation time, so
//!   the earliest-created contact survives). It depends only on the set of
//!   pointers, so every device computes the same result once it holds the
//!   same changes, with no new write.
//! - [`fold`] builds a survivor's record from its own and its group's raw
//!   records (fields it lacks are filled, sets united, differing values made
//!   after the merge become [`MergeConflict`]s).
//! - interactions and goals are indexed with every contact reference replaced
//!   by its survivor.
//!
//! Data flow: `put_contact` / `put_interaction` / `put_goal` (in `mod.rs`)
//! store the raw record in `idx_*_raw` / `idx_interaction_refs`, then call
//! into here. When a pointer changes (or a contact someone points at
//! arrives), [`settle`] recomputes the survivors, and re-indexes exactly the
//! groups, interactions (found through `idx_refs_by_contact`) and goals whose
//! resolution moved. `rebuild` computes the same rows from scratch; a
//! property test checks the two agree after any order of syncs.

use std::collections::{BTreeMap, BTreeSet};

use redb::WriteTransaction;

use super::{R, decode, encode};
use crate::ids::ContactId;
use crate::model::{Contact, Goal, Interaction, MergeConflict, Seniority};

/// Resolves merge pointers (contact -> the contact it was merged into) into
/// the survivor of every merged-away contact. Pointers to contacts that do
/// not exist (`exists` false) or to themselves are ignored. Contacts that
/// are their own survivor are not in the result.
pub(crate) fn survivors(
    pointers: &BTreeMap<u128, u128>,
    exists: impl Fn(u128) -> bool,
) -> BTreeMap<u128, u128> {
    let next = |c: u128| pointers.get(&c).copied().filter(|t| *t != c && exists(*t));
    // Survivor of every contact resolved so far (roots map to themselves).
    let mut memo: BTreeMap<u128, u128> = BTreeMap::new();
    for &start in pointers.keys() {
        if memo.contains_key(&start) {
            continue;
        }
        let mut path: Vec<u128> = vec![start];
        let mut on_path: BTreeSet<u128> = BTreeSet::from([start]);
        let root = loop {
            let cur = *path.last().unwrap_or(&start);
            if let Some(r) = memo.get(&cur) {
                break *r;
            }
            match next(cur) {
                None => break cur,
                Some(t) if on_path.contains(&t) => {
                    // A cycle: its smallest id (earliest created) survives.
                    let from = path.iter().position(|c| *c == t).unwrap_or(0);
                    break path[from..].iter().copied().min().unwrap_or(t);
                }
                Some(t) => {
                    path.push(t);
                    on_path.insert(t);
                }
            }
        };
        for c in path {
            memo.insert(c, root);
        }
    }
    memo.into_iter().filter(|(c, s)| c != s).collect()
}

/// The pointer a raw contact holds, if any (a self pointer is none).
pub(crate) fn pointer(c: &Contact) -> Option<u128> {
    c.merged_into.filter(|t| *t != c.id).map(|t| t.to_u128())
}

/// The record queries see for a merged-away contact: its own, pointing at
/// its survivor and archived (so lists hide it).
pub(crate) fn member_view(raw: &Contact, survivor: ContactId) -> Contact {
    Contact {
        merged_into: Some(survivor),
        archived: true,
        merged_from: Vec::new(),
        conflicts: Vec::new(),
        ..raw.clone()
    }
}

/// Fills `v` from `m` when `v` is empty; records a conflict when both have
/// differing values and `m`'s is not the one its merge base took into account.
fn take<T: Clone + PartialEq>(
    v: &mut Option<T>,
    m: &Option<T>,
    field: &str,
    show: impl Fn(&T) -> String,
    member: &Contact,
    conflicts: &mut Vec<MergeConflict>,
) {
    let Some(mv) = m else {
        return;
    };
    match v {
        None => *v = Some(mv.clone()),
        Some(sv) if sv != mv => {
            let value = show(mv);
            if member.merge_base.get(field) != Some(&value) {
                conflicts.push(MergeConflict {
                    field: field.to_string(),
                    value,
                    from: member.id,
                });
            }
        }
        Some(_) => {}
    }
}

/// The values of a contact that merge one value per field, spelled as in
/// the document: what a merge base records and a conflict shows.
pub(crate) fn field_values(c: &Contact) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            out.insert(k.to_string(), v);
        }
    };
    put("name", Some(c.name.clone()));
    put("given_name", c.given_name.clone());
    put("family_name", c.family_name.clone());
    put("organisation", c.organisation.clone());
    put("role", c.role.clone());
    put("discipline", c.discipline.clone());
    put(
        "seniority",
        (c.seniority != Seniority::Unknown).then(|| c.seniority.as_str().to_string()),
    );
    put("inside_org", c.inside_org.map(|b| b.to_string()));
    put("how_we_met", c.how_we_met.clone());
    put("birthday", c.birthday.as_ref().map(show_birthday));
    put(
        "notes",
        (!c.notes.trim().is_empty()).then(|| c.notes.clone()),
    );
    put("cadence_days", c.cadence_days.map(|d| d.to_string()));
    out
}

fn show_birthday(d: &crate::model::PartialDate) -> String {
    match d.year {
        Some(y) => format!("{y:04}-{:02}-{:02}", d.month, d.day),
        None => format!("--{:02}-{:02}", d.month, d.day),
    }
}

/// The record queries see for a survivor: its own raw record combined with
/// its merged duplicates' (`members`, any order). A field the survivor lacks
/// is taken from the first duplicate (by id) that has it; sets, contact
/// points and import keys are united; the earliest `first_met` wins; where
/// both have a value the survivor's stands and the duplicate's becomes a
/// conflict unless its merge base already held that value.
pub(crate) fn fold(survivor: &Contact, members: &[Contact]) -> Contact {
    let mut v = survivor.clone();
    v.merged_into = None;
    v.conflicts = Vec::new();
    let mut members: Vec<&Contact> = members.iter().collect();
    members.sort_by_key(|m| m.id);
    v.merged_from = members.iter().map(|m| m.id).collect();
    let mut conflicts = Vec::new();
    let s = |x: &String| x.clone();
    for m in members {
        let c = &mut conflicts;
        let mut name = Some(v.name.clone());
        take(&mut name, &Some(m.name.clone()), "name", s, m, c);
        take(&mut v.given_name, &m.given_name, "given_name", s, m, c);
        take(&mut v.family_name, &m.family_name, "family_name", s, m, c);
        take(
            &mut v.organisation,
            &m.organisation,
            "organisation",
            s,
            m,
            c,
        );
        take(&mut v.role, &m.role, "role", s, m, c);
        take(&mut v.discipline, &m.discipline, "discipline", s, m, c);
        let mut sen = (v.seniority != Seniority::Unknown).then_some(v.seniority);
        let m_sen = (m.seniority != Seniority::Unknown).then_some(m.seniority);
        take(
            &mut sen,
            &m_sen,
            "seniority",
            |x| x.as_str().to_string(),
            m,
            c,
        );
        v.seniority = sen.unwrap_or(Seniority::Unknown);
        take(
            &mut v.inside_org,
            &m.inside_org,
            "inside_org",
            |b| b.to_string(),
            m,
            c,
        );
        take(&mut v.how_we_met, &m.how_we_met, "how_we_met", s, m, c);
        take(
            &mut v.birthday,
            &m.birthday,
            "birthday",
            show_birthday,
            m,
            c,
        );
        take(
            &mut v.cadence_days,
            &m.cadence_days,
            "cadence_days",
            |d| d.to_string(),
            m,
            c,
        );
        let mut notes = (!v.notes.trim().is_empty()).then(|| v.notes.clone());
        let m_notes = (!m.notes.trim().is_empty()).then(|| m.notes.clone());
        take(&mut notes, &m_notes, "notes", s, m, c);
        if let Some(n) = notes {
            v.notes = n;
        }
        v.first_met = match (v.first_met, m.first_met) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        v.circles.extend(m.circles.iter().copied());
        v.tags.extend(m.tags.iter().cloned());
        v.urls.extend(m.urls.iter().cloned());
        v.import_keys.extend(m.import_keys.iter().cloned());
        for p in &m.emails {
            if !v.emails.iter().any(|e| e.value == p.value) {
                v.emails.push(p.clone());
            }
        }
        for p in &m.phones {
            if !v.phones.iter().any(|e| e.value == p.value) {
                v.phones.push(p.clone());
            }
        }
    }
    v.emails.sort_by(|a, b| a.value.cmp(&b.value));
    v.phones.sort_by(|a, b| a.value.cmp(&b.value));
    conflicts.sort();
    conflicts.dedup();
    v.conflicts = conflicts;
    v
}

/// Raw contact references of an interaction: participants, and each
/// exchange's `with` in exchange order.
pub(crate) type RawRefs = (BTreeSet<ContactId>, Vec<Option<ContactId>>);

pub(crate) fn raw_refs(i: &Interaction) -> RawRefs {
    (
        i.participants.clone(),
        i.exchanges.iter().map(|e| e.with).collect(),
    )
}

/// Every contact an interaction's raw references name.
pub(crate) fn ref_contacts(refs: &RawRefs) -> BTreeSet<ContactId> {
    let mut out = refs.0.clone();
    out.extend(refs.1.iter().flatten().copied());
    out
}

fn resolve_with(id: ContactId, surv: &impl Fn(ContactId) -> R<ContactId>) -> R<ContactId> {
    surv(id)
}

/// `raw` with every contact reference replaced by its survivor.
pub(crate) fn view_interaction(
    raw: &Interaction,
    surv: &impl Fn(ContactId) -> R<ContactId>,
) -> R<Interaction> {
    let mut v = raw.clone();
    v.participants = raw
        .participants
        .iter()
        .map(|c| resolve_with(*c, surv))
        .collect::<R<_>>()?;
    for e in &mut v.exchanges {
        if let Some(w) = e.with {
            e.with = Some(resolve_with(w, surv)?);
        }
    }
    Ok(v)
}

/// `raw` with every contact replaced by its survivor.
pub(crate) fn view_goal(raw: &Goal, surv: &impl Fn(ContactId) -> R<ContactId>) -> R<Goal> {
    let mut v = raw.clone();
    v.contacts = raw
        .contacts
        .iter()
        .map(|c| resolve_with(*c, surv))
        .collect::<R<_>>()?;
    Ok(v)
}

/// The survivor of `id` as the index records it now.
pub(crate) fn survivor_of(txn: &WriteTransaction, id: ContactId) -> R<ContactId> {
    let t = super::SURVIVORS.open(txn)?;
    Ok(t.get(id.to_u128())?.map_or(id, ContactId::from_u128))
}

/// Every (merged-away contact -> survivor) the index records.
pub(crate) fn load_survivors(txn: &WriteTransaction) -> R<BTreeMap<u128, u128>> {
    let t = super::SURVIVORS.open(txn)?;
    let mut out = BTreeMap::new();
    for row in t.iter()? {
        let (k, v) = row?;
        out.insert(k, v);
    }
    Ok(out)
}

pub(crate) fn get_raw_contact(txn: &WriteTransaction, id: ContactId) -> R<Option<Contact>> {
    let t = super::RAW_CONTACTS.open(txn)?;
    t.get(id.to_u128())?
        .map(|v| decode(v.value(), "contacts_raw"))
        .transpose()
}

/// The members (merged-away contacts) of the group `survivor` leads.
pub(crate) fn members_of(txn: &WriteTransaction, survivor: ContactId) -> R<Vec<ContactId>> {
    let t = super::GROUPS.open(txn)?;
    let s = survivor.to_u128();
    let mut out = Vec::new();
    for row in t.range((s, 0u128)..=(s, u128::MAX))? {
        let (k, _) = row?;
        out.push(ContactId::from_u128(k.1));
    }
    Ok(out)
}

/// Re-indexes the view of every contact in the group `survivor` leads.
pub(crate) fn refresh_group(txn: &WriteTransaction, survivor: ContactId) -> R<()> {
    let Some(s_raw) = get_raw_contact(txn, survivor)? else {
        return Ok(());
    };
    let mut members = Vec::new();
    for m in members_of(txn, survivor)? {
        if let Some(raw) = get_raw_contact(txn, m)? {
            members.push(raw);
        }
    }
    super::put_contact_view(txn, &fold(&s_raw, &members))?;
    for m in &members {
        super::put_contact_view(txn, &member_view(m, survivor))?;
    }
    Ok(())
}

/// Recomputes the survivors from the merge pointers and re-indexes every
/// contact, interaction and goal whose resolution moved.
pub(crate) fn settle(txn: &WriteTransaction) -> R<()> {
    let pointers: BTreeMap<u128, u128> = {
        let t = super::MERGE_PTRS.open(txn)?;
        let mut out = BTreeMap::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.insert(k, v);
        }
        out
    };
    let new = {
        let raw = super::RAW_CONTACTS.open(txn)?;
        let mut exists: BTreeMap<u128, bool> = BTreeMap::new();
        for t in pointers.values() {
            exists.insert(*t, raw.get(*t)?.is_some());
        }
        survivors(&pointers, |t| exists.get(&t).copied().unwrap_or(false))
    };
    let old = load_survivors(txn)?;
    let moved: BTreeSet<u128> = old
        .keys()
        .chain(new.keys())
        .copied()
        .filter(|c| old.get(c) != new.get(c))
        .collect();
    if moved.is_empty() {
        return Ok(());
    }
    {
        let mut st = super::SURVIVORS.open(txn)?;
        let mut gt = super::GROUPS.open(txn)?;
        for c in &moved {
            if let Some(s) = old.get(c) {
                st.remove(*c)?;
                gt.remove((*s, *c))?;
            }
            if let Some(s) = new.get(c) {
                st.insert(*c, *s)?;
                gt.insert((*s, *c), ())?;
            }
        }
    }
    // Groups whose membership changed: led by an old or new survivor of a
    // moved contact, or by a moved contact that now survives itself.
    let mut leaders = BTreeSet::new();
    for c in &moved {
        leaders.insert(*new.get(c).unwrap_or(c));
        if let Some(s) = old.get(c) {
            leaders.insert(*new.get(s).unwrap_or(s));
        }
    }
    for l in leaders {
        refresh_group(txn, ContactId::from_u128(l))?;
    }
    // Interactions naming a moved contact.
    let mut iids = BTreeSet::new();
    {
        let t = super::REFS_BY_CONTACT.open(txn)?;
        for c in &moved {
            for row in t.range((*c, 0u128)..=(*c, u128::MAX))? {
                let (k, _) = row?;
                iids.insert(k.1);
            }
        }
    }
    let surv = |c: ContactId| -> R<ContactId> {
        Ok(new
            .get(&c.to_u128())
            .map_or(c, |s| ContactId::from_u128(*s)))
    };
    let mut affected = BTreeSet::new();
    for iid in iids {
        let id = crate::ids::InteractionId::from_u128(iid);
        let (Some(old_view), Some(refs)) = (super::get_interaction(txn, id)?, get_refs(txn, iid)?)
        else {
            continue;
        };
        let mut raw = old_view.clone();
        raw.participants = refs.0;
        for (e, w) in raw.exchanges.iter_mut().zip(refs.1) {
            e.with = w;
        }
        let view = view_interaction(&raw, &surv)?;
        if view != old_view {
            affected.extend(old_view.participants.iter().copied());
            affected.extend(view.participants.iter().copied());
            super::put_interaction_rows(txn, Some(&old_view), &view)?;
        }
    }
    super::refresh_stats(txn, &affected)?;
    // Goals are few: re-resolve every one naming a moved contact.
    let raw_goals: Vec<Goal> = super::all_records(&super::RAW_GOALS.open(txn)?, "goals_raw")?;
    for g in raw_goals {
        if g.contacts.iter().any(|c| moved.contains(&c.to_u128())) {
            super::put_goal_view(txn, &view_goal(&g, &surv)?)?;
        }
    }
    Ok(())
}

pub(crate) fn get_refs(txn: &WriteTransaction, iid: u128) -> R<Option<RawRefs>> {
    let t = super::INTERACTION_REFS.open(txn)?;
    t.get(iid)?
        .map(|v| decode(v.value(), "interaction_refs"))
        .transpose()
}

/// Stores an interaction's raw references, replacing `old`'s rows.
pub(crate) fn put_refs(txn: &WriteTransaction, iid: u128, refs: &RawRefs) -> R<()> {
    let old = get_refs(txn, iid)?;
    let new_cs = ref_contacts(refs);
    let mut by_c = super::REFS_BY_CONTACT.open(txn)?;
    if let Some(old) = &old {
        for c in ref_contacts(old).difference(&new_cs) {
            by_c.remove((c.to_u128(), iid))?;
        }
    }
    for c in &new_cs {
        by_c.insert((c.to_u128(), iid), ())?;
    }
    super::INTERACTION_REFS
        .open(txn)?
        .insert(iid, encode(refs, "interaction_refs")?.as_slice())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn resolve(p: &[(u128, u128)], n: u128) -> BTreeMap<u128, u128> {
        survivors(&p.iter().copied().collect(), |t| t < n)
    }

    #[test]
    fn chains_resolve_to_the_end_and_cycles_elect_the_smallest() {
        assert_eq!(resolve(&[(1, 2), (2, 3)], 10), [(1, 3), (2, 3)].into());
        assert_eq!(resolve(&[(1, 2), (2, 1)], 10), [(2, 1)].into());
        assert_eq!(
            resolve(&[(5, 3), (3, 4), (4, 3), (6, 5)], 10),
            [(4, 3), (5, 3), (6, 3)].into()
        );
        // Pointers to unknown contacts and self pointers are ignored.
        assert_eq!(resolve(&[(1, 20), (2, 2)], 10), BTreeMap::new());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Every contact resolves to a contact that resolves to itself (a
        /// live survivor) and each survivor is a root or the smallest member
        /// of its cycle.
        #[test]
        fn survivors_are_roots(p in proptest::collection::btree_map(0u128..12, 0u128..12, 0..12)) {
            let s = survivors(&p, |_| true);
            for (c, r) in &s {
                prop_assert!(!s.contains_key(r), "{c} -> {r} is not a root");
                prop_assert_ne!(c, r);
            }
            // A survivor either has no pointer or sits on a cycle whose
            // smallest member it is.
            for r in s.values() {
                if let Some(t) = p.get(r).filter(|t| *t != r) {
                    prop_assert_eq!(s.get(t), Some(r));
                    prop_assert!(r < t);
                }
            }
        }
    }
}

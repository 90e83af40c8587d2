//! The materialised index: redb tables that answer every query without
//! walking an Automerge document.
//!
//! Data flow: an operation (or a remote merge) writes to a document, reads the
//! touched records back through [`crate::schema`], and calls `put_contact` /
//! `put_interaction` / ... with the old and new record, inside the same redb
//! write transaction as the document chunk. [`crate::Store::reindex`] clears
//! every table here and rebuilds it from the documents; a property test checks
//! that the two paths produce identical tables ([`dump`]).
//!
//! Records are stored postcard-serialised; ids are `u128` keys (ULIDs sort by
//! time, so id order is creation order). Every table is a `&[u8] -> &[u8]`
//! redb table typed by [`table::Def`] (keys encoded so byte order is key
//! order): redb's B-tree code is compiled once for all of them.

pub(crate) mod merges;
pub(crate) mod table;
pub(crate) use kith_model::text;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;
use crate::ids::{ContactId, FollowUpId, InteractionId};
use crate::model::{Contact, Goal, Interaction, Project, Settings, TimestampMs};
use table::{Bytes, Def, Str, Txn};

/// Version of what the index tables hold, stored in `meta["index"]`. Bump it
/// whenever the rows written for the same records change (tokens, name
/// keys, record encoding): a store whose index another version built is
/// rebuilt when it is opened ([`crate::Store::open`]).
/// 1: NFKD + marks stripped. 2: Latin letters folded, every spelling indexed.
/// 3: contact references resolved to merge survivors; interaction and
/// settings records carry the calendar-meeting fields. 4: interactions logged from a calendar
/// event listed in their own table (`idx_event_logs`). 5: every table a `&[u8] -> &[u8]` redb
/// table with order-preserving keys ([`table`]: the same rows, one B-tree instantiation in the
/// library instead of 14); the rebuild deletes the typed tables of 1-4 by name.
pub(crate) const VERSION: u32 = 5;

/// Contact records: id -> postcard `Contact`.
pub(crate) const CONTACTS: Def<u128, Bytes> = Def::new("idx_contacts");
/// (normalised name, id) -> ().
pub(crate) const CONTACTS_BY_NAME: Def<(Str, u128), ()> = Def::new("idx_contacts_by_name");
/// contact id -> (last interaction ms, count) over non-deleted interactions.
pub(crate) const CONTACT_STATS: Def<u128, (i64, u64)> = Def::new("idx_contact_stats");
/// Interaction records: id -> postcard `Interaction`.
pub(crate) const INTERACTIONS: Def<u128, Bytes> = Def::new("idx_interactions");
/// (at_ms, id) -> deleted.
pub(crate) const BY_TIME: Def<(i64, u128), bool> = Def::new("idx_interactions_by_time");
/// (contact, at_ms, interaction) -> deleted.
pub(crate) const BY_CONTACT: Def<(u128, i64, u128), bool> = Def::new("idx_interactions_by_contact");
/// (due day number or NO_DUE, interaction, follow-up) -> () for open follow-ups
/// of non-deleted interactions.
pub(crate) const FOLLOWUPS: Def<(i32, u128, u128), ()> = Def::new("idx_followups_by_due");
/// (token, kind, id) -> (); kind 0 = contact, 1 = interaction.
pub(crate) const SEARCH: Def<(Str, u8, u128), ()> = Def::new("idx_search");
/// Project records.
pub(crate) const PROJECTS: Def<u128, Bytes> = Def::new("idx_projects");
/// Goal records.
pub(crate) const GOALS: Def<u128, Bytes> = Def::new("idx_goals");
/// "settings" -> postcard `Settings`.
pub(crate) const SETTINGS: Def<Str, Bytes> = Def::new("idx_settings");

/// Raw contact records as the document holds them (what writes diff
/// against); `CONTACTS` holds the resolved views queries read.
pub(crate) const RAW_CONTACTS: Def<u128, Bytes> = Def::new("idx_contacts_raw");
/// contact -> the contact its `merged_into` points at (raw pointers only).
pub(crate) const MERGE_PTRS: Def<u128, u128> = Def::new("idx_merge_pointers");
/// merged-away contact -> its live survivor (resolved pointers).
pub(crate) const SURVIVORS: Def<u128, u128> = Def::new("idx_merge_survivors");
/// (survivor, merged-away member) -> ().
pub(crate) const GROUPS: Def<(u128, u128), ()> = Def::new("idx_merge_groups");
/// interaction -> postcard raw references ([`merges::RawRefs`]).
pub(crate) const INTERACTION_REFS: Def<u128, Bytes> = Def::new("idx_interaction_refs");
/// (raw referenced contact, interaction) -> ().
pub(crate) const REFS_BY_CONTACT: Def<(u128, u128), ()> = Def::new("idx_refs_by_contact");
/// Raw goal records (`GOALS` holds them with contacts resolved).
pub(crate) const RAW_GOALS: Def<u128, Bytes> = Def::new("idx_goals_raw");

/// Interactions logged from a calendar event (deleted ones too: a deleted log still marks its
/// event handled): interaction id -> (). Lets "which events are logged" read a few rows instead
/// of every interaction of every quarter.
pub(crate) const EVENT_LOGS: Def<u128, ()> = Def::new("idx_event_logs");

/// Sort key of a follow-up without a due date: after every dated one.
pub(crate) const NO_DUE: i32 = i32::MAX;
const KIND_CONTACT: u8 = 0;
const KIND_INTERACTION: u8 = 1;
const SETTINGS_KEY: &str = "settings";

type R<T> = Result<T, StoreError>;

fn encode<T: Serialize>(v: &T, table: &str) -> R<Vec<u8>> {
    postcard::to_allocvec(v).map_err(|e| StoreError::Damaged {
        what: format!("index table {table}"),
        detail: format!("cannot encode record: {e}"),
    })
}

fn decode<T: DeserializeOwned>(bytes: &[u8], table: &str) -> R<T> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Damaged {
        what: format!("index table {table}"),
        detail: format!("{e} (run reindex to rebuild it)"),
    })
}

/// Creates every index table (so read-only opens find them).
pub(crate) fn create_tables(txn: &WriteTransaction) -> R<()> {
    CONTACTS.open(txn)?;
    CONTACTS_BY_NAME.open(txn)?;
    CONTACT_STATS.open(txn)?;
    INTERACTIONS.open(txn)?;
    BY_TIME.open(txn)?;
    BY_CONTACT.open(txn)?;
    FOLLOWUPS.open(txn)?;
    SEARCH.open(txn)?;
    PROJECTS.open(txn)?;
    GOALS.open(txn)?;
    SETTINGS.open(txn)?;
    RAW_CONTACTS.open(txn)?;
    MERGE_PTRS.open(txn)?;
    SURVIVORS.open(txn)?;
    GROUPS.open(txn)?;
    INTERACTION_REFS.open(txn)?;
    REFS_BY_CONTACT.open(txn)?;
    RAW_GOALS.open(txn)?;
    EVENT_LOGS.open(txn)?;
    Ok(())
}

/// Deletes and recreates every index table (before a rebuild), so the
/// rebuild writes into empty trees.
pub(crate) fn clear(txn: &WriteTransaction) -> R<()> {
    txn.delete_table(CONTACTS.raw())?;
    txn.delete_table(CONTACTS_BY_NAME.raw())?;
    txn.delete_table(CONTACT_STATS.raw())?;
    txn.delete_table(INTERACTIONS.raw())?;
    txn.delete_table(BY_TIME.raw())?;
    txn.delete_table(BY_CONTACT.raw())?;
    txn.delete_table(FOLLOWUPS.raw())?;
    txn.delete_table(SEARCH.raw())?;
    txn.delete_table(PROJECTS.raw())?;
    txn.delete_table(GOALS.raw())?;
    txn.delete_table(SETTINGS.raw())?;
    txn.delete_table(RAW_CONTACTS.raw())?;
    txn.delete_table(MERGE_PTRS.raw())?;
    txn.delete_table(SURVIVORS.raw())?;
    txn.delete_table(GROUPS.raw())?;
    txn.delete_table(INTERACTION_REFS.raw())?;
    txn.delete_table(REFS_BY_CONTACT.raw())?;
    txn.delete_table(RAW_GOALS.raw())?;
    txn.delete_table(EVENT_LOGS.raw())?;
    create_tables(txn)
}

/// Search rows being collected for a rebuild, each distinct token held once.
///
/// A rebuild at 50,000 interactions writes about 1.5 M search rows: held as
/// `(String, kind, id)` tuples they took over 100 MB and their sort was
/// mostly string comparisons. Here a row is a token number, the kind and
/// the id; the distinct tokens (a few tens of thousands) are sorted once and
/// the rows then sort as integers, in exactly the key order of
/// [`SEARCH`]. Interactions' rows can be collected on several threads (one
/// `SearchRows` each, see `Store::reindex`) and joined with [`SearchRows::absorb`].
#[derive(Debug, Default)]
pub(crate) struct SearchRows {
    numbers: std::collections::HashMap<String, usize>,
    words: Vec<String>,
    rows: Vec<(usize, u8, u128)>,
}

impl SearchRows {
    fn number(&mut self, word: String) -> usize {
        if let Some(n) = self.numbers.get(&word) {
            return *n;
        }
        let n = self.words.len();
        self.words.push(word.clone());
        self.numbers.insert(word, n);
        n
    }

    fn add(&mut self, tokens: BTreeSet<String>, kind: u8, id: u128) {
        for t in tokens {
            let n = self.number(t);
            self.rows.push((n, kind, id));
        }
    }

    /// Adds the rows of interactions (raw or resolved: their tokens come
    /// from text only, which resolving merges does not touch).
    pub(crate) fn add_interactions(&mut self, interactions: &[Interaction]) {
        for i in interactions {
            self.add(interaction_tokens(i), KIND_INTERACTION, i.id.to_u128());
        }
    }

    /// Takes in the rows another collector gathered.
    pub(crate) fn absorb(&mut self, other: SearchRows) {
        let renumber: Vec<usize> = other.words.into_iter().map(|w| self.number(w)).collect();
        self.rows.extend(
            other
                .rows
                .into_iter()
                .map(|(n, kind, id)| (renumber.get(n).copied().unwrap_or(n), kind, id)),
        );
    }

    /// Writes every row into the (empty) search table in key order.
    fn insert_sorted(self, txn: &WriteTransaction) -> R<()> {
        let SearchRows {
            numbers,
            words,
            mut rows,
        } = self;
        drop(numbers);
        let mut order: Vec<usize> = (0..words.len()).collect();
        order.sort_unstable_by(|a, b| words[*a].cmp(&words[*b]));
        let mut rank = vec![0usize; words.len()];
        for (r, w) in order.iter().enumerate() {
            rank[*w] = r;
        }
        // Distinct words have distinct ranks: sorting by rank is sorting by word.
        for row in &mut rows {
            row.0 = rank[row.0];
        }
        drop(rank);
        rows.sort_unstable();
        rows.dedup();
        let mut t = SEARCH.open(txn)?;
        for (r, kind, id) in rows {
            t.insert((words[order[r]].as_str(), kind, id), ())?;
        }
        Ok(())
    }
}

/// Fills the (empty) index from every record, inserting each table's rows in
/// key order: appended rows leave redb's pages full, where the random order of
/// one-by-one indexing leaves them about half empty. Computes exactly the rows
/// that `put_contact` / `put_interaction` / ... maintain (a property test
/// compares the two). `search` holds the search rows of `interactions`
/// already ([`SearchRows::add_interactions`], done by the threads that read
/// the documents); the contacts' are added here.
pub(crate) fn rebuild(
    txn: &WriteTransaction,
    mut contacts: Vec<Contact>,
    mut interactions: Vec<Interaction>,
    mut projects: Vec<Project>,
    mut goals: Vec<Goal>,
    settings: &Settings,
    mut search: SearchRows,
) -> R<()> {
    contacts.sort_by_key(|c| c.id);
    interactions.sort_by_key(|i| i.id);
    projects.sort_by_key(|p| p.id);
    goals.sort_by_key(|g| g.id);
    // Raw records and merge tables first; then every other table is built
    // from the resolved views, as the incremental path keeps them.
    let pointers: BTreeMap<u128, u128> = contacts
        .iter()
        .filter_map(|c| merges::pointer(c).map(|t| (c.id.to_u128(), t)))
        .collect();
    let known: BTreeSet<u128> = contacts.iter().map(|c| c.id.to_u128()).collect();
    let surv = merges::survivors(&pointers, |t| known.contains(&t));
    {
        let mut raw = RAW_CONTACTS.open(txn)?;
        for c in &contacts {
            raw.insert(c.id.to_u128(), encode(c, "contacts_raw")?.as_slice())?;
        }
        let mut t = MERGE_PTRS.open(txn)?;
        for (c, p) in &pointers {
            t.insert(*c, *p)?;
        }
        let mut t = SURVIVORS.open(txn)?;
        let mut g = GROUPS.open(txn)?;
        for (c, s) in &surv {
            t.insert(*c, *s)?;
            g.insert((*s, *c), ())?;
        }
    }
    let resolve = |c: ContactId| -> R<ContactId> {
        Ok(surv
            .get(&c.to_u128())
            .map_or(c, |s| ContactId::from_u128(*s)))
    };
    let contacts: Vec<Contact> = {
        let mut members: BTreeMap<u128, Vec<Contact>> = BTreeMap::new();
        for c in &contacts {
            if let Some(s) = surv.get(&c.id.to_u128()) {
                members.entry(*s).or_default().push(c.clone());
            }
        }
        contacts
            .iter()
            .map(|c| match surv.get(&c.id.to_u128()) {
                Some(s) => merges::member_view(c, ContactId::from_u128(*s)),
                None => merges::fold(
                    c,
                    members.get(&c.id.to_u128()).map_or(&[][..], Vec::as_slice),
                ),
            })
            .collect()
    };
    {
        let mut refs = INTERACTION_REFS.open(txn)?;
        let mut rows = Vec::new();
        for i in &interactions {
            let r = merges::raw_refs(i);
            let id = i.id.to_u128();
            rows.extend(
                merges::ref_contacts(&r)
                    .into_iter()
                    .map(|c| (c.to_u128(), id)),
            );
            refs.insert(id, encode(&r, "interaction_refs")?.as_slice())?;
        }
        rows.sort_unstable();
        let mut t = REFS_BY_CONTACT.open(txn)?;
        for k in rows {
            t.insert(k, ())?;
        }
    }
    // Each raw record is dropped once its view is made: both vectors at
    // once would double the peak memory of a large rebuild.
    let interactions: Vec<Interaction> = interactions
        .into_iter()
        .map(|i| merges::view_interaction(&i, &resolve))
        .collect::<R<_>>()?;
    {
        let mut raw = RAW_GOALS.open(txn)?;
        for g in &goals {
            raw.insert(g.id.to_u128(), encode(g, "goals_raw")?.as_slice())?;
        }
    }
    let goals: Vec<Goal> = goals
        .iter()
        .map(|g| merges::view_goal(g, &resolve))
        .collect::<R<_>>()?;
    {
        let mut records = CONTACTS.open(txn)?;
        let mut names: Vec<(String, u128)> = Vec::with_capacity(contacts.len());
        for c in &contacts {
            let id = c.id.to_u128();
            records.insert(id, encode(c, "contacts")?.as_slice())?;
            names.push((text::normalise_name(&c.name), id));
            search.add(contact_tokens(c), KIND_CONTACT, id);
        }
        names.sort();
        let mut by_name = CONTACTS_BY_NAME.open(txn)?;
        for (n, id) in &names {
            by_name.insert((n.as_str(), *id), ())?;
        }
    }
    {
        let mut records = INTERACTIONS.open(txn)?;
        let mut by_time_rows = Vec::with_capacity(interactions.len());
        let mut by_contact_rows = Vec::new();
        let mut followup_rows = Vec::new();
        let mut event_logs = EVENT_LOGS.open(txn)?;
        for i in &interactions {
            let id = i.id.to_u128();
            records.insert(id, encode(i, "interactions")?.as_slice())?;
            if i.event.is_some() {
                event_logs.insert(id, ())?;
            }
            let deleted = i.is_deleted();
            by_time_rows.push(((i.at_ms, id), deleted));
            for c in &i.participants {
                by_contact_rows.push(((c.to_u128(), i.at_ms, id), deleted));
            }
            if !deleted {
                for (fid, fu) in &i.follow_ups {
                    if fu.done_ms.is_none() {
                        followup_rows.push((due_key(fu.due), id, fid.to_u128()));
                    }
                }
            }
        }
        by_time_rows.sort();
        by_contact_rows.sort();
        followup_rows.sort();
        let mut by_time = BY_TIME.open(txn)?;
        for (k, deleted) in by_time_rows {
            by_time.insert(k, deleted)?;
        }
        let mut by_contact = BY_CONTACT.open(txn)?;
        let mut stats = CONTACT_STATS.open(txn)?;
        let mut current: Option<(u128, i64, u64)> = None;
        for ((c, at, id), deleted) in by_contact_rows {
            by_contact.insert((c, at, id), deleted)?;
            // Rows come sorted by contact then time: the last live row is the latest.
            if let Some((pc, last, count)) = current.filter(|(pc, _, _)| *pc != c) {
                stats.insert(pc, (last, count))?;
                current = None;
            }
            if !deleted {
                let count = current.map_or(0, |(_, _, n)| n) + 1;
                current = Some((c, at, count));
            }
        }
        if let Some((pc, last, count)) = current {
            stats.insert(pc, (last, count))?;
        }
        let mut followups = FOLLOWUPS.open(txn)?;
        for k in followup_rows {
            followups.insert(k, ())?;
        }
    }
    search.insert_sorted(txn)?;
    for p in &projects {
        put_project(txn, p)?;
    }
    for g in &goals {
        put_goal_view(txn, g)?;
    }
    put_settings(txn, settings)
}

fn contact_tokens(c: &Contact) -> BTreeSet<String> {
    let mut t = BTreeSet::new();
    text::tokens_into(&c.name, &mut t);
    for s in [&c.organisation, &c.role, &c.discipline]
        .into_iter()
        .flatten()
    {
        text::tokens_into(s, &mut t);
    }
    for e in &c.emails {
        text::tokens_into(&e.value, &mut t);
    }
    for tag in &c.tags {
        text::tokens_into(tag, &mut t);
    }
    text::tokens_into(&c.notes, &mut t);
    t
}

fn interaction_tokens(i: &Interaction) -> BTreeSet<String> {
    let mut t = BTreeSet::new();
    text::text_tokens_into(&i.summary, &mut t);
    text::text_tokens_into(&i.notes, &mut t);
    for fu in i.follow_ups.values() {
        text::text_tokens_into(&fu.text, &mut t);
    }
    t
}

fn due_key(d: Option<NaiveDate>) -> i32 {
    d.map_or(NO_DUE, |d| d.num_days_from_ce())
}

/// Indexes a contact as the document holds it (`raw`): stores the raw
/// record, re-resolves merges when its pointer changed (or someone points at
/// it), and re-indexes the view of its group.
pub(crate) fn put_contact(txn: &WriteTransaction, raw: &Contact) -> R<()> {
    let id = raw.id.to_u128();
    let old = merges::get_raw_contact(txn, raw.id)?;
    RAW_CONTACTS
        .open(txn)?
        .insert(id, encode(raw, "contacts_raw")?.as_slice())?;
    let (old_ptr, new_ptr) = (old.as_ref().and_then(merges::pointer), merges::pointer(raw));
    let mut settle = old_ptr != new_ptr;
    {
        let mut ptrs = MERGE_PTRS.open(txn)?;
        match new_ptr {
            Some(p) => {
                ptrs.insert(id, p)?;
            }
            None => {
                ptrs.remove(id)?;
            }
        }
        if old.is_none() && !settle {
            for row in ptrs.iter()? {
                if row?.1 == id {
                    settle = true;
                    break;
                }
            }
        }
    }
    if settle {
        merges::settle(txn)?;
    }
    let s = merges::survivor_of(txn, raw.id)?;
    merges::refresh_group(txn, s)
}

/// Indexes the resolved view of a contact, replacing its previous view's rows.
pub(crate) fn put_contact_view(txn: &WriteTransaction, new: &Contact) -> R<()> {
    let id = new.id.to_u128();
    let old = get_contact(txn, new.id)?;
    if old.as_ref() == Some(new) {
        return Ok(());
    }
    let old = old.as_ref();
    let mut by_name = CONTACTS_BY_NAME.open(txn)?;
    let mut search = SEARCH.open(txn)?;
    let new_tokens = contact_tokens(new);
    if let Some(old) = old {
        by_name.remove((text::normalise_name(&old.name).as_str(), id))?;
        for tok in contact_tokens(old).difference(&new_tokens) {
            search.remove((tok.as_str(), KIND_CONTACT, id))?;
        }
    }
    by_name.insert((text::normalise_name(&new.name).as_str(), id), ())?;
    for tok in &new_tokens {
        search.insert((tok.as_str(), KIND_CONTACT, id), ())?;
    }
    CONTACTS
        .open(txn)?
        .insert(id, encode(new, "contacts")?.as_slice())?;
    Ok(())
}

/// Indexes contacts that have no indexed version yet (a bulk import): the
/// rows [`put_contact`] with no `old` writes, each table opened once and its
/// rows inserted in key order (appending into redb's B-trees instead of
/// random inserts). `new` must hold each id once.
pub(crate) fn put_new_contacts<'a>(
    txn: &WriteTransaction,
    new: impl IntoIterator<Item = &'a Contact>,
) -> R<()> {
    // A contact that holds a merge pointer, or that a pointer names, takes
    // the one-by-one path (merges to resolve); the others are their own view.
    let targets: BTreeSet<u128> = {
        let t = MERGE_PTRS.open(txn)?;
        let mut out = BTreeSet::new();
        for row in t.iter()? {
            out.insert(row?.1);
        }
        out
    };
    let (slow, new): (Vec<&Contact>, Vec<&Contact>) = new
        .into_iter()
        .partition(|c| merges::pointer(c).is_some() || targets.contains(&c.id.to_u128()));
    let mut names: Vec<(String, u128)> = Vec::new();
    let mut search_rows: Vec<(String, u128)> = Vec::new();
    {
        let mut records = CONTACTS.open(txn)?;
        let mut raw = RAW_CONTACTS.open(txn)?;
        let mut rows: Vec<(u128, Vec<u8>)> = Vec::new();
        for c in new {
            let id = c.id.to_u128();
            names.push((text::normalise_name(&c.name), id));
            search_rows.extend(contact_tokens(c).into_iter().map(|t| (t, id)));
            rows.push((id, encode(c, "contacts")?));
        }
        rows.sort_unstable_by_key(|(id, _)| *id);
        for (id, bytes) in &rows {
            records.insert(*id, bytes.as_slice())?;
            raw.insert(*id, bytes.as_slice())?;
        }
    }
    names.sort_unstable();
    let mut by_name = CONTACTS_BY_NAME.open(txn)?;
    for (n, id) in &names {
        by_name.insert((n.as_str(), *id), ())?;
    }
    search_rows.sort_unstable();
    let mut search = SEARCH.open(txn)?;
    for (tok, id) in &search_rows {
        search.insert((tok.as_str(), KIND_CONTACT, *id), ())?;
    }
    drop(search);
    drop(by_name);
    for c in slow {
        put_contact(txn, c)?;
    }
    Ok(())
}

/// The survivor of a contact, looked up in the index per call.
fn survivor_lookup(txn: &WriteTransaction) -> impl Fn(ContactId) -> R<ContactId> + '_ {
    move |c| merges::survivor_of(txn, c)
}

/// Indexes an interaction as the document holds it (`raw`): its raw
/// references, and its view (references resolved to survivors) replacing the
/// previous view's rows; refreshes the stats of every contact either view
/// involves.
pub(crate) fn put_interaction(txn: &WriteTransaction, raw: &Interaction) -> R<()> {
    let old = get_interaction(txn, raw.id)?;
    let new = put_interaction_bulk_inner(txn, old.as_ref(), raw)?;
    let mut affected: BTreeSet<ContactId> = new.participants.clone();
    if let Some(old) = old {
        affected.extend(old.participants.iter().copied());
    }
    refresh_stats(txn, &affected)
}

fn put_interaction_bulk_inner(
    txn: &WriteTransaction,
    old: Option<&Interaction>,
    raw: &Interaction,
) -> R<Interaction> {
    merges::put_refs(txn, raw.id.to_u128(), &merges::raw_refs(raw))?;
    let view = merges::view_interaction(raw, &survivor_lookup(txn))?;
    put_interaction_rows(txn, old, &view)?;
    Ok(view)
}

/// Indexes an interaction (raw, as the document holds it) without
/// refreshing contact stats: bulk paths call [`refresh_stats`] once at the
/// end with the returned view's participants and the old view's.
pub(crate) fn put_interaction_bulk(
    txn: &WriteTransaction,
    raw: &Interaction,
) -> R<(Option<Interaction>, Interaction)> {
    let old = get_interaction(txn, raw.id)?;
    let new = put_interaction_bulk_inner(txn, old.as_ref(), raw)?;
    Ok((old, new))
}

/// The interaction as the document holds it: the indexed view with its raw
/// references put back (what a write diffs against).
pub(crate) fn get_raw_interaction(
    txn: &WriteTransaction,
    id: InteractionId,
) -> R<Option<Interaction>> {
    let Some(mut i) = get_interaction(txn, id)? else {
        return Ok(None);
    };
    if let Some((participants, with)) = merges::get_refs(txn, id.to_u128())? {
        i.participants = participants;
        for (e, w) in i.exchanges.iter_mut().zip(with) {
            e.with = w;
        }
    }
    Ok(Some(i))
}

/// Indexes many interactions none of which is indexed yet (a document
/// arriving whole on a new device): the same rows as
/// [`put_interaction_bulk`] for each, but every table is opened once and
/// filled in key order. Returns the contacts involved, whose stats the
/// caller refreshes once ([`refresh_stats`]).
pub(crate) fn put_new_interactions(
    txn: &WriteTransaction,
    interactions: &[Interaction],
) -> R<BTreeSet<ContactId>> {
    let mut affected = BTreeSet::new();
    let mut records_rows = Vec::with_capacity(interactions.len());
    let mut by_time_rows = Vec::with_capacity(interactions.len());
    let mut by_contact_rows = Vec::new();
    let mut followup_rows = Vec::new();
    let mut search_rows: Vec<(String, u128)> = Vec::new();
    let surv = merges::load_survivors(txn)?;
    let resolve = |c: ContactId| -> R<ContactId> {
        Ok(surv
            .get(&c.to_u128())
            .map_or(c, |s| ContactId::from_u128(*s)))
    };
    let mut refs_rows = Vec::with_capacity(interactions.len());
    let mut refs_by_contact = Vec::new();
    let mut event_rows = Vec::new();
    for raw in interactions {
        let id = raw.id.to_u128();
        if raw.event.is_some() {
            event_rows.push(id);
        }
        let r = merges::raw_refs(raw);
        refs_by_contact.extend(
            merges::ref_contacts(&r)
                .into_iter()
                .map(|c| (c.to_u128(), id)),
        );
        refs_rows.push((id, encode(&r, "interaction_refs")?));
        let view = merges::view_interaction(raw, &resolve)?;
        let i = &view;
        records_rows.push((id, encode(i, "interactions")?));
        let deleted = i.is_deleted();
        by_time_rows.push(((i.at_ms, id), deleted));
        for c in &i.participants {
            by_contact_rows.push(((c.to_u128(), i.at_ms, id), deleted));
            affected.insert(*c);
        }
        if !deleted {
            for (fid, fu) in &i.follow_ups {
                if fu.done_ms.is_none() {
                    followup_rows.push((due_key(fu.due), id, fid.to_u128()));
                }
            }
        }
        search_rows.extend(interaction_tokens(i).into_iter().map(|t| (t, id)));
    }
    records_rows.sort_by_key(|(id, _)| *id);
    refs_rows.sort_by_key(|(id, _)| *id);
    refs_by_contact.sort_unstable();
    {
        let mut t = INTERACTION_REFS.open(txn)?;
        for (id, bytes) in &refs_rows {
            t.insert(*id, bytes.as_slice())?;
        }
        let mut t = REFS_BY_CONTACT.open(txn)?;
        for k in refs_by_contact {
            t.insert(k, ())?;
        }
    }
    by_time_rows.sort();
    by_contact_rows.sort();
    followup_rows.sort();
    search_rows.sort();
    {
        let mut t = INTERACTIONS.open(txn)?;
        for (id, bytes) in &records_rows {
            t.insert(*id, bytes.as_slice())?;
        }
    }
    {
        let mut t = BY_TIME.open(txn)?;
        for (k, deleted) in by_time_rows {
            t.insert(k, deleted)?;
        }
    }
    {
        let mut t = BY_CONTACT.open(txn)?;
        for (k, deleted) in by_contact_rows {
            t.insert(k, deleted)?;
        }
    }
    {
        let mut t = FOLLOWUPS.open(txn)?;
        for k in followup_rows {
            t.insert(k, ())?;
        }
    }
    {
        let mut t = EVENT_LOGS.open(txn)?;
        for id in event_rows {
            t.insert(id, ())?;
        }
    }
    let mut t = SEARCH.open(txn)?;
    for (tok, id) in &search_rows {
        t.insert((tok.as_str(), KIND_INTERACTION, *id), ())?;
    }
    Ok(affected)
}

pub(crate) fn put_interaction_rows(
    txn: &WriteTransaction,
    old: Option<&Interaction>,
    new: &Interaction,
) -> R<()> {
    let id = new.id.to_u128();
    let new_tokens = interaction_tokens(new);
    {
        let mut by_time = BY_TIME.open(txn)?;
        let mut by_contact = BY_CONTACT.open(txn)?;
        let mut followups = FOLLOWUPS.open(txn)?;
        let mut search = SEARCH.open(txn)?;
        if let Some(old) = old {
            by_time.remove((old.at_ms, id))?;
            for c in &old.participants {
                by_contact.remove((c.to_u128(), old.at_ms, id))?;
            }
            for (fid, fu) in &old.follow_ups {
                followups.remove((due_key(fu.due), id, fid.to_u128()))?;
            }
            for tok in interaction_tokens(old).difference(&new_tokens) {
                search.remove((tok.as_str(), KIND_INTERACTION, id))?;
            }
        }
        let deleted = new.is_deleted();
        by_time.insert((new.at_ms, id), deleted)?;
        for c in &new.participants {
            by_contact.insert((c.to_u128(), new.at_ms, id), deleted)?;
        }
        if !deleted {
            for (fid, fu) in &new.follow_ups {
                if fu.done_ms.is_none() {
                    followups.insert((due_key(fu.due), id, fid.to_u128()), ())?;
                }
            }
        }
        for tok in &new_tokens {
            search.insert((tok.as_str(), KIND_INTERACTION, id), ())?;
        }
        INTERACTIONS
            .open(txn)?
            .insert(id, encode(new, "interactions")?.as_slice())?;
        let mut event_logs = EVENT_LOGS.open(txn)?;
        if new.event.is_some() {
            event_logs.insert(id, ())?;
        } else if old.is_some_and(|o| o.event.is_some()) {
            event_logs.remove(id)?;
        }
    }
    Ok(())
}

/// Recomputes (last interaction, count) of `contacts` from the by-contact table.
pub(crate) fn refresh_stats(txn: &WriteTransaction, contacts: &BTreeSet<ContactId>) -> R<()> {
    let by_contact = BY_CONTACT.open(txn)?;
    let mut stats = CONTACT_STATS.open(txn)?;
    for c in contacts {
        let c = c.to_u128();
        let mut last = None;
        let mut count = 0u64;
        for row in by_contact.range((c, i64::MIN, 0u128)..=(c, i64::MAX, u128::MAX))? {
            let (k, deleted) = row?;
            if !deleted {
                count += 1;
                last = Some(k.1);
            }
        }
        match last {
            Some(last) => {
                stats.insert(c, (last, count))?;
            }
            None => {
                stats.remove(c)?;
            }
        }
    }
    Ok(())
}

/// Indexes a project.
pub(crate) fn put_project(txn: &WriteTransaction, p: &Project) -> R<()> {
    PROJECTS
        .open(txn)?
        .insert(p.id.to_u128(), encode(p, "projects")?.as_slice())?;
    Ok(())
}

/// Indexes a goal as the document holds it: the raw record, and its view
/// with contacts resolved to their survivors.
pub(crate) fn put_goal(txn: &WriteTransaction, raw: &Goal) -> R<()> {
    RAW_GOALS
        .open(txn)?
        .insert(raw.id.to_u128(), encode(raw, "goals_raw")?.as_slice())?;
    put_goal_view(txn, &merges::view_goal(raw, &survivor_lookup(txn))?)
}

/// Indexes the resolved view of a goal.
pub(crate) fn put_goal_view(txn: &WriteTransaction, g: &Goal) -> R<()> {
    GOALS
        .open(txn)?
        .insert(g.id.to_u128(), encode(g, "goals")?.as_slice())?;
    Ok(())
}

/// The goal as the document holds it (what a write diffs against).
pub(crate) fn get_raw_goal(txn: &WriteTransaction, id: crate::ids::GoalId) -> R<Option<Goal>> {
    let t = RAW_GOALS.open(txn)?;
    t.get(id.to_u128())?
        .map(|v| decode(v.value(), "goals_raw"))
        .transpose()
}

/// Indexes the settings.
pub(crate) fn put_settings(txn: &WriteTransaction, s: &Settings) -> R<()> {
    SETTINGS
        .open(txn)?
        .insert(SETTINGS_KEY, encode(s, "settings")?.as_slice())?;
    Ok(())
}

// ---------------------------------------------------------------- reads

/// A read view over the index, inside a read or a write transaction.
pub(crate) trait IndexRead {
    fn record_bytes(&self, def: Def<u128, Bytes>, id: u128) -> R<Option<Vec<u8>>>;
}

impl<X: Txn> IndexRead for X {
    fn record_bytes(&self, def: Def<u128, Bytes>, id: u128) -> R<Option<Vec<u8>>> {
        let t = def.open(self)?;
        Ok(t.get(id)?.map(|v| v.value().to_vec()))
    }
}

pub(crate) fn get_contact(r: &impl IndexRead, id: ContactId) -> R<Option<Contact>> {
    r.record_bytes(CONTACTS, id.to_u128())?
        .map(|b| decode(&b, "contacts"))
        .transpose()
}

pub(crate) fn get_interaction(r: &impl IndexRead, id: InteractionId) -> R<Option<Interaction>> {
    r.record_bytes(INTERACTIONS, id.to_u128())?
        .map(|b| decode(&b, "interactions"))
        .transpose()
}

pub(crate) fn get_project(r: &impl IndexRead, id: crate::ids::ProjectId) -> R<Option<Project>> {
    r.record_bytes(PROJECTS, id.to_u128())?
        .map(|b| decode(&b, "projects"))
        .transpose()
}

pub(crate) fn get_goal(r: &impl IndexRead, id: crate::ids::GoalId) -> R<Option<Goal>> {
    r.record_bytes(GOALS, id.to_u128())?
        .map(|b| decode(&b, "goals"))
        .transpose()
}

/// Every record of a u128-keyed record table, in id order.
pub(crate) fn all_records<T: DeserializeOwned>(
    table: &table::Tab<u128, Bytes, impl ReadableTable<&'static [u8], &'static [u8]>>,
    name: &str,
) -> R<Vec<T>> {
    let mut out = Vec::new();
    for row in table.iter()? {
        let (_, v) = row?;
        out.push(decode(v.value(), name)?);
    }
    Ok(out)
}

/// An indexed interaction as postcard lays it out, borrowing the notes
/// instead of copying them: the field order and types must stay those of
/// [`Interaction`] (postcard is not self-describing), which the unit test
/// `lean_decode_matches_full_decode` checks.
#[derive(serde::Deserialize)]
struct InteractionLean<'a> {
    id: InteractionId,
    at_ms: TimestampMs,
    offset_minutes: i16,
    kind: crate::model::InteractionKind,
    initiator: crate::model::Initiator,
    participants: BTreeSet<ContactId>,
    summary: String,
    #[serde(borrow)]
    _notes: &'a str,
    #[serde(borrow)]
    _notes_conflicts: Vec<&'a str>,
    project: Option<crate::ids::ProjectId>,
    exchanges: Vec<crate::model::Exchange>,
    follow_ups: BTreeMap<FollowUpId, crate::model::FollowUp>,
    created_ms: TimestampMs,
    updated_ms: TimestampMs,
    deleted_ms: Option<TimestampMs>,
    event: Option<crate::model::EventRef>,
}

/// Decodes an indexed interaction without its notes (`notes` empty,
/// `notes_conflicts` empty): the long free text is most of a record's bytes
/// and nothing that reads every interaction at once (insights) looks at it.
pub(crate) fn decode_interaction_lean(bytes: &[u8]) -> R<Interaction> {
    let l: InteractionLean<'_> = postcard::from_bytes(bytes).map_err(|e| StoreError::Damaged {
        what: "index table interactions".into(),
        detail: format!("{e} (run reindex to rebuild it)"),
    })?;
    Ok(Interaction {
        id: l.id,
        at_ms: l.at_ms,
        offset_minutes: l.offset_minutes,
        kind: l.kind,
        initiator: l.initiator,
        participants: l.participants,
        summary: l.summary,
        notes: String::new(),
        notes_conflicts: Vec::new(),
        project: l.project,
        exchanges: l.exchanges,
        follow_ups: l.follow_ups,
        created_ms: l.created_ms,
        updated_ms: l.updated_ms,
        deleted_ms: l.deleted_ms,
        event: l.event,
    })
}

pub(crate) fn decode_contact(bytes: &[u8]) -> R<Contact> {
    decode(bytes, "contacts")
}

pub(crate) fn decode_interaction(bytes: &[u8]) -> R<Interaction> {
    decode(bytes, "interactions")
}

pub(crate) fn decode_settings(bytes: &[u8]) -> R<Settings> {
    decode(bytes, "settings")
}

pub(crate) const SETTINGS_ROW: &str = SETTINGS_KEY;

/// Contact ids whose normalised name equals `name`'s.
pub(crate) fn contacts_named(txn: &ReadTransaction, name: &str) -> R<Vec<ContactId>> {
    let n = text::normalise_name(name);
    let t = CONTACTS_BY_NAME.open(txn)?;
    let mut out = Vec::new();
    for row in t.range((n.as_str(), 0u128)..=(n.as_str(), u128::MAX))? {
        let (k, _) = row?;
        out.push(ContactId::from_u128(k.1));
    }
    Ok(out)
}

/// Same as [`contacts_named`], inside a write transaction.
pub(crate) fn contacts_named_w(txn: &WriteTransaction, name: &str) -> R<Vec<ContactId>> {
    let n = text::normalise_name(name);
    let t = CONTACTS_BY_NAME.open(txn)?;
    let mut out = Vec::new();
    for row in t.range((n.as_str(), 0u128)..=(n.as_str(), u128::MAX))? {
        let (k, _) = row?;
        out.push(ContactId::from_u128(k.1));
    }
    Ok(out)
}

/// Follow-up rows (due key, interaction, follow-up) up to `due_max` inclusive.
pub(crate) fn open_followups(
    txn: &ReadTransaction,
    due_max: i32,
) -> R<Vec<(i32, InteractionId, FollowUpId)>> {
    let t = FOLLOWUPS.open(txn)?;
    let mut out = Vec::new();
    for row in t.range((i32::MIN, 0u128, 0u128)..=(due_max, u128::MAX, u128::MAX))? {
        let (k, _) = row?;
        let (due, i, f) = k;
        out.push((due, InteractionId::from_u128(i), FollowUpId::from_u128(f)));
    }
    Ok(out)
}

/// Record ids with, for every query token, a token starting with it:
/// (contacts, interactions newest first); at most `candidates_max` index rows
/// are scanned per token.
pub(crate) fn search_ids(
    txn: &ReadTransaction,
    query: &str,
    candidates_max: usize,
) -> R<(Vec<ContactId>, Vec<InteractionId>)> {
    let tokens = text::query_tokens(query);
    if tokens.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let t = SEARCH.open(txn)?;
    let mut acc: Option<BTreeSet<(u8, u128)>> = None;
    for (n, tok) in tokens.iter().enumerate() {
        // Few candidates left: checking their own tokens is cheaper than
        // scanning a short (unselective) prefix like "o" across the index.
        if let Some(a) = acc.as_ref().filter(|a| a.len() <= VERIFY_CANDIDATES_MAX) {
            let rest = &tokens[n..];
            let mut keep = BTreeSet::new();
            for (kind, id) in a {
                let toks = record_tokens(txn, *kind, *id)?;
                if rest
                    .iter()
                    .all(|q| toks.iter().any(|t| t.starts_with(q.as_str())))
                {
                    keep.insert((*kind, *id));
                }
            }
            acc = Some(keep);
            break;
        }
        let mut hits = BTreeSet::new();
        for (scanned, row) in t.range((tok.as_str(), 0u8, 0u128)..)?.enumerate() {
            let (k, _) = row?;
            let (word, kind, id) = k;
            if !word.starts_with(tok.as_str()) || scanned >= candidates_max {
                break;
            }
            if acc.as_ref().is_none_or(|a| a.contains(&(kind, id))) {
                hits.insert((kind, id));
            }
        }
        acc = Some(hits);
    }
    let acc = acc.unwrap_or_default();
    let contacts = acc
        .iter()
        .filter(|(k, _)| *k == KIND_CONTACT)
        .map(|(_, id)| ContactId::from_u128(*id))
        .collect();
    let mut interactions: Vec<InteractionId> = acc
        .iter()
        .filter(|(k, _)| *k == KIND_INTERACTION)
        .map(|(_, id)| InteractionId::from_u128(*id))
        .collect();
    interactions.reverse();
    Ok((contacts, interactions))
}

/// Candidate count under which the remaining query tokens are checked
/// against each candidate's own tokens instead of scanning the index.
const VERIFY_CANDIDATES_MAX: usize = 256;

/// The search tokens of one indexed record (empty if it is gone).
fn record_tokens(txn: &ReadTransaction, kind: u8, id: u128) -> R<BTreeSet<String>> {
    Ok(match kind {
        KIND_CONTACT => get_contact(txn, ContactId::from_u128(id))?
            .map(|c| contact_tokens(&c))
            .unwrap_or_default(),
        _ => get_interaction(txn, InteractionId::from_u128(id))?
            .map(|i| interaction_tokens(&i))
            .unwrap_or_default(),
    })
}

/// The interactions logged from a calendar event (deleted ones included), read through
/// [`EVENT_LOGS`].
pub(crate) fn event_logs(txn: &ReadTransaction) -> R<Vec<Interaction>> {
    let ids = EVENT_LOGS.open(txn)?;
    let mut out = Vec::new();
    for row in ids.iter()? {
        let (id, _) = row?;
        if let Some(i) = get_interaction(txn, InteractionId::from_u128(id))? {
            out.push(i);
        }
    }
    Ok(out)
}

/// Every index table as readable rows, for comparing two indexes (tests, reindex checks).
pub(crate) fn dump(
    txn: &ReadTransaction,
) -> Result<BTreeMap<&'static str, Vec<String>>, StoreError> {
    fn rows<K: table::Key, V: table::Val>(
        txn: &ReadTransaction,
        def: Def<K, V>,
    ) -> Result<Vec<String>, StoreError> {
        def.open(txn)?.dump()
    }
    let mut m = BTreeMap::new();
    m.insert("contacts", rows(txn, CONTACTS)?);
    m.insert("contacts_by_name", rows(txn, CONTACTS_BY_NAME)?);
    m.insert("contact_stats", rows(txn, CONTACT_STATS)?);
    m.insert("interactions", rows(txn, INTERACTIONS)?);
    m.insert("by_time", rows(txn, BY_TIME)?);
    m.insert("by_contact", rows(txn, BY_CONTACT)?);
    m.insert("followups", rows(txn, FOLLOWUPS)?);
    m.insert("search", rows(txn, SEARCH)?);
    m.insert("projects", rows(txn, PROJECTS)?);
    m.insert("goals", rows(txn, GOALS)?);
    m.insert("settings", rows(txn, SETTINGS)?);
    m.insert("contacts_raw", rows(txn, RAW_CONTACTS)?);
    m.insert("merge_pointers", rows(txn, MERGE_PTRS)?);
    m.insert("merge_survivors", rows(txn, SURVIVORS)?);
    m.insert("merge_groups", rows(txn, GROUPS)?);
    m.insert("interaction_refs", rows(txn, INTERACTION_REFS)?);
    m.insert("refs_by_contact", rows(txn, REFS_BY_CONTACT)?);
    m.insert("goals_raw", rows(txn, RAW_GOALS)?);
    m.insert("event_logs", rows(txn, EVENT_LOGS)?);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ExchangeId, ProjectId};
    use crate::model::{Direction, Exchange, ExchangeWhat, FollowUp, Initiator, InteractionKind};

    fn sample(notes: &str, conflicts: Vec<String>, deleted: bool) -> Interaction {
        let c = ContactId::from_u128(7);
        let f = FollowUpId::from_u128(9);
        Interaction {
            id: InteractionId::from_u128(42),
            at_ms: 1_700_000_000_000,
            offset_minutes: -300,
            kind: InteractionKind::Meal,
            initiator: Initiator::Them,
            participants: [c, ContactId::from_u128(8)].into(),
            summary: "Lunch — café".into(),
            notes: notes.into(),
            notes_conflicts: conflicts,
            project: Some(ProjectId::from_u128(3)),
            exchanges: vec![Exchange {
                id: ExchangeId::from_u128(5),
                what: ExchangeWhat::Feedback,
                direction: Direction::Received,
                with: Some(c),
            }],
            follow_ups: [(
                f,
                FollowUp {
                    id: f,
                    text: "send the slides".into(),
                    due: NaiveDate::from_ymd_opt(2026, 2, 3),
                    done_ms: Some(1_700_000_100_000),
                },
            )]
            .into(),
            created_ms: 1_700_000_000_001,
            updated_ms: 1_700_000_000_002,
            deleted_ms: deleted.then_some(1_700_000_000_003),
            event: Some(crate::model::EventRef {
                source: "ics".into(),
                uid: "u@x".into(),
                recurrence_id: Some("20260101T090000Z".into()),
            }),
        }
    }

    /// The rows `insert_sorted` writes, read back from the table.
    fn written(collectors: Vec<SearchRows>) -> Vec<(String, u8, u128)> {
        let db = redb::Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let txn = db.begin_write().unwrap();
        create_tables(&txn).unwrap();
        let mut all = SearchRows::default();
        for c in collectors {
            all.absorb(c);
        }
        all.insert_sorted(&txn).unwrap();
        txn.commit().unwrap();
        let r = redb::ReadableDatabase::begin_read(&db).unwrap();
        let t = SEARCH.open(&r).unwrap();
        t.iter().unwrap().map(|row| row.unwrap().0).collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(64)
                .max(64),
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Numbered search rows collected on several threads and joined
        /// come out exactly as the plain (word, kind, id) rows, sorted and
        /// without duplicates, would: same rows, same key order.
        #[test]
        fn numbered_search_rows_write_the_plain_rows(
            records in proptest::collection::vec(
                (
                    0usize..3,
                    0u8..2,
                    0u128..40,
                    proptest::collection::btree_set("[a-dé]{1,4}", 0..6),
                ),
                0..40,
            )
        ) {
            let mut collectors: Vec<SearchRows> = (0..3).map(|_| SearchRows::default()).collect();
            let mut plain = Vec::new();
            for (c, kind, id, tokens) in records {
                plain.extend(tokens.iter().map(|t| (t.clone(), kind, id)));
                collectors[c].add(tokens, kind, id);
            }
            plain.sort();
            plain.dedup();
            proptest::prop_assert_eq!(written(collectors), plain);
        }
    }

    #[test]
    fn lean_decode_matches_full_decode() {
        let cases = [
            sample("", vec![], false),
            sample(&"notes ünïcødé ".repeat(40), vec![], false),
            sample("a", vec!["b".into(), "çonflict".into()], true),
        ];
        for full in cases {
            let bytes = encode(&full, "interactions").unwrap();
            let lean = decode_interaction_lean(&bytes).unwrap();
            let mut expected = full.clone();
            expected.notes.clear();
            expected.notes_conflicts.clear();
            assert_eq!(lean, expected);
        }
    }

    #[test]
    fn lean_decode_rejects_damaged_bytes() {
        let bytes = encode(&sample("some notes", vec![], false), "interactions").unwrap();
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(matches!(
                decode_interaction_lean(&bytes[..cut]),
                Err(StoreError::Damaged { .. })
            ));
        }
    }
}

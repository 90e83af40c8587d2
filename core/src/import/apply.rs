//! Applying an [`ImportPlan`] to the store.
//!
//! [`plan_for_store`] plans against every contact in the store (merged ones
//! included, so a re-import after a merge still lands on the survivor).
//! [`apply_plan`] writes, through the store's bulk path (one redb transaction
//! and one Automerge change for the whole import): new contacts for `create`
//! (and for `likely_duplicates` only when asked), and, for `already_imported`
//! contacts, the draft's import keys they lack, so a later export of the same
//! record matches by key even if its content hash changed. Nothing else of an
//! existing contact is touched: re-importing never overwrites the user's edits.

use std::collections::BTreeMap;

use crate::error::{OpError, StoreError};
use crate::ids::ContactId;
use crate::model::{Contact, TimestampMs};
use crate::store::Store;

use super::{ContactDraft, ImportPlan, MergeTarget, plan_import};

/// How to apply a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Also create the likely duplicates (otherwise they are left for the user
    /// to merge or create explicitly).
    pub create_likely_duplicates: bool,
    /// Creation time of the new contacts.
    pub now_ms: TimestampMs,
}

/// What [`apply_plan`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Ids of the contacts created, in plan order: `plan.create` first (so
    /// `created[i]` is the contact of `plan.create[i]`), then the likely
    /// duplicates when they were created too.
    pub created: Vec<ContactId>,
    /// Existing contacts that gained import keys.
    pub keys_added: Vec<ContactId>,
    /// Drafts that matched an existing contact (nothing created).
    pub already_imported: usize,
    /// Likely duplicates left for the user (0 when they were created).
    pub likely_duplicates_skipped: usize,
    /// Drafts that repeated an earlier one of the same input.
    pub repeated_in_input: usize,
}

impl ApplyReport {
    /// The id of a likely duplicate's merge target once the plan was applied:
    /// an existing contact, or the contact created for the earlier draft
    /// (`None` only for a report of another plan).
    pub fn merge_target(&self, target: MergeTarget) -> Option<ContactId> {
        match target {
            MergeTarget::Existing(id) => Some(id),
            MergeTarget::EarlierDraft { create_index, .. } => {
                self.created.get(create_index).copied()
            }
        }
    }
}

/// Plans an import against the contacts in the store.
pub fn plan_for_store(store: &Store, drafts: Vec<ContactDraft>) -> Result<ImportPlan, StoreError> {
    Ok(plan_import(drafts, &store.all_contacts()?))
}

/// Writes a plan to the store in one bulk write; see the module docs.
pub fn apply_plan(
    store: &mut Store,
    plan: &ImportPlan,
    options: &ApplyOptions,
) -> Result<ApplyReport, OpError> {
    let mut report = ApplyReport {
        already_imported: plan.already_imported.len(),
        repeated_in_input: plan.repeated_in_input.len(),
        ..ApplyReport::default()
    };
    let mut writes: Vec<Contact> = Vec::new();
    let mut new = |d: &ContactDraft, writes: &mut Vec<Contact>| {
        let id = ContactId::new_at(options.now_ms);
        report.created.push(id);
        writes.push(d.clone().into_contact(id, options.now_ms));
    };
    for d in &plan.create {
        new(d, &mut writes);
    }
    if options.create_likely_duplicates {
        for l in &plan.likely_duplicates {
            new(&l.draft, &mut writes);
        }
    } else {
        report.likely_duplicates_skipped = plan.likely_duplicates.len();
    }
    // Import keys to add to existing contacts, merged per contact.
    let mut updates: BTreeMap<ContactId, Contact> = BTreeMap::new();
    for a in &plan.already_imported {
        let mut existing = match updates.remove(&a.existing) {
            Some(c) => c,
            None => store.contact(a.existing)?,
        };
        let before = existing.import_keys.len();
        existing
            .import_keys
            .extend(a.draft.import_keys.iter().cloned());
        if existing.import_keys.len() != before {
            existing.updated_ms = existing.updated_ms.max(options.now_ms);
        }
        updates.insert(a.existing, existing);
    }
    for (id, c) in updates {
        let stored = store.contact(id)?;
        if stored.import_keys != c.import_keys {
            report.keys_added.push(id);
            writes.push(c);
        }
    }
    if !writes.is_empty() {
        store.import_records(writes, Vec::new(), Vec::new(), Vec::new())?;
    }
    Ok(report)
}

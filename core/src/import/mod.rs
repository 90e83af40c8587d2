//! Import: external contact files in, an [`ImportPlan`] out, and the plan
//! applied to the store.
//!
//! Data flow: a source parser in kith-formats turns bytes into source records
//! and maps each to a [`ContactDraft`] (kith-model: the fields of a new contact
//! plus its import keys); [`plan::plan_import`] compares the drafts with the
//! existing contacts: what to create, what was already imported (same import
//! key, so re-importing a file creates nothing), and what looks like someone
//! already there (same email, phone or normalised name, or like an earlier
//! record of the same input: reported with a suggested merge target, never
//! silently doubled). Everything up to the plan is pure; [`apply`] writes a
//! plan to the store.

pub mod apply;
pub mod plan;

pub use apply::{ApplyOptions, ApplyReport, apply_plan, plan_for_store};
pub use kith_model::draft::{ContactDraft, inside_org_suggestion};
pub use plan::{
    AlreadyImported, ImportPlan, LikelyDuplicate, MergeTarget, RepeatedInInput, plan_import,
};

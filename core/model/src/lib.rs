//! kith-model: the plain records of a professional network and the pure
//! functions every other crate compares them with.
//!
//! It owns the domain records ([`model`]: contacts, interactions, projects,
//! goals, settings), their time-sortable ids ([`ids`]), text folding for
//! names and search ([`text`]), phone-number normalisation ([`phone`]) and
//! import drafts ([`draft`], what the file parsers produce and the store's
//! import planning consumes). No Automerge, no storage, no clock beyond
//! fresh ids: kith-core maps these records onto documents (its `schema`
//! module), kith-insights computes over them, kith-formats reads and writes
//! them as files.

#![warn(missing_docs)]

pub mod draft;
pub mod ids;
mod latin_ascii;
pub mod model;
pub mod phone;
pub mod text;

pub use draft::ContactDraft;
pub use ids::{ContactId, ExchangeId, FollowUpId, GoalId, InteractionId, InvalidId, ProjectId};

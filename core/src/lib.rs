//! kith-core: the engine of Kith, a local-first log of a professional network.
//!
//! It owns the mapping of the domain model (kith-model, re-exported as
//! [`model`] and [`ids`]) onto Automerge documents (the private `schema` and
//! `doc` modules), their durable storage in redb ([`store`]) with a
//! materialised query index (private `index`), the operations and queries
//! ([`ops`]), duplicate detection ([`dedup`]), import planning and applying
//! ([`import`]), the lossless JSON export ([`export`]), backups ([`backup`]),
//! identity and crypto ([`identity`]), and the sync state machines (sans-IO,
//! [`sync`]). Insights (kith-insights), file formats (kith-formats) and the
//! synthetic network (kith-synth) are crates of their own over kith-model;
//! networking lives in `kith-net`, terminals in the `kith` CLI, and uniffi in
//! `kith-ffi`. See docs/ARCHITECTURE.md.

#![warn(missing_docs)]

pub mod backup;
pub mod dedup;
pub(crate) mod doc;
pub mod error;
pub mod export;
pub mod identity;
pub mod import;
pub(crate) mod index;
pub mod meetings;
pub mod ops;
pub mod private_fs;
pub(crate) mod schema;
pub mod store;
pub mod strength;
pub mod sync;

pub use kith_model::{ids, model, phone, text};

pub use dedup::{DuplicatePair, DuplicateReason};
pub use doc::DocId;
pub use error::{BackendError, OpError, SchemaError, StoreError};
pub use ids::{ContactId, ExchangeId, FollowUpId, GoalId, InteractionId, ProjectId};
pub use ops::{
    ContactPatch, ContactQuery, ContactSort, ContactStats, FollowUpFilter, FollowUpItem, GoalPatch,
    ImportSummary, InsightsRecords, InteractionPatch, NewContact, NewExchange, NewFollowUp,
    NewGoal, NewInteraction, NewProject, ParticipantRef, ProjectPatch, SearchResults,
    TimelineQuery,
};
pub use store::{
    CompactionPolicy, DocMeta, IndexTableCheck, RemoteApplied, RemoteChanges, SnapshotInstalled,
    Store, StoreCheck, TableSize,
};

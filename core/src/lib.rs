//! kith-core: the engine of Kith, a local-first log of a professional network.
//!
//! It owns the domain model ([`model`], [`ids`]), the mapping of that model onto
//! Automerge documents ([`schema`], [`doc`]), their durable storage in redb
//! ([`store`]) with a materialised query index ([`index`]), the operations and
//! queries ([`ops`]), duplicate detection ([`dedup`]), insights,
//! import/export, identity and crypto, and the sync state machines (sans-IO).
//! Networking lives in `kith-net`, terminals in the `kith` CLI, and uniffi in
//! `kith-ffi`. See docs/ARCHITECTURE.md.

pub mod backup;
pub mod dedup;
pub mod doc;
pub mod error;
pub mod export;
pub mod identity;
pub mod ids;
pub mod import;
pub mod index;
pub mod insights;
pub mod meetings;
pub mod model;
pub mod ops;
pub mod schema;
pub mod store;
pub mod sync;
pub mod synth;

pub use dedup::{DuplicatePair, DuplicateReason};
pub use doc::DocId;
pub use error::{OpError, OpenError, SchemaError, StoreError};
pub use ids::{ContactId, ExchangeId, FollowUpId, GoalId, InteractionId, ProjectId};
pub use ops::{
    ContactPatch, ContactQuery, ContactSort, ContactStats, FollowUpFilter, FollowUpItem, GoalPatch,
    ImportSummary, InsightsRecords, InteractionPatch, NewContact, NewExchange, NewFollowUp,
    NewGoal, NewInteraction, NewProject, ParticipantRef, ProjectPatch, SearchResults,
    TimelineQuery,
};
pub use store::{
    CompactionPolicy, DocMeta, RemoteApplied, RemoteChanges, SnapshotInstalled, Store, TableSize,
};

//! kith-core: the engine of Kith, a local-first log of a professional network.
//!
//! It owns the domain model ([`model`], [`ids`]), the mapping of that model onto
//! Automerge documents, their durable storage in redb with a materialised query
//! index, queries, insights, import/export, identity and crypto, and the sync
//! state machines (sans-IO). Networking lives in `kith-net`, terminals in the
//! `kith` CLI, and uniffi in `kith-ffi`. See docs/ARCHITECTURE.md.

pub mod ids;
pub mod model;

pub use ids::{ContactId, ExchangeId, FollowUpId, GoalId, InteractionId, ProjectId};
pub mod identity;

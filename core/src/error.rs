//! Typed errors of the engine.
//!
//! Three layers, each with cases a caller can act on:
//! - [`SchemaError`]: a document's content does not match schema v1 (a field
//!   of the wrong type, a newer schema major, an unparsable id);
//! - [`StoreError`]: the redb file or a document chunk is
//!   missing, locked, damaged, from a newer format, or an I/O call failed;
//! - [`OpError`]: an operation refused its input (empty name, unknown contact,
//!   bad priority, ...) or hit a [`StoreError`]. Nothing is written when an
//!   operation returns an error.

use std::path::PathBuf;

use crate::ids::{ContactId, FollowUpId, GoalId, InteractionId, ProjectId};

/// A document whose content does not follow the schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The document was written by a newer Kith whose schema this one cannot read.
    #[error(
        "document '{doc}' has schema version {found}, newer than the {supported} this Kith reads: update Kith"
    )]
    NewerSchema {
        /// The document's id.
        doc: String,
        /// The schema version it carries.
        found: u64,
        /// The newest version this build reads.
        supported: u64,
    },
    /// A field holds a value of the wrong type or an unparsable value.
    #[error("document field '{path}' is invalid: {detail}")]
    BadField {
        /// Where in the document (`contacts/<id>/name`).
        path: String,
        /// What is wrong with the value.
        detail: String,
    },
    /// Automerge refused an operation on the document.
    #[error("document operation failed at '{path}': {source}")]
    Automerge {
        /// Where in the document the operation was.
        path: String,
        /// Automerge's error.
        #[source]
        source: BackendError,
    },
}

/// A failure of the storage layer: the redb file, its tables, or a document chunk.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory or store file could not be read or created.
    #[error("cannot access the store at {path}: {source}")]
    Io {
        /// The directory or file that could not be accessed.
        path: PathBuf,
        /// The I/O error (permissions, missing directory, full disk).
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another `Store` in this process) has the store open.
    #[error("the store at {path} is open elsewhere (close the other Kith first)")]
    Locked {
        /// The store file that is locked.
        path: PathBuf,
    },
    /// The store file or a chunk inside it is damaged. The file is left untouched.
    #[error(
        "{what} is damaged: {detail} (the file was left untouched; restore it from a backup or another device)"
    )]
    Damaged {
        /// What is damaged ("the store file", a document chunk).
        what: String,
        /// What the check found.
        detail: String,
    },
    /// The store was written by a newer Kith with an incompatible layout.
    #[error(
        "the store uses format {found_major}.{found_minor}, newer than the {supported_major}.x this Kith reads: update Kith"
    )]
    NewerFormat {
        /// Major format version of the file.
        found_major: u32,
        /// Minor format version of the file.
        found_minor: u32,
        /// The major version this build reads.
        supported_major: u32,
    },
    /// The store's sync tables were written by an older Kith whose sync
    /// format is not read (format 1 trusted the shared account secret). The
    /// documents are fine: back up, then start sync on a fresh store.
    #[error(
        "the store's sync tables have format {found}, which predates membership logs and is not read (this Kith reads {supported}): export or back up, then create or join the account on a fresh store"
    )]
    RetiredSyncFormat {
        /// The format found.
        found: u64,
        /// The format this build reads.
        supported: u64,
    },
    /// A document does not follow the schema.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// Automerge refused to load or merge data.
    #[error("document '{doc}': {source}")]
    Automerge {
        /// The document's id.
        doc: String,
        /// Automerge's error.
        #[source]
        source: BackendError,
    },
    /// Bytes received from another device are not a valid Automerge change.
    #[error("change #{index} for document '{doc}' is invalid: {detail}")]
    BadChange {
        /// The document the change was for.
        doc: String,
        /// Position of the change in the batch received.
        index: usize,
        /// Automerge's reason.
        detail: String,
    },
    /// The document id is not one this store knows how to hold.
    #[error("unknown document id '{0}'")]
    UnknownDoc(String),
    /// Any other failure of the database file (I/O error, full disk, ...).
    #[error("store database error: {0}")]
    Database(#[source] BackendError),
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
}

/// A failure inside the database (redb) or the document engine (Automerge),
/// carried as the source of a [`StoreError`] or [`SchemaError`]. Opaque on
/// purpose: neither library is part of Kith's API, so upgrading one does not
/// change Kith's error types. Its `Display` is the engine's message and its
/// `source()` the engine's own cause.
#[derive(Debug)]
pub struct BackendError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl BackendError {
    pub(crate) fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        BackendError(Box::new(e))
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            // redb found a page that fails its checks while reading or writing.
            redb::Error::Corrupted(detail) => StoreError::Damaged {
                what: "the store file".into(),
                detail,
            },
            other => StoreError::Database(BackendError::new(other)),
        }
    }
}

macro_rules! redb_into_store_error {
    ($($t:ty),+) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::from(redb::Error::from(e))
            }
        }
    )+};
}
redb_into_store_error!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        StoreError::from(redb::Error::from(e))
    }
}

/// An operation that refused its input or could not complete. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// A contact's name was blank.
    #[error("a contact's name must not be empty")]
    EmptyName,
    /// An interaction's summary was blank.
    #[error("an interaction's summary must not be empty")]
    EmptySummary,
    /// Another one-line text (goal title, project name, follow-up) was blank.
    #[error("a {what} must not be empty")]
    EmptyText {
        /// Which text ("goal title", ...).
        what: &'static str,
    },
    /// An interaction would have no participant.
    #[error("an interaction needs at least one participant")]
    NoParticipants,
    /// No contact has this id (never existed, or in another account).
    #[error("no contact with id {0}")]
    UnknownContact(ContactId),
    /// Participant names matched nobody; create them (`create_missing`) or fix the spelling.
    #[error("no contact named {}", names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", "))]
    UnknownNames {
        /// Every name that matched nobody, as given.
        names: Vec<String>,
    },
    /// A participant name matched several contacts; pass one of the ids instead.
    #[error("the name '{name}' matches {} contacts; use an id", candidates.len())]
    AmbiguousName {
        /// The name as given.
        name: String,
        /// The contacts it matches.
        candidates: Vec<ContactId>,
    },
    /// No interaction has this id.
    #[error("no interaction with id {0}")]
    UnknownInteraction(InteractionId),
    /// The interaction exists but has no such follow-up.
    #[error("interaction {interaction} has no follow-up {follow_up}")]
    UnknownFollowUp {
        /// The interaction.
        interaction: InteractionId,
        /// The follow-up id that was not found in it.
        follow_up: FollowUpId,
    },
    /// No project has this id.
    #[error("no project with id {0}")]
    UnknownProject(ProjectId),
    /// No goal has this id.
    #[error("no goal with id {0}")]
    UnknownGoal(GoalId),
    /// A goal priority outside 1..=3 (the value given).
    #[error("goal priority must be 1, 2 or 3 (got {0})")]
    BadPriority(u8),
    /// A merge named the same contact as winner and loser.
    #[error("cannot merge contact {0} into itself")]
    MergeIntoSelf(ContactId),
    /// The contact was already merged away; merge into `into` instead.
    #[error("contact {contact} was already merged into {into}")]
    AlreadyMerged {
        /// The contact named in the merge.
        contact: ContactId,
        /// Where it was merged before.
        into: ContactId,
    },
    /// The contact to unmerge is not merged into another one.
    #[error("contact {0} is not merged into another contact, so there is nothing to unmerge")]
    NotMerged(ContactId),
    /// An exchange names a contact that did not take part in the interaction.
    #[error("the exchange partner {0} is not a participant of the interaction")]
    ExchangeWithNonParticipant(ContactId),
    /// A field's value is refused (too long, not a date, ...); `reason` says why.
    #[error("{field} is invalid: {reason}")]
    Invalid {
        /// The field refused.
        field: &'static str,
        /// Why, for the user.
        reason: String,
    },
    /// The store failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SchemaError> for OpError {
    fn from(e: SchemaError) -> Self {
        OpError::Store(StoreError::Schema(e))
    }
}

impl From<redb::Error> for OpError {
    fn from(e: redb::Error) -> Self {
        OpError::Store(StoreError::from(e))
    }
}

macro_rules! redb_into_op_error {
    ($($t:ty),+) => {$(
        impl From<$t> for OpError {
            fn from(e: $t) -> Self {
                OpError::Store(StoreError::from(e))
            }
        }
    )+};
}
redb_into_op_error!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

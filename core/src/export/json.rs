//! The `kith-export` JSON format: everything in a network, lossless and versioned.
//!
//! Shape (documented in docs/EXPORT.md): `{"format": "kith-export", "version":
//! 1, "exported_ms": ..., "settings": {...}, "contacts": [...],
//! "interactions": [...], "projects": [...], "goals": [...]}`, each record in
//! the model's own serde form. [`read_json`] first reads only the format and
//! version, so a file from a newer Kith is refused with a clear error before
//! anything else is interpreted.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::error::{OpError, StoreError};
use crate::model::{Contact, Goal, Interaction, Project, Settings, TimestampMs};
use crate::ops::ImportSummary;
use crate::store::Store;

use super::ExportError;

/// The `format` value of a Kith export.
pub const EXPORT_FORMAT: &str = "kith-export";
/// The version this build writes and the newest it reads.
pub const EXPORT_VERSION: u32 = 1;
/// Largest export file [`read_json`] accepts.
pub const EXPORT_SIZE_BYTES_MAX: usize = 1024 * 1024 * 1024;

/// Everything in a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KithExport {
    /// Always [`EXPORT_FORMAT`]; how a reader recognises the file.
    pub format: String,
    /// Export format version; a reader refuses newer ones.
    pub version: u32,
    /// When the export was made.
    pub exported_ms: TimestampMs,
    /// The network's settings.
    pub settings: Settings,
    /// Every contact, archived and merged ones included.
    pub contacts: Vec<Contact>,
    /// Every interaction, deleted ones included, with their notes.
    pub interactions: Vec<Interaction>,
    /// Every project.
    pub projects: Vec<Project>,
    /// Every goal.
    pub goals: Vec<Goal>,
}

impl KithExport {
    /// An export of the current version.
    pub fn new(
        exported_ms: TimestampMs,
        settings: Settings,
        contacts: Vec<Contact>,
        interactions: Vec<Interaction>,
        projects: Vec<Project>,
        goals: Vec<Goal>,
    ) -> Self {
        KithExport {
            format: EXPORT_FORMAT.to_string(),
            version: EXPORT_VERSION,
            exported_ms,
            settings,
            contacts,
            interactions,
            projects,
            goals,
        }
    }
}

impl KithExport {
    /// Everything in the store (merged contacts and deleted interactions included).
    pub fn from_store(store: &Store, exported_ms: TimestampMs) -> Result<Self, StoreError> {
        Ok(KithExport::new(
            exported_ms,
            store.settings()?,
            store.all_contacts()?,
            store.all_interactions()?,
            store.all_projects()?,
            store.all_goals()?,
        ))
    }

    /// Writes every record of the export into `store` (ids kept, so loading the
    /// same export twice changes nothing), through the store's bulk path.
    pub fn load_into(self, store: &mut Store) -> Result<ImportSummary, OpError> {
        store.set_settings(self.settings)?;
        store.import_records(self.contacts, self.interactions, self.projects, self.goals)
    }
}

/// Why an export file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonReadError {
    /// The file is over [`EXPORT_SIZE_BYTES_MAX`].
    #[error("the file is {size_bytes} bytes, more than the {size_bytes_max} bytes accepted")]
    TooLarge {
        /// Size of the file given.
        size_bytes: usize,
        /// The limit it exceeds.
        size_bytes_max: usize,
    },
    /// The file is not JSON at all: the wrong file was chosen.
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// JSON, but not a Kith export.
    #[error("not a Kith export (no \"format\": \"kith-export\")")]
    NotKithExport,
    /// Written by a newer Kith; update to read it.
    #[error(
        "this export is version {found}, newer than the version {supported} this Kith reads: update Kith to read it"
    )]
    NewerVersion {
        /// The file's version.
        found: u64,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The version field is 0, which no export carries.
    #[error("export version {found} is not a valid version")]
    InvalidVersion {
        /// The value found.
        found: u64,
    },
    /// A Kith export whose records do not decode (truncated or edited by hand).
    #[error("the export is damaged or incomplete: {0}")]
    Malformed(#[source] serde_json::Error),
}

/// Writes the export as pretty-printed JSON.
pub fn write_json<W: Write>(export: &KithExport, out: W) -> Result<(), ExportError> {
    serde_json::to_writer_pretty(out, export)?;
    Ok(())
}

/// Reads an export, refusing other formats and newer versions.
pub fn read_json(bytes: &[u8]) -> Result<KithExport, JsonReadError> {
    if bytes.len() > EXPORT_SIZE_BYTES_MAX {
        return Err(JsonReadError::TooLarge {
            size_bytes: bytes.len(),
            size_bytes_max: EXPORT_SIZE_BYTES_MAX,
        });
    }
    #[derive(Deserialize)]
    struct Header {
        format: Option<String>,
        version: Option<u64>,
    }
    let header: Header = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            JsonReadError::NotKithExport
        } else {
            JsonReadError::NotJson(e)
        }
    })?;
    if header.format.as_deref() != Some(EXPORT_FORMAT) {
        return Err(JsonReadError::NotKithExport);
    }
    let found = header.version.ok_or(JsonReadError::NotKithExport)?;
    if found > u64::from(EXPORT_VERSION) {
        return Err(JsonReadError::NewerVersion {
            found,
            supported: EXPORT_VERSION,
        });
    }
    if found == 0 {
        return Err(JsonReadError::InvalidVersion { found });
    }
    serde_json::from_slice(bytes).map_err(JsonReadError::Malformed)
}

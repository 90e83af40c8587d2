//! Export: contacts and everything else out of Kith, in formats other tools read.
//!
//! - [`vcard`]: vCard 4.0 (RFC 6350), re-importable by [`crate::import`] with
//!   no loss of the fields vCard carries;
//! - [`csv`]: contacts and interactions as spreadsheets (readable, not lossless);
//! - [`json`]: the versioned, lossless `kith-export` format of everything
//!   (documented in docs/EXPORT.md), with a reader that refuses newer versions.
//!
//! All writers take plain model values; reading them out of the store is the
//! caller's job, so these functions are pure and testable without a store.

pub mod csv;
pub mod json;
pub mod vcard;

pub use json::{EXPORT_FORMAT, EXPORT_VERSION, JsonReadError, KithExport, read_json, write_json};
pub use vcard::{write_vcard, write_vcards};

/// A failure writing an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("could not write the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("could not write CSV: {0}")]
    Csv(#[from] ::csv::Error),
    #[error("could not write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

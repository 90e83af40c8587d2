//! Export: the versioned, lossless `kith-export` JSON format of everything
//! (documented in docs/EXPORT.md), with a reader that refuses newer versions.
//! vCard and CSV writers live in kith-formats; they take plain model values.

pub mod json;

pub use json::{EXPORT_FORMAT, EXPORT_VERSION, JsonReadError, KithExport, read_json, write_json};

/// A failure writing an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The output could not be written.
    #[error("could not write the export: {0}")]
    Io(#[from] std::io::Error),
    /// The export could not be serialised.
    #[error("could not write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

//! kith-formats: contact files in and out, as plain records.
//!
//! Reading: [`vcard`] parses vCard 2.1/3.0/4.0 (RFC 6350) into `ParsedCard`s
//! and [`vcard_map`] maps each card to a [`ContactDraft`]; [`linkedin`]
//! parses LinkedIn's Connections.csv into drafts. kith-core plans and applies
//! drafts (its `import` module); nothing here touches a store.
//!
//! Writing: [`vcard_out`] writes vCard 4.0 that the reader takes back without
//! loss of the fields vCard carries; [`csv_out`] writes contacts and
//! interactions as spreadsheets (readable, not lossless). The lossless JSON
//! export lives in kith-core, beside the store it reads.
//!
//! Every parser is bounded (limits structs), reports bad input as errors that
//! name the line, and never panics (fuzz targets in core/fuzz).

#![warn(missing_docs)]

pub mod csv_out;
pub mod linkedin;
pub mod vcard;
pub mod vcard_map;
pub mod vcard_out;

pub use kith_model::draft::ContactDraft;
use kith_model::draft::{inside_org_suggestion, non_empty};

pub use csv_out::{CsvError, write_contacts_csv, write_interactions_csv};
pub use linkedin::{LinkedinError, LinkedinImport, LinkedinLimits, RowError, parse_linkedin_csv};
pub use vcard::{
    CardError, CardErrorKind, ParsedCard, VcardFileError, VcardImport, VcardLimits, parse_vcards,
    parse_vcards_streaming,
};
pub use vcard_map::{DraftBatch, map_card, vcard_drafts};
pub use vcard_out::{write_vcard, write_vcards};

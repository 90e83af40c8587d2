//! Documents and partitions: which Automerge document holds which record.
//!
//! "The network" is a set of documents: `main` (schema, settings, contacts,
//! projects, goals) and one `log/YYYYqN` document per calendar quarter (UTC)
//! holding the interactions whose id was minted in that quarter. Because an
//! interaction id is minted at the time the meeting happened
//! (`InteractionId::new_at(at_ms)`), its partition is derivable from the id
//! alone and never moves, even when `at_ms` is edited later. Small documents
//! keep the phone's "open and log a meeting" path fast: only `main` and the
//! current quarter need to load for a write.
//!
//! [`LoadedDoc`] pairs an in-memory document with the heads last saved to the
//! store, so the next chunk is exactly `save_after(saved_heads)`.

use std::fmt;
use std::str::FromStr;

use automerge::{AutoCommit, ChangeHash};
use chrono::{DateTime, Datelike};

use crate::ids::InteractionId;
use crate::schema::DocKind;

/// Identifies one document of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DocId {
    /// Settings, contacts, projects, goals.
    Main,
    /// Interactions of one calendar quarter (UTC): `quarter` is 1..=4.
    Log {
        /// Calendar year (UTC).
        year: i32,
        /// 1..=4.
        quarter: u8,
    },
}

impl DocId {
    /// The partition of an interaction, from the timestamp of its id.
    pub fn for_interaction(id: InteractionId) -> DocId {
        DocId::for_time(id.timestamp_ms())
    }

    /// The quarter partition containing the UTC instant `ms`.
    pub fn for_time(ms: i64) -> DocId {
        let dt = DateTime::from_timestamp_millis(ms).unwrap_or_default();
        let quarter = u8::try_from(dt.month0() / 3 + 1).unwrap_or(1);
        DocId::Log {
            year: dt.year(),
            quarter,
        }
    }

    /// Which schema layout this document has.
    pub fn kind(self) -> DocKind {
        match self {
            DocId::Main => DocKind::Main,
            DocId::Log { .. } => DocKind::Log,
        }
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocId::Main => f.write_str("main"),
            DocId::Log { year, quarter } => write!(f, "log/{year:04}q{quarter}"),
        }
    }
}

/// Error for a string that is not a document id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid document id '{0}': expected 'main' or 'log/YYYYqN'")]
pub struct InvalidDocId(pub String);

impl FromStr for DocId {
    type Err = InvalidDocId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "main" {
            return Ok(DocId::Main);
        }
        let err = || InvalidDocId(s.to_string());
        let rest = s.strip_prefix("log/").ok_or_else(err)?;
        let (y, q) = rest.split_once('q').ok_or_else(err)?;
        let year: i32 = y.parse().map_err(|_| err())?;
        let quarter: u8 = q.parse().map_err(|_| err())?;
        if !(1..=4).contains(&quarter) || y.len() != 4 {
            return Err(err());
        }
        Ok(DocId::Log { year, quarter })
    }
}

/// A document in memory plus what the store already holds of it.
#[derive(Debug)]
pub(crate) struct LoadedDoc {
    pub doc: AutoCommit,
    /// Heads covered by the chunks in the store: the next chunk is
    /// `doc.save_after(&saved_heads)`.
    pub saved_heads: Vec<ChangeHash>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_ids_round_trip_and_partition_by_quarter() {
        // 2026-05-14T10:00:00Z is in the second quarter.
        let ms = 1_778_752_800_000;
        let id = InteractionId::new_at(ms);
        let doc = DocId::for_interaction(id);
        assert_eq!(
            doc,
            DocId::Log {
                year: 2026,
                quarter: 2
            }
        );
        assert_eq!(doc.to_string(), "log/2026q2");
        assert_eq!("log/2026q2".parse::<DocId>().unwrap(), doc);
        assert_eq!("main".parse::<DocId>().unwrap(), DocId::Main);
        assert_eq!(DocId::for_time(0).to_string(), "log/1970q1");
        for bad in ["log/2026q5", "log/26q1", "logs/2026q1", "", "log/2026"] {
            assert!(bad.parse::<DocId>().is_err(), "{bad}");
        }
    }
}

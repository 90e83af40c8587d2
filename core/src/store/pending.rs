//! Fresh writes: new interactions logged without loading their partition.
//!
//! The phone's first write of a session logs a meeting into the current
//! quarter. Appending an Automerge change to that quarter needs the whole
//! document in memory (its heads, op counters and the `interactions` map), and
//! loading a busy quarter costs about 100 ms per 700 KB. So a *new*
//! interaction whose partition is not in memory is not written into the
//! partition at once: the write stores it in `doc_pending` instead, in the same
//! redb transaction that indexes it, and returns. The record is folded into its
//! partition (one Automerge change with every pending record of that
//! partition, written as the partition's next chunk, and the rows deleted, in
//! one transaction) the next time the partition is needed anyway: any write
//! to it (edit, delete, follow-up), a load for sync, backup, reindex or
//! check, or [`super::Store::fold_pending`] (an app calls it in the
//! background after the first screen). A partition with
//! [`PENDING_PER_DOC_MAX`] rows folds on the write that would add another,
//! which bounds the table.
//!
//! Data flow of a fresh write: the record is written into a scratch document
//! (genesis + this one record, a few hundred bytes), read back through the
//! schema reader (so the indexed record is exactly what the partition will
//! read back once folded: index equals reindex), the scratch document's
//! `save()` is sealed with a checksum and stored under `(partition, record
//! id)`, and the index rows are written. The payload is a Kith-schema Automerge
//! document rather than a serialised struct so that it stays readable by the
//! same versioned schema reader as every other document.
//!
//! Invariant: a document in memory (`Store::docs`) never lags its pending
//! rows when a write touches it: [`super::Tx::doc_mut`] folds the rows first,
//! and [`super::Store::ensure_loaded`] folds them before any reader sees the
//! document. Sync therefore never sees a partition without its fresh records,
//! and the change that carries them is an ordinary change of this device's
//! actor (pushed like any other).

use std::collections::BTreeSet;

use automerge::{ActorId, AutoCommit};
use redb::{ReadTransaction, ReadableTable, TableDefinition, TableError, WriteTransaction};

use super::{CHECKSUM_BYTES, checksum, sealed_chunk};
use crate::doc::DocId;
use crate::error::StoreError;
use crate::model::Interaction;
use crate::schema;

/// doc_pending: (doc id, interaction id as u128) -> 16-byte sha256 prefix ++
/// `save()` of a scratch log document holding that one interaction.
pub(crate) const PENDING: TableDefinition<'static, (&str, u128), &[u8]> =
    TableDefinition::new("doc_pending");

/// Most pending rows one partition holds; the write that would add one more
/// folds them into the partition instead (it loads the partition, as every
/// write did before fresh writes existed).
pub(crate) const PENDING_PER_DOC_MAX: u64 = 512;

/// The actor of scratch documents. Their changes never reach a real
/// document (records are re-written through the schema when folded), so a
/// fixed actor keeps the payload deterministic and free of device identity.
const SCRATCH_ACTOR: [u8; 16] = *b"kith-fresh-write";

fn damaged(doc: &str, id: u128, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Damaged {
        what: format!("pending write {doc}/{id:032x}"),
        detail: detail.to_string(),
    }
}

/// Writes `rec` (a new interaction of partition `doc`) as a pending row and
/// returns it as the partition will read it back once folded.
pub(crate) fn put(
    txn: &WriteTransaction,
    doc: DocId,
    rec: &Interaction,
) -> Result<Interaction, StoreError> {
    let mut scratch = schema::new_document(doc.kind(), &ActorId::from(&SCRATCH_ACTOR[..]))?;
    schema::write_interaction(&mut scratch, None, rec)?;
    let id = rec.id.to_string();
    let stored = schema::read_one(
        &scratch,
        schema::INTERACTIONS,
        &id,
        schema::read_interaction,
    )?
    .ok_or_else(|| damaged(&doc.to_string(), rec.id.to_u128(), "not readable back"))?;
    let bytes = scratch.save();
    let name = doc.to_string();
    txn.open_table(PENDING)?.insert(
        (name.as_str(), rec.id.to_u128()),
        sealed_chunk(&bytes).as_slice(),
    )?;
    Ok(stored)
}

/// Pending rows of `doc` in a write transaction.
pub(crate) fn count(txn: &WriteTransaction, doc: DocId) -> Result<u64, StoreError> {
    let name = doc.to_string();
    let t = txn.open_table(PENDING)?;
    let mut n = 0;
    for row in t.range((name.as_str(), 0u128)..=(name.as_str(), u128::MAX))? {
        row?;
        n += 1;
    }
    Ok(n)
}

/// Decodes one sealed row into the interaction it holds.
fn decode(doc: &str, id: u128, sealed: &[u8]) -> Result<Interaction, StoreError> {
    if sealed.len() < CHECKSUM_BYTES {
        return Err(damaged(doc, id, "row is shorter than its checksum"));
    }
    let (sum, bytes) = sealed.split_at(CHECKSUM_BYTES);
    if sum != checksum(bytes) {
        return Err(damaged(doc, id, "checksum mismatch"));
    }
    let scratch = AutoCommit::load(bytes).map_err(|e| damaged(doc, id, e))?;
    schema::check_schema(&scratch, doc)?;
    let key = crate::ids::InteractionId::from_u128(id).to_string();
    schema::read_one(
        &scratch,
        schema::INTERACTIONS,
        &key,
        schema::read_interaction,
    )?
    .ok_or_else(|| damaged(doc, id, "the row does not hold its interaction"))
}

/// Every pending record of `doc`, in id order, read in a read transaction (a
/// store whose format predates the table has none).
pub(crate) fn read(txn: &ReadTransaction, doc: DocId) -> Result<Vec<Interaction>, StoreError> {
    let t = match txn.open_table(PENDING) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let name = doc.to_string();
    let mut out = Vec::new();
    for row in t.range((name.as_str(), 0u128)..=(name.as_str(), u128::MAX))? {
        let (k, v) = row?;
        out.push(decode(&name, k.value().1, v.value())?);
    }
    Ok(out)
}

/// Documents with pending rows (read transaction; none before the table exists).
pub(crate) fn docs(txn: &ReadTransaction) -> Result<BTreeSet<DocId>, StoreError> {
    let t = match txn.open_table(PENDING) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(BTreeSet::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = BTreeSet::new();
    for row in t.iter()? {
        let (k, _) = row?;
        let name = k.value().0;
        out.insert(
            name.parse()
                .map_err(|_| StoreError::UnknownDoc(name.to_owned()))?,
        );
    }
    Ok(out)
}

/// Writes every pending record of `doc` into `target` (the partition, loaded)
/// and deletes the rows, inside `txn`: the caller commits the change and the
/// chunk in the same transaction. A record the partition already holds is
/// not written again (the partition's copy is at least as new). Returns how
/// many rows were folded.
pub(crate) fn fold_into(
    txn: &WriteTransaction,
    doc: DocId,
    target: &mut AutoCommit,
) -> Result<usize, StoreError> {
    let name = doc.to_string();
    let mut table = txn.open_table(PENDING)?;
    let mut recs = Vec::new();
    for row in table.range((name.as_str(), 0u128)..=(name.as_str(), u128::MAX))? {
        let (k, v) = row?;
        recs.push(decode(&name, k.value().1, v.value())?);
    }
    if recs.is_empty() {
        return Ok(0);
    }
    apply(target, &recs)?;
    table.retain_in(
        (name.as_str(), 0u128)..=(name.as_str(), u128::MAX),
        |_, _| false,
    )?;
    Ok(recs.len())
}

/// Writes pending records into `target`, skipping any it already holds.
pub(crate) fn apply(target: &mut AutoCommit, recs: &[Interaction]) -> Result<(), StoreError> {
    for rec in recs {
        let id = rec.id.to_string();
        if schema::record(target, schema::INTERACTIONS, &id)?.is_none() {
            schema::write_interaction(target, None, rec)?;
        }
    }
    Ok(())
}

/// Digest input for [`super::Store::change_marker`]: every pending key.
pub(crate) fn marker_rows(txn: &ReadTransaction) -> Result<Vec<(String, u128)>, StoreError> {
    let t = match txn.open_table(PENDING) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, _) = row?;
        let (d, id) = k.value();
        out.push((d.to_owned(), id));
    }
    Ok(out)
}

//! What is inside the sealed envelopes a device leaves at the relay.
//!
//! Entry plaintext (postcard, version 2): [`EntryPayload`] = the authoring
//! device's name (names travel only sealed, never in what the relay reads)
//! and a body: either the compressed Automerge
//! changes of ONE document, or one fragment of such a body when a single
//! change is too large for one entry (fragments are consecutive seqs of the
//! same device; their bytes concatenate to the postcard of an
//! [`EntryBody::Changes`]). Sealed under the data key of the membership
//! epoch named in the envelope; the AEAD associated data is
//! `SealedEntry::associated_data(account, device, epoch, seq)` and the device
//! signature covers it, so an entry cannot be moved to another position,
//! device, epoch or account. Opening checks that the author was a member of
//! the account during that epoch (the verified membership log decides).
//!
//! Snapshot plaintext: [`SnapshotPayload`] = the author's name, the names of
//! every device it knows, and a full Automerge save of every document.

use kith_protocol::{
    AccountId, DeviceId, Membership, SealedEntry, SealedSnapshot, envelope::Cursor,
};
use serde::{Deserialize, Serialize};

use super::device_identity::DeviceIdentity;
use super::epochs::EpochKeys;
use crate::identity::DataKey;

/// Current payload format version (1 carried account certificates; it is
/// not read: its envelopes carry no epoch and do not verify).
pub const PAYLOAD_VERSION: u8 = 2;
/// Largest entry plaintext this device produces (bytes); larger bodies are
/// fragmented. Leaves room under the relay's 1 MiB frame for the envelope.
pub const ENTRY_PAYLOAD_BYTES_MAX: usize = 256 * 1024;

/// Decrypted content of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPayload {
    /// Payload format version; at most [`PAYLOAD_VERSION`] is read.
    pub version: u8,
    /// The authoring device's name (the envelope's signer is the device).
    pub name: String,
    /// The changes, or a fragment of them.
    pub body: EntryBody,
}

/// The changes of one document, or a piece of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryBody {
    /// Automerge changes (each as `Change::bytes`, compressed when large).
    Changes {
        /// The document id in its string form.
        doc: String,
        /// The changes, in an order Automerge can apply.
        changes: Vec<Vec<u8>>,
    },
    /// Piece `index` of `count` of a postcard-encoded `Changes` body.
    Fragment {
        /// 0-based position of this piece.
        index: u32,
        /// Pieces in all; the body is whole once every index arrived.
        count: u32,
        /// This piece's bytes.
        bytes: Vec<u8>,
    },
}

/// Decrypted content of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotPayload {
    /// Payload format version; at most [`PAYLOAD_VERSION`] is read.
    pub version: u8,
    /// The name of the device that made the snapshot.
    pub name: String,
    /// Every device name the maker knew, so a new device learns them.
    pub devices: Vec<(DeviceId, String)>,
    /// (document id, `Automerge::save()` bytes).
    pub docs: Vec<(String, Vec<u8>)>,
}

/// Why a sealed envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsealError {
    /// Sealed for another account: a relay mix-up or a hostile relay; drop it.
    #[error("it belongs to account {found}, not this account")]
    WrongAccount {
        /// The account named in the envelope.
        found: AccountId,
    },
    /// The envelope's signature is not by the device it names; drop it.
    #[error("its device signature does not verify")]
    BadSignature,
    /// It does not open with its epoch's data key (damaged or forged); drop it.
    #[error("it does not decrypt under its epoch's data key (damaged or forged)")]
    Decrypt,
    /// This device holds no key of the epoch named (its membership log is
    /// behind, or the epoch was sealed after it was revoked).
    #[error("this device holds no key of epoch {epoch}")]
    NoKey {
        /// The epoch named in the envelope.
        epoch: u64,
    },
    /// It opened but the content does not decode (a bug in the writer, or forged).
    #[error("its content does not decode: {0}")]
    Malformed(String),
    /// Written by a newer Kith (the payload version given); update Kith.
    #[error("its payload version {0} is newer than this Kith understands")]
    NewerVersion(u8),
    /// Its author was not a member of the account during its epoch.
    #[error("its author {device} was not a member of the account in epoch {epoch}")]
    NotAMember {
        /// The author named in the envelope.
        device: DeviceId,
        /// The epoch named.
        epoch: u64,
    },
}

/// True if `device` was a member of the account while `epoch` was current:
/// a member now, or revoked by an op after the start of `epoch`.
pub(crate) fn member_during(m: &Membership, device: &DeviceId, epoch: u64) -> bool {
    let Some(started) = m.epoch_started_at(epoch) else {
        return false;
    };
    if m.is_member(device) {
        return true;
    }
    m.revoked_at(device).is_some_and(|p| started < p)
}

/// Splits a body too large for one entry into fragments.
pub(crate) fn bodies_for(doc: &str, changes: Vec<Vec<u8>>) -> Vec<EntryBody> {
    let mut out = Vec::new();
    let mut cur: Vec<Vec<u8>> = Vec::new();
    let mut cur_bytes = 0usize;
    // Slack for the postcard framing of the body and the certificate.
    let budget = ENTRY_PAYLOAD_BYTES_MAX - 1024;
    for c in changes {
        if !cur.is_empty() && cur_bytes + c.len() + 8 > budget {
            out.push(EntryBody::Changes {
                doc: doc.to_owned(),
                changes: std::mem::take(&mut cur),
            });
            cur_bytes = 0;
        }
        cur_bytes += c.len() + 8;
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(EntryBody::Changes {
            doc: doc.to_owned(),
            changes: cur,
        });
    }
    let mut split = Vec::with_capacity(out.len());
    for body in out {
        let Ok(bytes) = postcard::to_allocvec(&body) else {
            continue;
        };
        if bytes.len() <= budget {
            split.push(body);
            continue;
        }
        let pieces: Vec<&[u8]> = bytes.chunks(budget).collect();
        let count = u32::try_from(pieces.len()).unwrap_or(u32::MAX);
        for (i, p) in pieces.into_iter().enumerate() {
            split.push(EntryBody::Fragment {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                count,
                bytes: p.to_vec(),
            });
        }
    }
    split
}

/// Seals `body` as entry `seq` of this device under `key`, the data key
/// of `epoch`.
pub(crate) fn seal_entry(
    id: &DeviceIdentity,
    epoch: u64,
    key: &DataKey,
    seq: u64,
    body: EntryBody,
) -> Result<SealedEntry, crate::identity::CryptoError> {
    let payload = EntryPayload {
        version: PAYLOAD_VERSION,
        name: id.device_name().to_owned(),
        body,
    };
    let plain = postcard::to_allocvec(&payload)
        .map_err(|_| crate::identity::CryptoError::TooLarge { len_bytes: 0 })?;
    let ad = SealedEntry::associated_data(&id.account_id(), &id.device_id(), epoch, seq);
    let (nonce, ct) = key.seal_detached(&plain, &ad)?;
    Ok(SealedEntry::seal(
        id.device_signing_key(),
        id.account_id(),
        epoch,
        seq,
        nonce,
        ct,
    ))
}

/// Checks the envelope's account, signature and author; returns the key.
fn check<'k>(
    id: &DeviceIdentity,
    members: &Membership,
    keys: &'k EpochKeys,
    (account, device, epoch): (AccountId, DeviceId, u64),
    signed: Result<(), kith_protocol::SignatureError>,
) -> Result<&'k DataKey, UnsealError> {
    if account != id.account_id() {
        return Err(UnsealError::WrongAccount { found: account });
    }
    signed.map_err(|_| UnsealError::BadSignature)?;
    if !member_during(members, &device, epoch) {
        return Err(UnsealError::NotAMember { device, epoch });
    }
    keys.get(epoch).ok_or(UnsealError::NoKey { epoch })
}

/// Verifies, decrypts and decodes one entry of this account: signed by its
/// device, that device a member during the entry's epoch, sealed under that
/// epoch's key (what the receive path does before it applies or quarantines
/// an entry; public for the `sealed_entry_open` fuzz target).
pub fn open_entry(
    id: &DeviceIdentity,
    members: &Membership,
    keys: &EpochKeys,
    e: &SealedEntry,
) -> Result<EntryPayload, UnsealError> {
    let key = check(
        id,
        members,
        keys,
        (e.account, e.device, e.epoch),
        e.verify(),
    )?;
    let ad = SealedEntry::associated_data(&e.account, &e.device, e.epoch, e.seq);
    let plain = key
        .open_detached(&e.nonce, &e.ciphertext, &ad)
        .map_err(|_| UnsealError::Decrypt)?;
    let p: EntryPayload =
        postcard::from_bytes(&plain).map_err(|err| UnsealError::Malformed(err.to_string()))?;
    if p.version > PAYLOAD_VERSION {
        return Err(UnsealError::NewerVersion(p.version));
    }
    Ok(p)
}

/// Seals a snapshot covering `covers` under `key`, the data key of `epoch`.
pub(crate) fn seal_snapshot(
    id: &DeviceIdentity,
    epoch: u64,
    key: &DataKey,
    covers: Vec<Cursor>,
    payload: &SnapshotPayload,
) -> Result<SealedSnapshot, crate::identity::CryptoError> {
    let plain = postcard::to_allocvec(payload)
        .map_err(|_| crate::identity::CryptoError::TooLarge { len_bytes: 0 })?;
    let ad = SealedSnapshot::associated_data(&id.account_id(), &id.device_id(), epoch, &covers);
    let (nonce, ct) = key.seal_detached(&plain, &ad)?;
    Ok(SealedSnapshot::seal(
        id.device_signing_key(),
        id.account_id(),
        epoch,
        covers,
        nonce,
        ct,
    ))
}

/// Verifies, decrypts and decodes a snapshot of this account.
pub(crate) fn open_snapshot(
    id: &DeviceIdentity,
    members: &Membership,
    keys: &EpochKeys,
    s: &SealedSnapshot,
) -> Result<SnapshotPayload, UnsealError> {
    let key = check(
        id,
        members,
        keys,
        (s.account, s.device, s.epoch),
        s.verify(),
    )?;
    let ad = SealedSnapshot::associated_data(&s.account, &s.device, s.epoch, &s.covers);
    let plain = key
        .open_detached(&s.nonce, &s.ciphertext, &ad)
        .map_err(|_| UnsealError::Decrypt)?;
    let p: SnapshotPayload =
        postcard::from_bytes(&plain).map_err(|err| UnsealError::Malformed(err.to_string()))?;
    if p.version > PAYLOAD_VERSION {
        return Err(UnsealError::NewerVersion(p.version));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A fresh account with one device: its identity, log state and keys.
    fn account(name: &str) -> (DeviceIdentity, Membership, EpochKeys) {
        let mut m = crate::identity::KeyMaterial::generate(name);
        let probe = DeviceIdentity::with_account(&m, AccountId([0; 32]));
        let (code, genesis, key) =
            crate::sync::authority::create_account(probe.actor(), 1).unwrap();
        m.account = Some(code.account().0);
        let id = DeviceIdentity::from_material(&m).unwrap();
        let state = Membership::from_ops(id.account_id(), &[genesis]).unwrap();
        let mut keys = EpochKeys::default();
        keys.insert(1, key);
        (id, state, keys)
    }

    #[test]
    fn entry_round_trip_and_tamper() {
        let (id, m, keys) = account("t");
        let body = EntryBody::Changes {
            doc: "main".into(),
            changes: vec![vec![1, 2, 3]],
        };
        let key = keys.get(1).unwrap();
        let e = seal_entry(&id, 1, key, 4, body.clone()).unwrap();
        let opened = open_entry(&id, &m, &keys, &e).unwrap();
        assert_eq!(opened.body, body);
        assert_eq!(opened.name, "t");
        // Moving the entry to another seq or epoch breaks the signature.
        let mut t = e.clone();
        t.seq = 5;
        assert_eq!(
            open_entry(&id, &m, &keys, &t),
            Err(UnsealError::BadSignature)
        );
        let mut t = e.clone();
        t.epoch = 2;
        assert_eq!(
            open_entry(&id, &m, &keys, &t),
            Err(UnsealError::BadSignature)
        );
        // Another account cannot read it.
        let (other, other_m, other_keys) = account("o");
        assert!(matches!(
            open_entry(&other, &other_m, &other_keys, &e),
            Err(UnsealError::WrongAccount { .. })
        ));
        // A device of another account re-signing under our account id is
        // no member of it.
        let forged = SealedEntry::seal(
            other.device_signing_key(),
            id.account_id(),
            1,
            4,
            e.nonce,
            e.ciphertext.clone(),
        );
        assert!(matches!(
            open_entry(&id, &m, &keys, &forged),
            Err(UnsealError::NotAMember { .. })
        ));
        // Our own device under an epoch it holds no key of.
        let later = seal_entry(&id, 7, key, 5, body).unwrap();
        assert!(matches!(
            open_entry(&id, &m, &keys, &later),
            Err(UnsealError::NotAMember { epoch: 7, .. })
        ));
    }

    proptest! {
        #[test]
        fn bodies_reassemble_to_the_input(sizes in proptest::collection::vec(0usize..400_000, 0..6)) {
            let changes: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, n)| vec![i as u8; *n]).collect();
            let bodies = bodies_for("main", changes.clone());
            let mut got = Vec::new();
            let mut frag = Vec::new();
            for b in bodies {
                let enc = postcard::to_allocvec(&b).unwrap();
                prop_assert!(enc.len() <= ENTRY_PAYLOAD_BYTES_MAX);
                match b {
                    EntryBody::Changes { changes, .. } => got.extend(changes),
                    EntryBody::Fragment { index, count, bytes } => {
                        frag.extend(bytes);
                        if index + 1 == count {
                            match postcard::from_bytes::<EntryBody>(&frag).unwrap() {
                                EntryBody::Changes { changes, .. } => got.extend(changes),
                                EntryBody::Fragment { .. } => prop_assert!(false),
                            }
                            frag.clear();
                        }
                    }
                }
            }
            prop_assert_eq!(got, changes);
        }
    }
}

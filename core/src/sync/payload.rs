//! What is inside the sealed envelopes a device leaves at the relay.
//!
//! Entry plaintext (postcard, version 1): [`EntryPayload`] = the authoring
//! device's certificate (so any member can check the chain to the account
//! without another round trip) and a body: either the compressed Automerge
//! changes of ONE document, or one fragment of such a body when a single
//! change is too large for one entry (fragments are consecutive seqs of the
//! same device; their bytes concatenate to the postcard of an
//! [`EntryBody::Changes`]). The AEAD associated data is
//! `SealedEntry::associated_data(account, device, seq)`, so an entry cannot be
//! moved to another position, device or account.
//!
//! Snapshot plaintext: [`SnapshotPayload`] = the author's certificate, the
//! certificates of every device it knows, and a full Automerge save of every
//! document.

use kith_protocol::{
    AccountId, DeviceCert, DeviceId, SealedEntry, SealedSnapshot, envelope::Cursor,
};
use serde::{Deserialize, Serialize};

use super::device_identity::DeviceIdentity;

/// Current payload format version.
pub const PAYLOAD_VERSION: u8 = 1;
/// Largest entry plaintext this device produces (bytes); larger bodies are
/// fragmented. Leaves room under the relay's 1 MiB frame for the envelope.
pub const ENTRY_PAYLOAD_BYTES_MAX: usize = 256 * 1024;

/// Decrypted content of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPayload {
    /// Payload format version; at most [`PAYLOAD_VERSION`] is read.
    pub version: u8,
    /// Certificate of the device that wrote the entry; must match the envelope's signer.
    pub cert: DeviceCert,
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
    /// Certificate of the device that made the snapshot.
    pub cert: DeviceCert,
    /// Every device certificate the maker knew, so a new device learns them.
    pub devices: Vec<DeviceCert>,
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
    /// It does not open with the account data key (damaged or forged); drop it.
    #[error("it does not decrypt under the account data key (damaged or forged)")]
    Decrypt,
    /// It opened but the content does not decode (a bug in the writer, or forged).
    #[error("its content does not decode: {0}")]
    Malformed(String),
    /// Written by a newer Kith (the payload version given); update Kith.
    #[error("its payload version {0} is newer than this Kith understands")]
    NewerVersion(u8),
    /// The embedded certificate does not check or is for another device.
    #[error("its certificate is invalid or for another device: {0}")]
    BadCertificate(String),
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

/// Seals `body` as entry `seq` of this device.
pub(crate) fn seal_entry(
    id: &DeviceIdentity,
    seq: u64,
    body: EntryBody,
) -> Result<SealedEntry, crate::identity::CryptoError> {
    let payload = EntryPayload {
        version: PAYLOAD_VERSION,
        cert: id.cert().clone(),
        body,
    };
    let plain = postcard::to_allocvec(&payload)
        .map_err(|_| crate::identity::CryptoError::TooLarge { len_bytes: 0 })?;
    let ad = SealedEntry::associated_data(&id.account_id(), &id.device_id(), seq);
    let (nonce, ct) = id.data_key().seal_detached(&plain, &ad)?;
    Ok(SealedEntry::seal(
        id.device_signing_key(),
        id.account_id(),
        seq,
        nonce,
        ct,
    ))
}

fn check_cert(
    id: &DeviceIdentity,
    cert: &DeviceCert,
    device: &DeviceId,
) -> Result<(), UnsealError> {
    id.check_member(cert)
        .map_err(|e| UnsealError::BadCertificate(e.to_string()))?;
    if cert.device != *device {
        return Err(UnsealError::BadCertificate(
            "certificate names another device than the signer".into(),
        ));
    }
    Ok(())
}

/// Verifies, decrypts and decodes one entry of this account (what the
/// receive path does before it applies or quarantines an entry; public for
/// the `sealed_entry_open` fuzz target).
pub fn open_entry(id: &DeviceIdentity, e: &SealedEntry) -> Result<EntryPayload, UnsealError> {
    if e.account != id.account_id() {
        return Err(UnsealError::WrongAccount { found: e.account });
    }
    e.verify().map_err(|_| UnsealError::BadSignature)?;
    let ad = SealedEntry::associated_data(&e.account, &e.device, e.seq);
    let plain = id
        .data_key()
        .open_detached(&e.nonce, &e.ciphertext, &ad)
        .map_err(|_| UnsealError::Decrypt)?;
    let p: EntryPayload =
        postcard::from_bytes(&plain).map_err(|err| UnsealError::Malformed(err.to_string()))?;
    if p.version > PAYLOAD_VERSION {
        return Err(UnsealError::NewerVersion(p.version));
    }
    check_cert(id, &p.cert, &e.device)?;
    Ok(p)
}

/// Seals a snapshot covering `covers`.
pub(crate) fn seal_snapshot(
    id: &DeviceIdentity,
    covers: Vec<Cursor>,
    payload: &SnapshotPayload,
) -> Result<SealedSnapshot, crate::identity::CryptoError> {
    let plain = postcard::to_allocvec(payload)
        .map_err(|_| crate::identity::CryptoError::TooLarge { len_bytes: 0 })?;
    let ad = SealedSnapshot::associated_data(&id.account_id(), &id.device_id(), &covers);
    let (nonce, ct) = id.data_key().seal_detached(&plain, &ad)?;
    Ok(SealedSnapshot::seal(
        id.device_signing_key(),
        id.account_id(),
        covers,
        nonce,
        ct,
    ))
}

/// Verifies, decrypts and decodes a snapshot of this account.
pub(crate) fn open_snapshot(
    id: &DeviceIdentity,
    s: &SealedSnapshot,
) -> Result<SnapshotPayload, UnsealError> {
    if s.account != id.account_id() {
        return Err(UnsealError::WrongAccount { found: s.account });
    }
    s.verify().map_err(|_| UnsealError::BadSignature)?;
    let ad = SealedSnapshot::associated_data(&s.account, &s.device, &s.covers);
    let plain = id
        .data_key()
        .open_detached(&s.nonce, &s.ciphertext, &ad)
        .map_err(|_| UnsealError::Decrypt)?;
    let p: SnapshotPayload =
        postcard::from_bytes(&plain).map_err(|err| UnsealError::Malformed(err.to_string()))?;
    if p.version > PAYLOAD_VERSION {
        return Err(UnsealError::NewerVersion(p.version));
    }
    check_cert(id, &p.cert, &s.device)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ident() -> DeviceIdentity {
        DeviceIdentity::create_account("t", 1).unwrap()
    }

    #[test]
    fn entry_round_trip_and_tamper() {
        let id = ident();
        let body = EntryBody::Changes {
            doc: "main".into(),
            changes: vec![vec![1, 2, 3]],
        };
        let e = seal_entry(&id, 4, body.clone()).unwrap();
        assert_eq!(open_entry(&id, &e).unwrap().body, body);
        // Moving the entry to another seq breaks the signature.
        let mut t = e.clone();
        t.seq = 5;
        assert_eq!(open_entry(&id, &t), Err(UnsealError::BadSignature));
        // Another account cannot read it.
        let other = ident();
        assert!(matches!(
            open_entry(&other, &e),
            Err(UnsealError::WrongAccount { .. })
        ));
        // A device of another account re-signing under our account id cannot
        // produce a ciphertext that decrypts.
        let forged = SealedEntry::seal(
            other.device_signing_key(),
            id.account_id(),
            4,
            e.nonce,
            e.ciphertext.clone(),
        );
        assert_eq!(open_entry(&id, &forged), Err(UnsealError::Decrypt));
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

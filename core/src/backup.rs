//! Encrypted backup container: a passphrase-protected file holding a payload
//! (the store's documents and, optionally, the keys).
//!
//! Data flow: [`seal`] normalises the passphrase (Unicode NFC, so the same
//! passphrase typed on any device derives the same key), derives a master key
//! with Argon2id (memory-hard; its parameters and a random salt go into the
//! header), expands it with HKDF-SHA256 into an encryption key and a key-check
//! value, and encrypts the payload with XChaCha20-Poly1305 under a random
//! nonce, the whole header being the associated data. [`open`] reverses this
//! and tells the failures apart: not a backup, a newer version, damage
//! (header checksum, truncation, authentication failure), or a wrong
//! passphrase (key-check mismatch). Nothing is returned unless the payload
//! authenticated.
//!
//! File layout (little-endian; see docs/EXPORT.md):
//!
//! | offset | size | field                                          |
//! |-------:|-----:|------------------------------------------------|
//! | 0      | 8    | magic `KITHBAK\0`                              |
//! | 8      | 2    | container version (1)                          |
//! | 10     | 1    | KDF id (1 = Argon2id v1.3)                     |
//! | 11     | 1    | AEAD id (1 = XChaCha20-Poly1305)               |
//! | 12     | 4    | Argon2 memory, KiB                             |
//! | 16     | 4    | Argon2 iterations                              |
//! | 20     | 4    | Argon2 parallelism                             |
//! | 24     | 16   | salt                                           |
//! | 40     | 24   | nonce                                          |
//! | 64     | 16   | key check                                      |
//! | 80     | 8    | ciphertext length, bytes                       |
//! | 88     | 8    | header checksum: SHA-256 of bytes 0..88, first 8 |
//! | 96     | n    | ciphertext (payload + 16-byte tag)             |

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;
use zeroize::{Zeroize, Zeroizing};

use crate::identity::{FileKeyStore, KeyMaterial, KeyStore};
use crate::model::TimestampMs;

/// First bytes of every backup file.
pub const MAGIC: [u8; 8] = *b"KITHBAK\0";
/// The container version this build writes and the newest it reads.
pub const CONTAINER_VERSION: u16 = 1;
const KDF_ARGON2ID: u8 = 1;
const AEAD_XCHACHA20POLY1305: u8 = 1;
/// Size of the header (the associated data).
pub const HEADER_SIZE_BYTES: usize = 96;
const TAG_SIZE_BYTES: usize = 16;
/// Largest backup file accepted (and largest payload sealed).
pub const BACKUP_SIZE_BYTES_MAX: usize = 2 * 1024 * 1024 * 1024;

/// Argon2 bounds accepted from a file, so a crafted header cannot make
/// [`open`] allocate or compute without limit.
pub const MEMORY_KIB_MAX: u32 = 1024 * 1024;
/// Most Argon2 passes accepted from a file.
pub const ITERATIONS_MAX: u32 = 64;
/// Most Argon2 lanes accepted from a file.
pub const PARALLELISM_MAX: u32 = 16;

/// Argon2id cost parameters, stored in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupParams {
    /// Argon2 memory cost in KiB; at most [`MEMORY_KIB_MAX`].
    pub memory_kib: u32,
    /// Argon2 passes; 1..=[`ITERATIONS_MAX`].
    pub iterations: u32,
    /// Argon2 lanes; 1..=[`PARALLELISM_MAX`].
    pub parallelism: u32,
}

impl Default for BackupParams {
    /// 64 MiB, 3 passes, 1 lane: RFC 9106's second recommended profile with one
    /// lane, affordable on a phone and about a second on a laptop.
    fn default() -> Self {
        BackupParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// Why a backup could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The passphrase for a new backup is too easy to guess (strength score
    /// below [`PASSPHRASE_SCORE_MIN`]); choose a longer one.
    #[error(
        "the passphrase is too easy to guess ({reason}): use several uncommon words or a longer phrase"
    )]
    WeakPassphrase {
        /// The estimator's warning and suggestions.
        reason: String,
    },
    /// The file does not start with [`MAGIC`]: the wrong file was chosen.
    #[error("not a Kith backup file")]
    NotABackup,
    /// Written by a newer Kith; update to restore it.
    #[error(
        "this backup is container version {found}, newer than the version {supported} this Kith reads: update Kith to restore it"
    )]
    NewerVersion {
        /// The file's container version.
        found: u16,
        /// [`CONTAINER_VERSION`].
        supported: u16,
    },
    /// The header names a KDF or cipher this build does not know.
    #[error("unknown algorithms in the backup header (kdf {kdf}, aead {aead})")]
    UnknownAlgorithm {
        /// The KDF id in the header.
        kdf: u8,
        /// The AEAD id in the header.
        aead: u8,
    },
    /// The file is truncated or altered; nothing can be restored from it.
    #[error("the backup file is damaged: {what}")]
    Damaged {
        /// Which check failed.
        what: &'static str,
    },
    /// The passphrase does not open this backup; ask again.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// Argon2 parameters outside the accepted bounds (a crafted or damaged header).
    #[error("key derivation parameters out of the accepted range: {reason}")]
    InvalidParams {
        /// Which parameter and its bound.
        reason: String,
    },
    /// A backup needs a non-empty passphrase.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// The file or payload is over [`BACKUP_SIZE_BYTES_MAX`].
    #[error("{size_bytes} bytes is more than the {size_bytes_max} bytes a backup may hold")]
    TooLarge {
        /// The size met.
        size_bytes: usize,
        /// The limit it exceeds.
        size_bytes_max: usize,
    },
    /// No salt or nonce could be drawn; nothing was written.
    #[error("the system random number generator failed: {0}")]
    Random(String),
    /// The decrypted payload does not decode (or the payload would not encode).
    #[error("the backup payload could not be encoded or decoded: {0}")]
    Payload(#[source] postcard::Error),
    /// The payload was written by a newer Kith; update to restore it.
    #[error(
        "the backup payload is version {found}, newer than the version {supported} this Kith reads"
    )]
    NewerPayload {
        /// The payload's version.
        found: u32,
        /// [`PAYLOAD_VERSION`].
        supported: u32,
    },
}

/// What [`read_header`] tells without the passphrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupHeader {
    /// Container version.
    pub version: u16,
    /// The Argon2 cost the passphrase is stretched with.
    pub params: BackupParams,
    /// Size of the encrypted payload, tag included.
    pub ciphertext_size_bytes: u64,
}

impl BackupParams {
    fn check(&self) -> Result<Params, BackupError> {
        let bad = |reason: String| Err(BackupError::InvalidParams { reason });
        if self.parallelism == 0 || self.parallelism > PARALLELISM_MAX {
            return bad(format!(
                "parallelism {} not in 1..={PARALLELISM_MAX}",
                self.parallelism
            ));
        }
        if self.iterations == 0 || self.iterations > ITERATIONS_MAX {
            return bad(format!(
                "iterations {} not in 1..={ITERATIONS_MAX}",
                self.iterations
            ));
        }
        let memory_min = 8 * self.parallelism;
        if self.memory_kib < memory_min || self.memory_kib > MEMORY_KIB_MAX {
            return bad(format!(
                "memory {} KiB not in {memory_min}..={MEMORY_KIB_MAX}",
                self.memory_kib
            ));
        }
        Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32)).map_err(|e| {
            BackupError::InvalidParams {
                reason: e.to_string(),
            }
        })
    }
}

/// The encryption key and the key-check value derived from a passphrase.
struct Keys {
    encryption: Zeroizing<[u8; 32]>,
    check: [u8; 16],
}

fn derive(passphrase: &str, salt: &[u8], params: &BackupParams) -> Result<Keys, BackupError> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.check()?);
    let normalised: Zeroizing<String> = Zeroizing::new(passphrase.nfc().collect());
    let mut master = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(normalised.as_bytes(), salt, master.as_mut())
        .map_err(|e| BackupError::InvalidParams {
            reason: e.to_string(),
        })?;
    let hk = Hkdf::<Sha256>::new(None, master.as_ref());
    let mut encryption = Zeroizing::new([0u8; 32]);
    let mut check = [0u8; 16];
    // Expanding 32 and 16 bytes from SHA-256 HKDF cannot exceed its 8160-byte limit.
    hk.expand(b"kith-backup v1 encryption key", encryption.as_mut())
        .map_err(|_| BackupError::InvalidParams {
            reason: "hkdf".into(),
        })?;
    hk.expand(b"kith-backup v1 key check", &mut check)
        .map_err(|_| BackupError::InvalidParams {
            reason: "hkdf".into(),
        })?;
    Ok(Keys { encryption, check })
}

fn random<const N: usize>() -> Result<[u8; N], BackupError> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| BackupError::Random(e.to_string()))?;
    Ok(b)
}

fn header_checksum(header: &[u8]) -> [u8; 8] {
    let d = Sha256::digest(header);
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// Encrypts `payload` under `passphrase` into a self-describing backup file.
pub fn seal(
    passphrase: &str,
    payload: &[u8],
    params: &BackupParams,
) -> Result<Vec<u8>, BackupError> {
    if passphrase.is_empty() {
        return Err(BackupError::EmptyPassphrase);
    }
    if payload.len() > BACKUP_SIZE_BYTES_MAX - HEADER_SIZE_BYTES - TAG_SIZE_BYTES {
        return Err(BackupError::TooLarge {
            size_bytes: payload.len(),
            size_bytes_max: BACKUP_SIZE_BYTES_MAX - HEADER_SIZE_BYTES - TAG_SIZE_BYTES,
        });
    }
    let salt: [u8; 16] = random()?;
    let nonce: [u8; 24] = random()?;
    let keys = derive(passphrase, &salt, params)?;
    let ciphertext_len = (payload.len() + TAG_SIZE_BYTES) as u64;

    let mut out = Vec::with_capacity(HEADER_SIZE_BYTES + payload.len() + TAG_SIZE_BYTES);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&CONTAINER_VERSION.to_le_bytes());
    out.push(KDF_ARGON2ID);
    out.push(AEAD_XCHACHA20POLY1305);
    out.extend_from_slice(&params.memory_kib.to_le_bytes());
    out.extend_from_slice(&params.iterations.to_le_bytes());
    out.extend_from_slice(&params.parallelism.to_le_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&keys.check);
    out.extend_from_slice(&ciphertext_len.to_le_bytes());
    let checksum = header_checksum(&out);
    out.extend_from_slice(&checksum);
    debug_assert_eq!(out.len(), HEADER_SIZE_BYTES);

    let cipher = XChaCha20Poly1305::new(keys.encryption.as_ref().into());
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: payload,
                aad: &out,
            },
        )
        .map_err(|_| BackupError::TooLarge {
            size_bytes: payload.len(),
            size_bytes_max: BACKUP_SIZE_BYTES_MAX,
        })?;
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Reads and checks the header (no passphrase needed).
pub fn read_header(bytes: &[u8]) -> Result<BackupHeader, BackupError> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(BackupError::NotABackup);
    }
    if bytes.len() > BACKUP_SIZE_BYTES_MAX {
        return Err(BackupError::TooLarge {
            size_bytes: bytes.len(),
            size_bytes_max: BACKUP_SIZE_BYTES_MAX,
        });
    }
    if bytes.len() < HEADER_SIZE_BYTES {
        return Err(BackupError::Damaged {
            what: "the header is truncated",
        });
    }
    let header = &bytes[..HEADER_SIZE_BYTES];
    if header_checksum(&header[..88]) != header[88..96] {
        return Err(BackupError::Damaged {
            what: "the header checksum does not match",
        });
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version > CONTAINER_VERSION {
        return Err(BackupError::NewerVersion {
            found: version,
            supported: CONTAINER_VERSION,
        });
    }
    if version == 0 {
        return Err(BackupError::Damaged {
            what: "container version 0",
        });
    }
    if header[10] != KDF_ARGON2ID || header[11] != AEAD_XCHACHA20POLY1305 {
        return Err(BackupError::UnknownAlgorithm {
            kdf: header[10],
            aead: header[11],
        });
    }
    let params = BackupParams {
        memory_kib: u32_at(header, 12),
        iterations: u32_at(header, 16),
        parallelism: u32_at(header, 20),
    };
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[80..88]);
    let ciphertext_size_bytes = u64::from_le_bytes(len);
    let actual = (bytes.len() - HEADER_SIZE_BYTES) as u64;
    if ciphertext_size_bytes != actual {
        return Err(BackupError::Damaged {
            what: if actual < ciphertext_size_bytes {
                "the file is truncated"
            } else {
                "the file has trailing bytes"
            },
        });
    }
    if ciphertext_size_bytes < TAG_SIZE_BYTES as u64 {
        return Err(BackupError::Damaged {
            what: "the ciphertext is shorter than its tag",
        });
    }
    Ok(BackupHeader {
        version,
        params,
        ciphertext_size_bytes,
    })
}

/// Decrypts a backup file; the payload is returned only if it authenticated.
pub fn open(passphrase: &str, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, BackupError> {
    let header = read_header(bytes)?;
    let aad = &bytes[..HEADER_SIZE_BYTES];
    let keys = derive(passphrase, &aad[24..40], &header.params)?;
    if keys.check != aad[64..80] {
        return Err(BackupError::WrongPassphrase);
    }
    let cipher = XChaCha20Poly1305::new(keys.encryption.as_ref().into());
    let plain = cipher
        .decrypt(
            XNonce::from_slice(&aad[40..64]),
            Payload {
                msg: &bytes[HEADER_SIZE_BYTES..],
                aad,
            },
        )
        .map_err(|_| BackupError::Damaged {
            what: "the encrypted content does not authenticate",
        })?;
    Ok(Zeroizing::new(plain))
}

/// The newest payload version this build reads.
pub const PAYLOAD_VERSION: u32 = 1;

/// One named blob of the store (an Automerge document save, an index snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedBlob {
    /// The document's id in its string form (`main`, a log partition).
    pub name: String,
    /// Its bytes, as stored.
    pub bytes: Vec<u8>,
}

/// What a backup holds: the store's documents and, unless left out, its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPayload {
    /// Payload version; at most [`PAYLOAD_VERSION`] is read.
    pub version: u32,
    /// When the backup was made.
    pub created_ms: TimestampMs,
    /// Every document of the store.
    pub documents: Vec<NamedBlob>,
    /// Serialised key material (account secret, device key); `None` for a
    /// backup made without keys.
    pub keys: Option<Vec<u8>>,
}

impl Drop for BackupPayload {
    fn drop(&mut self) {
        if let Some(k) = self.keys.as_mut() {
            k.zeroize();
        }
    }
}

impl BackupPayload {
    /// A payload of the current version.
    pub fn new(created_ms: TimestampMs, documents: Vec<NamedBlob>, keys: Option<Vec<u8>>) -> Self {
        BackupPayload {
            version: PAYLOAD_VERSION,
            created_ms,
            documents,
            keys,
        }
    }

    /// Encodes the payload (postcard).
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, BackupError> {
        postcard::to_stdvec(self)
            .map(Zeroizing::new)
            .map_err(BackupError::Payload)
    }

    /// Decodes a payload, refusing newer versions.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BackupError> {
        // The version is the first field: read it alone first so a newer
        // layout is refused clearly rather than misread.
        let (version, _) = postcard::take_from_bytes::<u32>(bytes).map_err(BackupError::Payload)?;
        if version > PAYLOAD_VERSION {
            return Err(BackupError::NewerPayload {
                found: version,
                supported: PAYLOAD_VERSION,
            });
        }
        postcard::from_bytes(bytes).map_err(BackupError::Payload)
    }
}

/// Seals a payload: [`BackupPayload::to_bytes`] then [`seal`].
pub fn seal_payload(
    passphrase: &str,
    payload: &BackupPayload,
    params: &BackupParams,
) -> Result<Vec<u8>, BackupError> {
    seal(passphrase, &payload.to_bytes()?, params)
}

/// Opens a backup file and decodes its payload.
/// Decrypts a backup file with `passphrase` and decodes its payload.
pub fn open_payload(passphrase: &str, bytes: &[u8]) -> Result<BackupPayload, BackupError> {
    BackupPayload::from_bytes(&open(passphrase, bytes)?)
}

/// Why a store could not be backed up or restored.
#[derive(Debug, thiserror::Error)]
pub enum StoreBackupError {
    /// The backup file itself failed (wrong passphrase, damaged, newer).
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The store failed while being read or written.
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
    /// Restoring never overwrites: choose a new or empty directory.
    #[error("{path} is not empty: restore into a new or empty directory")]
    TargetNotEmpty {
        /// The directory given.
        path: std::path::PathBuf,
    },
    /// A document in the backup does not load; the restore stopped.
    #[error("the backup holds a document '{name}' that cannot be restored: {reason}")]
    BadDocument {
        /// The document's name.
        name: String,
        /// Why it does not load.
        reason: String,
    },
    /// A file could not be read or written (permissions, full disk).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The backup's key material does not decode or check.
    #[error("the key material in the backup cannot be restored: {reason}")]
    BadKeys {
        /// What is wrong with it.
        reason: String,
    },
    /// The restored keys could not be saved to the key store.
    #[error("the device keys could not be encoded or written: {0}")]
    Keys(#[from] crate::identity::KeyStoreError),
}

/// A restored store and the keys the backup held (if it held any).
#[derive(Debug)]
pub struct RestoredStore {
    /// The restored store, open.
    pub store: crate::store::Store,
    /// The device's key material, decoded and checked; `None` for a backup
    /// made without keys.
    pub keys: Option<KeyMaterial>,
}

/// The payload form of key material: the JSON of [`KeyMaterial`], the same
/// bytes [`crate::identity::FileKeyStore`] keeps in `keys.json`.
fn encode_keys(keys: &KeyMaterial) -> Result<Vec<u8>, StoreBackupError> {
    serde_json::to_vec_pretty(keys).map_err(|e| StoreBackupError::BadKeys {
        reason: e.to_string(),
    })
}

/// Decodes and checks the key material of a payload, before anything is written.
fn decode_keys(bytes: &[u8]) -> Result<KeyMaterial, StoreBackupError> {
    let keys: KeyMaterial =
        serde_json::from_slice(bytes).map_err(|e| StoreBackupError::BadKeys {
            reason: e.to_string(),
        })?;
    if keys.version > KeyMaterial::VERSION {
        return Err(StoreBackupError::BadKeys {
            reason: format!(
                "key format version {} is newer than this Kith understands ({})",
                keys.version,
                KeyMaterial::VERSION
            ),
        });
    }
    Ok(keys)
}

/// Least strength score (0-4, [`crate::strength`], zxcvbn's scale) a new
/// backup's passphrase needs: 3 is "safely unguessable: moderate protection
/// from an offline slow-hash scenario" (about 10^10 guesses), which with
/// Argon2id is years of work.
pub const PASSPHRASE_SCORE_MIN: u8 = 3;

/// Refuses a passphrase for a new backup that an attacker with the file
/// would guess quickly (a dictionary word, a short or common phrase),
/// using the estimator of [`crate::strength`]. Restoring never checks strength.
pub fn check_passphrase_strength(passphrase: &str) -> Result<(), BackupError> {
    let estimate = crate::strength::estimate(passphrase, &["kith", "backup"]);
    if estimate.score >= PASSPHRASE_SCORE_MIN {
        return Ok(());
    }
    let mut reason = estimate.feedback;
    if reason.is_empty() {
        reason.push(format!("strength {} of 4", estimate.score));
    }
    Err(BackupError::WeakPassphrase {
        reason: reason.join(" "),
    })
}

/// Backs up every document of the store (all their changes, so history and
/// concurrent values survive) and, when given, the device's key material
/// (account secret, device key, certificate: who this device is in sync).
pub fn backup_store(
    store: &mut crate::store::Store,
    passphrase: &str,
    params: &BackupParams,
    keys: Option<&KeyMaterial>,
    now_ms: TimestampMs,
) -> Result<Vec<u8>, StoreBackupError> {
    check_passphrase_strength(passphrase)?;
    let keys = keys.map(encode_keys).transpose()?;
    let mut documents = Vec::new();
    for id in store.doc_ids()? {
        let changes = store.changes_since(id, &[])?;
        let bytes = postcard::to_stdvec(&changes).map_err(BackupError::Payload)?;
        documents.push(NamedBlob {
            name: id.to_string(),
            bytes,
        });
    }
    let payload = BackupPayload::new(now_ms, documents, keys);
    Ok(seal_payload(passphrase, &payload, params)?)
}

/// Restores a backup into `dir`, which must not exist or be empty, and
/// returns the key material it held without writing it anywhere (for a
/// caller that keeps keys in a platform keychain).
///
/// The file is decrypted and checked before anything is written; the store is
/// then built in a staging directory next to `dir` (documents applied, index
/// rebuilt from them) and renamed into place, so a failure leaves no partial
/// store behind.
pub fn restore_store(
    dir: &std::path::Path,
    passphrase: &str,
    bytes: &[u8],
) -> Result<RestoredStore, StoreBackupError> {
    restore(dir, passphrase, bytes, false)
}

/// [`restore_store`], and the key material (when the backup holds it) written
/// to `dir/keys.json` through [`FileKeyStore`] (owner-only permissions) in the
/// staging directory, so the store and the keys appear together or not at all.
pub fn restore_store_with_key_file(
    dir: &std::path::Path,
    passphrase: &str,
    bytes: &[u8],
) -> Result<RestoredStore, StoreBackupError> {
    restore(dir, passphrase, bytes, true)
}

fn restore(
    dir: &std::path::Path,
    passphrase: &str,
    bytes: &[u8],
    write_key_file: bool,
) -> Result<RestoredStore, StoreBackupError> {
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| StoreBackupError::Io { path, source }
    };
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io(dir))?;
        if entries.next().is_some() {
            return Err(StoreBackupError::TargetNotEmpty {
                path: dir.to_path_buf(),
            });
        }
    }
    let payload = open_payload(passphrase, bytes)?;
    let mut documents = Vec::with_capacity(payload.documents.len());
    for blob in &payload.documents {
        let bad = |reason: String| StoreBackupError::BadDocument {
            name: blob.name.clone(),
            reason,
        };
        let id: crate::doc::DocId = blob
            .name
            .parse()
            .map_err(|e: crate::doc::InvalidDocId| bad(e.to_string()))?;
        let changes: Vec<Vec<u8>> =
            postcard::from_bytes(&blob.bytes).map_err(|e| bad(e.to_string()))?;
        documents.push((id, changes));
    }
    let keys = payload.keys.as_deref().map(decode_keys).transpose()?;

    let parent = dir.parent().unwrap_or_else(|| std::path::Path::new("."));
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = parent.join(format!(".{name}.restore-{}", ulid::Ulid::new()));
    let build = || -> Result<(), StoreBackupError> {
        let mut store = crate::store::Store::open(&staging)?;
        for (id, changes) in &documents {
            store.apply_remote_changes(*id, changes, |_| Ok(()))?;
        }
        store.reindex()?;
        store.close()?;
        if write_key_file && let Some(k) = &keys {
            FileKeyStore::in_dir(&staging).save(k)?;
        }
        Ok(())
    };
    if let Err(e) = build() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if dir.exists() {
        // Empty (checked above); rename needs it gone or empty.
        std::fs::remove_dir(dir).map_err(io(dir))?;
    }
    if let Err(e) = std::fs::rename(&staging, dir) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(io(dir)(e));
    }
    // Make the rename durable before reporting success.
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    let store = crate::store::Store::open(dir)?;
    Ok(RestoredStore { store, keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: BackupParams = BackupParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn weak_passphrases_are_refused_with_advice_strong_ones_accepted() {
        for weak in ["", "x", "pass", "password1", "kith backup", "phone pass"] {
            let e = check_passphrase_strength(weak).unwrap_err();
            assert!(matches!(e, BackupError::WeakPassphrase { .. }), "{weak}");
            assert!(e.to_string().contains("too easy to guess"), "{e}");
        }
        for strong in ["correct horse battery staple", "a long passphrase"] {
            check_passphrase_strength(strong).unwrap();
        }
    }

    #[test]
    fn round_trip_and_header() {
        let sealed = seal("correct horse", b"hello", &FAST).unwrap();
        assert_eq!(sealed.len(), HEADER_SIZE_BYTES + 5 + TAG_SIZE_BYTES);
        assert_eq!(&sealed[..8], b"KITHBAK\0");
        assert_eq!(read_header(&sealed).unwrap().params, FAST);
        assert_eq!(open("correct horse", &sealed).unwrap().as_slice(), b"hello");
        // Two seals of the same payload differ (fresh salt and nonce).
        assert_ne!(seal("correct horse", b"hello", &FAST).unwrap(), sealed);
    }

    #[test]
    fn passphrase_is_unicode_normalised() {
        let nfc = "caf\u{e9}";
        let nfd = "cafe\u{301}";
        let sealed = seal(nfc, b"x", &FAST).unwrap();
        assert_eq!(open(nfd, &sealed).unwrap().as_slice(), b"x");
    }

    #[test]
    fn errors_are_told_apart() {
        let sealed = seal("pw", b"payload", &FAST).unwrap();
        assert!(matches!(
            open("other", &sealed),
            Err(BackupError::WrongPassphrase)
        ));
        assert!(matches!(open("pw", b"hello"), Err(BackupError::NotABackup)));
        assert!(matches!(
            open("pw", &sealed[..50]),
            Err(BackupError::Damaged { .. })
        ));
        assert!(matches!(
            open("pw", &sealed[..sealed.len() - 1]),
            Err(BackupError::Damaged { .. })
        ));
        let mut body = sealed.clone();
        let last = body.len() - 1;
        body[last] ^= 1;
        assert!(matches!(
            open("pw", &body),
            Err(BackupError::Damaged { .. })
        ));
        let mut head = sealed.clone();
        head[30] ^= 1; // salt
        assert!(matches!(
            open("pw", &head),
            Err(BackupError::Damaged { .. })
        ));
        assert!(matches!(
            seal("", b"x", &FAST),
            Err(BackupError::EmptyPassphrase)
        ));
    }

    #[test]
    fn newer_versions_and_hostile_params_are_refused() {
        let sealed = seal("pw", b"payload", &FAST).unwrap();
        let rewrite = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = sealed.clone();
            f(&mut b);
            let sum = header_checksum(&b[..88]);
            b[88..96].copy_from_slice(&sum);
            b
        };
        let newer = rewrite(&|b| b[8] = 2);
        assert!(matches!(
            open("pw", &newer),
            Err(BackupError::NewerVersion {
                found: 2,
                supported: 1
            })
        ));
        let huge = rewrite(&|b| b[12..16].copy_from_slice(&u32::MAX.to_le_bytes()));
        assert!(matches!(
            open("pw", &huge),
            Err(BackupError::InvalidParams { .. })
        ));
        let algo = rewrite(&|b| b[11] = 9);
        assert!(matches!(
            open("pw", &algo),
            Err(BackupError::UnknownAlgorithm { kdf: 1, aead: 9 })
        ));
    }

    #[test]
    fn payload_round_trip_and_newer_payload_refused() {
        let p = BackupPayload::new(
            42,
            vec![NamedBlob {
                name: "network".into(),
                bytes: vec![1, 2, 3],
            }],
            Some(vec![9; 32]),
        );
        let sealed = seal_payload("pw", &p, &FAST).unwrap();
        assert_eq!(open_payload("pw", &sealed).unwrap(), p);
        let mut newer = BackupPayload::new(0, vec![], None);
        newer.version = 2;
        let bytes = newer.to_bytes().unwrap();
        assert!(matches!(
            BackupPayload::from_bytes(&bytes),
            Err(BackupError::NewerPayload {
                found: 2,
                supported: 1
            })
        ));
    }
}

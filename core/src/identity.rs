//! Account and device identity, and the end-to-end encryption of what leaves a
//! device.
//!
//! No device holds an account secret (key file version 2; docs/SECURITY.md).
//! An account is named by the public half of its root key, which only the
//! recovery code derives (`sync::authority`). Each device has its own random
//! ed25519 key (signs entries, snapshots, membership ops, relay and peer
//! authentication) and its own X25519 key (receives the data keys of the
//! membership epochs, `sync::epochs`). [`DataKey`] is the XChaCha20-Poly1305
//! key type of those epochs.
//!
//! Key material is persisted through the small [`KeyStore`] trait so the phone
//! bindings can plug in the platform keychain; [`FileKeyStore`] is the default,
//! one file with owner-only permissions, replaced atomically.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hkdf::Hkdf;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of every secret and public key handled here.
pub const KEY_LEN_BYTES: usize = 32;
/// XChaCha20-Poly1305 nonce length.
pub const NONCE_LEN_BYTES: usize = 24;
/// Poly1305 tag length.
pub const TAG_LEN_BYTES: usize = 16;

const HKDF_SALT: &[u8] = b"kith-account-v1";

/// Errors from sealing, opening and key handling.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Sealed bytes shorter than a nonce plus a tag: damaged or not sealed data.
    #[error("sealed data is too short ({len_bytes} bytes) to hold a nonce and a tag")]
    Truncated {
        /// Length of the bytes given.
        len_bytes: usize,
    },
    /// The bytes were sealed under another key or context, or altered; drop them.
    #[error("sealed data failed authentication: wrong key, wrong context, or damaged bytes")]
    Authentication,
    /// The cipher refused to seal this much.
    #[error("plaintext of {len_bytes} bytes is too large to seal")]
    TooLarge {
        /// Length of the plaintext given.
        len_bytes: usize,
    },
    /// A signature that is not by the claimed key over this message.
    #[error("signature does not verify")]
    BadSignature,
}

fn expand(hk: &Hkdf<Sha256>, label: &[u8], out: &mut [u8; KEY_LEN_BYTES]) {
    // HKDF-SHA256 only refuses outputs longer than 255 * 32 bytes; 32 is always
    // accepted, so the result carries no information here.
    let _always_ok = hk.expand(label, out);
}

/// A symmetric key for XChaCha20-Poly1305.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct DataKey([u8; KEY_LEN_BYTES]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut b = [0u8; KEY_LEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut b);
        DataKey(b)
    }

    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN_BYTES]) -> Self {
        DataKey(bytes)
    }

    /// The raw key (to seal it to a device or wrap it under a newer key).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN_BYTES] {
        &self.0
    }

    /// Derives a key from other high-entropy input keying material (e.g. a
    /// pairing token) under a context label.
    pub fn derive_from(ikm: &[u8], label: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), ikm);
        let mut out = [0u8; KEY_LEN_BYTES];
        expand(&hk, label, &mut out);
        DataKey(out)
    }

    /// Encrypts `plaintext` bound to `associated`: output is nonce || ciphertext || tag.
    pub fn seal(&self, plaintext: &[u8], associated: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let mut nonce = [0u8; NONCE_LEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(NONCE_LEN_BYTES + plaintext.len() + TAG_LEN_BYTES);
        out.extend_from_slice(&nonce);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: associated,
                },
            )
            .map_err(|_| CryptoError::TooLarge {
                len_bytes: plaintext.len(),
            })?;
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Like [`DataKey::seal`] but returns the random nonce and the ciphertext
    /// (with tag) separately, as the relay envelopes carry them in two fields.
    pub fn seal_detached(
        &self,
        plaintext: &[u8],
        associated: &[u8],
    ) -> Result<([u8; NONCE_LEN_BYTES], Vec<u8>), CryptoError> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let mut nonce = [0u8; NONCE_LEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: associated,
                },
            )
            .map_err(|_| CryptoError::TooLarge {
                len_bytes: plaintext.len(),
            })?;
        Ok((nonce, ct))
    }

    /// Decrypts what [`DataKey::seal_detached`] produced.
    pub fn open_detached(
        &self,
        nonce: &[u8; NONCE_LEN_BYTES],
        ciphertext: &[u8],
        associated: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if ciphertext.len() < TAG_LEN_BYTES {
            return Err(CryptoError::Truncated {
                len_bytes: ciphertext.len(),
            });
        }
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: associated,
                },
            )
            .map_err(|_| CryptoError::Authentication)
    }

    /// Decrypts what [`DataKey::seal`] produced with the same associated data.
    pub fn open(&self, sealed: &[u8], associated: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN_BYTES + TAG_LEN_BYTES {
            return Err(CryptoError::Truncated {
                len_bytes: sealed.len(),
            });
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN_BYTES);
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: associated,
                },
            )
            .map_err(|_| CryptoError::Authentication)
    }
}

/// This device's own signing key.
#[derive(Clone)]
pub struct DeviceKey(SigningKey);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKey({})", hex(self.0.verifying_key().as_bytes()))
    }
}

impl DeviceKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        DeviceKey(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// The key from its 32-byte ed25519 seed.
    pub fn from_bytes(bytes: [u8; KEY_LEN_BYTES]) -> Self {
        DeviceKey(SigningKey::from_bytes(&bytes))
    }

    /// The 32-byte seed; secret.
    pub fn to_bytes(&self) -> [u8; KEY_LEN_BYTES] {
        self.0.to_bytes()
    }

    /// The ed25519 signing key (for TLS certificates and protocol signatures).
    pub fn signing_key(&self) -> &SigningKey {
        &self.0
    }

    /// The device id: this key's public half.
    pub fn device_id(&self) -> VerifyingKey {
        self.0.verifying_key()
    }

    /// Signs `message` with this device's key.
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.0.sign(message)
    }
}

/// Verifies an ed25519 signature by `key` over `message`.
pub fn verify(
    key: &VerifyingKey,
    message: &[u8],
    signature: &Signature,
) -> Result<(), CryptoError> {
    key.verify(message, signature)
        .map_err(|_| CryptoError::BadSignature)
}

/// Lower-case hex of bytes (ids in logs and file names).
pub fn hex(bytes: &[u8]) -> String {
    kith_protocol::text::hex_lower(bytes)
}

/// Everything a device keeps secret (key file version 2): its ed25519 key,
/// its X25519 key, its name and, once it created or joined one, the account
/// it belongs to. No account secret: version 1 held one and is refused.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct KeyMaterial {
    /// Format version of this record ([`KeyMaterial::VERSION`]).
    pub version: u32,
    /// The account id (public) once the device created or joined an account.
    pub account: Option<[u8; KEY_LEN_BYTES]>,
    /// The device key's 32-byte seed.
    pub device_key: [u8; KEY_LEN_BYTES],
    /// The X25519 secret epoch keys are sealed to.
    pub seal_key: [u8; KEY_LEN_BYTES],
    /// Human name of this device ("Ana's phone"); travels only in sealed data.
    pub device_name: String,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("version", &self.version)
            .field("has_account", &self.account.is_some())
            .field("device_name", &self.device_name)
            .finish_non_exhaustive()
    }
}

/// Why stored key material is not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyDecodeError {
    /// Not key material of any version.
    #[error("it is damaged: {0}")]
    Damaged(String),
    /// Written by a newer Kith.
    #[error("it has format version {found}, newer than this Kith understands ({supported})", supported = KeyMaterial::VERSION)]
    TooNew {
        /// Its version.
        found: u32,
    },
    /// Version 1 held the account secret every device shared; it is not read
    /// (no release shipped it): create or join the account again.
    #[error(
        "it has format version {found}, which held the shared account secret and is no longer read (this Kith reads version {supported}): move it away, then `kith init` or `kith join` again",
        supported = KeyMaterial::VERSION
    )]
    Retired {
        /// Its version.
        found: u32,
    },
}

impl KeyMaterial {
    /// The format version this build writes and the only one it reads.
    pub const VERSION: u32 = 2;

    /// Fresh keys for a device named `name` that has no account yet.
    pub fn generate(name: &str) -> Self {
        let mut device_key = [0u8; KEY_LEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut device_key);
        let mut seal_key = [0u8; KEY_LEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut seal_key);
        Self {
            version: Self::VERSION,
            account: None,
            device_key,
            seal_key,
            device_name: name.to_owned(),
        }
    }

    /// Decodes the JSON form, refusing other versions by name.
    pub fn from_json(bytes: &[u8]) -> Result<Self, KeyDecodeError> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version =
            serde_json::from_slice(bytes).map_err(|e| KeyDecodeError::Damaged(e.to_string()))?;
        if v.version > Self::VERSION {
            return Err(KeyDecodeError::TooNew { found: v.version });
        }
        if v.version < Self::VERSION {
            return Err(KeyDecodeError::Retired { found: v.version });
        }
        serde_json::from_slice(bytes).map_err(|e| KeyDecodeError::Damaged(e.to_string()))
    }

    /// The device key.
    pub fn device_key(&self) -> DeviceKey {
        DeviceKey::from_bytes(self.device_key)
    }
}

/// Errors from a [`KeyStore`].
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// The key file could not be read or written (permissions, full disk).
    #[error("key file {path} could not be read or written")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key file is not read: damaged, too new, or of the retired
    /// version 1 (the case says which and what to do).
    #[error("key file {path}: {reason}")]
    Damaged {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        reason: KeyDecodeError,
    },
    /// The key file is readable or writable by group or others; it is not
    /// used. Check who could have copied it, then `chmod 600` it.
    #[error(
        "key file {path} has mode {mode:o}, open to other users: check who could have read it, then run `chmod 600` on it"
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The platform keychain (bindings) failed; its message is kept.
    #[error("platform keychain error: {0}")]
    Platform(String),
}

/// Where a device keeps its key material. The file store is the default; the
/// phone bindings implement this over the platform keychain.
pub trait KeyStore: Send + Sync {
    /// The stored key material, or `None` when this device has none yet.
    fn load(&self) -> Result<Option<KeyMaterial>, KeyStoreError>;
    /// Replaces the stored key material durably.
    fn save(&self, keys: &KeyMaterial) -> Result<(), KeyStoreError>;
}

/// Key material in one JSON file with owner-only permissions (0600 on unix),
/// written to a temporary file, synced, then renamed over the old one.
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    path: PathBuf,
}

impl FileKeyStore {
    /// The conventional file name inside a data directory.
    pub const FILE_NAME: &'static str = "keys.json";

    /// A key store in the file at `path`; nothing is read or created yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileKeyStore { path: path.into() }
    }

    /// The key store at [`Self::FILE_NAME`] inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        FileKeyStore::new(dir.join(Self::FILE_NAME))
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> KeyStoreError {
        KeyStoreError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl KeyStore for FileKeyStore {
    fn load(&self) -> Result<Option<KeyMaterial>, KeyStoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        // The secret must not be readable by anyone else: refuse rather than
        // keep using a key another user may have copied (as the relay does).
        let open = crate::private_fs::open_to_others(&self.path).map_err(|e| self.io(e))?;
        if open != 0 {
            return Err(KeyStoreError::Permissions {
                path: self.path.clone(),
                mode: crate::private_fs::mode_of(&self.path).map_err(|e| self.io(e))?,
            });
        }
        let keys = KeyMaterial::from_json(&bytes).map_err(|reason| KeyStoreError::Damaged {
            path: self.path.clone(),
            reason,
        })?;
        Ok(Some(keys))
    }

    fn save(&self, keys: &KeyMaterial) -> Result<(), KeyStoreError> {
        let json = serde_json::to_vec_pretty(keys).map_err(|e| KeyStoreError::Damaged {
            path: self.path.clone(),
            reason: KeyDecodeError::Damaged(e.to_string()),
        })?;
        // A fresh name opened exclusively without following links: a stale
        // or planted `keys.json.*.tmp` (another user's file, a symlink to
        // somewhere else) can never receive the secret.
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| Self::FILE_NAME.to_owned());
        let tmp = self
            .path
            .with_file_name(format!(".{name}.{}.tmp", ulid::Ulid::new()));
        let mut f = crate::private_fs::create_new_private(&tmp).map_err(|e| self.io(e))?;
        let written = f.write_all(&json).and_then(|()| f.sync_all());
        drop(f);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(self.io(e));
        }
        if let Err(e) = fs::rename(&tmp, &self.path) {
            let _ = fs::remove_file(&tmp);
            return Err(self.io(e));
        }
        if let Some(dir) = self.path.parent() {
            // Persist the rename itself; best effort where directories cannot be opened.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let k = DataKey::generate();
        let sealed = k.seal(b"meeting with Ana", b"ctx-1").unwrap();
        assert_eq!(k.open(&sealed, b"ctx-1").unwrap(), b"meeting with Ana");
        assert!(matches!(
            k.open(&sealed, b"ctx-2"),
            Err(CryptoError::Authentication)
        ));
        let other = DataKey::generate();
        assert!(matches!(
            other.open(&sealed, b"ctx-1"),
            Err(CryptoError::Authentication)
        ));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            k.open(&flipped, b"ctx-1"),
            Err(CryptoError::Authentication)
        ));
        assert!(matches!(
            k.open(&sealed[..10], b"ctx-1"),
            Err(CryptoError::Truncated { .. })
        ));
    }

    #[test]
    fn device_signatures_verify() {
        let d = DeviceKey::generate();
        let sig = d.sign(b"hello");
        verify(&d.device_id(), b"hello", &sig).unwrap();
        assert!(verify(&d.device_id(), b"hellO", &sig).is_err());
    }

    #[test]
    fn file_key_store_round_trip_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::in_dir(dir.path());
        assert!(store.load().unwrap().is_none());
        let mut keys = KeyMaterial::generate("laptop");
        keys.account = Some([1u8; 32]);
        store.save(&keys).unwrap();
        let back = store.load().unwrap().unwrap();
        assert_eq!(back.account, keys.account);
        assert_eq!(back.device_key, keys.device_key);
        assert_eq!(back.seal_key, keys.seal_key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::write(store.path(), b"{not json").unwrap();
        assert!(matches!(store.load(), Err(KeyStoreError::Damaged { .. })));
    }

    fn sample_keys() -> KeyMaterial {
        let mut keys = KeyMaterial::generate("phone");
        keys.account = Some([3u8; 32]);
        keys
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_0600_under_umask_022_and_never_written_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::in_dir(dir.path());
        // What an attacker with write access to the directory could plant:
        // a world-readable stale tmp file and symlinks at the names an
        // older Kith used and at the key file itself.
        let elsewhere = dir.path().join("attacker-owned");
        fs::write(&elsewhere, b"").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("keys.json.tmp")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, store.path()).unwrap();
        let keys = sample_keys();
        crate::private_fs::with_umask(0o022, || store.save(&keys)).unwrap();
        assert_eq!(
            fs::read(&elsewhere).unwrap(),
            b"",
            "secret written through a link"
        );
        let meta = fs::symlink_metadata(store.path()).unwrap();
        assert!(
            meta.file_type().is_file(),
            "the link was replaced by a file"
        );
        assert_eq!(crate::private_fs::mode_of(store.path()).unwrap(), 0o600);
        assert_eq!(store.load().unwrap().unwrap().device_key, keys.device_key);
        // No temporary file is left behind.
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp") && n != "keys.json.tmp")
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::in_dir(dir.path());
        store.save(&sample_keys()).unwrap();
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();
        let e = store.load().unwrap_err();
        assert!(
            matches!(e, KeyStoreError::Permissions { mode: 0o644, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o600)).unwrap();
        assert!(store.load().unwrap().is_some());
    }
}

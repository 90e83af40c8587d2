//! The relay identity key: 32 random bytes (the ed25519 seed) in a file
//! readable only by its owner, created on first start. The public half is
//! the key clients pin (`kith://<key>@host:port`).

use std::io::Write;
use std::path::Path;

use ed25519_dalek::SigningKey;
use rand::RngCore;

/// Why the identity key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing the key file failed.
    #[error("relay key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a 32-byte key.
    #[error("relay key file {path} is not a 32-byte key ({size_bytes} bytes)")]
    BadKey {
        /// The file.
        path: String,
        /// Its size.
        size_bytes: usize,
    },
    /// Other users can read the key file.
    #[error("relay key file {path} is readable by others (mode {mode:o}); run chmod 600")]
    Permissions {
        /// The file.
        path: String,
        /// Its mode.
        mode: u32,
    },
}

/// Loads the key at `path`, or creates it (mode 0600) if it does not exist.
/// Returns the key and whether it was created.
pub fn load_or_create(path: &Path) -> Result<(SigningKey, bool), IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(IdentityError::Permissions {
                        path: path.display().to_string(),
                        mode,
                    });
                }
            }
            let seed =
                <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| IdentityError::BadKey {
                    path: path.display().to_string(),
                    size_bytes: bytes.len(),
                })?;
            Ok((SigningKey::from_bytes(&seed), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(path).map_err(io)?;
            f.write_all(&seed).map_err(io)?;
            f.sync_all().map_err(io)?;
            Ok((SigningKey::from_bytes(&seed), true))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_loads_the_same_key_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("relay.key");
        let (k1, created) = load_or_create(&p).unwrap();
        assert!(created);
        let (k2, created) = load_or_create(&p).unwrap();
        assert!(!created);
        assert_eq!(k1.to_bytes(), k2.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                load_or_create(&p),
                Err(IdentityError::Permissions { .. })
            ));
        }
    }

    #[test]
    fn refuses_a_bad_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("relay.key");
        std::fs::write(&p, b"short").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(matches!(
            load_or_create(&p),
            Err(IdentityError::BadKey { .. })
        ));
    }
}

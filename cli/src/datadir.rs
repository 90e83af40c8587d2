//! Where the store lives: `--data DIR`, else `KITH_HOME`, else the platform
//! data directory (`dirs::data_dir()/kith`, e.g. ~/.local/share/kith).

use std::path::{Path, PathBuf};

/// Why no data directory could be chosen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DataDirError {
    #[error(
        "no data directory: pass --data DIR or set KITH_HOME (the platform has no data directory)"
    )]
    NoPlatformDir,
    #[error("data directory {0} exists and is not a directory")]
    NotADirectory(PathBuf),
}

/// Picks the data directory from the flag, the environment value and the platform default.
pub(crate) fn resolve(
    flag: Option<&Path>,
    kith_home: Option<&str>,
    platform: Option<PathBuf>,
) -> Result<PathBuf, DataDirError> {
    let dir = if let Some(dir) = flag {
        dir.to_path_buf()
    } else if let Some(home) = kith_home.filter(|h| !h.trim().is_empty()) {
        PathBuf::from(home)
    } else {
        platform
            .map(|p| p.join("kith"))
            .ok_or(DataDirError::NoPlatformDir)?
    };
    if dir.exists() && !dir.is_dir() {
        return Err(DataDirError::NotADirectory(dir));
    }
    Ok(dir)
}

/// [`resolve`] with the real environment and platform.
pub(crate) fn from_env(flag: Option<&Path>) -> Result<PathBuf, DataDirError> {
    let home = std::env::var("KITH_HOME").ok();
    resolve(flag, home.as_deref(), dirs::data_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_env_beats_platform() {
        let p = Some(PathBuf::from("/plat"));
        assert_eq!(
            resolve(Some(Path::new("/flag")), Some("/env"), p.clone()).unwrap(),
            PathBuf::from("/flag")
        );
        assert_eq!(
            resolve(None, Some("/env"), p.clone()).unwrap(),
            PathBuf::from("/env")
        );
        assert_eq!(
            resolve(None, Some(" "), p.clone()).unwrap(),
            PathBuf::from("/plat/kith")
        );
        assert_eq!(resolve(None, None, p).unwrap(), PathBuf::from("/plat/kith"));
        assert!(matches!(
            resolve(None, None, None),
            Err(DataDirError::NoPlatformDir)
        ));
    }

    #[test]
    fn a_file_is_not_a_data_directory() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(matches!(
            resolve(Some(f.path()), None, None),
            Err(DataDirError::NotADirectory(_))
        ));
    }
}

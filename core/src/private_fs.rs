//! Owner-only files and directories, whatever the process umask.
//!
//! A store holds plaintext notes and a key file holds the account secret, so
//! nothing Kith writes may be readable by other users of the machine. The
//! umask is not ours to trust (022 is the common default and gives 0644
//! files), so every data directory is created (and tightened) to 0700 and
//! every store, key, backup and export file is created 0600 here. New files
//! are created exclusively (`O_EXCL`) and without following a link
//! (`O_NOFOLLOW`): a stale or planted temporary file, or a symlink pointing
//! somewhere else, makes the write fail or pick a fresh name instead of
//! writing a secret through it. On non-unix platforms these are plain
//! creations (the platform's ACLs apply).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Mode of every data directory Kith creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every store, key, backup and export file Kith creates.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents with mode 0700, and tightens `dir`
/// itself to 0700 if it already existed with group or other access (a data
/// directory made by an older Kith under umask 022).
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(DIR_MODE);
    }
    b.create(dir)?;
    restrict(dir, DIR_MODE)
}

/// Sets `path` (file or directory) to `mode` when it grants more than that;
/// a path already as strict or stricter is left alone.
pub fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let found = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if found & !mode != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Creates a new file at `path` for writing: mode 0600, failing with
/// `AlreadyExists` if anything (a file, a dangling or live symlink) is
/// already there, never following a link.
pub fn create_new_private(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE).custom_flags(libc::O_NOFOLLOW);
    }
    let f = opts.open(path)?;
    // The mode given to open() is filtered by the umask; a umask can only
    // remove bits, so the file is at most 0600, but set it exactly so the
    // owner can always read back what it wrote.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(f)
}

/// The permission bits of `path` that let group or others in (0 when none,
/// and always 0 on non-unix platforms).
pub fn open_to_others(path: &Path) -> io::Result<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(std::fs::metadata(path)?.permissions().mode() & 0o077)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(0)
    }
}

/// The permission bits of `path` (0 on non-unix platforms).
pub fn mode_of(path: &Path) -> io::Result<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(0)
    }
}

/// Runs `f` with the process umask set to `mask`, restoring it after (tests).
/// The umask is process-wide; the code under test sets modes explicitly, so
/// a parallel test that sees this mask instead of its own is unaffected.
#[cfg(all(test, unix))]
#[allow(unsafe_code)]
pub(crate) fn with_umask<T>(mask: libc::mode_t, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask only swaps the process file-creation mask.
    let old = unsafe { libc::umask(mask) };
    let r = f();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    r
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn directories_and_files_are_owner_only_under_umask_022() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/data");
        let file = dir.join("x");
        with_umask(0o022, || {
            ensure_private_dir(&dir).unwrap();
            create_new_private(&file).unwrap();
        });
        assert_eq!(mode_of(&dir).unwrap(), 0o700);
        assert_eq!(mode_of(&tmp.path().join("a")).unwrap(), 0o700);
        assert_eq!(mode_of(&file).unwrap(), 0o600);
    }

    #[test]
    fn an_existing_open_directory_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode_of(&dir).unwrap(), 0o700);
    }

    #[test]
    fn a_planted_file_or_symlink_is_never_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("elsewhere");
        std::fs::write(&target, b"theirs").unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = create_new_private(&link).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        let dangling = tmp.path().join("dangling");
        std::os::unix::fs::symlink(tmp.path().join("nothing"), &dangling).unwrap();
        assert!(create_new_private(&dangling).is_err());
        assert!(!tmp.path().join("nothing").exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
    }
}

//! Owner-only files and directories for the relay, whatever the umask.
//!
//! `relay.redb` holds every account's sealed logs, device certificates and
//! registration token hashes, and `relay.key` the relay's identity: the data
//! directory is created (and tightened) to 0700 and the files created 0600,
//! exclusively and without following a link. (kith-core has the same helper
//! for devices; the relay depends on no kith crate but kith-protocol.)

use std::io;
use std::path::Path;

/// Mode of the relay's data directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the relay's database and key files.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode 0700 and tightens `dir`
/// itself to 0700 if it grants group or other access.
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

/// Sets `path` to `mode` when it grants more than that.
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

/// Makes sure a file exists at `path` with mode 0600 before a library that
/// creates files with the umask's mode (redb) opens it: an absent file is
/// created empty, exclusively, not through a link; an existing one is
/// tightened.
pub fn prepare_private_file(path: &Path) -> io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE).custom_flags(libc::O_NOFOLLOW);
    }
    match opts.open(path) {
        Ok(_) => restrict(path, FILE_MODE),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => restrict(path, FILE_MODE),
        Err(e) => Err(e),
    }
}

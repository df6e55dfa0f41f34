//! Files and folders only this user may read: secrets (keys, tokens, a generated password) and
//! the data folders that hold them, the databases included.

use std::{io::Write, path::Path};

/// Writes a new file readable and writable by this user only (0600 on Unix), and flushes it to
/// disk. Fails if the file exists: a secret is never overwritten.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Creates `dir` and its missing parents for this user only (0700 on Unix). A folder that
/// already exists keeps its permissions (the administrator may have chosen them).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Opens (creating it) the lock file `path` and holds its exclusive lock while the returned file
/// stays open; `None` when another process (or another open of it) holds it. The lock goes with
/// the process, so one that was killed leaves nothing to clean up.
pub fn lock(path: &Path) -> std::io::Result<Option<std::fs::File>> {
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_data_folders_are_this_users_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_private_dir(&dir).unwrap();
        create_private_dir(&dir).unwrap();
        let file = dir.join("secret");
        write_private(&file, b"s3cret").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"s3cret");
        assert!(write_private(&file, b"other").is_err(), "a secret is never overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&file), 0o600);
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&tmp.path().join("a")), 0o700);
        }
    }

    #[test]
    fn a_lock_is_held_once_until_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.lock");
        let held = lock(&path).unwrap().expect("free");
        assert!(lock(&path).unwrap().is_none(), "held already");
        drop(held);
        assert!(lock(&path).unwrap().is_some(), "free again");
    }
}

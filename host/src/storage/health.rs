//! Whether the store can write, and how it recovers when it could not.
//!
//! Two guards keep a full disk from taking the broker down:
//!
//! - **The reserve.** Before each write the writer asks the filesystem how much
//!   space is free (`statvfs`, about a microsecond next to a commit's fsync). A write
//!   that would leave less than `[storage] min_free_bytes` is refused with
//!   [`StorageError::Full`] before anything is written, so the database never meets
//!   the end of the disk while the broker itself fills it. Deletes and retention are
//!   never refused: they are how space comes back.
//! - **Reopening.** When a write fails anyway (another process took the last bytes,
//!   an I/O error), redb refuses every later call, reads included, until the
//!   database is opened again. [`Slot::reopen`] does that in place: it waits for the
//!   calls in progress, drops the handle and opens the file again, which replays the
//!   database to its last commit. Until that succeeds (the file may need space to be
//!   repaired) calls answer [`StorageError::Unavailable`], and the writer tries
//!   again every [`RETRY_REOPEN`].

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use redb::Database;

use super::StorageError;

/// How often a store whose database could not be reopened tries again.
pub const RETRY_REOPEN: Duration = Duration::from_secs(1);

/// Bytes free for unprivileged writers on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stat` is valid for a write of
    // one `statvfs`, which the call fills in full when it returns 0.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so the struct is initialised.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// True when `e` means the filesystem (or the user's quota on it) is full.
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
}

/// How an I/O failure inside the database reads, if `e` is one: `Some(true)` when
/// the disk was full, `Some(false)` for any other I/O error (or a handle poisoned by
/// an earlier one), `None` for errors that are not I/O.
pub fn io_failure(e: &StorageError) -> Option<bool> {
    match e {
        StorageError::Database(inner) => match inner.as_ref() {
            redb::Error::Io(io) => Some(is_out_of_space(io)),
            redb::Error::PreviousIo => Some(false),
            _ => None,
        },
        StorageError::Full { .. } => Some(true),
        StorageError::Unavailable(_) => Some(false),
        _ => None,
    }
}

/// The database handle, reopened in place after an I/O failure. Every call holds
/// a read guard for as long as its transaction lives, so a reopen (which takes the
/// write lock) never runs beside one: a live transaction keeps the file locked.
pub(crate) struct Slot {
    db: RwLock<Option<Database>>,
    file: PathBuf,
    cache_bytes: Option<usize>,
    /// Why the database is closed, while it is.
    fault: Mutex<Option<String>>,
}

/// A read guard on the open database.
pub(crate) struct DbGuard<'a>(RwLockReadGuard<'a, Option<Database>>);

impl std::ops::Deref for DbGuard<'_> {
    type Target = Database;

    fn deref(&self) -> &Database {
        // `Slot::get` hands out guards only while the database is open.
        self.0.as_ref().expect("the database is open")
    }
}

impl Slot {
    /// Opens the database file `file` (creating it when missing).
    pub(crate) fn open(file: PathBuf, cache_bytes: Option<usize>) -> Result<Slot, StorageError> {
        let db = open_database(&file, cache_bytes)?;
        Ok(Slot {
            db: RwLock::new(Some(db)),
            file,
            cache_bytes,
            fault: Mutex::new(None),
        })
    }

    /// The open database, or [`StorageError::Unavailable`] while it is closed.
    pub(crate) fn get(&self) -> Result<DbGuard<'_>, StorageError> {
        let guard = self.db.read().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(StorageError::Unavailable(
                self.fault()
                    .unwrap_or_else(|| "the database is being reopened".to_string()),
            ));
        }
        Ok(DbGuard(guard))
    }

    /// Why the database is closed, while it is.
    pub(crate) fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// True while the database is closed after a failure.
    pub(crate) fn is_closed(&self) -> bool {
        self.db.read().unwrap_or_else(|e| e.into_inner()).is_none()
    }

    /// Closes the database after `why` and opens it again. On failure it stays
    /// closed (calls answer `Unavailable`) and the error is returned; call again.
    pub(crate) fn reopen(&self, why: &str) -> Result<(), StorageError> {
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        if db.is_some() {
            *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.to_string());
        }
        // Dropped first: the file lock is released only with the old handle.
        drop(db.take());
        match open_database(&self.file, self.cache_bytes) {
            Ok(reopened) => {
                *db = Some(reopened);
                *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = None;
                tracing::warn!(target: "rustmq::storage", path = %self.file.display(), after = why, "database reopened after a write failure");
                Ok(())
            }
            Err(e) => {
                tracing::error!(target: "rustmq::storage", path = %self.file.display(), error = %e, "database could not be reopened yet");
                *self.fault.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("{why}; reopening the database failed: {e}"));
                Err(e)
            }
        }
    }
}

fn open_database(file: &Path, cache_bytes: Option<usize>) -> Result<Database, StorageError> {
    let mut builder = redb::Builder::new();
    if let Some(bytes) = cache_bytes {
        builder.set_cache_size(bytes);
    }
    builder.create(file).map_err(|e| StorageError::Open {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(e: io::Error) -> StorageError {
        StorageError::Database(Box::new(redb::Error::Io(e)))
    }

    #[test]
    fn a_full_disk_or_quota_reads_as_out_of_space_and_other_io_failures_do_not() {
        assert_eq!(
            io_failure(&io(io::Error::from_raw_os_error(libc::ENOSPC))),
            Some(true)
        );
        assert_eq!(
            io_failure(&io(io::Error::from_raw_os_error(libc::EDQUOT))),
            Some(true)
        );
        assert_eq!(
            io_failure(&io(io::Error::from_raw_os_error(libc::EIO))),
            Some(false)
        );
        assert_eq!(
            io_failure(&StorageError::Database(Box::new(redb::Error::PreviousIo))),
            Some(false)
        );
        assert_eq!(io_failure(&StorageError::TopicNotFound("t".into())), None);
    }

    #[test]
    fn free_space_is_read_from_the_filesystem_and_a_missing_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }
}

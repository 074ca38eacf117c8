//! Content-addressed blob files: one file per distinct module body, named by its
//! blake3 hash, written atomically and re-checked on every read.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A blake3 content hash, shown as `blake3:<hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        ContentHash(*blake3::hash(bytes).as_bytes())
    }

    /// Lower-case hex, without the `blake3:` prefix (used in file names).
    pub fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses `blake3:<hex>` (or bare hex).
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("blake3:").unwrap_or(text);
        blake3::Hash::from_hex(hex)
            .ok()
            .map(|h| ContentHash(*h.as_bytes()))
    }
}

impl std::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "blake3:{}", self.hex())
    }
}

/// Why a blob could not be stored or read back.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The file system refused.
    #[error("module store at {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes on disk no longer hash to their name.
    #[error("module blob {path} is corrupted: its content hashes to {actual}, not {expected}")]
    Corrupted {
        /// The file concerned.
        path: PathBuf,
        /// The hash it should have.
        expected: ContentHash,
        /// The hash it has.
        actual: ContentHash,
    },
}

/// A directory of `<hex>.wasm` files.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl BlobStore {
    /// Opens (creating) the blob directory.
    pub fn open(dir: &Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        Ok(BlobStore {
            dir: dir.to_path_buf(),
        })
    }

    /// The file a hash is stored in.
    pub fn path_of(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(format!("{}.wasm", hash.hex()))
    }

    /// Stores `bytes` under their hash unless an intact copy is already there.
    /// Returns the hash.
    pub fn put(&self, bytes: &[u8]) -> Result<ContentHash, BlobError> {
        let hash = ContentHash::of(bytes);
        let path = self.path_of(&hash);
        if matches!(self.get(&hash), Ok(Some(_))) {
            return Ok(hash);
        }
        write_atomically(&path, bytes)?;
        Ok(hash)
    }

    /// Reads the blob for `hash`, checking that it still hashes to its name.
    pub fn get(&self, hash: &ContentHash) -> Result<Option<Vec<u8>>, BlobError> {
        let path = self.path_of(hash);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let actual = ContentHash::of(&bytes);
        if actual != *hash {
            return Err(BlobError::Corrupted {
                path,
                expected: *hash,
                actual,
            });
        }
        Ok(Some(bytes))
    }

    /// Removes the blob for `hash` (no error when it is already gone).
    pub fn remove(&self, hash: &ContentHash) -> Result<(), BlobError> {
        let path = self.path_of(hash);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the whole
/// new one: temp file in the same directory, fsync, rename, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BlobError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        // Best effort: not every platform can fsync a directory.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_are_stored_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let a = store.put(b"\0asm-one").unwrap();
        let b = store.put(b"\0asm-one").unwrap();
        assert_eq!(a, b);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(store.get(&a).unwrap().unwrap(), b"\0asm-one");
    }

    #[test]
    fn corrupted_blob_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let h = store.put(b"module bytes").unwrap();
        std::fs::write(store.path_of(&h), b"tampered").unwrap();
        assert!(matches!(store.get(&h), Err(BlobError::Corrupted { .. })));
        // A later upload of the same bytes repairs it.
        store.put(b"module bytes").unwrap();
        assert_eq!(store.get(&h).unwrap().unwrap(), b"module bytes");
    }

    #[test]
    fn hash_display_parses_back() {
        let h = ContentHash::of(b"x");
        assert_eq!(ContentHash::parse(&h.to_string()), Some(h));
        assert!(h.to_string().starts_with("blake3:"));
    }
}

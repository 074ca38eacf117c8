//! The on-disk cache of compiled modules.
//!
//! A file `<hash>-<fingerprint>.cwasm` holds wasmtime's serialized code for the
//! module with content hash `<hash>`, compiled by an engine whose compatibility
//! fingerprint is `<fingerprint>` (another wasmtime version or configuration gets
//! other files). Next to it, `<...>.cwasm.blake3` holds the blake3 of the artifact.
//! Deserializing compiled code is `unsafe` — the code runs as is — so an artifact is
//! used only when its checksum matches; anything else is discarded and rebuilt.

use std::path::{Path, PathBuf};

use super::blobs::{write_atomically, BlobError, ContentHash};
use crate::runtime::{CompiledModule, LoadError, ModuleKind, Runtime};

/// The outcome of a cache lookup.
pub(crate) enum Lookup {
    /// A verified artifact, loaded.
    Hit(CompiledModule),
    /// Nothing cached.
    Miss,
    /// Something was there but failed verification or loading; it was removed.
    Rejected,
}

pub(crate) struct CompiledCache {
    dir: PathBuf,
    fingerprint: String,
}

impl CompiledCache {
    pub(crate) fn open(dir: &Path, fingerprint: String) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(|source| BlobError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        // Keep file names short and path-safe whatever the fingerprint looks like.
        let fingerprint = blake3::hash(fingerprint.as_bytes()).to_hex()[..16].to_string();
        Ok(CompiledCache {
            dir: dir.to_path_buf(),
            fingerprint,
        })
    }

    fn artifact(&self, hash: &ContentHash) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", hash.hex(), self.fingerprint))
    }

    fn checksum(&self, hash: &ContentHash) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm.blake3", hash.hex(), self.fingerprint))
    }

    pub(crate) fn load(&self, hash: &ContentHash, kind: ModuleKind, runtime: &Runtime) -> Lookup {
        let (artifact, checksum) = (self.artifact(hash), self.checksum(hash));
        let bytes = match std::fs::read(&artifact) {
            Ok(b) => b,
            Err(_) => return Lookup::Miss,
        };
        let expected = std::fs::read_to_string(&checksum).unwrap_or_default();
        if blake3::hash(&bytes).to_hex().as_str() != expected.trim() {
            tracing::warn!(target: "rustmq::etl::modules", path = %artifact.display(), "compiled cache entry fails its checksum; discarding and recompiling");
            self.remove(hash);
            return Lookup::Rejected;
        }
        // SAFETY: the artifact was written by `store` below from wasmtime's own
        // serializer for an engine with this fingerprint, and its checksum matches,
        // so it is the bytes wasmtime produced; wasmtime re-checks the version and
        // engine configuration in the header.
        match unsafe { runtime.deserialize(kind, &bytes) } {
            Ok(c) => Lookup::Hit(c),
            Err(e) => {
                tracing::warn!(target: "rustmq::etl::modules", path = %artifact.display(), error = %e, "compiled cache entry does not load; discarding and recompiling");
                self.remove(hash);
                Lookup::Rejected
            }
        }
    }

    pub(crate) fn store(
        &self,
        hash: &ContentHash,
        compiled: &CompiledModule,
        runtime: &Runtime,
    ) -> Result<(), CacheWriteError> {
        let bytes = runtime.serialize(compiled)?;
        write_atomically(&self.artifact(hash), &bytes)?;
        write_atomically(
            &self.checksum(hash),
            blake3::hash(&bytes).to_hex().as_bytes(),
        )?;
        Ok(())
    }

    pub(crate) fn remove(&self, hash: &ContentHash) {
        let _ = std::fs::remove_file(self.artifact(hash));
        let _ = std::fs::remove_file(self.checksum(hash));
    }
}

/// Why a compiled artifact could not be written (logged; never fatal).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheWriteError {
    #[error(transparent)]
    Serialize(#[from] LoadError),
    #[error(transparent)]
    Write(#[from] BlobError),
}

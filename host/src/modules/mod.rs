//! The module store: uploaded WebAssembly modules, content-addressed by blake3,
//! named by `(name, semver version)`, and compiled once.
//!
//! # Layout
//! - `blobs`: `<modules_path>/blobs/<hash>.wasm`, one file per distinct body.
//! - `cache`: compiled artifacts keyed by content hash and the engine's fingerprint,
//!   so a restart does not recompile.
//! - `resolve`: semver requirement → highest matching version.
//!
//! Metadata (one [`ModuleRecord`] per `(name, version)`) lives in the broker's
//! storage, in the `modules` metadata table, keyed by module id
//! (`<name>-v<version>`, the guide's `message-processor-v1.0.0`).
//! `(name, version)` is immutable: the same bytes again are accepted idempotently,
//! different bytes are a conflict.

mod blobs;
mod cache;
mod resolve;

pub use blobs::{BlobError, ContentHash};
pub use resolve::parse_requirement;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::runtime::{CompiledModule, LoadError, ModuleKind, Runtime};
use crate::storage::{MetaTable, Storage, StorageError};
use blobs::BlobStore;
use cache::CompiledCache;

/// The longest module name accepted: names appear in ids, headers and file paths.
pub const MAX_MODULE_NAME_LEN: usize = 128;

/// What the broker knows about one uploaded `(name, version)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModuleRecord {
    /// `<name>-v<version>`.
    pub module_id: String,
    /// The name given at upload (`X-Module-Name`).
    pub name: String,
    /// The version given at upload (`X-Module-Version`).
    #[schema(value_type = String, example = "1.0.0")]
    pub version: Version,
    /// `blake3:<hex>` of the module bytes.
    pub hash: String,
    /// Size of the module bytes.
    pub size_bytes: u64,
    /// Component or legacy core module.
    pub kind: ModuleKind,
    /// The WIT world a component implements.
    pub world: Option<String>,
    /// The ABI a legacy core module implements.
    pub abi: Option<String>,
    /// Everything the module imports.
    pub imports: Vec<String>,
    /// Everything the module exports.
    pub exports: Vec<String>,
    /// Upload time, milliseconds since the epoch.
    pub uploaded_at_ms: i64,
    /// Things worth knowing that did not prevent the upload.
    pub warnings: Vec<String>,
}

impl ModuleRecord {
    /// The content hash, parsed.
    pub fn content_hash(&self) -> Option<ContentHash> {
        ContentHash::parse(&self.hash)
    }
}

/// The id of `(name, version)`.
pub fn module_id(name: &str, version: &Version) -> String {
    format!("{name}-v{version}")
}

/// The result of an upload.
#[derive(Debug, Clone)]
pub enum Upload {
    /// A new `(name, version)` was stored.
    Created(ModuleRecord),
    /// The same bytes were already stored under that `(name, version)`.
    Unchanged(ModuleRecord),
}

impl Upload {
    /// The record, either way.
    pub fn record(&self) -> &ModuleRecord {
        match self {
            Upload::Created(r) | Upload::Unchanged(r) => r,
        }
    }
}

/// Why a module-store operation failed. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// The module name breaks the naming rule.
    #[error("invalid module name {0:?}: use 1 to 128 characters of letters, digits, '.', '_' and '-', starting with a letter or digit")]
    InvalidName(String),
    /// The version is not semver.
    #[error("invalid module version {text:?}: {reason}; use a semantic version such as 1.0.0")]
    InvalidVersion {
        /// What was given.
        text: String,
        /// What the parser said.
        reason: String,
    },
    /// A version requirement is not valid.
    #[error("invalid version requirement {text:?}: {reason}; use e.g. \"1.0.0\", \"^1.2\", \"~1.2.3\" or \"*\"")]
    InvalidRequirement {
        /// What was given.
        text: String,
        /// What the parser said.
        reason: String,
    },
    /// The bytes are not a loadable module.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// `(name, version)` exists with other bytes.
    #[error("module {module_id} already exists with different content ({existing}); versions are immutable: upload under a new version")]
    Conflict {
        /// The id.
        module_id: String,
        /// The stored hash.
        existing: String,
    },
    /// No such module id.
    #[error("no module {0:?}; list modules with GET /api/v1/etl/modules")]
    NotFound(String),
    /// No uploaded version of `name` matches.
    #[error("no version of module {name:?} matches {requirement:?} (uploaded: {available})")]
    NoMatch {
        /// The module name.
        name: String,
        /// The requirement.
        requirement: String,
        /// The versions there are.
        available: String,
    },
    /// The blob store failed or found corruption.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The metadata store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A metadata record could not be decoded.
    #[error("module metadata for {key:?} is unreadable: {reason}")]
    CorruptRecord {
        /// The record key.
        key: String,
        /// The decoding error.
        reason: String,
    },
}

/// Counters that show what the store did (exposed in the broker's metrics).
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct ModuleStoreStats {
    /// Modules compiled from their bytes since start.
    pub compilations: u64,
    /// Modules loaded from the compiled cache since start.
    pub cache_loads: u64,
    /// Cache files found unusable and discarded.
    pub cache_rejects: u64,
}

/// The module store. Cheap to clone.
#[derive(Clone)]
pub struct ModuleStore {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    storage: Storage,
    blobs: BlobStore,
    cache: CompiledCache,
    /// Compiled modules by content hash: compile once, instantiate many.
    compiled: Mutex<HashMap<ContentHash, CompiledModule>>,
    /// Serialises uploads and compilations so that a check-then-write is atomic and
    /// one body is compiled once.
    write_lock: Mutex<()>,
    compilations: AtomicU64,
    cache_loads: AtomicU64,
    cache_rejects: AtomicU64,
}

impl ModuleStore {
    /// Opens the store rooted at `dir` (`etl.modules_path`), with compiled code cached
    /// in `dir/compiled`.
    pub fn open(dir: &Path, storage: Storage, runtime: Runtime) -> Result<Self, ModuleError> {
        Self::open_with_cache(dir, &dir.join("compiled"), storage, runtime)
    }

    /// Opens the store with the compiled-code cache in `cache_dir`
    /// (`etl.compiled_cache`).
    pub fn open_with_cache(
        dir: &Path,
        cache_dir: &Path,
        storage: Storage,
        runtime: Runtime,
    ) -> Result<Self, ModuleError> {
        let blobs = BlobStore::open(&dir.join("blobs"))?;
        let cache = CompiledCache::open(cache_dir, runtime.compatibility_fingerprint())?;
        Ok(ModuleStore {
            inner: Arc::new(Inner {
                runtime,
                storage,
                blobs,
                cache,
                compiled: Mutex::new(HashMap::new()),
                write_lock: Mutex::new(()),
                compilations: AtomicU64::new(0),
                cache_loads: AtomicU64::new(0),
                cache_rejects: AtomicU64::new(0),
            }),
        })
    }

    /// Checks a module name against the naming rule.
    pub fn validate_name(name: &str) -> Result<(), ModuleError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_MODULE_NAME_LEN
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(())
        } else {
            Err(ModuleError::InvalidName(name.to_string()))
        }
    }

    /// Parses a version as given in `X-Module-Version`: a semantic version, or a
    /// shorthand that is completed with zeros — `3` is `3.0.0` and `1.2` is `1.2.0`
    /// (the deployment guide's development loop uploads `$(date +%s)`).
    pub fn parse_version(text: &str) -> Result<Version, ModuleError> {
        let trimmed = text.trim();
        let is_number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let parts: Vec<&str> = trimmed.split('.').collect();
        let completed = match parts.as_slice() {
            [major] if is_number(major) => format!("{major}.0.0"),
            [major, minor] if is_number(major) && is_number(minor) => format!("{major}.{minor}.0"),
            _ => trimmed.to_string(),
        };
        let version = Version::parse(&completed).map_err(|e| ModuleError::InvalidVersion {
            text: text.to_string(),
            reason: e.to_string(),
        })?;
        // Semver ignores build metadata when it compares versions, so `=1.0.0`
        // would match `1.0.0+a` and `1.0.0+b` alike: two blobs for one version.
        if !version.build.is_empty() {
            return Err(ModuleError::InvalidVersion {
                text: text.to_string(),
                reason: format!(
                    "build metadata (+{}) is not part of a version's identity in semver, so a requirement could not tell it from {}; leave it out, or use a pre-release ({}-{}) or another patch number",
                    version.build,
                    Version::new(version.major, version.minor, version.patch),
                    Version::new(version.major, version.minor, version.patch),
                    version.build
                ),
            });
        }
        Ok(version)
    }

    /// Validates, compiles and stores `bytes` as `(name, version)`. Blocking: it
    /// compiles; call it off the async executor.
    pub fn upload(&self, name: &str, version: &str, bytes: &[u8]) -> Result<Upload, ModuleError> {
        Self::validate_name(name)?;
        let version = Self::parse_version(version)?;
        let id = module_id(name, &version);
        let hash = ContentHash::of(bytes);
        let _guard = self
            .inner
            .write_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = self.get(&id)? {
            return if existing.hash == hash.to_string() {
                // The same bytes again also repair a blob found corrupted or missing.
                self.inner.blobs.put(bytes)?;
                Ok(Upload::Unchanged(existing))
            } else {
                Err(ModuleError::Conflict {
                    module_id: id,
                    existing: existing.hash,
                })
            };
        }
        let info = self.inner.runtime.inspect(bytes)?;
        // The same bytes under another name or version are compiled once.
        let already = self.lock_compiled().get(&hash).cloned();
        let compiled = match already {
            Some(c) => c,
            None => self.compile_and_cache(&hash, bytes)?,
        };
        self.inner.blobs.put(bytes)?;
        let record = ModuleRecord {
            module_id: id.clone(),
            name: name.to_string(),
            version,
            hash: hash.to_string(),
            size_bytes: bytes.len() as u64,
            kind: info.kind,
            world: info.world,
            abi: info.abi,
            imports: info.imports,
            exports: info.exports,
            uploaded_at_ms: crate::message::now_millis(),
            warnings: info.warnings,
        };
        self.put_record(&record)?;
        self.lock_compiled().insert(hash, compiled);
        tracing::info!(target: "rustmq::etl::modules", module_id = %id, hash = %record.hash, size = record.size_bytes, "module uploaded");
        Ok(Upload::Created(record))
    }

    /// Every stored module, sorted by name then version.
    pub fn list(&self) -> Result<Vec<ModuleRecord>, ModuleError> {
        let mut out = self
            .inner
            .storage
            .meta_list(MetaTable::Modules)?
            .into_iter()
            .map(|(key, value)| decode_record(&key, &value))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.version.cmp(&b.version)));
        Ok(out)
    }

    /// One module by id.
    pub fn get(&self, module_id: &str) -> Result<Option<ModuleRecord>, ModuleError> {
        match self.inner.storage.meta_get(MetaTable::Modules, module_id)? {
            Some(value) => decode_record(module_id, &value).map(Some),
            None => Ok(None),
        }
    }

    /// The highest version of `name` matching `requirement`.
    pub fn resolve(&self, name: &str, requirement: &str) -> Result<ModuleRecord, ModuleError> {
        let req = parse_requirement(requirement).map_err(|e| ModuleError::InvalidRequirement {
            text: requirement.to_string(),
            reason: e.to_string(),
        })?;
        let candidates: Vec<ModuleRecord> = self
            .list()?
            .into_iter()
            .filter(|r| r.name == name)
            .collect();
        let best = resolve::highest_match(&req, candidates.iter().map(|r| &r.version)).cloned();
        match best {
            Some(v) => Ok(candidates
                .into_iter()
                .find(|r| r.version == v)
                .expect("the chosen version came from the candidates")),
            None => Err(ModuleError::NoMatch {
                name: name.to_string(),
                requirement: requirement.to_string(),
                available: if candidates.is_empty() {
                    "none".to_string()
                } else {
                    candidates
                        .iter()
                        .map(|r| r.version.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }),
        }
    }

    /// The module's bytes, re-checked against their hash.
    pub fn bytes(&self, module_id: &str) -> Result<Vec<u8>, ModuleError> {
        let record = self
            .get(module_id)?
            .ok_or_else(|| ModuleError::NotFound(module_id.to_string()))?;
        let hash = record_hash(&record)?;
        self.inner
            .blobs
            .get(&hash)?
            .ok_or_else(|| ModuleError::NotFound(module_id.to_string()))
    }

    /// Deletes `(name, version)`. The blob and compiled code go when no other
    /// version shares them. Whether a pipeline still pins the module is the caller's
    /// check.
    pub fn delete(&self, module_id: &str) -> Result<ModuleRecord, ModuleError> {
        let _guard = self
            .inner
            .write_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let record = self
            .get(module_id)?
            .ok_or_else(|| ModuleError::NotFound(module_id.to_string()))?;
        self.inner
            .storage
            .meta_delete(MetaTable::Modules, module_id)?;
        let still_used = self.list()?.iter().any(|r| r.hash == record.hash);
        if !still_used {
            let hash = record_hash(&record)?;
            self.inner.blobs.remove(&hash)?;
            self.inner.cache.remove(&hash);
            self.lock_compiled().remove(&hash);
        }
        tracing::info!(target: "rustmq::etl::modules", module_id, "module deleted");
        Ok(record)
    }

    /// The compiled form of a stored module: from memory, else the on-disk cache,
    /// else compiled from the (re-verified) bytes.
    pub fn compiled(&self, record: &ModuleRecord) -> Result<CompiledModule, ModuleError> {
        let hash = record_hash(record)?;
        if let Some(c) = self.lock_compiled().get(&hash) {
            return Ok(c.clone());
        }
        let _guard = self
            .inner
            .write_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = self.lock_compiled().get(&hash) {
            return Ok(c.clone());
        }
        let compiled = match self
            .inner
            .cache
            .load(&hash, record.kind, &self.inner.runtime)
        {
            cache::Lookup::Hit(c) => {
                self.inner.cache_loads.fetch_add(1, Ordering::Relaxed);
                c
            }
            outcome => {
                if matches!(outcome, cache::Lookup::Rejected) {
                    self.inner.cache_rejects.fetch_add(1, Ordering::Relaxed);
                }
                let bytes = self
                    .inner
                    .blobs
                    .get(&hash)?
                    .ok_or_else(|| ModuleError::NotFound(record.module_id.clone()))?;
                self.compile_and_cache(&hash, &bytes)?
            }
        };
        self.lock_compiled().insert(hash, compiled.clone());
        Ok(compiled)
    }

    /// Loads every stored module into memory (from the cache where possible), so
    /// pipelines start without compiling. Errors are logged, not fatal: a module that
    /// cannot load fails the pipelines that use it, with the reason.
    pub fn warm(&self) -> Result<usize, ModuleError> {
        let mut ready = 0;
        for record in self.list()? {
            match self.compiled(&record) {
                Ok(_) => ready += 1,
                Err(e) => {
                    tracing::warn!(target: "rustmq::etl::modules", module_id = %record.module_id, error = %e, "module could not be loaded")
                }
            }
        }
        Ok(ready)
    }

    /// What the store has done since start.
    pub fn stats(&self) -> ModuleStoreStats {
        ModuleStoreStats {
            compilations: self.inner.compilations.load(Ordering::Relaxed),
            cache_loads: self.inner.cache_loads.load(Ordering::Relaxed),
            cache_rejects: self.inner.cache_rejects.load(Ordering::Relaxed),
        }
    }

    /// The runtime modules are compiled for.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Where blobs are kept (for diagnostics).
    pub fn blob_path(&self, record: &ModuleRecord) -> Option<PathBuf> {
        record.content_hash().map(|h| self.inner.blobs.path_of(&h))
    }

    fn compile_and_cache(
        &self,
        hash: &ContentHash,
        bytes: &[u8],
    ) -> Result<CompiledModule, ModuleError> {
        let compiled = self.inner.runtime.compile(bytes)?;
        self.inner.compilations.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.inner.cache.store(hash, &compiled, &self.inner.runtime) {
            tracing::warn!(target: "rustmq::etl::modules", hash = %hash, error = %e, "could not write the compiled cache; the module will be recompiled after a restart");
        }
        Ok(compiled)
    }

    fn put_record(&self, record: &ModuleRecord) -> Result<(), ModuleError> {
        let value = serde_json::to_vec(record).expect("a module record always serialises");
        self.inner
            .storage
            .meta_put(MetaTable::Modules, &record.module_id, &value)?;
        Ok(())
    }

    fn lock_compiled(&self) -> std::sync::MutexGuard<'_, HashMap<ContentHash, CompiledModule>> {
        self.inner
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

fn decode_record(key: &str, value: &[u8]) -> Result<ModuleRecord, ModuleError> {
    serde_json::from_slice(value).map_err(|e| ModuleError::CorruptRecord {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

fn record_hash(record: &ModuleRecord) -> Result<ContentHash, ModuleError> {
    record
        .content_hash()
        .ok_or_else(|| ModuleError::CorruptRecord {
            key: record.module_id.clone(),
            reason: format!("hash {:?} is not blake3:<hex>", record.hash),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_shorthands_are_completed_and_garbage_is_refused() {
        let v = |t: &str| ModuleStore::parse_version(t).map(|v| v.to_string());
        assert_eq!(v("1.2.3").unwrap(), "1.2.3");
        assert_eq!(v("1764186000").unwrap(), "1764186000.0.0");
        assert_eq!(v("1.2").unwrap(), "1.2.0");
        assert_eq!(v("2.0.0-beta.1").unwrap(), "2.0.0-beta.1");
        assert!(matches!(v("one"), Err(ModuleError::InvalidVersion { .. })));
        assert!(matches!(
            v("1.2.3.4"),
            Err(ModuleError::InvalidVersion { .. })
        ));
    }

    #[test]
    fn build_metadata_is_refused_with_what_to_do() {
        let err = ModuleStore::parse_version("1.0.0+zzz").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ModuleError::InvalidVersion { .. }));
        assert!(
            text.contains("build metadata (+zzz)") && text.contains("1.0.0-zzz"),
            "{text}"
        );
    }

    #[test]
    fn names_follow_the_rule() {
        assert!(ModuleStore::validate_name("message-processor").is_ok());
        assert!(ModuleStore::validate_name("").is_err());
        assert!(ModuleStore::validate_name("-lead").is_err());
        assert!(ModuleStore::validate_name("a/b").is_err());
        assert!(ModuleStore::validate_name(&"x".repeat(129)).is_err());
    }
}

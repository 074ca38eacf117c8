//! [`Broker`]: the state every request handler and background task shares (config,
//! storage, runtime, modules, pipelines, the request memory budget), and opening it
//! from a config. The listeners that serve it are in `server`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::kafka::{Clusters, KafkaError};
use crate::modules::{ModuleError, ModuleStore};
use crate::pipeline::{PipelineError, PipelineManager};
use crate::runtime::{Runtime, RuntimeError};
use crate::serve::memory::RequestMemory;
use crate::storage::{Retention, Storage, StorageError, StorageOptions};

/// Everything a request handler or background task needs.
pub struct Broker {
    /// The configuration in force.
    pub config: BrokerConfig,
    /// Topic logs, offsets and metadata.
    pub storage: Storage,
    /// The WebAssembly runtime (engine, limits).
    pub runtime: Runtime,
    /// Uploaded modules.
    pub modules: ModuleStore,
    /// Pipelines.
    pub pipelines: PipelineManager,
    /// When the broker started (for uptime).
    pub started_at: Instant,
    /// Cancelled when shutdown begins.
    pub shutdown: CancellationToken,
    /// What message API requests may take in memory at once.
    pub request_memory: RequestMemory,
}

impl Broker {
    /// Opens storage and builds the broker state.
    pub fn open(config: BrokerConfig) -> Result<Arc<Broker>, OpenError> {
        let s = &config.storage;
        let options = StorageOptions {
            default_retention: Retention {
                retention_ms: s.retention_ms,
                retention_bytes: s.retention_bytes,
            },
            auto_create_topics: s.auto_create_topics,
            retention_check_interval: Some(Duration::from_millis(s.retention_check_interval_ms)),
            cache_bytes: Some(usize::try_from(s.cache_bytes).unwrap_or(usize::MAX)),
            min_free_bytes: s.min_free_bytes,
        };
        let storage = Storage::open(&s.data_dir, options)?;
        let etl = &config.etl;
        let runtime = Runtime::new(etl.runtime_limits())?;
        let modules = ModuleStore::open_with_cache(
            &etl.modules_path,
            &etl.compiled_cache_dir(),
            storage.clone(),
            runtime.clone(),
        )?;
        let kafka = Clusters::new(&config.kafka, &s.data_dir)?;
        if !config.kafka.clusters.is_empty() {
            tracing::info!(target: "rustmq::etl::kafka", worker_id = kafka.worker_id(), clusters = ?config.kafka.clusters.keys().collect::<Vec<_>>(), "Kafka clusters declared");
        }
        let pipelines = PipelineManager::open_with_kafka(storage.clone(), modules.clone(), kafka)?;
        pipelines.set_state_quota(etl.state_quota_bytes);
        pipelines.set_commits_in_flight(etl.commits_in_flight as usize);
        pipelines.set_header_limits(config.server.header_limits());
        let ready = modules.warm()?;
        tracing::info!(target: "rustmq::etl", modules = ready, stats = ?modules.stats(), "modules loaded");
        if etl.enabled {
            pipelines.resume();
        } else {
            tracing::warn!(target: "rustmq::etl", "[etl] enabled = false: pipelines will not run");
        }
        Ok(Arc::new(Broker {
            storage,
            runtime,
            modules,
            pipelines,
            started_at: Instant::now(),
            shutdown: CancellationToken::new(),
            request_memory: RequestMemory::new(config.server.max_request_memory_bytes),
            config,
        }))
    }
}

/// Why the broker's state could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Storage could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The WebAssembly engine could not be created.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The module store could not be opened.
    #[error("cannot open the module store (etl.modules_path): {0}")]
    Modules(#[from] ModuleError),
    /// A Kafka cluster's client settings are refused.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// Pipelines could not be loaded.
    #[error("cannot load pipelines: {0}")]
    Pipelines(#[from] PipelineError),
}

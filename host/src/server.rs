//! Running the broker: the shared [`Broker`] state, the two listeners and graceful
//! shutdown.
//!
//! Shutdown order: the `shutdown` future resolves → [`Broker::shutdown`] is cancelled
//! (long-polls return, later parts such as pipelines stop at a message boundary) →
//! both HTTP servers stop accepting and finish in-flight requests (a produce being
//! committed still gets its answer) → storage drains its writer and closes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::config::BrokerConfig;
use crate::kafka::{Clusters, KafkaError};
use crate::modules::{ModuleError, ModuleStore};
use crate::pipeline::{PipelineError, PipelineManager};
use crate::runtime::{Runtime, RuntimeError, RuntimeLimits};
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
    pub request_memory: crate::api::memory::RequestMemory,
}

impl Broker {
    /// Opens storage and builds the broker state.
    pub fn open(config: BrokerConfig) -> Result<Arc<Broker>, ServerError> {
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
        let runtime = Runtime::new(RuntimeLimits {
            memory_limit_bytes: etl.memory_limit_bytes,
            execution_timeout_ms: etl.execution_timeout_ms,
            max_concurrent_executions: etl.max_concurrent_executions as usize,
            max_output_messages: etl.max_output_messages as usize,
            max_output_bytes: usize::try_from(etl.max_output_bytes).unwrap_or(usize::MAX),
            max_batch_call_ms: etl.max_batch_call_ms,
            ..RuntimeLimits::default()
        })?;
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
            request_memory: crate::api::memory::RequestMemory::new(
                config.server.max_request_memory_bytes,
            ),
            config,
        }))
    }
}

/// Why the broker could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
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
    /// A listener could not be bound.
    #[error("cannot listen on {addr} for the {api} API: {source}")]
    Bind {
        /// `admin` or `message`.
        api: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A server failed while running.
    #[error("the {api} API server failed: {source}")]
    Serve {
        /// `admin` or `message`.
        api: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// A broker with its listeners bound, not yet serving.
pub struct Server {
    broker: Arc<Broker>,
    admin: TcpListener,
    messages: TcpListener,
}

impl Server {
    /// Opens storage and binds both listeners (port 0 picks a free port).
    pub async fn bind(config: BrokerConfig) -> Result<Server, ServerError> {
        let admin_addr = config.server.admin_addr;
        let messages_addr = config.server.messages_addr;
        let connections = u64::from(config.server.max_connections)
            + u64::from(config.server.admin_max_connections);
        match crate::serve::raise_file_limit(connections) {
            Ok(limit) if limit < connections + crate::serve::FILES_BESIDES_CONNECTIONS => {
                tracing::warn!(target: "rustmq::server", limit, connections, "the open-file limit is below [server] max_connections + admin_max_connections plus the broker's own files: lower them, or raise the hard limit (LimitNOFILE in the systemd unit)");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(target: "rustmq::server", error = %e, "could not read or raise the open-file limit")
            }
        }
        if config.admin_is_open() {
            tracing::warn!(target: "rustmq::server", %admin_addr, "the admin API is open beyond loopback with no token ([admin] allow_open_admin = true): anyone who reaches it can upload and run modules");
        }
        // Opening compiles or loads modules and starts pipelines: keep it off the
        // async workers.
        let broker = tokio::task::spawn_blocking(move || Broker::open(config))
            .await
            .map_err(|e| ServerError::Serve {
                api: "startup",
                source: std::io::Error::other(e.to_string()),
            })??;
        let bind = |api, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { api, addr, source })
        };
        let admin = bind("admin", admin_addr).await;
        let messages = bind("message", messages_addr).await;
        match (admin, messages) {
            (Ok(admin), Ok(messages)) => Ok(Server {
                broker,
                admin,
                messages,
            }),
            (Err(e), _) | (_, Err(e)) => {
                broker.pipelines.shutdown();
                broker.storage.close();
                Err(e)
            }
        }
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .unwrap_or_else(|_| self.broker.config.server.admin_addr)
    }

    /// The bound message API address.
    pub fn messages_addr(&self) -> SocketAddr {
        self.messages
            .local_addr()
            .unwrap_or_else(|_| self.broker.config.server.messages_addr)
    }

    /// The shared state.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves until `shutdown` resolves (or a server fails), then shuts down in the
    /// order described in the module docs.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            broker,
            admin,
            messages,
        } = self;
        tracing::info!(
            target: "rustmq::server",
            admin = %admin.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
            messages = %messages.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
            etl_enabled = broker.config.etl.enabled,
            "broker listening"
        );
        let token = broker.shutdown.clone();
        let serve = |api: &'static str,
                     listener: TcpListener,
                     router: axum::Router,
                     limits: crate::serve::HttpLimits| {
            let token = token.clone();
            tokio::spawn(async move {
                crate::serve::serve(listener, router, limits, token)
                    .await
                    .map_err(|source| ServerError::Serve { api, source })
            })
        };
        let server = &broker.config.server;
        let mut admin_task = serve(
            "admin",
            admin,
            api::admin::router(broker.clone()),
            server.admin_limits(),
        );
        let mut messages_task = serve(
            "message",
            messages,
            api::data::router(broker.clone()),
            server.message_limits(),
        );
        let (mut admin_done, mut messages_done) = (None, None);
        tokio::select! {
            () = shutdown => tracing::info!(target: "rustmq::server", "shutdown requested"),
            r = &mut admin_task => admin_done = Some(flatten(r)),
            r = &mut messages_task => messages_done = Some(flatten(r)),
        }
        token.cancel();
        let admin_result = match admin_done {
            Some(r) => r,
            None => flatten(admin_task.await),
        };
        let messages_result = match messages_done {
            Some(r) => r,
            None => flatten(messages_task.await),
        };
        let result = admin_result.and(messages_result);
        let stopping = broker.clone();
        if tokio::task::spawn_blocking(move || {
            // Pipelines finish the message in hand and commit, then storage closes.
            stopping.pipelines.shutdown();
            stopping.storage.close();
        })
        .await
        .is_err()
        {
            tracing::error!(target: "rustmq::server", "closing storage panicked");
        }
        tracing::info!(target: "rustmq::server", "broker stopped");
        result
    }
}

fn flatten(r: Result<Result<(), ServerError>, tokio::task::JoinError>) -> Result<(), ServerError> {
    match r {
        Ok(r) => r,
        Err(e) => Err(ServerError::Serve {
            api: "http",
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

/// Binds, serves until `shutdown` resolves, shuts down gracefully.
pub async fn run(
    config: BrokerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    Server::bind(config).await?.run(shutdown).await
}

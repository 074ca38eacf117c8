//! Running the broker: its two listeners and graceful shutdown, around the shared
//! [`Broker`] state.
//!
//! Shutdown order: the `shutdown` future resolves → [`Broker::shutdown`] is cancelled
//! (long-polls return, later parts such as pipelines stop at a message boundary) →
//! both HTTP servers stop accepting and finish in-flight requests (a produce being
//! committed still gets its answer) → storage drains its writer and closes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api;
use crate::broker::{Broker, OpenError};
use crate::config::BrokerConfig;

/// Why the broker could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The broker's state could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
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
        let listening = api::Listening {
            admin: admin.local_addr().unwrap_or(server.admin_addr),
            messages: messages.local_addr().unwrap_or(server.messages_addr),
        };
        let mut admin_task = serve(
            "admin",
            admin,
            api::admin::router(broker.clone(), listening),
            server.admin_limits(),
        );
        let mut messages_task = serve(
            "message",
            messages,
            api::data::router(broker.clone(), listening),
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

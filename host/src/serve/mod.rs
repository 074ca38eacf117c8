//! Serving one HTTP API within its bounds, so that no client, however slow or
//! numerous, can exhaust the broker's file handles or hold a connection forever:
//!
//! - **connections**: at most [`HttpLimits::max_connections`] at once per port. Past
//!   it the port stops accepting (the kernel queues, then refuses), so the other port
//!   and the broker's own files keep their handles;
//! - **request heads**: a client has [`HttpLimits::header_read_timeout`] to send a
//!   request's head, and a keep-alive connection no longer than that to start its
//!   next request (hyper's header-read timer), so stalled and idle connections are
//!   closed and their slots freed;
//! - **request bodies**: a body that sends nothing for
//!   [`HttpLimits::body_read_timeout`] fails its request (tower-http's body timeout);
//! - **requests**: at most [`HttpLimits::max_concurrent_requests`] handled at once per
//!   port; more wait for a turn (tower's concurrency limit), so the memory requests
//!   take is bounded by that many request bodies and answers.
//!
//! Shutdown: when `shutdown` is cancelled the port stops accepting, each connection
//! finishes the request it is serving and closes, and [`serve`] returns once all
//! have.

pub mod memory;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// The bounds of one port (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Requests handled at once.
    pub max_concurrent_requests: usize,
    /// Time to send a request's head, and to start the next one on a kept-alive
    /// connection.
    pub header_read_timeout: Duration,
    /// Longest pause while a request body is sent.
    pub body_read_timeout: Duration,
}

/// File handles the broker needs besides its connections: the database, guest
/// instances' memory, Kafka clients, logs.
pub const FILES_BESIDES_CONNECTIONS: u64 = 1024;

/// Raises this process's soft limit on open files towards its hard limit, far
/// enough for `connections` plus [`FILES_BESIDES_CONNECTIONS`]; returns the soft
/// limit in force, which is below what is needed when the hard limit is.
pub fn raise_file_limit(connections: u64) -> io::Result<u64> {
    let needed = connections.saturating_add(FILES_BESIDES_CONNECTIONS);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the call's duration.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur >= needed {
        return Ok(limit.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: needed.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: `raised` is a valid `rlimit`; the call only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(raised.rlim_cur)
}

/// How long to pause accepting after an accept error (the process is out of file
/// handles, say), so that the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` within `limits` until `shutdown` is cancelled,
/// then drains (see the module docs).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    // One semaphore for the port, shared by every route (a plain concurrency
    // limit layered on a router would give each route its own).
    let router = router
        .layer(RequestBodyTimeoutLayer::new(limits.body_read_timeout))
        .layer(GlobalConcurrencyLimitLayer::new(
            limits.max_concurrent_requests,
        ));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Every connection task holds a receiver; `closed` resolves when all are gone.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(target: "rustmq::server", error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let shutdown = shutdown.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::trace!(target: "rustmq::server", error = %e, "connection ended with an error");
                    }
                }
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(slot);
            drop(open);
        });
    }
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_limit_is_raised_as_far_as_the_hard_limit_allows() {
        let mut hard = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `hard` is a valid, writable `rlimit`.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) },
            0
        );
        let limit = raise_file_limit(100).unwrap();
        assert!(limit >= (100 + FILES_BESIDES_CONNECTIONS).min(hard.rlim_max));
        assert!(raise_file_limit(u64::MAX).unwrap() <= hard.rlim_max);
    }
}

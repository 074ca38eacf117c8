//! The retention thread: every `retention_check_interval` it asks the writer to trim
//! each topic's oldest messages past its age or size limit (see
//! [`super::Storage::enforce_retention`]). Trimming removes whole prefixes and
//! advances the topic's start offset; offsets are never reused.

use std::sync::mpsc;
use std::sync::Weak;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Inner, Storage};

/// The running thread.
pub(crate) struct Ticker {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Ticker {
    /// Starts trimming `storage` every `every`. The thread holds only a weak
    /// reference, so it never keeps the store open.
    pub(crate) fn spawn(storage: &Storage, every: Duration) -> std::io::Result<Ticker> {
        let weak: Weak<Inner> = std::sync::Arc::downgrade(&storage.inner);
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("rustmq-retention".into())
            .spawn(move || {
                // `recv_timeout` is the timer; any message or a dropped sender stops us.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    let Some(inner) = weak.upgrade() else { break };
                    let storage = Storage { inner };
                    match storage.enforce_retention(crate::message::now_millis()) {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(target: "rustmq::storage", deleted = n, "retention applied"),
                        Err(e) => tracing::warn!(target: "rustmq::storage", error = %e, "retention pass failed"),
                    }
                }
            });
        Ok(Ticker {
            stop,
            thread: thread?,
        })
    }

    /// Stops the thread and waits for a pass in progress to finish.
    pub(crate) fn stop(self) {
        drop(self.stop);
        if self.thread.thread().id() != std::thread::current().id() {
            let _ = self.thread.join();
        }
    }
}

//! Reading the next batch while the worker processes this one.
//!
//! [`ReadAhead`] wraps any [`Source`] and runs its fetches on a thread of their own,
//! handing each batch over a rendezvous channel. So while the worker's thread runs
//! batch n through the module, batch n+1 is being read and decoded; with the storage
//! writer committing batch n-1 at the same time, the three stages of a pipeline use
//! the machine's cores instead of taking turns on one.
//!
//! At most one batch waits in the hand-over (the reader blocks until the worker takes
//! it), so a pipeline holds at most one extra batch ([`super::io::MAX_FETCH_BYTES`])
//! in memory. Read-ahead never moves the committed position: a batch read ahead and
//! not processed (the worker stopped, failed or was replaced) is simply dropped and
//! read again from the committed offset on the next start.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::io::{Fetched, IoError, Source};

/// How long the reader waits for new messages before checking for a stop; bounds
/// how long dropping a [`ReadAhead`] can take.
const READER_WAIT: Duration = Duration::from_millis(50);

/// A [`Source`] that fetches ahead on its own thread.
pub struct ReadAhead {
    source: Arc<Mutex<Box<dyn Source>>>,
    name: String,
    /// The batch size the worker asked for last; the reader follows changes.
    max: Arc<AtomicUsize>,
    running: Option<Reader>,
}

/// The reader thread and the receiving end of its hand-over.
struct Reader {
    batches: mpsc::Receiver<Result<Vec<Fetched>, IoError>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl ReadAhead {
    /// Wraps `source`; the reader thread (named `name`) starts on the first fetch,
    /// from wherever `source` has been positioned by then.
    pub fn new(source: Box<dyn Source>, name: &str) -> Self {
        ReadAhead {
            source: Arc::new(Mutex::new(source)),
            name: name.to_string(),
            max: Arc::new(AtomicUsize::new(1)),
            running: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn Source>> {
        self.source.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&mut self) -> Result<&Reader, IoError> {
        if self.running.is_none() {
            let (tx, batches) = mpsc::sync_channel(0);
            let stop = Arc::new(AtomicBool::new(false));
            let source = Arc::clone(&self.source);
            let max = Arc::clone(&self.max);
            let stopping = Arc::clone(&stop);
            let thread = std::thread::Builder::new()
                .name(self.name.clone())
                .spawn(move || read(&source, &max, &stopping, &tx))
                .map_err(|e| IoError::new(format!("could not start a reader thread: {e}")))?;
            self.running = Some(Reader {
                batches,
                stop,
                thread,
            });
        }
        Ok(self.running.as_ref().expect("just started"))
    }

    /// Stops the reader and drops what it read ahead.
    fn halt(&mut self) {
        if let Some(reader) = self.running.take() {
            reader.stop.store(true, Ordering::SeqCst);
            // Dropping the receiver fails a hand-over in progress.
            drop(reader.batches);
            if reader.thread.join().is_err() {
                tracing::error!(target: "rustmq::etl::pipeline", reader = %self.name, "read-ahead thread panicked");
            }
        }
    }
}

/// The reader thread: fetch, hand over, repeat until stopped or the worker is gone.
fn read(
    source: &Mutex<Box<dyn Source>>,
    max: &AtomicUsize,
    stop: &AtomicBool,
    tx: &mpsc::SyncSender<Result<Vec<Fetched>, IoError>>,
) {
    while !stop.load(Ordering::SeqCst) {
        let fetched = source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fetch(max.load(Ordering::Relaxed), READER_WAIT);
        match fetched {
            Ok(batch) if batch.is_empty() => {}
            Ok(batch) => {
                if tx.send(Ok(batch)).is_err() {
                    return;
                }
            }
            Err(e) => {
                // The worker fails on it; the reader has nothing more to do.
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

impl Source for ReadAhead {
    fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Fetched>, IoError> {
        self.max.store(max.max(1), Ordering::Relaxed);
        let reader = self.start()?;
        let received = if wait.is_zero() {
            reader.batches.try_recv().map_err(|e| match e {
                mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        } else {
            reader.batches.recv_timeout(wait)
        };
        match received {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout) => Ok(Vec::new()),
            Err(RecvTimeoutError::Disconnected) => {
                self.halt();
                Err(IoError::new("the read-ahead thread ended".into()))
            }
        }
    }

    fn seek(&mut self, offset: u64) {
        // Whatever was read ahead is from the old position.
        self.halt();
        self.lock().seek(offset);
    }

    fn bounds(&self) -> Result<(u64, u64), IoError> {
        self.lock().bounds()
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fakes::Numbered;

    fn counting(total: u64, fail_at: Option<u64>) -> ReadAhead {
        let mut source = Numbered::new(total);
        source.fail_at = fail_at;
        ReadAhead::new(Box::new(source), "test-reader")
    }

    fn offsets(batch: &[Fetched]) -> Vec<u64> {
        batch.iter().map(|f| f.offset).collect()
    }

    #[test]
    fn read_ahead_delivers_every_offset_once_in_order() {
        let mut source = counting(1000, None);
        let mut seen = Vec::new();
        while seen.len() < 1000 {
            seen.extend(offsets(&source.fetch(64, Duration::from_secs(30)).unwrap()));
        }
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert!(source
            .fetch(64, Duration::from_millis(1))
            .unwrap()
            .is_empty());
        assert_eq!(source.bounds().unwrap(), (0, 1000));
    }

    #[test]
    fn a_seek_drops_what_was_read_ahead() {
        let mut source = counting(100, None);
        assert_eq!(
            offsets(&source.fetch(10, Duration::from_secs(30)).unwrap()),
            (0..10).collect::<Vec<_>>()
        );
        source.seek(5);
        assert_eq!(
            offsets(&source.fetch(10, Duration::from_secs(30)).unwrap())[0],
            5
        );
    }

    #[test]
    fn a_source_error_reaches_the_worker() {
        let mut source = counting(100, Some(0));
        let err = source.fetch(10, Duration::from_secs(30)).unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
    }
}

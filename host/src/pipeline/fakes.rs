//! Test doubles shared by the pipeline's unit tests.

use std::sync::Arc;
use std::time::Duration;

use super::io::{Fetched, IoError, Source};
use super::worker::Control;

/// A source of offsets `0..end` (empty messages), as many per fetch as asked.
pub(crate) struct Numbered {
    next: u64,
    end: u64,
    /// A fetch at this offset fails with "disk on fire".
    pub(crate) fail_at: Option<u64>,
    /// Asked to stop once every offset is read, so a worker that misses a failure
    /// ends (as `Stopped`) instead of idling forever.
    pub(crate) stop_at_end: Option<Arc<Control>>,
}

impl Numbered {
    pub(crate) fn new(end: u64) -> Self {
        Numbered {
            next: 0,
            end,
            fail_at: None,
            stop_at_end: None,
        }
    }
}

impl Source for Numbered {
    fn fetch(&mut self, max: usize, _wait: Duration) -> Result<Vec<Fetched>, IoError> {
        if self.fail_at == Some(self.next) {
            return Err(IoError::new("disk on fire".into()));
        }
        if self.next >= self.end {
            if let Some(control) = &self.stop_at_end {
                control.request_stop();
            }
            return Ok(Vec::new());
        }
        let end = (self.next + max as u64).min(self.end);
        let batch = (self.next..end)
            .map(|offset| Fetched {
                partition: crate::pipeline::io::LOCAL_PARTITION,
                offset,
                message: Default::default(),
            })
            .collect();
        self.next = end;
        Ok(batch)
    }

    fn seek(&mut self, offset: u64) {
        self.next = offset;
    }

    fn bounds(&self) -> Result<(u64, u64), IoError> {
        Ok((0, self.end))
    }
}

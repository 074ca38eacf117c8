//! The locked-down WASI context every guest gets, and the capture of its stdout and
//! stderr into `tracing`.
//!
//! Policy: no preopened directories (so no filesystem), no sockets (every address
//! denied, no name lookup), no environment variables, no arguments, stdin at
//! end-of-file; wall and monotonic clocks and random numbers are allowed. Output
//! written to stdout/stderr becomes one `tracing` event per line, tagged with the
//! module id, lines truncated at [`MAX_LOG_LINE_BYTES`].
//!
//! [`locked_down_builder`] returns the configured builder so the caller adds the
//! instance's [`GuestClock`](rustmq_etl_legacy::GuestClock) and picks the flavour:
//! `.build()` for a component (WASI 0.2), `.build_p1()` for a legacy core module (WASI
//! preview 1, built by the adapter).

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::WasiCtxBuilder;

/// Longest log line (from `host.log` or a stdout/stderr line) kept, in bytes; the rest
/// is cut. Bounds what a guest can make the broker buffer and write per line.
pub const MAX_LOG_LINE_BYTES: usize = 4096;

/// Most log lines (host `log` calls plus stdout/stderr lines) one guest call may emit;
/// further lines are counted and reported once when the call ends. Keeps a chatty or
/// hostile guest from flooding the broker's log.
pub const MAX_LOG_LINES_PER_CALL: u32 = 64;

/// A per-call allowance of log lines, shared by the host `log` import and the
/// stdout/stderr capture of one instance.
#[derive(Debug, Clone, Default)]
pub struct LogBudget {
    inner: Arc<LogBudgetInner>,
}

#[derive(Debug, Default)]
struct LogBudgetInner {
    used: AtomicU32,
    dropped: AtomicU32,
}

impl LogBudget {
    /// Starts a new call: every line is allowed again. Returns how many lines the
    /// previous call dropped.
    pub fn reset(&self) -> u32 {
        self.inner.used.store(0, Ordering::Relaxed);
        self.inner.dropped.swap(0, Ordering::Relaxed)
    }

    /// Takes one line from the allowance; false when it is used up (the line is
    /// counted as dropped).
    pub fn take(&self) -> bool {
        if self.inner.used.fetch_add(1, Ordering::Relaxed) < MAX_LOG_LINES_PER_CALL {
            true
        } else {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Lines dropped so far in this call.
    pub fn dropped(&self) -> u32 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

/// Cuts `text` to at most [`MAX_LOG_LINE_BYTES`] on a character boundary.
pub fn truncate_line(text: &str) -> &str {
    if text.len() <= MAX_LOG_LINE_BYTES {
        return text;
    }
    let mut end = MAX_LOG_LINE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A WASI builder with the policy described in the module docs, stdout and stderr
/// captured into `tracing` under `module_id`, sharing `budget`.
pub fn locked_down_builder(module_id: &str, budget: &LogBudget) -> WasiCtxBuilder {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(CapturedOutput::new(module_id, Stream::Stdout, budget))
        .stderr(CapturedOutput::new(module_id, Stream::Stderr, budget))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    // Not called, on purpose: `inherit_env`, `inherit_args`, `inherit_stdin`,
    // `inherit_network`, `preopened_dir`. The builder's defaults (empty env and args,
    // closed stdin, no preopens) are the policy.
    builder
}

/// Which guest stream a line came from.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Line-buffers one guest output stream into `tracing` events. Clones share the
/// buffer, so every handle WASI hands out writes to the same logical stream.
#[derive(Clone)]
struct CapturedOutput {
    module_id: Arc<str>,
    stream: Stream,
    budget: LogBudget,
    /// The current, unfinished line; never longer than [`MAX_LOG_LINE_BYTES`].
    line: Arc<Mutex<Vec<u8>>>,
}

impl CapturedOutput {
    fn new(module_id: &str, stream: Stream, budget: &LogBudget) -> Self {
        CapturedOutput {
            module_id: Arc::from(module_id),
            stream,
            budget: budget.clone(),
            line: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut line = self.line.lock().unwrap_or_else(|p| p.into_inner());
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            let (text, complete) = match chunk.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (chunk, false),
            };
            let room = MAX_LOG_LINE_BYTES.saturating_sub(line.len());
            line.extend_from_slice(&text[..text.len().min(room)]);
            if complete {
                self.emit(&line);
                line.clear();
            }
        }
    }

    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() || !self.budget.take() {
            return;
        }
        match self.stream {
            Stream::Stdout => {
                tracing::info!(target: "rustmq_etl::guest", module_id = %self.module_id, stream = "stdout", "{text}")
            }
            Stream::Stderr => {
                tracing::warn!(target: "rustmq_etl::guest", module_id = %self.module_id, stream = "stderr", "{text}")
            }
        }
    }
}

impl Drop for CapturedOutput {
    fn drop(&mut self) {
        // The last handle flushes an unterminated final line.
        if Arc::strong_count(&self.line) == 1 {
            let line = std::mem::take(&mut *self.line.lock().unwrap_or_else(|p| p.into_inner()));
            if !line.is_empty() {
                self.emit(&line);
            }
        }
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Writes never block: whatever does not fit in a line is dropped.
        Ok(MAX_LOG_LINE_BYTES)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let text = "é".repeat(MAX_LOG_LINE_BYTES);
        let cut = truncate_line(&text);
        assert!(cut.len() <= MAX_LOG_LINE_BYTES);
        assert!(cut.len() >= MAX_LOG_LINE_BYTES - 1);
    }

    #[test]
    fn budget_counts_dropped_lines_and_resets() {
        let budget = LogBudget::default();
        for _ in 0..MAX_LOG_LINES_PER_CALL {
            assert!(budget.take());
        }
        assert!(!budget.take());
        assert!(!budget.take());
        assert_eq!(budget.reset(), 2);
        assert!(budget.take());
    }

    #[test]
    fn captured_output_keeps_line_buffer_bounded() {
        let out = CapturedOutput::new("m", Stream::Stdout, &LogBudget::default());
        out.write_bytes(&vec![b'x'; MAX_LOG_LINE_BYTES * 3]);
        assert_eq!(out.line.lock().unwrap().len(), MAX_LOG_LINE_BYTES);
        out.write_bytes(b"\nnext");
        assert_eq!(out.line.lock().unwrap().as_slice(), b"next");
    }
}

//! A test component for the runtime's fault handling. The message key picks what
//! `process` does:
//!
//! - `loop`: spins forever (stopped by the deadline),
//! - `grow`: allocates until memory runs out (stopped by the memory limit),
//! - `trap`: panics, which aborts with a trap,
//! - `fanout`: returns as many copies as the value (a decimal number) says,
//! - `count`: returns the number of calls this instance has seen in header `calls`,
//! - `log`: logs through the host and stdout, returns `get-param("greeting")` as value,
//! - anything else: returns the message unchanged.
//!
//! `init` refuses any parameter set containing `refuse`, with its value as the reason.

use std::sync::atomic::{AtomicU64, Ordering};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "etl",
});

use rustmq::etl::host::{get_param, log, LogLevel};

static CALLS: AtomicU64 = AtomicU64::new(0);

struct Behaviour;

impl Guest for Behaviour {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        match params.iter().find(|(k, _)| k == "refuse") {
            Some((_, reason)) => Err(format!("refusing to start: {reason}")),
            None => Ok(()),
        }
    }

    fn process(msg: Message, _ctx: ProcessContext) -> ProcessResult {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        let one = |m: Message| ProcessResult {
            transformed_messages: vec![m],
            should_continue: true,
            error: None,
        };
        match msg.key.as_deref() {
            Some("loop") => {
                let mut i: u64 = 0;
                loop {
                    i = std::hint::black_box(i.wrapping_add(1));
                }
            }
            Some("grow") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            Some("trap") => panic!("deliberate trap"),
            Some("fanout") => {
                let n: usize = std::str::from_utf8(&msg.value)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                let copies = (0..n)
                    .map(|i| {
                        let mut m = msg.clone();
                        m.headers.push(("index".into(), i.to_string()));
                        m
                    })
                    .collect();
                ProcessResult {
                    transformed_messages: copies,
                    should_continue: true,
                    error: None,
                }
            }
            Some("count") => {
                let mut m = msg;
                m.headers.push(("calls".into(), calls.to_string()));
                one(m)
            }
            Some("log") => {
                log(LogLevel::Info, "hello from the guest");
                println!("a line on stdout");
                let mut m = msg;
                m.value = get_param("greeting").unwrap_or_default().into_bytes();
                one(m)
            }
            _ => one(msg),
        }
    }
}

export!(Behaviour);

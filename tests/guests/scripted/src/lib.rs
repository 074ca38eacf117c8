//! A component whose behaviour is chosen by the message value, so one module can
//! drive every pipeline outcome in the tests:
//!
//! - `filter` → no output
//! - `fanout:N` → N copies, header `index` = 0..N
//! - `fail` → error, should-continue = false (retried, then the error topic)
//! - `fail-once` → fails on attempt 1, succeeds on retries
//! - `dead` → error, should-continue = true (dead letter)
//! - `trap` → panics (a trap)
//! - `loop` → never returns (stopped by the deadline)
//! - `grow` → allocates until the memory limit stops it
//! - `every-third-traps` → traps when the source offset is a multiple of 3
//! - `sleep:MS` → spins for MS milliseconds of wall-clock time, then passes
//! - anything else → passed through, with headers `tag` (the `tag` parameter, if
//!   set) and `attempt`.

wit_bindgen::generate!({ path: "../../../wit", world: "etl" });

use rustmq::etl::host;

struct Scripted;

fn ok(messages: Vec<Message>) -> ProcessResult {
    ProcessResult { transformed_messages: messages, should_continue: true, error: None }
}

impl Guest for Scripted {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        match params.iter().find(|(k, _)| k == "refuse") {
            Some((_, why)) => Err(format!("refusing parameters: {why}")),
            None => Ok(()),
        }
    }

    fn process(mut msg: Message, ctx: ProcessContext) -> ProcessResult {
        let text = String::from_utf8_lossy(&msg.value).into_owned();
        match text.as_str() {
            "filter" => ok(vec![]),
            "fail" => ProcessResult { transformed_messages: vec![], should_continue: false, error: Some("scripted failure".into()) },
            "fail-once" if ctx.attempt == 1 => ProcessResult { transformed_messages: vec![], should_continue: false, error: Some("first attempt fails".into()) },
            "dead" => ProcessResult { transformed_messages: vec![], should_continue: true, error: Some("scripted dead letter".into()) },
            "trap" => panic!("scripted trap"),
            "loop" => loop {
                core::hint::black_box(&msg);
            },
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    core::hint::black_box(&hoard);
                }
            }
            "every-third-traps" if ctx.source_offset % 3 == 0 => panic!("offset divisible by three"),
            _ => {
                if let Some(n) = text.strip_prefix("fanout:").and_then(|n| n.parse::<usize>().ok()) {
                    return ok((0..n)
                        .map(|i| {
                            let mut m = msg.clone();
                            m.headers.push(("index".into(), i.to_string()));
                            m
                        })
                        .collect());
                }
                if let Some(ms) = text.strip_prefix("sleep:").and_then(|n| n.parse::<u64>().ok()) {
                    let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
                    while std::time::Instant::now() < until {
                        core::hint::black_box(&msg);
                    }
                }
                if let Some(tag) = host::get_param("tag") {
                    msg.headers.push(("tag".into(), tag));
                }
                msg.headers.push(("attempt".into(), ctx.attempt.to_string()));
                host::log(host::LogLevel::Debug, &format!("passed offset {}", ctx.source_offset));
                ok(vec![msg])
            }
        }
    }
}

export!(Scripted);

//! A component that attacks the sandbox. Each message value picks an attack:
//!
//! - `recurse` → unbounded recursion with big frames, until the shadow stack in
//!   linear memory runs out (an out-of-bounds access)
//! - `recurse-native` → unbounded recursion with no memory frames, until the wasm
//!   call stack is exhausted
//! - `grow-raw` → `memory.grow` one page at a time until the host refuses
//! - `alloc-loop` → allocates 64 KiB blocks forever (through the allocator)
//! - `huge:N` → one output message of N bytes
//! - `fanout:N` → N empty messages (a fan-out bomb when N is large)
//! - `alias:N:LEN` → N messages whose values all point at one LEN-byte buffer, so the
//!   guest spends LEN bytes while the host would copy N × LEN if it lifted blindly
//! - `probe` → tries the filesystem, environment, arguments, stdin, sockets, name
//!   lookup, clocks and randomness through WASI; reports each outcome in a header
//! - `stamp:MS` → records wall-clock start/end (ns) headers around a MS-millisecond
//!   spin, so tests can check that calls never overlapped more than allowed
//! - `sleep:MS` → sleeps MS milliseconds in WASI (`std::thread::sleep`, a blocking
//!   host call, where epochs cannot interrupt it), then passes
//! - anything else → passed through unchanged
//!
//! `init` traps when the parameter `init` is `trap`, loops when it is `loop`,
//! sleeps an hour in WASI when it is `sleep` and MS milliseconds (then succeeds) when
//! it is `slow:MS`.

wit_bindgen::generate!({ path: "../../../wit", world: "etl" });

use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Hostile;

fn ok(messages: Vec<Message>) -> ProcessResult {
    ProcessResult { transformed_messages: messages, should_continue: true, error: None }
}

fn empty(timestamp: i64) -> Message {
    Message { key: None, value: Vec::new(), headers: Vec::new(), timestamp }
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64, pad: &mut [u8; 256]) -> u64 {
    pad[(depth % 256) as usize] = depth as u8;
    let mut next = [0u8; 256];
    next.copy_from_slice(pad);
    1 + recurse(core::hint::black_box(depth + 1), core::hint::black_box(&mut next))
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse_native(n: u64) -> u64 {
    // `black_box` on the result keeps the recursion from becoming a loop.
    core::hint::black_box(recurse_native(core::hint::black_box(n + 1))) + 1
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// Outcome of one capability attempt: `denied: <error>` or `GRANTED: <detail>`.
fn outcome<T, E: std::fmt::Display>(r: Result<T, E>, granted: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => format!("GRANTED: {}", granted(v)),
        Err(e) => format!("denied: {e}"),
    }
}

fn probe() -> Vec<(String, String)> {
    let mut report = Vec::new();
    let mut put = |k: &str, v: String| report.push((k.to_string(), v));
    put("fs-read", outcome(std::fs::read("/etc/passwd"), |b| format!("{} bytes", b.len())));
    put("fs-read-relative", outcome(std::fs::read("Cargo.toml"), |b| format!("{} bytes", b.len())));
    put("fs-write", outcome(std::fs::write("/tmp/rustmq-hostile-probe", b"x"), |_| "wrote".into()));
    put("fs-list-root", outcome(std::fs::read_dir("/"), |d| format!("{} entries", d.count())));
    put("fs-cwd", outcome(std::env::current_dir(), |p| p.display().to_string()));
    let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    put("env-count", env.len().to_string());
    put("env-home", outcome(std::env::var("HOME"), |v| v));
    let args: Vec<String> = std::env::args().collect();
    put("args-count", args.len().to_string());
    let mut stdin = Vec::new();
    put("stdin", outcome(std::io::stdin().read_to_end(&mut stdin), |n| format!("{n} bytes")));
    put(
        "tcp-connect",
        outcome(std::net::TcpStream::connect("127.0.0.1:9094"), |_| "connected".into()),
    );
    put(
        "tcp-listen",
        outcome(std::net::TcpListener::bind("127.0.0.1:0"), |l| {
            l.local_addr().map(|a| a.to_string()).unwrap_or_default()
        }),
    );
    put("udp-bind", outcome(std::net::UdpSocket::bind("127.0.0.1:0"), |_| "bound".into()));
    put(
        "dns",
        outcome(std::net::ToSocketAddrs::to_socket_addrs("localhost:80"), |a| {
            format!("{} addresses", a.count())
        }),
    );
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    put("clock-wall-secs", wall.to_string());
    let start = Instant::now();
    core::hint::black_box(now_ns());
    put("clock-monotonic", if start.elapsed() < Duration::from_secs(1) { "works".into() } else { "broken".into() });
    let random = random_u64();
    put("random", if random.0 != random.1 { "works".into() } else { "constant".into() });
    put("stdout", outcome(writeln!(std::io::stdout(), "hostile probe writes to stdout"), |_| "written".into()));
    report
}

/// Two draws from WASI random (through std's hashmap seeding, the one std API that
/// reads it).
fn random_u64() -> (u64, u64) {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(1u8), RandomState::new().hash_one(1u8))
}

impl Guest for Hostile {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        match params.iter().find(|(k, _)| k == "init").map(|(_, v)| v.as_str()) {
            Some("trap") => panic!("init was told to trap"),
            Some("loop") => loop {
                core::hint::black_box(&params);
            },
            Some("sleep") => {
                std::thread::sleep(Duration::from_secs(3600));
                Ok(())
            }
            Some(slow) if slow.starts_with("slow:") => {
                let ms = slow["slow:".len()..].parse().map_err(|_| "slow:MS")?;
                std::thread::sleep(Duration::from_millis(ms));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn process(msg: Message, _ctx: ProcessContext) -> ProcessResult {
        let text = String::from_utf8_lossy(&msg.value).into_owned();
        let mut parts = text.split(':');
        let verb = parts.next().unwrap_or("");
        let mut num = || parts.next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
        match verb {
            "recurse" => {
                let mut pad = [0u8; 256];
                let depth = recurse(0, &mut pad);
                ok(vec![Message { value: depth.to_string().into_bytes(), ..msg }])
            }
            "recurse-native" => {
                let depth = recurse_native(0);
                ok(vec![Message { value: depth.to_string().into_bytes(), ..msg }])
            }
            "grow-raw" => loop {
                if core::arch::wasm32::memory_grow(0, 1) == usize::MAX {
                    // Refused without a trap: say so (the host should have trapped).
                    return ProcessResult {
                        transformed_messages: vec![],
                        should_continue: false,
                        error: Some("memory.grow returned -1".into()),
                    };
                }
            },
            "alloc-loop" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![7u8; 64 * 1024]);
                    core::hint::black_box(&hoard);
                }
            }
            "huge" => {
                let n = num();
                ok(vec![Message { value: vec![b'x'; n], ..msg }])
            }
            "fanout" => {
                let n = num();
                ok((0..n).map(|_| empty(msg.timestamp)).collect())
            }
            "alias" => {
                let (n, len) = (num(), num());
                let shared: &'static mut [u8] = Vec::leak(vec![b'a'; len]);
                let ptr = shared.as_mut_ptr();
                // SAFETY: deliberately not: every value aliases one buffer. The
                // component runs this once and is discarded by the host.
                let messages = (0..n)
                    .map(|_| Message {
                        value: unsafe { Vec::from_raw_parts(ptr, len, len) },
                        ..empty(msg.timestamp)
                    })
                    .collect();
                ok(messages)
            }
            "probe" => {
                let mut out = msg;
                out.headers.extend(probe());
                ok(vec![out])
            }
            "sleep" => {
                std::thread::sleep(Duration::from_millis(num() as u64));
                ok(vec![msg])
            }
            "stamp" => {
                let ms = num() as u64;
                let start = now_ns();
                let until = Instant::now() + Duration::from_millis(ms);
                while Instant::now() < until {
                    core::hint::black_box(&msg);
                }
                let end = now_ns();
                let mut out = msg;
                out.headers.push(("start-ns".into(), start.to_string()));
                out.headers.push(("end-ns".into(), end.to_string()));
                ok(vec![out])
            }
            _ => ok(vec![msg]),
        }
    }
}

export!(Hostile);

//! A full disk, for real: the broker runs on a small tmpfs of its own (a mount
//! namespace the test makes; skipped loudly where mounting is not permitted), the
//! test fills that filesystem with a file and deletes it again. Writes are refused
//! with 507 `storage_full`, reads go on, pipelines show `stalled`, and everything
//! resumes without a restart once space is freed, with nothing acknowledged lost.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::guests;
use rustmq_etl_tests::http::{
    admin_get, admin_post, consume, error_code, produce, read_all, upload_module, wait_until,
};

const MIB: u64 = 1024 * 1024;

/// Bytes free on the filesystem holding `path`, as the broker reads them.
fn free_bytes(path: &Path) -> u64 {
    rustmq_etl::storage::free_bytes(path).expect("statvfs")
}

/// Writes a file of about `bytes` at `path` (less if the filesystem runs out
/// first, which is what filling it to the brim wants).
fn fill(path: &Path, bytes: u64) {
    std::fs::File::create(path).unwrap();
    fill_append(path, bytes);
}

/// Adds about `bytes` to the file at `path`.
fn fill_append(path: &Path, bytes: u64) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let block = vec![0x5a_u8; 256 * 1024];
    let mut written = 0;
    while written < bytes {
        let n = block.len().min((bytes - written) as usize);
        match file.write_all(&block[..n]) {
            Ok(()) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Past the page cache: the space is taken once this returns.
    let _ = file.sync_all();
}

fn status(b: &BrokerProcess, id: &str) -> Value {
    let (code, v) = admin_get(b, &format!("/api/v1/etl/pipelines/{id}/status"));
    assert_eq!(code, StatusCode::OK, "{v}");
    v
}

/// Waits (a minute at most) until pipeline `id`'s status passes `check`; returns it.
fn wait_for_status(
    b: &BrokerProcess,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_until(
        what,
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            let s = status(b, id);
            if check(&s) {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        },
    )
}

#[test]
fn below_the_reserve_writes_answer_507_reads_go_on_and_a_stalled_pipeline_resumes_once_space_is_freed(
) {
    let reserve = 8 * MIB;
    let Some(b) = BrokerProcess::start_on_tmpfs(
        &format!("[storage]\nmin_free_bytes = {reserve}\n"),
        64 * MIB,
    ) else {
        return;
    };
    let (code, v) = upload_module(
        &b,
        "hostile",
        "1.0.0",
        std::fs::read(guests::HOSTILE).unwrap(),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let (code, v) = admin_post(
        &b,
        "/api/v1/etl/pipelines",
        &json!({
            "pipeline_name": "full",
            "source_topic": "full-in",
            "destination_topic": "full-out",
            "error_topic": "full-err",
            "module_name": "hostile",
            "module_version": "^1"
        }),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let id = v["pipeline_id"].as_str().unwrap().to_string();
    let (code, v) = produce(&b, "full-in", &json!({"key": "k0", "value": "first"}));
    assert_eq!(code, StatusCode::OK, "{v}");
    wait_for_status(&b, &id, "the first message to go through", |s| {
        s["committed_offset"] == 1
    });

    // Leave 2 MiB above the reserve: a small produce still fits, the pipeline's
    // 4 MiB answer to it does not.
    let filler = b.data_view().join("filler");
    let free = free_bytes(&b.data_view());
    fill(&filler, free - reserve - 2 * MIB);
    let (code, v) = produce(
        &b,
        "full-in",
        &json!({"key": "k1", "value": format!("huge:{}", 4 * MIB)}),
    );
    assert_eq!(code, StatusCode::OK, "a small produce fits: {v}");
    let stalled = wait_for_status(&b, &id, "the pipeline to stall", |s| {
        s["status"] == "stalled"
    });
    let reason = stalled["failure"].as_str().unwrap();
    assert!(
        reason.contains("storage.min_free_bytes") && reason.contains("Free space"),
        "{stalled}"
    );
    assert_eq!(stalled["committed_offset"], 1, "{stalled}");

    // A produce that would cross the reserve: 507 storage_full, saying what to do.
    let big = "y".repeat(3 * MIB as usize);
    let (code, v) = produce(&b, "full-in", &json!({"key": "k2", "value": big}));
    assert_eq!(
        error_code(code, &v, StatusCode::INSUFFICIENT_STORAGE),
        "storage_full"
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("nothing was stored") && message.contains("resume by themselves"),
        "{message}"
    );
    // Reads go on.
    let (code, v) = consume(&b, "full-out", "offset=0&max_messages=10");
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["messages"][0]["value"], "first", "{v}");

    // Space comes back: with no restart, the pipeline commits what it stalled on
    // and produces are taken again.
    std::fs::remove_file(&filler).unwrap();
    let resumed = wait_for_status(&b, &id, "the pipeline to resume", |s| {
        s["committed_offset"] == 2 && s["status"] == "running"
    });
    assert_eq!(resumed["failure"], Value::Null, "{resumed}");
    let (code, v) = produce(&b, "full-in", &json!({"key": "k3", "value": "after"}));
    assert_eq!(code, StatusCode::OK, "{v}");
    wait_for_status(&b, &id, "the last message to go through", |s| {
        s["committed_offset"] == 3
    });
    let out = read_all(&b, "full-out");
    assert_eq!(out.len(), 3, "exactly one output per input");
    assert_eq!(out[1]["value"].as_str().unwrap().len(), 4 * MIB as usize);
    let inputs: Vec<Value> = read_all(&b, "full-in")
        .iter()
        .map(|m| m["key"].clone())
        .collect();
    assert_eq!(
        inputs,
        ["k0", "k1", "k3"],
        "every acknowledged message is kept"
    );
    let (_, s) = admin_get(&b, "/api/v1/status");
    assert_eq!(s["storage"]["writable"], true, "{s}");
    assert_eq!(s["storage"]["min_free_bytes"], reserve, "{s}");
}

#[test]
fn a_disk_that_fills_under_the_database_is_reopened_in_place_and_keeps_every_acknowledged_message()
{
    // No reserve: the database itself meets the end of the disk.
    let Some(b) = BrokerProcess::start_on_tmpfs("[storage]\nmin_free_bytes = 0\n", 16 * MIB) else {
        return;
    };
    let mut acked = Vec::new();
    for i in 0..5 {
        let value = format!("v-{i}");
        let (code, v) = produce(&b, "log", &json!({"key": "k", "value": value}));
        assert_eq!(code, StatusCode::OK, "{v}");
        acked.push(value);
    }
    // Each round leaves just room for the value itself, which passes the check
    // (no reserve); the database stores a large value on a page rounded up to a
    // power of two, so once its own free pages are used up it must grow its file
    // past the end of the disk, and the write fails with ENOSPC inside it.
    let filler = b.data_view().join("filler");
    let size = 96 * 1024;
    let mut refused = None;
    for i in 0..40 {
        let free = free_bytes(&b.data_view());
        fill_append(&filler, free.saturating_sub(size + 8 * 1024));
        let value = format!("big-{i}:{}", "z".repeat(size as usize - 16));
        let (code, v) = produce(&b, "log", &json!({"key": "k", "value": value}));
        if code == StatusCode::OK {
            acked.push(value);
            continue;
        }
        assert_eq!(
            error_code(code, &v, StatusCode::INSUFFICIENT_STORAGE),
            "storage_full",
            "{v}"
        );
        refused = Some(format!("big-{i}:"));
        break;
    }
    let refused = refused.expect("the disk filled up");
    // A write failed inside the database on the way (once the disk is at 0 bytes
    // free, the check refuses the next one). A commit that fails late may be durable
    // after all: then its caller was answered as stored, once the database was
    // reopened, and it is among the acknowledged ones.
    let log = b.log();
    assert!(
        log.contains("No space left on device"),
        "no write failed inside the database: {log}"
    );
    // The writer answers first, then reopens the database (repairing it to its
    // last commit, which fits on the full disk).
    wait_until(
        "the database to be reopened",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let log = b.log();
            log.contains("database reopened after a write failure")
                .then_some(())
                .ok_or(log)
        },
    );

    // Reads go on from the reopened database, and writes that do not fit are still
    // refused cleanly.
    let stored = read_all(&b, "log");
    assert_eq!(
        stored.len(),
        acked.len(),
        "the acknowledged messages, read back"
    );
    let (code, v) = produce(
        &b,
        "log",
        &json!({"key": "k", "value": "z".repeat(64 * 1024)}),
    );
    assert_eq!(
        error_code(code, &v, StatusCode::INSUFFICIENT_STORAGE),
        "storage_full"
    );
    std::fs::remove_file(&filler).unwrap();
    wait_until(
        "produces to be taken again",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let (code, v) = produce(&b, "log", &json!({"key": "k", "value": "after"}));
            (code == StatusCode::OK).then_some(()).ok_or(v.to_string())
        },
    );
    acked.push("after".to_string());
    let stored: Vec<String> = read_all(&b, "log")
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_string())
        .collect();
    // A write whose answer was lost to the failure may have landed; nothing
    // acknowledged is missing, and nothing is stored twice or out of order.
    let mut expected = acked.iter().peekable();
    for value in &stored {
        if expected.peek() == Some(&value) {
            expected.next();
        }
    }
    assert_eq!(expected.next(), None, "an acknowledged message is missing");
    let mut sorted = stored.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), stored.len(), "a message was stored twice");
    assert!(
        !stored.iter().any(|v| v.starts_with(&refused)),
        "the refused message is not stored"
    );
}

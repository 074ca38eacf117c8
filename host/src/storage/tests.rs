//! Behaviour of the store through its public API.

use super::*;

fn open(dir: &Path) -> Storage {
    Storage::open(dir, StorageOptions::default()).unwrap()
}

fn msg(value: &str) -> Message {
    Message {
        key: Some(format!("k-{value}")),
        value: value.as_bytes().to_vec(),
        headers: vec![("h".into(), value.into())],
        timestamp: 42,
    }
}

fn values(batch: &ReadBatch) -> Vec<String> {
    batch
        .messages
        .iter()
        .map(|(_, m)| String::from_utf8(m.value.clone()).unwrap())
        .collect()
}

/// The stored size of one `msg` with a one-letter value, measured on a scratch topic.
fn one_entry_bytes(s: &Storage) -> u64 {
    s.append_blocking("size-probe", vec![msg("a")]).unwrap();
    let size = s.topic("size-probe").unwrap().unwrap().size_bytes;
    s.delete_topic("size-probe").unwrap();
    size
}

/// Creates topic `t`, keeping at most `bytes` bytes.
fn create_with_retention_bytes(s: &Storage, bytes: u64) {
    s.create_topic(
        "t",
        TopicConfig {
            retention_ms: None,
            retention_bytes: Some(bytes),
        },
    )
    .unwrap();
}

#[test]
fn appended_messages_read_back_in_order_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        assert_eq!(
            s.append_blocking("t", vec![msg("a"), msg("b")]).unwrap(),
            0..2
        );
        assert_eq!(s.append_blocking("t", vec![msg("c")]).unwrap(), 2..3);
        s.close();
    }
    let s = open(dir.path());
    let batch = s.read("t", 0, 10, usize::MAX).unwrap();
    assert_eq!(values(&batch), ["a", "b", "c"]);
    assert_eq!(batch.messages[1].1, msg("b"));
    assert_eq!(batch.next_offset, 3);
    assert_eq!(s.end_offset("t").unwrap(), 3);
    assert_eq!(s.append_blocking("t", vec![msg("d")]).unwrap(), 3..4);
}

#[test]
fn reads_respect_limits_and_reject_offsets_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.append_blocking("t", (0..5).map(|i| msg(&i.to_string())).collect())
        .unwrap();
    let batch = s.read("t", 1, 2, usize::MAX).unwrap();
    assert_eq!(values(&batch), ["1", "2"]);
    assert_eq!(batch.next_offset, 3);
    // A byte cap smaller than one message still returns that message.
    assert_eq!(s.read("t", 0, 10, 1).unwrap().messages.len(), 1);
    assert!(s.read("t", 5, 10, 100).unwrap().messages.is_empty());
    assert!(matches!(
        s.read("t", 6, 10, 100),
        Err(StorageError::OffsetOutOfRange {
            offset: 6,
            end: 5,
            ..
        })
    ));
    assert!(matches!(
        s.read("nope", 0, 10, 100),
        Err(StorageError::TopicNotFound(_))
    ));
}

#[test]
fn topics_are_created_listed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let info = s
        .create_topic(
            "orders",
            TopicConfig {
                retention_ms: Some(1000),
                retention_bytes: None,
            },
        )
        .unwrap();
    assert_eq!(info.end_offset, 0);
    assert_eq!(info.retention.retention_ms, 1000);
    assert!(matches!(
        s.create_topic("orders", TopicConfig::default()),
        Err(StorageError::TopicAlreadyExists(_))
    ));
    assert!(matches!(
        s.create_topic("a/b", TopicConfig::default()),
        Err(StorageError::InvalidTopicName { .. })
    ));
    s.append_blocking("orders", vec![msg("x")]).unwrap();
    let names: Vec<_> = s
        .list_topics()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["orders"]);
    s.delete_topic("orders").unwrap();
    assert!(s.topic("orders").unwrap().is_none());
    assert!(matches!(
        s.delete_topic("orders"),
        Err(StorageError::TopicNotFound(_))
    ));
    // A re-created topic starts again from offset 0.
    assert_eq!(s.append_blocking("orders", vec![msg("y")]).unwrap(), 0..1);
}

#[test]
fn append_to_a_missing_topic_fails_when_auto_creation_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(
        dir.path(),
        StorageOptions {
            auto_create_topics: false,
            ..StorageOptions::default()
        },
    )
    .unwrap();
    assert!(matches!(
        s.append_blocking("t", vec![msg("a")]),
        Err(StorageError::TopicNotFound(_))
    ));
    s.create_topic("t", TopicConfig::default()).unwrap();
    assert_eq!(s.append_blocking("t", vec![msg("a")]).unwrap(), 0..1);
}

#[test]
fn a_commit_writes_outputs_and_offset_together_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let ranges = s
        .commit(Commit {
            appends: vec![
                ("out".into(), vec![msg("1"), msg("2")]),
                ("errors".into(), vec![msg("e")]),
            ],
            offsets: vec![("pipe-1".into(), 7)],
            stamp: vec![("h".into(), "stamped".into())],
            ..Commit::default()
        })
        .unwrap();
    assert_eq!(ranges, vec![0..2, 0..1]);
    assert_eq!(s.consumer_offset("pipe-1").unwrap(), Some(7));
    // The stamp is on every appended message, in place of the message's own.
    for topic in ["out", "errors"] {
        for (_, m) in s.read(topic, 0, 10, usize::MAX).unwrap().messages {
            assert_eq!(m.headers, [("h".to_string(), "stamped".to_string())]);
        }
    }
    // An invalid destination fails the whole commit before anything is written.
    assert!(s
        .commit(Commit {
            appends: vec![("out".into(), vec![msg("3")]), ("bad/name".into(), vec![])],
            offsets: vec![("pipe-1".into(), 8)],
            stamp: Vec::new(),
            ..Commit::default()
        })
        .is_err());
    assert_eq!(s.end_offset("out").unwrap(), 2);
    assert_eq!(s.consumer_offset("pipe-1").unwrap(), Some(7));
    s.delete_consumer_offset("pipe-1").unwrap();
    assert_eq!(s.consumer_offset("pipe-1").unwrap(), None);
}

#[test]
fn a_commit_that_follows_an_offset_not_stored_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let step = |from: Option<u64>, to: u64| Commit {
        appends: vec![("out".into(), vec![msg(&to.to_string())])],
        offsets: vec![("pipe-1".into(), to)],
        follows: vec![("pipe-1".into(), from)],
        ..Commit::default()
    };
    // Three commits started before any is waited for land in order, each following
    // the one before it.
    let pending: Vec<_> = [(None, 10), (Some(10), 20), (Some(20), 30)]
        .into_iter()
        .map(|(from, to)| s.start_commit(step(from, to)).unwrap())
        .collect();
    for p in pending {
        p.wait().unwrap();
    }
    assert_eq!(s.consumer_offset("pipe-1").unwrap(), Some(30));
    // One that follows an offset the consumer is not at (the commit before it did
    // not land) stores neither its outputs nor its offset.
    let refused = s.commit(step(Some(40), 50)).unwrap_err();
    assert!(
        matches!(
            &refused,
            StorageError::CommitOutOfOrder { consumer, expected: Some(40), found: Some(30) }
                if consumer == "pipe-1"
        ),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("did not land"), "{refused}");
    assert_eq!(s.end_offset("out").unwrap(), 3);
    assert_eq!(s.consumer_offset("pipe-1").unwrap(), Some(30));
    // A consumer that never committed follows `None`, and only `None`.
    assert!(matches!(
        s.commit(Commit {
            offsets: vec![("pipe-2".into(), 5)],
            follows: vec![("pipe-2".into(), Some(0))],
            ..Commit::default()
        }),
        Err(StorageError::CommitOutOfOrder { found: None, .. })
    ));
    // Refused alone: a commit in the same group as the refused one still lands.
    let refused = s.start_commit(step(Some(10), 60)).unwrap();
    let next = s.start_commit(step(Some(30), 40)).unwrap();
    assert!(refused.wait().is_err());
    next.wait().unwrap();
    assert_eq!(s.consumer_offset("pipe-1").unwrap(), Some(40));
    assert_eq!(s.end_offset("out").unwrap(), 4);
}

#[test]
fn concurrent_appends_and_commits_get_dense_unique_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    if t % 2 == 0 {
                        s.append_blocking("t", vec![msg(&format!("{t}-{i}"))])
                            .unwrap();
                    } else {
                        s.commit(Commit {
                            appends: vec![("t".into(), vec![msg(&format!("{t}-{i}"))])],
                            offsets: vec![(format!("c{t}"), i + 1)],
                            stamp: Vec::new(),
                            ..Commit::default()
                        })
                        .unwrap();
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let batch = s.read("t", 0, 1000, usize::MAX).unwrap();
    let offsets: Vec<u64> = batch.messages.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..400).collect::<Vec<_>>());
    let mut seen = values(&batch);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 400);
    for t in [1, 3, 5, 7] {
        assert_eq!(s.consumer_offset(&format!("c{t}")).unwrap(), Some(50));
    }
}

#[test]
fn retention_by_size_trims_whole_prefixes_and_keeps_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let one_entry = one_entry_bytes(&s);
    create_with_retention_bytes(&s, one_entry * 2);
    s.append_blocking("t", vec![msg("a"), msg("b"), msg("c"), msg("d")])
        .unwrap();
    assert_eq!(
        s.enforce_retention(crate::message::now_millis()).unwrap(),
        2
    );
    let info = s.topic("t").unwrap().unwrap();
    assert_eq!((info.start_offset, info.end_offset), (2, 4));
    assert_eq!(info.size_bytes, one_entry * 2);
    let batch = s.read("t", 0, 10, usize::MAX).unwrap();
    assert!(batch.skipped_to_start);
    assert_eq!(values(&batch), ["c", "d"]);
    assert_eq!(s.append_blocking("t", vec![msg("e")]).unwrap(), 4..5);
}

#[test]
fn retention_by_age_uses_append_time_and_default_applies() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(
        dir.path(),
        StorageOptions {
            default_retention: Retention {
                retention_ms: 60_000,
                retention_bytes: 0,
            },
            ..StorageOptions::default()
        },
    )
    .unwrap();
    s.append_blocking("t", vec![msg("a"), msg("b")]).unwrap();
    let now = crate::message::now_millis();
    assert_eq!(s.enforce_retention(now).unwrap(), 0);
    assert_eq!(s.enforce_retention(now + 61_000).unwrap(), 2);
    let info = s.topic("t").unwrap().unwrap();
    assert_eq!(
        (info.start_offset, info.end_offset, info.size_bytes),
        (2, 2, 0)
    );
}

#[test]
fn waiting_returns_when_a_message_arrives_or_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert!(!s.wait_for_blocking("t", 0, Duration::from_millis(20)));
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || s.append_blocking("t", vec![msg("a")]).unwrap())
    };
    assert!(s.wait_for_blocking("t", 0, Duration::from_secs(30)));
    writer.join().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let waiter = s.wait_for("t", 1, Duration::from_secs(30));
        let append = s.append("t", vec![msg("b")]);
        let (arrived, appended) = tokio::join!(waiter, append);
        assert!(arrived);
        assert_eq!(appended.unwrap(), 1..2);
        assert!(!s.wait_for("t", 5, Duration::from_millis(10)).await);
    });
}

#[test]
fn metadata_tables_store_list_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert!(s.meta_list(MetaTable::Modules).unwrap().is_empty());
    s.meta_put(MetaTable::Modules, "m-1", b"{}").unwrap();
    s.meta_put(MetaTable::Pipelines, "p-1", b"[1]").unwrap();
    assert_eq!(
        s.meta_get(MetaTable::Modules, "m-1").unwrap(),
        Some(b"{}".to_vec())
    );
    assert_eq!(s.meta_get(MetaTable::Modules, "p-1").unwrap(), None);
    assert_eq!(
        s.meta_list(MetaTable::Pipelines).unwrap(),
        vec![("p-1".to_string(), b"[1]".to_vec())]
    );
    assert!(s.meta_delete(MetaTable::Modules, "m-1").unwrap());
    assert!(!s.meta_delete(MetaTable::Modules, "m-1").unwrap());
}

#[test]
fn writes_after_close_fail_and_an_unwritable_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.close();
    assert!(matches!(
        s.append_blocking("t", vec![msg("a")]),
        Err(StorageError::Closed)
    ));
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let err = Storage::open(&file.join("sub"), StorageOptions::default())
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("cannot use data directory"),
        "{err}"
    );
}

#[test]
fn reads_start_inside_a_chunk_and_cross_into_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    // 2,500 messages in one append make three chunks (1,024 + 1,024 + 452).
    let many: Vec<Message> = (0..2500).map(|i| msg(&i.to_string())).collect();
    s.append_blocking("t", many).unwrap();
    s.append_blocking("t", vec![msg("x"), msg("y")]).unwrap();
    let batch = s.read("t", 1020, 8, usize::MAX).unwrap();
    assert_eq!(
        values(&batch),
        ["1020", "1021", "1022", "1023", "1024", "1025", "1026", "1027"]
    );
    let offsets: Vec<u64> = batch.messages.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (1020..1028).collect::<Vec<_>>());
    let tail = s.read("t", 2499, 10, usize::MAX).unwrap();
    assert_eq!(values(&tail), ["2499", "x", "y"]);
    assert_eq!(tail.next_offset, 2502);
}

#[test]
fn retention_cuts_inside_a_chunk_and_frees_the_row_once_it_is_past() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    create_with_retention_bytes(&s, one_entry_bytes(&s) * 3);
    let one_entry = one_entry_bytes(&s);
    // One chunk of five: the cut falls inside it.
    s.append_blocking("t", ["a", "b", "c", "d", "e"].map(msg).to_vec())
        .unwrap();
    assert_eq!(s.enforce_retention(0).unwrap(), 2);
    let batch = s.read("t", 0, 10, usize::MAX).unwrap();
    assert!(batch.skipped_to_start);
    assert_eq!(values(&batch), ["c", "d", "e"]);
    assert_eq!(s.topic("t").unwrap().unwrap().size_bytes, one_entry * 3);
    // A second chunk pushes the rest of the first one out: its row goes.
    s.append_blocking("t", ["f", "g", "h"].map(msg).to_vec())
        .unwrap();
    assert_eq!(s.enforce_retention(0).unwrap(), 3);
    assert_eq!(
        values(&s.read("t", 0, 10, usize::MAX).unwrap()),
        ["f", "g", "h"]
    );
    let db = s.db().unwrap();
    let txn = db.begin_read().unwrap();
    let log = txn
        .open_table(TableDefinition::<u64, &[u8]>::new(&topic::log_table_name(
            "t",
        )))
        .unwrap();
    let rows: Vec<u64> = log.iter().unwrap().map(|r| r.unwrap().0.value()).collect();
    // Rows are keyed by their last offset: only the chunk f, g, h (5..=7) is left.
    assert_eq!(rows, [7], "the emptied chunk's row is deleted");
}

#[test]
fn rows_holding_one_bare_entry_each_still_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        s.create_topic("t", TopicConfig::default()).unwrap();
        s.close();
        // The layout of builds that stored one entry per row.
        let db = s.db().unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut log = txn
                .open_table(TableDefinition::<u64, &[u8]>::new(&topic::log_table_name(
                    "t",
                )))
                .unwrap();
            let mut meta = TopicMeta::new(TopicConfig::default(), 0);
            for (offset, v) in ["a", "b", "c"].into_iter().enumerate() {
                let entry = codec::encode(&msg(v), 0).unwrap();
                meta.size_bytes += entry.len() as u64;
                log.insert(offset as u64, entry.as_slice()).unwrap();
            }
            meta.end_offset = 3;
            let mut topics = txn.open_table(TOPICS).unwrap();
            topics.insert("t", meta.encode().as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let s = open(dir.path());
    assert_eq!(values(&s.read("t", 1, 10, usize::MAX).unwrap()), ["b", "c"]);
    assert_eq!(s.append_blocking("t", vec![msg("d")]).unwrap(), 3..4);
    assert_eq!(
        values(&s.read("t", 0, 10, usize::MAX).unwrap()),
        ["a", "b", "c", "d"]
    );
}

#[test]
fn writes_below_the_free_space_reserve_are_refused_and_reads_deletes_and_trims_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.append_blocking("kept", vec![msg("a")]).unwrap();
    s.create_topic("doomed", TopicConfig::default()).unwrap();
    s.close();
    drop(s);
    let free = health::free_bytes(dir.path()).unwrap();
    // A reserve larger than the whole filesystem's free space: every write that adds
    // data is below it.
    let s = Storage::open(
        dir.path(),
        StorageOptions {
            min_free_bytes: free + (1 << 40),
            ..StorageOptions::default()
        },
    )
    .unwrap();
    let refused = s.append_blocking("kept", vec![msg("b")]).unwrap_err();
    assert!(
        matches!(refused, StorageError::Full { reserve, .. } if reserve == free + (1 << 40)),
        "{refused:?}"
    );
    let text = refused.to_string();
    assert!(
        text.contains("storage.min_free_bytes") && text.contains("Free space"),
        "{text}"
    );
    let commit = s.commit(Commit {
        offsets: vec![("c".into(), 1)],
        ..Commit::default()
    });
    assert!(
        matches!(commit, Err(StorageError::Full { .. })),
        "{commit:?}"
    );
    assert!(matches!(
        s.create_topic("new", TopicConfig::default()),
        Err(StorageError::Full { .. })
    ));
    assert!(matches!(
        s.meta_put(MetaTable::Modules, "k", b"v"),
        Err(StorageError::Full { .. })
    ));
    // Nothing of the refused writes is stored; reads, deletes and trims go on.
    assert_eq!(values(&s.read("kept", 0, 10, usize::MAX).unwrap()), ["a"]);
    assert_eq!(s.consumer_offset("c").unwrap(), None);
    s.delete_topic("doomed").unwrap();
    s.enforce_retention(0).unwrap();
    let health = s.health();
    assert!(!health.writable);
    assert!(health.fault.unwrap().contains("storage.min_free_bytes"));
}

#[test]
fn a_reserve_the_filesystem_can_keep_takes_writes_and_reports_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(
        dir.path(),
        StorageOptions {
            min_free_bytes: 1,
            ..StorageOptions::default()
        },
    )
    .unwrap();
    assert_eq!(s.append_blocking("t", vec![msg("a")]).unwrap(), 0..1);
    let health = s.health();
    assert!(health.writable, "{health:?}");
    assert!(health.free_bytes.unwrap() > 0);
    assert_eq!(health.fault, None);
}

#[test]
fn seek_finds_offsets_by_position_and_by_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    // Three appends, each begun after the clock has passed the previous one's end,
    // so each group's append times lie after every earlier group's. Groups of 3000
    // span several chunk rows.
    let mut begun = Vec::new();
    let mut first = Vec::new();
    for group in 0..3 {
        let since = crate::message::now_millis();
        begun.push(since);
        let messages: Vec<Message> = (0..3000).map(|i| msg(&format!("{group}-{i}"))).collect();
        first.push(s.append_blocking("t", messages).unwrap().start);
        let done = crate::message::now_millis();
        while crate::message::now_millis() <= done {
            std::hint::spin_loop();
        }
    }
    assert_eq!(s.seek("t", Seek::Earliest).unwrap(), 0);
    assert_eq!(s.seek("t", Seek::Latest).unwrap(), 9000);
    assert_eq!(s.seek("t", Seek::Offset(4321)).unwrap(), 4321);
    assert_eq!(s.seek("t", Seek::Offset(9000)).unwrap(), 9000);
    for (since, first) in begun.iter().zip(&first) {
        assert_eq!(s.seek("t", Seek::AppendedAt(*since)).unwrap(), *first);
    }
    assert_eq!(s.seek("t", Seek::AppendedAt(0)).unwrap(), 0);
    assert_eq!(s.seek("t", Seek::AppendedAt(i64::MAX)).unwrap(), 9000);
    assert!(matches!(
        s.seek("t", Seek::Offset(9001)),
        Err(StorageError::OffsetOutOfRange {
            start: 0,
            end: 9000,
            ..
        })
    ));
    assert!(matches!(
        s.seek("missing", Seek::Earliest),
        Err(StorageError::TopicNotFound(_))
    ));
}

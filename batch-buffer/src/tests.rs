use proptest::prelude::*;

use super::*;

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Debug, Clone)]
struct Msg {
    offset: u64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Pairs,
}

fn msg() -> impl Strategy<Value = Msg> {
    (
        any::<u64>(),
        any::<i64>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12)),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 0..8),
                proptest::collection::vec(any::<u8>(), 0..8),
            ),
            0..4,
        ),
    )
        .prop_map(|(offset, timestamp, key, value, headers)| Msg {
            offset,
            timestamp,
            key,
            value,
            headers,
        })
}

fn pairs(h: &Pairs) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + Clone {
    h.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))
}

fn read_pairs(h: Headers<'_>) -> Pairs {
    h.iter()
        .map(|p| {
            let (n, v) = p.unwrap();
            (n.to_vec(), v.to_vec())
        })
        .collect()
}

fn write(messages: &[Msg]) -> Vec<u8> {
    let mut buf = Vec::new();
    write_batch(
        &mut buf,
        messages.len(),
        messages.iter().map(|m| MessageIn {
            offset: m.offset,
            timestamp: m.timestamp,
            key: m.key.as_deref(),
            value: &m.value,
            headers: pairs(&m.headers),
        }),
    )
    .unwrap();
    buf
}

#[derive(Debug, Clone)]
enum Out {
    Pass(u32, Option<Vec<u8>>),
    New(Option<Vec<u8>>, Msg),
}

#[derive(Debug, Clone)]
struct Res {
    kind: Kind,
    error: Vec<u8>,
    outputs: Vec<Out>,
}

fn answer(inputs: usize) -> impl Strategy<Value = Vec<Res>> {
    let out = prop_oneof![
        (
            0..inputs.max(1) as u32,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 1..6))
        )
            .prop_map(|(i, t)| Out::Pass(i, t)),
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 1..6)),
            msg()
        )
            .prop_map(|(t, m)| Out::New(t, m)),
    ];
    let res = (
        prop_oneof![
            Just(Kind::Outputs),
            Just(Kind::Error),
            Just(Kind::DeadLetter)
        ],
        proptest::collection::vec(any::<u8>(), 0..10),
        proptest::collection::vec(out, 0..3),
    )
        .prop_map(|(kind, error, outputs)| Res {
            kind,
            error,
            outputs,
        });
    proptest::collection::vec(res, inputs..=inputs)
}

fn write_answer(results: &[Res]) -> Vec<u8> {
    let mut w = AnswerWriter::new();
    for r in results {
        let outputs = r.outputs.iter().map(|o| match o {
            Out::Pass(i, t) => OutputIn::Pass {
                input: *i,
                topic: t.as_deref(),
            },
            Out::New(t, m) => OutputIn::New {
                topic: t.as_deref(),
                key: m.key.as_deref(),
                value: &m.value,
                headers: pairs(&m.headers),
                timestamp: m.timestamp,
            },
        });
        let error = (r.kind != Kind::Outputs).then_some(r.error.as_slice());
        w.result(r.kind, error, outputs).unwrap();
    }
    let mut out = Vec::new();
    let announced = w.len();
    w.finish(&mut out).unwrap();
    assert_eq!(out.len(), announced, "len() is the size finish writes");
    out
}

proptest! {
    #[test]
    fn a_batch_reads_back_as_written(messages in proptest::collection::vec(msg(), 0..8)) {
        let buf = write(&messages);
        let reader = BatchReader::new(&buf).unwrap();
        prop_assert_eq!(reader.len(), messages.len());
        for (m, r) in messages.iter().zip(reader.iter()) {
            let r = r.unwrap();
            prop_assert_eq!(r.offset, m.offset);
            prop_assert_eq!(r.timestamp, m.timestamp);
            prop_assert_eq!(r.key, m.key.as_deref());
            prop_assert_eq!(r.value, m.value.as_slice());
            prop_assert_eq!(read_pairs(r.headers), m.headers.clone());
        }
    }

    #[test]
    fn an_answer_reads_back_as_written(results in (1usize..5).prop_flat_map(answer)) {
        let buf = write_answer(&results);
        let reader = AnswerReader::new(&buf, results.len()).unwrap();
        for (i, r) in results.iter().enumerate() {
            let got = reader.result(i).unwrap();
            prop_assert_eq!(got.kind, r.kind);
            prop_assert_eq!(got.error, (r.kind != Kind::Outputs).then_some(r.error.as_slice()));
            prop_assert_eq!(got.outputs.len(), r.outputs.len());
            for (o, want) in got.outputs.clone().zip(&r.outputs) {
                let out = reader.output(o).unwrap();
                match want {
                    Out::Pass(i, t) => {
                        prop_assert_eq!(out.pass, Some(*i));
                        prop_assert_eq!(out.topic, t.as_deref());
                    }
                    Out::New(t, m) => {
                        prop_assert_eq!(out.pass, None);
                        prop_assert_eq!(out.topic, t.as_deref());
                        prop_assert_eq!(out.key, m.key.as_deref());
                        prop_assert_eq!(out.value, m.value.as_slice());
                        prop_assert_eq!(out.timestamp, m.timestamp);
                        prop_assert_eq!(read_pairs(out.headers), m.headers.clone());
                    }
                }
            }
        }
    }

    /// Whatever the guest writes, reading it answers Ok or Err, never panics.
    #[test]
    fn a_damaged_answer_is_refused_or_read_never_a_panic(
        results in (1usize..4).prop_flat_map(answer),
        damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = write_answer(&results);
        for (at, byte) in damage {
            let i = at.index(buf.len());
            buf[i] = byte;
        }
        let cut = cut.index(buf.len() + 1);
        buf.truncate(cut);
        if let Ok(reader) = AnswerReader::new(&buf, results.len()) {
            for i in 0..results.len() {
                let r = reader.result(i).unwrap();
                for o in r.outputs {
                    reader.output(o).unwrap();
                }
            }
        }
    }

    #[test]
    fn a_damaged_batch_is_refused_or_read_never_a_panic(
        messages in proptest::collection::vec(msg(), 1..5),
        damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut buf = write(&messages);
        for (at, byte) in damage {
            let i = at.index(buf.len());
            buf[i] = byte;
        }
        if let Ok(reader) = BatchReader::new(&buf) {
            for m in reader.iter().flatten() {
                for h in m.headers.iter() {
                    let _ = h;
                }
            }
        }
    }
}

fn one_result_answer(n_results: u32, output_count: u32, first: u32, n: u32) -> Vec<u8> {
    let mut buf = Vec::new();
    start(&mut buf, ANSWER_MAGIC, n_results, output_count);
    for _ in 0..n_results {
        for v in [0u32, first, n, 0, 0] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
    }
    buf
}

#[test]
fn a_wrong_count_is_refused_by_name() {
    let buf = write_answer(&[Res {
        kind: Kind::Outputs,
        error: Vec::new(),
        outputs: Vec::new(),
    }]);
    let e = AnswerReader::new(&buf, 3).err().unwrap();
    assert_eq!(e.0, "the answer has 1 results for a batch of 3 messages");
}

#[test]
fn overlapping_or_missing_outputs_are_refused() {
    // Two results both claiming output 0 of an answer declaring one.
    let mut buf = one_result_answer(2, 1, 0, 1);
    buf.extend_from_slice(&[0u8; OUTPUT_ENTRY]);
    let e = AnswerReader::new(&buf, 2).err().unwrap();
    assert!(e.0.contains("without gaps or overlaps"), "{e}");
    // Outputs past the table.
    let e = AnswerReader::new(&one_result_answer(1, 0, 0, 5), 1)
        .err()
        .unwrap();
    assert!(e.0.contains("pass the answer's 0"), "{e}");
    // A table that does not fit.
    let e = AnswerReader::new(&one_result_answer(1, 1_000_000, 0, 0), 1)
        .err()
        .unwrap();
    assert!(e.0.contains("do not fit"), "{e}");
}

#[test]
fn an_out_of_range_value_or_pass_is_refused() {
    let results = [Res {
        kind: Kind::Outputs,
        error: Vec::new(),
        outputs: vec![Out::Pass(0, None)],
    }];
    let mut buf = write_answer(&results);
    // The pass names input 7 of a batch of 1.
    let at = HEADER + RESULT_ENTRY + 4;
    buf[at..at + 4].copy_from_slice(&7u32.to_le_bytes());
    let e = AnswerReader::new(&buf, 1).err().unwrap();
    assert!(e.0.contains("repeats input 7"), "{e}");
    let results = [Res {
        kind: Kind::Outputs,
        error: Vec::new(),
        outputs: vec![Out::New(
            None,
            Msg {
                offset: 0,
                timestamp: 0,
                key: None,
                value: b"v".to_vec(),
                headers: Vec::new(),
            },
        )],
    }];
    let mut buf = write_answer(&results);
    let at = HEADER + RESULT_ENTRY + 36;
    buf[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = AnswerReader::new(&buf, 1).err().unwrap();
    assert!(e.0.starts_with("a value: bytes"), "{e}");
}

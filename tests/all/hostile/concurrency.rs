//! `max_concurrent_executions` holds across many pipelines on one module.

use rustmq_etl::message::Message;
use rustmq_etl::modules::ModuleStore;
use rustmq_etl::pipeline::PipelineManager;
use rustmq_etl::runtime::{Runtime, RuntimeLimits};
use rustmq_etl::storage::{Storage, StorageOptions};
use rustmq_etl_tests::guests;
use rustmq_etl_tests::pipelines::spec;

use super::pipelines::Rig;

/// The most intervals of `spans` that overlap at any instant.
fn max_overlap(spans: &[(u128, u128)]) -> usize {
    let mut events: Vec<(u128, i32)> = spans.iter().flat_map(|&(s, e)| [(s, 1), (e, -1)]).collect();
    // Ends sort before starts at the same instant: touching is not overlapping.
    events.sort();
    let (mut live, mut most) = (0i32, 0i32);
    for (_, d) in events {
        live += d;
        most = most.max(live);
    }
    most as usize
}

#[test]
fn many_pipelines_on_one_module_respect_max_concurrent_executions() {
    for slots in [1usize, 2] {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("data"), StorageOptions::default()).unwrap();
        let runtime = Runtime::new(RuntimeLimits {
            max_concurrent_executions: slots,
            max_instances: 16,
            ..RuntimeLimits::default()
        })
        .unwrap();
        let modules =
            ModuleStore::open(&dir.path().join("wasm"), storage.clone(), runtime).unwrap();
        modules
            .upload("hostile", "1.0.0", &std::fs::read(guests::HOSTILE).unwrap())
            .unwrap();
        let pipelines = PipelineManager::open(storage.clone(), modules).unwrap();
        let names: Vec<String> = (0..6).map(|i| format!("conc-{i}")).collect();
        for n in &names {
            pipelines.create(spec(n, "hostile", 0)).unwrap();
            let msgs = (0..4)
                .map(|_| Message {
                    key: None,
                    value: b"stamp:15".to_vec(),
                    headers: vec![],
                    timestamp: 1,
                })
                .collect();
            storage.append_blocking(&format!("{n}-in"), msgs).unwrap();
        }
        let rig = Rig {
            _dir: dir,
            storage,
            pipelines,
        };
        let mut spans = Vec::new();
        for n in &names {
            rig.drain(n);
            for m in rig.read(&format!("{n}-out")) {
                let start: u128 = m.header("start-ns").unwrap().parse().unwrap();
                let end: u128 = m.header("end-ns").unwrap().parse().unwrap();
                spans.push((start, end));
            }
        }
        assert_eq!(spans.len(), 24);
        let most = max_overlap(&spans);
        assert!(
            most <= slots,
            "{most} calls overlapped with max_concurrent_executions = {slots}"
        );
        rig.pipelines.shutdown();
    }
}

//! Broker-wide metrics: `GET /api/v1/metrics` (JSON, with the `etl` section the
//! guide's troubleshooting reads) and `GET /metrics` (Prometheus text format).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AdminState;
use super::{blocking, ApiError};
use crate::pipeline::metrics::MetricsSnapshot;
use crate::wire::{BrokerMetrics, EtlTotals, RunStatus};

/// The metrics routes.
pub fn router() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(json_metrics))
        .routes(routes!(prometheus_metrics))
}

async fn snapshots(state: &AdminState) -> Result<Vec<(String, MetricsSnapshot)>, ApiError> {
    let manager = state.pipelines.clone();
    blocking(move || Ok::<_, ApiError>(manager.all_metrics())).await
}

#[utoipa::path(get, path = "/api/v1/metrics", tag = "metrics",
    responses((status = 200, description = "Totals over the broker and each pipeline's metrics", body = BrokerMetrics)))]
async fn json_metrics(State(state): State<AdminState>) -> Result<Response, ApiError> {
    let pipelines = snapshots(&state).await?;
    let statuses = {
        let manager = state.pipelines.clone();
        blocking(move || Ok::<_, ApiError>(manager.list())).await?
    };
    let sum = |f: fn(&MetricsSnapshot) -> u64| pipelines.iter().map(|(_, s)| f(s)).sum::<u64>();
    let modules = state.modules.list().map(|l| l.len()).unwrap_or(0);
    let store = state.modules.stats();
    let count = |status: RunStatus| statuses.iter().filter(|s| s.status == status).count();
    let body = BrokerMetrics {
        etl: EtlTotals {
            enabled: state.config.etl.enabled,
            memory_usage_bytes: sum(|s| s.memory_usage_bytes),
            pipelines_total: statuses.len(),
            pipelines_running: count(RunStatus::Running),
            pipelines_failed: count(RunStatus::Failed),
            modules,
            modules_compiled: store.compilations,
            modules_loaded_from_cache: store.cache_loads,
            compiled_cache_rejects: store.cache_rejects,
            messages_processed: sum(|s| s.messages_processed),
            messages_filtered: sum(|s| s.messages_filtered),
            messages_failed: sum(|s| s.messages_failed),
            messages_produced: sum(|s| s.messages_produced),
            retries: sum(|s| s.retries),
            batch_replays: sum(|s| s.batch_replays),
            instance_recycles: sum(|s| s.instance_recycles),
        },
        pipelines: pipelines.into_iter().collect(),
    };
    Ok(Json(body).into_response())
}

type Labels = Vec<(String, String)>;

#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "The same in the Prometheus text format", content_type = "application/openmetrics-text", body = String)))]
async fn prometheus_metrics(State(state): State<AdminState>) -> Result<Response, ApiError> {
    let pipelines = snapshots(&state).await?;
    let mut registry = Registry::with_prefix("rustmq_etl");
    let counter =
        |registry: &mut Registry, name: &str, help: &str, f: fn(&MetricsSnapshot) -> u64| {
            let family = Family::<Labels, Counter>::default();
            for (id, s) in &pipelines {
                family
                    .get_or_create(&vec![("pipeline".to_string(), id.clone())])
                    .inc_by(f(s));
            }
            registry.register(name, help, family);
        };
    counter(
        &mut registry,
        "messages_processed",
        "Inputs handled without error",
        |s| s.messages_processed,
    );
    counter(
        &mut registry,
        "messages_filtered",
        "Inputs filtered out",
        |s| s.messages_filtered,
    );
    counter(
        &mut registry,
        "messages_failed",
        "Inputs sent to the error topic",
        |s| s.messages_failed,
    );
    counter(
        &mut registry,
        "messages_produced",
        "Messages written to the destination",
        |s| s.messages_produced,
    );
    counter(&mut registry, "retries", "Module calls retried", |s| {
        s.retries
    });
    counter(
        &mut registry,
        "batch_replays",
        "Batch calls discarded and processed again one message per call",
        |s| s.batch_replays,
    );
    counter(
        &mut registry,
        "instance_recycles",
        "Guest instances replaced",
        |s| s.instance_recycles,
    );
    let gauge =
        |registry: &mut Registry, name: &str, help: &str, f: fn(&MetricsSnapshot) -> i64| {
            let family = Family::<Labels, Gauge>::default();
            for (id, s) in &pipelines {
                family
                    .get_or_create(&vec![("pipeline".to_string(), id.clone())])
                    .set(f(s));
            }
            registry.register(name, help, family);
        };
    gauge(
        &mut registry,
        "lag_messages",
        "Source end offset minus committed offset",
        |s| s.lag as i64,
    );
    gauge(
        &mut registry,
        "memory_usage_bytes",
        "Guest linear memory held",
        |s| s.memory_usage_bytes as i64,
    );
    gauge(
        &mut registry,
        "processing_time_p99_microseconds",
        "99th percentile module time per input",
        |s| (s.p99_processing_time_ms * 1000.0) as i64,
    );
    kafka_metrics(&mut registry, &pipelines);
    stage_metrics(&mut registry, &pipelines);
    let stats = state.modules.stats();
    let compiled = Counter::<u64>::default();
    compiled.inc_by(stats.compilations);
    registry.register(
        "modules_compiled",
        "Modules compiled from bytes since start",
        compiled,
    );
    let cached = Counter::<u64>::default();
    cached.inc_by(stats.cache_loads);
    registry.register(
        "modules_loaded_from_cache",
        "Modules loaded from the compiled cache since start",
        cached,
    );
    let mut text = String::new();
    encode(&mut text, &registry).map_err(|e| ApiError::internal(&e))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The chains' part: each stage's counts and times, labelled with its pipeline,
/// index and module.
fn stage_metrics(registry: &mut Registry, pipelines: &[(String, MetricsSnapshot)]) {
    let processed = Family::<Labels, Counter>::default();
    let filtered = Family::<Labels, Counter>::default();
    let failed = Family::<Labels, Counter>::default();
    let p50 = Family::<Labels, Gauge>::default();
    let p99 = Family::<Labels, Gauge>::default();
    for (id, s) in pipelines {
        for stage in &s.stages {
            let labels = vec![
                ("pipeline".to_string(), id.clone()),
                ("stage".to_string(), stage.stage.to_string()),
                ("module".to_string(), stage.module_id.clone()),
            ];
            processed
                .get_or_create(&labels)
                .inc_by(stage.messages_processed);
            filtered
                .get_or_create(&labels)
                .inc_by(stage.messages_filtered);
            failed.get_or_create(&labels).inc_by(stage.messages_failed);
            p50.get_or_create(&labels)
                .set((stage.p50_processing_time_ms * 1000.0) as i64);
            p99.get_or_create(&labels)
                .set((stage.p99_processing_time_ms * 1000.0) as i64);
        }
    }
    registry.register(
        "stage_messages_processed",
        "Chain stage: messages it handled without error",
        processed,
    );
    registry.register(
        "stage_messages_filtered",
        "Chain stage: messages it filtered out",
        filtered,
    );
    registry.register(
        "stage_messages_failed",
        "Chain stage: calls that failed in it",
        failed,
    );
    registry.register(
        "stage_processing_time_p50_microseconds",
        "Chain stage: median call time",
        p50,
    );
    registry.register(
        "stage_processing_time_p99_microseconds",
        "Chain stage: 99th percentile call time",
        p99,
    );
}

/// The Kafka part: per-partition lag, assigned partitions, rebalances, delivery mode
/// and outage, for pipelines with a Kafka source.
fn kafka_metrics(registry: &mut Registry, pipelines: &[(String, MetricsSnapshot)]) {
    let lag = Family::<Labels, Gauge>::default();
    let assigned = Family::<Labels, Gauge>::default();
    let rebalances = Family::<Labels, Counter>::default();
    let exactly_once = Family::<Labels, Gauge>::default();
    let outage = Family::<Labels, Gauge>::default();
    for (id, s) in pipelines {
        let Some(k) = &s.kafka else { continue };
        let pipeline = vec![("pipeline".to_string(), id.clone())];
        for p in &k.partitions {
            let mut labels = pipeline.clone();
            labels.push(("partition".to_string(), p.partition.to_string()));
            lag.get_or_create(&labels).set(p.lag as i64);
        }
        assigned
            .get_or_create(&pipeline)
            .set(k.assigned_partitions.len() as i64);
        rebalances.get_or_create(&pipeline).inc_by(k.rebalances);
        exactly_once
            .get_or_create(&pipeline)
            .set(i64::from(k.delivery == crate::kafka::Delivery::ExactlyOnce));
        outage
            .get_or_create(&pipeline)
            .set(i64::from(k.outage.is_some()));
    }
    registry.register(
        "kafka_partition_lag_messages",
        "Kafka source: end of the partition's log minus the committed position",
        lag,
    );
    registry.register(
        "kafka_assigned_partitions",
        "Kafka source: partitions this broker owns",
        assigned,
    );
    registry.register(
        "kafka_rebalances",
        "Kafka source: assignments and revocations seen",
        rebalances,
    );
    registry.register(
        "kafka_exactly_once",
        "Kafka pipeline: 1 when it commits with Kafka transactions, 0 when at-least-once",
        exactly_once,
    );
    registry.register(
        "kafka_outage",
        "Kafka pipeline: 1 while the cluster reports an error",
        outage,
    );
}

//! The source and sink of a pipeline, chosen by where its topics live, and the
//! delivery guarantee that combination gives.
//!
//! | source | outputs (destination, error topic) | sink | guarantee |
//! |---|---|---|---|
//! | local | local | [`LocalSink`]: one storage transaction | exactly-once |
//! | Kafka C | Kafka C, C has transactions | [`TransactionalSink`] | exactly-once |
//! | Kafka C | Kafka C, no transactions | [`StagedSink`] | at-least-once |
//! | Kafka | local (some or all) | [`StagedSink`] | at-least-once |
//! | local | Kafka (some or all) | [`StagedSink`] | at-least-once |
//!
//! The mixed cases are at-least-once because no transaction spans the broker's
//! storage and a Kafka cluster: the Kafka side is made durable first, then the
//! local side, and a crash between the two repeats the batch.
//!
//! Kafka clients are created here, on the pipeline's worker thread, not in the
//! request that starts the pipeline: starting transactions waits for the cluster,
//! which may be unreachable for a while.

use std::sync::Arc;

use super::endpoint::Endpoint;
use super::io::{LocalSink, LocalSource, LocalTopics, Sink, Source};
use super::metrics::PipelineMetrics;
use super::read_ahead::ReadAhead;
use super::spec::{PipelineRecord, PipelineSpec, SpecError, StartFrom};
use super::worker::Control;
use crate::kafka::progress::Progress;
use crate::kafka::sink::{
    KafkaProducer, Outputs, SourceOffsets, StagedParts, StagedSink, TransactionalSink, TxnStart,
};
use crate::kafka::source::KafkaSource;
use crate::kafka::{Clusters, Delivery, Role, Transactions};
use crate::storage::Storage;

/// A pipeline's three topics, parsed.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Where it reads.
    pub source: Endpoint,
    /// Where outputs go.
    pub destination: Endpoint,
    /// Where the module may route outputs, as declared.
    pub routes: Vec<Endpoint>,
    /// Where failures go.
    pub error_topic: Option<Endpoint>,
}

impl Endpoints {
    /// Parses and checks a definition's topics against the declared clusters.
    pub fn of(spec: &PipelineSpec, clusters: &Clusters) -> Result<Endpoints, SpecError> {
        let parse = |field: &'static str, text: &str| {
            Endpoint::parse(
                text,
                |t| Storage::validate_topic_name(t).map_err(|e| e.to_string()),
                |c| clusters.has(c),
            )
            .map_err(|message| SpecError { field, message })
        };
        let endpoints = Endpoints {
            source: parse("source_topic", &spec.source_topic)?,
            destination: parse("destination_topic", &spec.destination_topic)?,
            routes: spec
                .routes
                .iter()
                .map(|t| parse("routes", t))
                .collect::<Result<_, _>>()?,
            error_topic: spec
                .error_topic
                .as_deref()
                .map(|t| parse("error_topic", t))
                .transpose()?,
        };
        let clusters_used: Vec<&str> = std::iter::once(&endpoints.source)
            .chain(endpoints.outputs())
            .filter_map(Endpoint::cluster)
            .collect();
        if let Some(first) = clusters_used.first() {
            if let Some(other) = clusters_used.iter().find(|c| *c != first) {
                return Err(SpecError {
                    field: "destination_topic",
                    message: format!(
                        "the pipeline uses Kafka clusters {first:?} and {other:?}; one pipeline may use one cluster (its outputs and offsets share one transaction); chain two pipelines through a topic instead"
                    ),
                });
            }
        }
        if endpoints.source.cluster().is_some() {
            if let StartFrom::Offset(_) = spec.start_from {
                return Err(SpecError {
                    field: "start_from",
                    message: "a Kafka source has one offset per partition; use \"earliest\" or \"latest\" (they apply while the consumer group has no committed offsets)".into(),
                });
            }
        } else if spec.consumer_group.is_some() {
            return Err(SpecError {
                field: "consumer_group",
                message:
                    "only a Kafka source (kafka://CLUSTER/TOPIC) reads through a consumer group"
                        .into(),
            });
        }
        Ok(endpoints)
    }

    /// The guarantee these endpoints can give at best (a Kafka cluster may still
    /// turn out to lack transactions when the pipeline starts).
    pub fn best_delivery(&self, clusters: &Clusters) -> Delivery {
        match (&self.source, self.all_outputs_on_source_cluster()) {
            (Endpoint::Local(_), _) if self.outputs_local() => Delivery::ExactlyOnce,
            (Endpoint::Kafka { cluster, .. }, true)
                if clusters
                    .get(cluster)
                    .is_some_and(|c| c.transactions != Transactions::Off) =>
            {
                Delivery::ExactlyOnce
            }
            _ => Delivery::AtLeastOnce,
        }
    }

    fn outputs(&self) -> impl Iterator<Item = &Endpoint> {
        std::iter::once(&self.destination)
            .chain(&self.routes)
            .chain(self.error_topic.as_ref())
    }

    /// Whether the source and every output are this broker's topics: the one
    /// case where durable state commits with the outputs.
    pub fn all_local(&self) -> bool {
        self.source.cluster().is_none() && self.outputs_local()
    }

    /// The outputs, for a sink.
    pub fn sink_outputs(&self) -> Outputs {
        Outputs {
            destination: self.destination.clone(),
            routes: self.routes.clone(),
            error_topic: self.error_topic.clone(),
        }
    }

    fn outputs_local(&self) -> bool {
        self.outputs().all(|e| e.cluster().is_none())
    }

    fn all_outputs_on_source_cluster(&self) -> bool {
        let source = self.source.cluster();
        source.is_some() && self.outputs().all(|e| e.cluster() == source)
    }

    /// The Kafka cluster the outputs use, if any.
    fn output_cluster(&self) -> Option<&str> {
        self.outputs().find_map(Endpoint::cluster)
    }
}

/// The consumer group of a pipeline reading Kafka.
pub fn consumer_group(spec: &PipelineSpec) -> String {
    spec.consumer_group
        .clone()
        .unwrap_or_else(|| format!("rustmq-etl.{}", spec.pipeline_name))
}

/// A pipeline's source and sink, ready for its worker.
pub struct Connected {
    /// Read ahead on its own thread.
    pub source: Box<dyn Source>,
    /// Where batches commit.
    pub sink: Box<dyn Sink>,
    /// The Kafka source's progress, for status and metrics.
    pub kafka: Option<Arc<Progress>>,
}

/// Builds the source and sink of `record`. Blocks while a transactional producer
/// waits for an unreachable cluster, until `control` asks to stop.
pub fn connect(
    record: &PipelineRecord,
    storage: &Storage,
    clusters: &Clusters,
    control: &Arc<Control>,
    metrics: &PipelineMetrics,
    commits_in_flight: usize,
) -> Result<Connected, String> {
    let spec = &record.spec;
    let endpoints = Endpoints::of(spec, clusters).map_err(|e| e.to_string())?;
    let read_ahead = |source: Box<dyn Source>| -> Box<dyn Source> {
        Box::new(ReadAhead::new(
            source,
            &format!("etl-read-{}", record.pipeline_id),
        ))
    };
    let producer_config = |cluster: &str| {
        clusters
            .client_config(cluster, Role::Producer)
            .ok_or_else(|| format!("Kafka cluster {cluster:?} is not declared"))
    };
    match &endpoints.source {
        Endpoint::Local(topic) => {
            let source = read_ahead(Box::new(LocalSource::new(
                storage.clone(),
                topic,
                record.source_topic_id,
            )));
            let sink: Box<dyn Sink> = match endpoints.output_cluster() {
                None => Box::new(LocalSink::new(
                    storage.clone(),
                    &record.pipeline_id,
                    &record.consumer_id(),
                    LocalTopics {
                        destination: endpoints.destination.topic(),
                        routes: endpoints.routes.iter().map(Endpoint::topic).collect(),
                        error_topic: endpoints.error_topic.as_ref().map(Endpoint::topic),
                    },
                    commits_in_flight,
                )),
                Some(cluster) => Box::new(StagedSink::new(StagedParts {
                    producer: Some(
                        KafkaProducer::new(&producer_config(cluster)?, &spec.pipeline_name, None)
                            .map_err(|e| e.to_string())?,
                    ),
                    storage: storage.clone(),
                    local_consumer: Some(record.consumer_id()),
                    source: None,
                    outputs: endpoints.sink_outputs(),
                    control: Arc::clone(control),
                })),
            };
            Ok(Connected {
                source,
                sink,
                kafka: None,
            })
        }
        Endpoint::Kafka { cluster, topic } => {
            let group = consumer_group(spec);
            let settings = clusters
                .get(cluster)
                .ok_or_else(|| format!("Kafka cluster {cluster:?} is not declared"))?;
            let progress = Arc::new(Progress::new(
                endpoints.source.to_string(),
                group.clone(),
                endpoints.best_delivery(clusters),
            ));
            // Shown at once: while transactions start, the status tells why it waits.
            metrics.set_kafka(Some(Arc::clone(&progress)));
            let mut config = clusters
                .client_config(cluster, Role::Consumer)
                .expect("declared");
            config.set("group.id", &group).set(
                "auto.offset.reset",
                match spec.start_from {
                    StartFrom::Latest => "latest",
                    _ => "earliest",
                },
            );
            if settings.static_membership {
                config.set("group.instance.id", clusters.worker_id());
            }
            let kafka_source = KafkaSource::subscribe(&config, topic, Arc::clone(&progress))
                .map_err(|e| e.to_string())?;
            let offsets = SourceOffsets {
                consumer: kafka_source.consumer(),
                topic: topic.clone(),
                progress: Arc::clone(&progress),
            };
            let source = read_ahead(Box::new(kafka_source));
            let staged = |producer: Option<KafkaProducer>| -> Box<dyn Sink> {
                Box::new(StagedSink::new(StagedParts {
                    producer,
                    storage: storage.clone(),
                    local_consumer: None,
                    source: Some(offsets.clone()),
                    outputs: endpoints.sink_outputs(),
                    control: Arc::clone(control),
                }))
            };
            let sink = if progress.delivery() == Delivery::ExactlyOnce {
                let mut txn_config = producer_config(cluster)?;
                txn_config.set(
                    "transactional.id",
                    format!("rustmq-etl.{}.{}", spec.pipeline_name, clusters.worker_id()),
                );
                match TransactionalSink::start(
                    &txn_config,
                    offsets.clone(),
                    endpoints.sink_outputs(),
                    Arc::clone(control),
                )
                .map_err(|e| e.to_string())?
                {
                    TxnStart::Ready(sink) => Box::new(sink) as Box<dyn Sink>,
                    TxnStart::Unsupported(why) if settings.transactions == Transactions::Required => {
                        return Err(format!(
                            "Kafka cluster {cluster:?} does not support transactions ({why}) and [kafka.clusters.{cluster}] transactions = \"required\""
                        ))
                    }
                    TxnStart::Unsupported(why) => {
                        tracing::warn!(target: "rustmq::etl::kafka", pipeline_id = %record.pipeline_id, cluster = %cluster, reason = %why, "the cluster does not support transactions: at-least-once delivery");
                        progress.set_delivery(Delivery::AtLeastOnce);
                        staged(Some(
                            KafkaProducer::new(
                                &producer_config(cluster)?,
                                &spec.pipeline_name,
                                Some(Arc::clone(&progress)),
                            )
                            .map_err(|e| e.to_string())?,
                        ))
                    }
                }
            } else {
                let producer = match endpoints.output_cluster() {
                    Some(c) => Some(
                        KafkaProducer::new(
                            &producer_config(c)?,
                            &spec.pipeline_name,
                            Some(Arc::clone(&progress)),
                        )
                        .map_err(|e| e.to_string())?,
                    ),
                    None => None,
                };
                staged(producer)
            };
            tracing::info!(target: "rustmq::etl::kafka", pipeline_id = %record.pipeline_id, group = %group, delivery = progress.delivery().as_str(), "Kafka source connected");
            Ok(Connected {
                source,
                sink,
                kafka: Some(progress),
            })
        }
    }
}

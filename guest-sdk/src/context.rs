//! Where the messages being processed come from: [`Context`] for one message,
//! [`BatchContext`] for a batch.

use std::sync::Arc;

/// Where one message comes from. Passed with every [`process`](crate::Transform::process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    // Shared, so that the contexts of a batch's messages cost no copies.
    pipeline_id: Arc<str>,
    source_topic: Arc<str>,
    source_offset: u64,
    attempt: u32,
}

impl Context {
    /// The context of a first try (`attempt` 1). Meant for tests: in a module,
    /// contexts come from the broker.
    pub fn new(pipeline_id: &str, source_topic: &str, source_offset: u64) -> Context {
        Context {
            pipeline_id: pipeline_id.into(),
            source_topic: source_topic.into(),
            source_offset,
            attempt: 1,
        }
    }

    /// The context of one message of a batch whose ids are shared.
    pub(crate) fn shared(
        pipeline_id: &Arc<str>,
        source_topic: &Arc<str>,
        source_offset: u64,
        attempt: u32,
    ) -> Context {
        Context {
            pipeline_id: Arc::clone(pipeline_id),
            source_topic: Arc::clone(source_topic),
            source_offset,
            attempt,
        }
    }

    /// The context with this attempt number (1 for the first try).
    pub fn with_attempt(mut self, attempt: u32) -> Context {
        self.attempt = attempt;
        self
    }

    /// The id of the pipeline making the call.
    pub fn pipeline_id(&self) -> &str {
        &self.pipeline_id
    }

    /// The topic the message was read from.
    pub fn source_topic(&self) -> &str {
        &self.source_topic
    }

    /// The message's offset in the source topic (in its partition, for Kafka).
    pub fn source_offset(&self) -> u64 {
        self.source_offset
    }

    /// 1 on the first try; 2, 3, ... when the pipeline retries after a failure.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// Where the messages of a batch come from. Passed with every
/// [`process_batch`](crate::Transform::process_batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchContext {
    pipeline_id: Arc<str>,
    source_topic: Arc<str>,
    source_offsets: Vec<u64>,
    attempt: u32,
}

impl BatchContext {
    /// The context of a first try of a batch whose messages have these offsets.
    /// Meant for tests: in a module, contexts come from the broker.
    pub fn new(pipeline_id: &str, source_topic: &str, source_offsets: Vec<u64>) -> BatchContext {
        BatchContext {
            pipeline_id: pipeline_id.into(),
            source_topic: source_topic.into(),
            source_offsets,
            attempt: 1,
        }
    }

    /// The context with this attempt number (1 for the first try).
    pub fn with_attempt(mut self, attempt: u32) -> BatchContext {
        self.attempt = attempt;
        self
    }

    /// The id of the pipeline making the call.
    pub fn pipeline_id(&self) -> &str {
        &self.pipeline_id
    }

    /// The topic the messages were read from.
    pub fn source_topic(&self) -> &str {
        &self.source_topic
    }

    /// The source offset of each message of the batch, in order.
    pub fn source_offsets(&self) -> &[u64] {
        &self.source_offsets
    }

    /// 1 on the first try; 2, 3, ... when a message is retried (the broker retries
    /// one message per call).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The context of each message of the batch, in order, as
    /// [`process`](crate::Transform::process) would see it.
    pub fn contexts(&self) -> impl Iterator<Item = Context> + '_ {
        self.source_offsets.iter().map(|&source_offset| {
            Context::shared(
                &self.pipeline_id,
                &self.source_topic,
                source_offset,
                self.attempt,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_contexts_give_each_message_its_offset() {
        let batch = BatchContext::new("p", "in", vec![7, 8]).with_attempt(2);
        let contexts: Vec<Context> = batch.contexts().collect();
        assert_eq!(
            contexts,
            vec![
                Context::new("p", "in", 7).with_attempt(2),
                Context::new("p", "in", 8).with_attempt(2)
            ]
        );
        assert_eq!(contexts[1].source_topic(), "in");
        assert_eq!(contexts[1].pipeline_id(), "p");
    }
}

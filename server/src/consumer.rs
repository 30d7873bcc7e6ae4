//! The consumer group: Kafka → store → hub.
//!
//! The rule that makes Herald lose nothing: a record's offset is stored for
//! commit only after its notification is durably written (or the record was
//! judged unusable and logged). The write is idempotent, so a record seen
//! again after a crash or a rebalance is not stored twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

use app::model::Notification;

use crate::config::Config;
use crate::hub::Hub;
use crate::kafka::{base_config, Record};
use crate::store::{Source, Store, Stored};

/// Create the group member and subscribe it to the topic.
pub fn create(cfg: &Config) -> Result<StreamConsumer, KafkaError> {
    let consumer: StreamConsumer = base_config(cfg)
        .set("group.id", &cfg.group_id)
        // librdkafka commits in the background, but only offsets we stored
        // explicitly after the store write (enable.auto.offset.store=false).
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "500")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()?;
    consumer.subscribe(&[&cfg.topic])?;
    Ok(consumer)
}

/// What the consumer writes to and announces on.
pub struct Sink {
    /// Durable store.
    pub store: Store,
    /// Live fan-out to SSE streams.
    pub hub: Hub,
    /// Ids of known users; records for anyone else are skipped.
    pub users: Arc<HashSet<i64>>,
    /// Topic name, for ids derived from record positions.
    pub topic: String,
}

/// Consume until `shutdown`, then commit what was stored and leave the group.
pub async fn run(consumer: StreamConsumer, sink: Sink, shutdown: CancellationToken) {
    tracing::info!(topic = %sink.topic, "consumer started");
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let msg = match received {
            Ok(m) => m,
            Err(e) => {
                // Transport errors are transient; librdkafka reconnects.
                tracing::warn!(error = %e, "consumer error");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                }
            }
        };
        if !handle(&msg, &sink, &shutdown).await {
            // Shut down before the record was stored: leave its offset
            // uncommitted so the next member consumes it again.
            break;
        }
        if let Err(e) = consumer.store_offset_from_message(&msg) {
            tracing::warn!(error = %e, partition = msg.partition(), offset = msg.offset(), "could not store offset");
        }
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::info!("consumer offsets committed"),
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(error = %e, "final offset commit failed"),
    }
    consumer.unsubscribe();
    tracing::info!("consumer stopped");
}

/// Store one record. Returns false only when shutdown interrupted a retry.
async fn handle(msg: &BorrowedMessage<'_>, sink: &Sink, shutdown: &CancellationToken) -> bool {
    let src = Source {
        partition: msg.partition(),
        offset: msg.offset(),
    };
    let n = match decode(msg, sink) {
        Ok(n) => n,
        Err(reason) => {
            tracing::warn!(partition = src.partition, offset = src.offset, %reason, "skipping unusable record");
            return true;
        }
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        match sink.store.insert(&n, src).await {
            Ok(Some(seq)) => {
                sink.hub.publish(Stored {
                    seq,
                    notification: n,
                });
                return true;
            }
            Ok(None) => {
                tracing::debug!(id = %n.id, "duplicate record ignored");
                return true;
            }
            Err(e) => {
                // Never skip a valid record: retry until the store is back.
                tracing::error!(error = %e, id = %n.id, "store write failed, retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn decode(msg: &BorrowedMessage<'_>, sink: &Sink) -> Result<Notification, String> {
    let payload = msg.payload().ok_or("empty record")?;
    let record: Record =
        serde_json::from_slice(payload).map_err(|e| format!("invalid JSON: {e}"))?;
    if !sink.users.contains(&record.to.id) {
        return Err(format!("unknown recipient {}", record.to.id));
    }
    let timestamp = msg
        .timestamp()
        .to_millis()
        .and_then(DateTime::from_timestamp_millis);
    Ok(record.into_notification(&sink.topic, msg.partition(), msg.offset(), timestamp))
}

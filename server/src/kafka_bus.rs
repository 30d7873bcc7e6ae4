//! The event bus through a Kafka topic (`HERALD_EVENT_BUS=kafka`), for
//! instances sharing a PostgreSQL store behind a connection pooler that
//! cannot pass `LISTEN` through (PgBouncer in transaction mode).
//!
//! After a write commits, the writer produces an [`Announcement`] to
//! `<topic>.events`, keyed by user; every instance reads all of that topic's
//! partitions from their end (no consumer group: each instance needs every
//! change) and hands the announcements to the same delivery as the
//! PostgreSQL bus.
//!
//! What it gives up against `LISTEN/NOTIFY` (why that one is the default,
//! measured in docs/bench/scale-out.md):
//! - Order: two instances write for one user and produce their
//!   announcements after their commits, in either order. So new
//!   notifications are announced as a [`Announcement::Resync`] of the user:
//!   each stream reads what is new from its own position in the store, which
//!   cannot skip a row whatever order the hints arrive in. A read-state
//!   change that arrives out of order shows its older state until the next
//!   page load (the counts are right with the next change).
//! - Atomicity: an announcement is produced after the commit, so a crash in
//!   between (or a full producer queue) loses it. The streams then show the
//!   change with the user's next one, or on reconnect.
//! - Cost: one more produce per write, and every instance fetches the topic
//!   all the time (tansu answers a fetch only when its wait runs out).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use app::model::{Change, Counts, StateEvent};

use crate::acks::{AckContext, AckedProducer};
use crate::bus::{deliver_batches, enqueue, Announcement, EventBus, QUEUE};
use crate::config::Config;
use crate::hub::Hub;
use crate::kafka::{base_config, RequestCounter};
use crate::store::{Store, Stored};

/// How long the broker may hold a fetch of the events topic. Every change
/// waits for it on brokers that answer only when it runs out (tansu).
const FETCH_WAIT_MS: &str = "5";

/// Produces announcements to the events topic.
pub struct KafkaBus {
    /// Its reports are served on the runtime, like the notifications
    /// producer's (`acks`), though nobody awaits them.
    producer: Arc<AckedProducer>,
    topic: String,
}

impl KafkaBus {
    /// A producer for `cfg`'s events topic.
    pub fn new(cfg: &Config) -> Result<Self, KafkaError> {
        let mut config = base_config(cfg);
        config
            // A hint, not a record of truth: one acknowledgement is enough.
            .set("acks", "1")
            .set("linger.ms", cfg.linger_ms.to_string())
            .set(
                "max.in.flight.requests.per.connection",
                cfg.max_in_flight.to_string(),
            )
            .set("message.timeout.ms", "5000")
            .set("queue.buffering.max.messages", "100000");
        let producer = AckedProducer::start(&config, AckContext(RequestCounter::new("events")))?;
        Ok(Self {
            producer,
            topic: cfg.events_topic(),
        })
    }

    fn publish(&self, a: &Announcement) {
        let payload = a.to_payload();
        let key = a.user().to_string();
        // The delivery report is not awaited (its receiver is dropped here):
        // the writer does not wait for the bus, and a lost hint is caught
        // up later (see the module doc).
        let (to, _) = tokio::sync::oneshot::channel();
        let record = BaseRecord::with_opaque_to(&self.topic, Box::new(to))
            .key(&key)
            .payload(&payload);
        if let Err((e, _)) = self.producer.producer().send(record) {
            metrics::counter!("herald_bus_dropped_total").increment(1);
            tracing::warn!(error = %e, "could not announce a change on the events topic");
        }
    }
}

#[async_trait::async_trait]
impl EventBus for KafkaBus {
    async fn stored(&self, _store: &Store, news: Vec<Stored>, _counts: Vec<(i64, Counts)>) {
        let mut users: Vec<i64> = news.iter().map(|s| s.notification.to.id).collect();
        users.sort_unstable();
        users.dedup();
        for user in users {
            self.publish(&Announcement::Resync { user });
        }
    }

    fn changed(&self, user: i64, event: StateEvent) {
        let counts = event.counts;
        let a = match event.change {
            Change::Updated { notification } => Announcement::Updated {
                user,
                read: Some(notification.read),
                archived: Some(notification.archived),
                id: notification.id,
                counts,
            },
            Change::Deleted { id } => Announcement::Deleted { user, id, counts },
            Change::ReadAll { through } => Announcement::ReadAll {
                user,
                through,
                counts,
            },
        };
        self.publish(&a);
    }
}

/// A reader of every partition of the events topic, from its end (at
/// start, so that a broker Herald cannot read from stops it there).
pub async fn subscribe(cfg: &Config) -> Result<StreamConsumer, KafkaError> {
    let topic = cfg.events_topic();
    let consumer: StreamConsumer = base_config(cfg)
        // Required by librdkafka even though nothing is ever committed:
        // partitions are assigned, not balanced.
        .set(
            "group.id",
            format!("herald-events-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", FETCH_WAIT_MS)
        .create()?;
    // Metadata calls block: done on the blocking pool, which hands the
    // consumer back.
    let (consumer, partitions) = {
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || {
            let partitions = consumer
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .map(|m| {
                    m.topics()
                        .first()
                        .map_or(0, |t| t.partitions().len() as i32)
                });
            (consumer, partitions)
        })
        .await
        .map_err(|_| KafkaError::Canceled)?
    };
    let partitions = partitions?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(&topic, p, Offset::End)?;
    }
    consumer.assign(&assignment)?;
    tracing::info!(%topic, partitions, "reading announcements from the events topic");
    Ok(consumer)
}

/// Read what `subscribe` assigned until `shutdown`, publishing the changes
/// of users watched here to `hub`.
pub async fn listen(consumer: StreamConsumer, store: Store, hub: Hub, shutdown: CancellationToken) {
    // Streams opened before the assignment may have missed changes.
    hub.resync_all();
    let (tx, rx) = mpsc::channel(QUEUE);
    let delivering = tokio::spawn(deliver_batches(rx, store, hub.clone()));
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                // librdkafka reconnects by itself; the position is kept.
                tracing::warn!(error = %e, "reading the events topic failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let parsed = message
            .payload()
            .and_then(|p| serde_json::from_slice::<Announcement>(p).ok());
        let Some(a) = parsed else {
            metrics::counter!("herald_bus_bad_announcements_total").increment(1);
            continue;
        };
        enqueue(&tx, a, &hub);
    }
    delivering.abort();
}

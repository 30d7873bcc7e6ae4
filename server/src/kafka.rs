//! Kafka plumbing: client settings, topic creation, the producer and the
//! record format.
//!
//! Nothing here is specific to tansu: the same code talks to Apache Kafka or
//! Redpanda; the broker list is configuration.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders, ToBytes};
use rdkafka::producer::{BaseRecord, Producer as _, PurgeConfig};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use serde::{Deserialize, Serialize};

use app::model::{Category, Notification, ServiceError, User, DEFAULT_PRIORITY, PRIORITY_RANGE};

use crate::acks::{AckContext, AckTo, AckedProducer};
use crate::config::{Config, EventBusKind};
use crate::error::StartError;
use crate::pacer::Demand;
use crate::store::Source;

/// The Kafka record value. The first three fields are the Go tutorial's
/// format; `id`, `created_at`, `category` and `priority` are Herald's
/// additions and optional on read, so records written by the tutorial's
/// producer are still consumed. Read state is not part of the record: it
/// belongs to the store.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// Sender.
    pub from: User,
    /// Recipient; its id is also the record key.
    pub to: User,
    /// The text.
    pub message: String,
    /// Unique notification id (UUIDv7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When Herald accepted it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339"
    )]
    pub created_at: Option<DateTime<Utc>>,
    /// Kind of notification (`info` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// Priority 1–5 (3 when absent; out-of-range values are clamped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// The sender is a service (an API key) and `from.id` its key id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_service: bool,
    /// Title (checked again when consumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Link (checked again when consumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Buttons (checked again when consumed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<app::model::Action>,
}

/// `created_at` as chrono's serde writes it (`2026-11-29T09:16:01.123Z`:
/// 0, 3, 6 or 9 digits of fraction, `Z`), by its RFC 3339 writer rather
/// than its `Debug` formatting, which cost half of a record's
/// serialization (callgrind).
fn rfc3339<S: serde::Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        None => s.serialize_none(),
    }
}

impl Record {
    /// The record for a notification Herald produces.
    pub fn from_notification(n: &Notification) -> Self {
        Self {
            from: n.from.clone(),
            to: n.to.clone(),
            message: n.message.clone(),
            id: Some(n.id.clone()),
            created_at: Some(n.created_at),
            category: Some(n.category),
            priority: Some(n.priority),
            from_service: n.from_service,
            title: n.title.clone(),
            link: n.link.clone(),
            actions: n.actions.clone(),
        }
    }

    /// The notification to store. A record without `id` gets one derived
    /// from where it sits in Kafka, which is stable across redeliveries; one
    /// without `created_at` takes the record's timestamp.
    pub fn into_notification(
        self,
        topic: &str,
        partition: i32,
        offset: i64,
        timestamp: Option<DateTime<Utc>>,
    ) -> Notification {
        Notification {
            id: self
                .id
                .unwrap_or_else(|| format!("{topic}-{partition}-{offset}")),
            from: self.from,
            to: self.to,
            message: self.message,
            created_at: self.created_at.or(timestamp).unwrap_or_else(Utc::now),
            category: self.category.unwrap_or_default(),
            priority: self
                .priority
                .unwrap_or(DEFAULT_PRIORITY)
                .clamp(*PRIORITY_RANGE.start(), *PRIORITY_RANGE.end()),
            read: false,
            archived: false,
            from_service: self.from_service,
            title: self.title,
            link: self.link,
            actions: self.actions,
        }
    }
}

/// Run `work` (a librdkafka call that may block for long: closing a
/// consumer, destroying a client) on a thread of its own, and hand back its
/// result.
///
/// Not `spawn_blocking`: a tokio runtime waits for its blocking tasks when
/// it is dropped, so a close stuck behind a rebalance the broker never
/// finishes held up the end of a test (and would hold up a process exit
/// without `shutdown_timeout`). A detached thread is simply left behind;
/// callers bound their wait on the answer.
pub(crate) fn detached<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> tokio::sync::oneshot::Receiver<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = tx.send(work());
        });
    if let Err(e) = spawned {
        // The receiver then reads as "never answered", which callers treat
        // like a timeout.
        tracing::error!(error = %e, thread = name, "could not start a thread");
    }
    rx
}

/// How often librdkafka reports its statistics to Herald's clients (request
/// counts per type, batch sizes, consumer lag).
pub const STATISTICS_INTERVAL_MS: &str = "1000";

/// Exports a client's Kafka requests by type from librdkafka's statistics
/// as `herald_kafka_requests_total{client, request}`: how many Produce,
/// Fetch, OffsetCommit, Heartbeat… requests the broker served per send is
/// what the broker's cost follows (docs/bench/cost.md).
pub struct RequestCounter {
    client: &'static str,
    /// Totals last reported per request type: librdkafka reports running
    /// totals, the metric counts increments (a replaced client starts over).
    last: Mutex<std::collections::HashMap<String, i64>>,
}

impl RequestCounter {
    /// Counter for requests of `client` ("producer", "consumer").
    pub fn new(client: &'static str) -> Self {
        Self {
            client,
            last: Mutex::default(),
        }
    }

    /// Count what `stats` reports since the last call.
    pub fn record(&self, stats: &rdkafka::Statistics) {
        for (request, new) in self.increments(stats) {
            metrics::counter!(
                "herald_kafka_requests_total",
                "client" => self.client,
                "request" => request
            )
            .increment(new);
        }
        for (stage, stat, seconds) in latencies(stats) {
            metrics::gauge!(
                "herald_kafka_latency_seconds",
                "client" => self.client,
                "stage" => stage,
                "stat" => stat
            )
            .set(seconds);
        }
        for topic in stats.topics.values() {
            if topic.batchcnt.cnt > 0 {
                metrics::gauge!(
                    "herald_kafka_batch_records",
                    "client" => self.client,
                    "topic" => topic.topic.clone()
                )
                .set(topic.batchcnt.avg as f64);
            }
        }
    }

    /// Requests of each type sent since the last call (summed over the
    /// brokers; types with none left out).
    fn increments(&self, stats: &rdkafka::Statistics) -> Vec<(String, u64)> {
        let mut totals = std::collections::BTreeMap::<&str, i64>::new();
        for broker in stats.brokers.values() {
            for (request, n) in &broker.req {
                *totals.entry(request.as_str()).or_default() += n;
            }
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (request, total) in totals {
            let before = last.insert(request.to_owned(), total).unwrap_or(0);
            // Lower than before: a new client, whose count starts at zero.
            let new = if total >= before {
                total - before
            } else {
                total
            };
            if new > 0 {
                out.push((request.to_owned(), new as u64));
            }
        }
        out
    }
}

/// Where a request's time went over the last statistics interval, from
/// librdkafka's rolling windows, as `(stage, stat, seconds)`:
/// - `queue`: a produced message waiting in librdkafka before it is put in
///   a request (the linger, and the wait for the request in flight);
/// - `send_buffer`: a request waiting to be written to the broker's socket;
/// - `rtt`: the broker's round trip, request written to answer read (a
///   fetch's includes its wait for records).
///
/// Each as `p50`, `p99` and `max`; over several brokers the largest.
/// Stages with nothing measured in the interval are left out, so a gauge
/// keeps its last value while its client is idle. Why: a slow send is
/// either the broker's answer (`rtt`) or the wait behind the one request
/// Herald keeps in flight (`queue`, `send_buffer`), and the send's own
/// `herald_produce_seconds` cannot tell which (docs/bench/cost.md).
fn latencies(stats: &rdkafka::Statistics) -> Vec<(&'static str, &'static str, f64)> {
    let mut out: Vec<(&'static str, &'static str, f64)> = Vec::new();
    for broker in stats.brokers.values() {
        let windows = [
            ("queue", &broker.int_latency),
            ("send_buffer", &broker.outbuf_latency),
            ("rtt", &broker.rtt),
        ];
        for (stage, window) in windows {
            let Some(w) = window.as_ref().filter(|w| w.cnt > 0) else {
                continue;
            };
            for (stat, micros) in [("p50", w.p50), ("p99", w.p99), ("max", w.max)] {
                let seconds = micros as f64 / 1e6;
                match out.iter_mut().find(|(s, t, _)| *s == stage && *t == stat) {
                    Some(seen) => seen.2 = seen.2.max(seconds),
                    None => out.push((stage, stat, seconds)),
                }
            }
        }
    }
    out
}

/// Settings every Herald client shares.
pub fn base_config(cfg: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.kafka_brokers)
        // Reconnect quickly after a broker restart instead of backing off
        // for up to 10 s (librdkafka's default).
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "1000")
        .set("log_level", "4");
    if let Some(debug) = cfg.kafka_debug.as_deref().filter(|d| !d.is_empty()) {
        c.set("debug", debug).set("log_level", "7");
    }
    // Security settings go to librdkafka as given; it refuses unknown
    // values when a client is created, so a typo stops Herald at start.
    let security = [
        ("security.protocol", cfg.kafka_security_protocol.clone()),
        ("sasl.mechanism", cfg.kafka_sasl_mechanism.clone()),
        ("sasl.username", cfg.kafka_sasl_username.clone()),
        ("sasl.password", cfg.kafka_sasl_password.clone()),
        (
            "ssl.ca.location",
            cfg.kafka_ssl_ca_location
                .as_ref()
                .map(|p| p.display().to_string()),
        ),
    ];
    for (key, value) in security {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            c.set(key, value);
        }
    }
    c
}

/// Create the notifications topic and its dead-letter topic unless they
/// exist, retrying while the broker is not up yet (e.g. `scripts/dev` started
/// it a moment ago).
pub async fn ensure_topics(cfg: &Config) -> Result<(), StartError> {
    let admin: AdminClient<DefaultClientContext> = base_config(cfg).create()?;
    let dlq = cfg.dlq_topic();
    let rf = cfg.replication_factor;
    let events = cfg.events_topic();
    let mut topics = vec![
        NewTopic::new(&cfg.topic, cfg.partitions, TopicReplication::Fixed(rf)),
        NewTopic::new(&dlq, cfg.partitions, TopicReplication::Fixed(rf)),
    ];
    if cfg.event_bus == EventBusKind::Kafka {
        // Changes matter only while streams are open: an hour is plenty.
        topics.push(
            NewTopic::new(&events, cfg.partitions, TopicReplication::Fixed(rf))
                .set("retention.ms", "3600000"),
        );
    }
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(5)))
        .request_timeout(Some(Duration::from_secs(5)));
    let deadline = Instant::now() + Duration::from_millis(cfg.startup_timeout_ms);
    loop {
        let err = match admin.create_topics(&topics, &opts).await {
            Ok(results) => {
                let mut failed = None;
                for result in results {
                    match result {
                        Ok(name) => tracing::info!(topic = %name, "created topic"),
                        Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((name, code)) => failed = Some(format!("{name}: {code:?}")),
                    }
                }
                match failed {
                    None => return Ok(()),
                    Some(e) => e,
                }
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(StartError::Broker(format!(
                "could not create topics {} and {dlq} on {}: {err}",
                cfg.topic, cfg.kafka_brokers
            )));
        }
        tracing::warn!(brokers = %cfg.kafka_brokers, error = %err, "broker not ready, retrying");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The producer side of the service: idempotent, acks=all, bounded.
///
/// After a send fails because the broker was away or answered with an error,
/// the client is replaced by a fresh one (a new producer id), at most once
/// per [`REBUILD_INTERVAL`]. Why: an idempotent librdkafka client whose
/// messages timed out bumps its producer epoch when the broker returns, and
/// tansu 0.6 does not handle that bump (its storage task panics on the next
/// produce and the broker stops serving). A fresh client starts at a new
/// producer id, which every broker handles. The sends that failed were
/// answered 503, so nothing acknowledged is affected.
#[derive(Clone)]
pub struct Producer {
    shared: Arc<ProducerShared>,
}

struct ProducerShared {
    client: RwLock<Arc<AckedProducer>>,
    /// Told (by the service) where notifications landed that the consumer
    /// must read, so a paused consumer resumes.
    demand: Demand,
    config: ClientConfig,
    topic: String,
    timeout: Duration,
    last_rebuild: Mutex<Instant>,
}

/// Minimum time between two rebuilds of the client.
const REBUILD_INTERVAL: Duration = Duration::from_secs(1);

impl Producer {
    /// Build the producer. It connects lazily; sends fail with
    /// [`ServiceError::Unavailable`] while the broker is away.
    pub fn new(cfg: &Config) -> Result<Self, KafkaError> {
        let timeout = cfg.send_timeout();
        // librdkafka gives up on a message after message.timeout.ms; keep a
        // margin so the HTTP answer comes within the configured bound.
        let message_timeout = timeout
            .saturating_sub(Duration::from_millis(250))
            .max(Duration::from_millis(100));
        let mut config = base_config(cfg);
        config
            .set("acks", "all")
            .set("enable.idempotence", cfg.kafka_idempotence.to_string())
            .set(
                "message.timeout.ms",
                message_timeout.as_millis().to_string(),
            )
            .set("linger.ms", cfg.linger_ms.to_string())
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
            .set(
                "max.in.flight.requests.per.connection",
                cfg.max_in_flight.to_string(),
            )
            // Bounded in-flight queue: when it is full, sends fail at once.
            .set("queue.buffering.max.messages", "100000")
            // The largest record produced (a dead letter may copy a large
            // foreign record): match the broker's limit.
            .set("message.max.bytes", cfg.kafka_message_max_bytes.to_string());
        let client = AckedProducer::start(&config, AckContext(RequestCounter::new("producer")))?;
        Ok(Self {
            shared: Arc::new(ProducerShared {
                client: RwLock::new(client),
                demand: Demand::default(),
                config,
                topic: cfg.topic.clone(),
                timeout,
                last_rebuild: Mutex::new(Instant::now()),
            }),
        })
    }

    /// Where this producer's notifications land, for the consumer (see
    /// `pacer`).
    pub fn demand(&self) -> Demand {
        self.shared.demand.clone()
    }

    fn client(&self) -> Arc<AckedProducer> {
        self.shared
            .client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Produce `n` keyed by its recipient and wait for the acknowledgement;
    /// returns where the broker put it.
    pub async fn send(&self, n: &Notification) -> Result<Source, ServiceError> {
        let payload = serde_json::to_vec(&Record::from_notification(n)).map_err(|e| {
            tracing::error!(error = %e, "could not encode record");
            ServiceError::Internal
        })?;
        let key = n.to.id.to_string();
        let (to, ack) = tokio::sync::oneshot::channel();
        let record = BaseRecord::with_opaque_to(&self.shared.topic, Box::new(to))
            .key(&key)
            .payload(&payload);
        self.deliver(record, ack).await.map_err(|e| {
            tracing::warn!(error = %e, id = %n.id, "send failed");
            ServiceError::Unavailable(match e {
                KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut) => {
                    "the message broker did not acknowledge the notification in time".into()
                }
                e => format!("the message broker did not accept the notification: {e}"),
            })
        })
    }

    /// Enqueue `record` and wait, at most the send bound, for the broker's
    /// acknowledgement on `ack`. A full local queue fails at once; after a
    /// failure that may leave the client's producer state stale, the client
    /// is replaced (see the type's documentation).
    async fn deliver<K, P>(
        &self,
        record: BaseRecord<'_, K, P, AckTo>,
        ack: tokio::sync::oneshot::Receiver<crate::acks::Ack>,
    ) -> Result<Source, KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        // The client is held only while enqueueing, not while waiting: the
        // last handle of a replaced client is then (but for a race of a few
        // instructions) the one `rebuild` drops off the runtime.
        let enqueued = self.client().producer().send(record);
        let acked = match enqueued {
            Err((e, _)) => Err(e),
            Ok(()) => match tokio::time::timeout(self.shared.timeout, ack).await {
                Ok(Ok(acked)) => acked,
                // The client went away without reporting (it was replaced
                // and could not purge in time).
                Ok(Err(_)) => Err(KafkaError::Canceled),
                Err(_) => Err(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageTimedOut,
                )),
            },
        };
        if acked.as_ref().is_err_and(needs_new_client) {
            self.rebuild();
        }
        acked
    }

    /// Copy an unusable record to the dead-letter topic `dlq` with headers
    /// naming the error and the source position, and wait for the ack.
    pub async fn send_dead_letter(
        &self,
        dlq: &str,
        letter: &DeadLetter<'_>,
    ) -> Result<(), KafkaError> {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "herald.error",
                value: Some(letter.error),
            })
            .insert(Header {
                key: "herald.source.topic",
                value: Some(letter.topic),
            })
            .insert(Header {
                key: "herald.source.partition",
                value: Some(&letter.partition.to_string()),
            })
            .insert(Header {
                key: "herald.source.offset",
                value: Some(&letter.offset.to_string()),
            });
        let headers = match &letter.original {
            None => headers,
            Some(o) => headers
                .insert(Header {
                    key: "herald.truncated",
                    value: Some("true"),
                })
                .insert(Header {
                    key: "herald.original.size",
                    value: Some(&o.size.to_string()),
                })
                .insert(Header {
                    key: "herald.original.sha256",
                    value: Some(o.sha256.as_str()),
                }),
        };
        let (to, ack) = tokio::sync::oneshot::channel();
        let mut record: BaseRecord<'_, [u8], [u8], AckTo> =
            BaseRecord::with_opaque_to(dlq, Box::new(to)).headers(headers);
        if let Some(key) = letter.key {
            record = record.key(key);
        }
        if let Some(payload) = letter.payload {
            record = record.payload(payload);
        }
        self.deliver(record, ack).await.map(drop)
    }

    /// Swap in a fresh client, at most once per [`REBUILD_INTERVAL`].
    fn rebuild(&self) {
        {
            let mut last = self
                .shared
                .last_rebuild
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < REBUILD_INTERVAL {
                return;
            }
            *last = Instant::now();
        }
        let fresh = match AckedProducer::start(
            &self.shared.config,
            AckContext(RequestCounter::new("producer")),
        ) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "could not create a new producer");
                return;
            }
        };
        let old = std::mem::replace(
            &mut *self
                .shared
                .client
                .write()
                .unwrap_or_else(|e| e.into_inner()),
            fresh,
        );
        tracing::warn!("producer replaced after a failed send");
        // Destroying a client waits for its outstanding requests: not on a
        // runtime thread, and nobody needs to wait for it.
        drop(detached("producer-drop", move || {
            old.producer()
                .purge(PurgeConfig::default().queue().inflight());
            drop(old);
        }));
    }

    /// Whether the broker answers a metadata request for the topic within
    /// `timeout` (for readiness). Runs the blocking call off the runtime.
    pub async fn check_broker(&self, timeout: Duration) -> Result<(), String> {
        let client = self.client();
        let topic = self.shared.topic.clone();
        let probe = tokio::task::spawn_blocking(move || {
            client
                .producer()
                .client()
                .fetch_metadata(Some(&topic), Timeout::After(timeout))
                .map_err(|e| e.to_string())
                .and_then(|m| match m.topics().first() {
                    Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
                    Some(t) => Err(format!("topic {topic}: {:?}", t.error())),
                    None => Err(format!("topic {topic} missing")),
                })
        });
        probe.await.map_err(|e| e.to_string())?
    }

    /// Wait for in-flight messages (at shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.client().producer().flush(Timeout::After(timeout)) {
            tracing::warn!(error = %e, "producer flush incomplete");
        }
    }
}

/// An unusable record on its way to the dead-letter topic.
#[derive(Debug)]
pub struct DeadLetter<'a> {
    /// Why it was unusable.
    pub error: &'a str,
    /// Source topic.
    pub topic: &'a str,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// The record's key, unchanged.
    pub key: Option<&'a [u8]>,
    /// The record's value, unchanged, or its start in a truncated copy.
    pub payload: Option<&'a [u8]>,
    /// Set on a truncated copy: what the whole value was.
    pub original: Option<Original>,
}

/// Size and SHA-256 (hex) of a record value a truncated dead letter
/// carries only the start of, so the original can be found on the source
/// topic and checked.
#[derive(Debug, Clone)]
pub struct Original {
    /// Bytes of the whole value.
    pub size: usize,
    /// SHA-256 of the whole value, lower-case hex.
    pub sha256: String,
}

/// Produce errors that the same record will meet again however often it is
/// retried.
pub fn is_permanent(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e,
        KafkaError::MessageProduction(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidRecord
                | C::MessageBatchTooLarge
                | C::InvalidTopic
                | C::TopicAuthorizationFailed
        )
    )
}

/// Failures after which the client's producer state may be stale (timeouts
/// while the broker was away, errors the broker answered with). A full local
/// queue or an oversize record say nothing about the broker.
fn needs_new_client(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    match e {
        KafkaError::MessageProduction(code) => !matches!(
            code,
            C::QueueFull | C::MessageSizeTooLarge | C::InvalidMessageSize
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::producer::BaseProducer;

    use super::*;

    fn bare() -> Record {
        serde_json::from_str(
            r#"{"from":{"id":2,"name":"Bruno"},"to":{"id":1,"name":"Emma"},"message":"hi"}"#,
        )
        .unwrap()
    }

    /// Readers of the topic see `created_at` exactly as chrono's serde
    /// writes it, whatever the fraction of a second, and read it back.
    #[test]
    fn created_at_is_written_as_chrono_writes_it() {
        let base = DateTime::parse_from_rfc3339("2026-11-29T09:16:01Z")
            .unwrap()
            .with_timezone(&Utc);
        for nanos in [0, 120_000_000, 123_456_000, 123_456_789, 999_999_999] {
            let at = base + chrono::Duration::nanoseconds(nanos);
            let record = Record {
                created_at: Some(at),
                ..bare()
            };
            let written = serde_json::to_value(&record).unwrap();
            assert_eq!(written["created_at"], serde_json::to_value(at).unwrap());
            let read: Record = serde_json::from_value(written).unwrap();
            assert_eq!(read.created_at, Some(at));
        }
        let record = bare();
        assert!(serde_json::to_value(&record)
            .unwrap()
            .get("created_at")
            .is_none());
    }

    /// A librdkafka call that never returns (a consumer close behind a
    /// rebalance the broker never finishes) must not keep the runtime from
    /// stopping: with `spawn_blocking` it did, and a test hung at its end.
    #[test]
    fn a_stuck_detached_call_does_not_hold_up_the_runtime() {
        let (stopped, stopped_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let answer = detached("stuck", || loop {
                    std::thread::park();
                });
                let waited = tokio::time::timeout(Duration::from_millis(50), answer).await;
                assert!(waited.is_err(), "the stuck call answered");
            });
            drop(rt);
            stopped.send(()).unwrap();
        });
        stopped_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the runtime stops although the call is stuck");
    }

    #[test]
    fn request_counts_move_by_what_each_report_adds_over_all_brokers() {
        let stats = |per_broker: &[&[(&str, i64)]]| {
            let mut s = rdkafka::Statistics::default();
            for (i, reqs) in per_broker.iter().enumerate() {
                let b = rdkafka::statistics::Broker {
                    req: reqs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                    ..Default::default()
                };
                s.brokers.insert(format!("broker{i}"), b);
            }
            s
        };
        let counter = RequestCounter::new("producer");
        let first = counter.increments(&stats(&[
            &[("Produce", 7), ("Fetch", 0)],
            &[("Produce", 3)],
        ]));
        assert_eq!(
            first,
            vec![("Produce".to_owned(), 10)],
            "summed, zeros left out"
        );
        let second = counter.increments(&stats(&[
            &[("Produce", 12), ("Metadata", 1)],
            &[("Produce", 3)],
        ]));
        assert_eq!(
            second,
            vec![("Metadata".to_owned(), 1), ("Produce".to_owned(), 5)],
            "only what is new"
        );
        assert!(counter
            .increments(&stats(&[&[("Produce", 12)], &[("Produce", 3)]]))
            .is_empty());
        // A replaced client reports from zero again: its requests count.
        let fresh = counter.increments(&stats(&[&[("Produce", 4)]]));
        assert_eq!(fresh, vec![("Produce".to_owned(), 4)]);
    }

    #[test]
    fn latencies_are_the_largest_over_the_brokers_that_measured_any() {
        let window = |cnt, p50, p99, max| {
            Some(rdkafka::statistics::Window {
                cnt,
                p50,
                p99,
                max,
                ..Default::default()
            })
        };
        let mut stats = rdkafka::Statistics::default();
        stats.brokers.insert(
            "a".into(),
            rdkafka::statistics::Broker {
                int_latency: window(10, 2_000, 9_000, 30_000),
                outbuf_latency: window(10, 100, 4_000, 12_000),
                rtt: window(10, 900, 8_000, 20_000),
                ..Default::default()
            },
        );
        stats.brokers.insert(
            "b".into(),
            rdkafka::statistics::Broker {
                // Idle in the interval: its zeros say nothing.
                int_latency: window(0, 0, 0, 0),
                outbuf_latency: None,
                rtt: window(3, 1_500, 2_000, 45_000),
                ..Default::default()
            },
        );
        let mut got = latencies(&stats);
        got.sort_by(|x, y| (x.0, x.1).cmp(&(y.0, y.1)));
        assert_eq!(
            got,
            vec![
                ("queue", "max", 0.030),
                ("queue", "p50", 0.002),
                ("queue", "p99", 0.009),
                ("rtt", "max", 0.045),
                ("rtt", "p50", 0.0015),
                ("rtt", "p99", 0.008),
                ("send_buffer", "max", 0.012),
                ("send_buffer", "p50", 0.0001),
                ("send_buffer", "p99", 0.004),
            ]
        );
        assert!(latencies(&rdkafka::Statistics::default()).is_empty());
    }

    #[test]
    fn tls_and_sasl_settings_reach_librdkafka_which_supports_them() {
        let mut cfg = Config::defaults();
        cfg.kafka_security_protocol = Some("sasl_ssl".into());
        cfg.kafka_sasl_mechanism = Some("SCRAM-SHA-512".into());
        cfg.kafka_sasl_username = Some("herald".into());
        cfg.kafka_sasl_password = Some("s3cret".into());
        let c = base_config(&cfg);
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.username"), Some("herald"));
        assert_eq!(c.get("sasl.password"), Some("s3cret"));
        // librdkafka refuses TLS and SCRAM when built without OpenSSL: a
        // client is made (no connection yet) only if the build has them.
        if let Err(e) = c.create::<BaseProducer>() {
            panic!("TLS + SCRAM client: {e}");
        }
        cfg.kafka_security_protocol = Some("sasl_tls".into());
        assert!(
            base_config(&cfg).create::<BaseProducer>().is_err(),
            "a typo is refused at start"
        );
    }
}

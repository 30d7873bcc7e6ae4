//! The consumer group: Kafka → store → event bus.
//!
//! The rule that makes Herald lose nothing: a record's offset is stored for
//! commit only after its notification is durably written, or after the
//! record, judged unusable, was acknowledged by the dead-letter topic. The
//! write is idempotent (unique notification id), so a record seen again after
//! a crash or a rebalance is not stored twice.
//!
//! Records are handled in batches: whatever is already waiting (up to
//! [`BATCH_MAX`]) is written in one transaction, one fsync for many
//! notifications, without weakening the rule above.
//!
//! Records that early delivery already wrote durably (see
//! `delivery`) are not written again: the [`Ledger`] says so, and only their
//! offsets are stored.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::DateTime;
use futures::FutureExt;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use app::model::{is_acceptable_id, Notification, User};

use crate::config::Config;
use crate::delivery::Ledger;
use crate::directory::Directory;
use crate::kafka::{
    base_config, is_permanent, DeadLetter, Original, Producer, Record, RequestCounter,
    STATISTICS_INTERVAL_MS,
};
use crate::pacer::{Demand, Pacer};
use crate::service::{check_extras, check_message};
use crate::store::Source;
use crate::writer::{Origin, Writer};

/// Bound on committing and leaving the group at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Tries at producing a dead letter (each bounded by the send timeout)
/// before the next fallback: a full copy, then a truncated one, then a
/// counted skip.
const DLQ_ATTEMPTS: u32 = 3;

/// Bytes of the value (and of the key) a truncated dead letter keeps.
const TRUNCATED_BYTES: usize = 1024;

/// Most records written in one transaction.
pub const BATCH_MAX: usize = 500;

/// Consumer context that commits stored offsets when partitions are revoked,
/// so the member that takes them over starts right after what was stored,
/// and keeps the set of owned partitions for early delivery.
pub struct GroupContext {
    ledger: Ledger,
    requests: RequestCounter,
    demand: Demand,
}

impl ClientContext for GroupContext {
    /// librdkafka's statistics (every `statistics.interval.ms`): export the
    /// lag of each assigned partition and the requests made.
    fn stats(&self, stats: Statistics) {
        self.requests.record(&stats);
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(
                        "herald_consumer_lag",
                        "topic" => topic.clone(),
                        "partition" => partition.to_string()
                    )
                    .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            // Stop early delivery first: these may be someone else's soon.
            self.ledger.revoke();
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => tracing::info!(
                    partitions = partitions.count(),
                    "committed before revocation"
                ),
                Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => tracing::warn!(error = %e, "commit before revocation failed"),
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            self.ledger
                .assign(partitions.elements().iter().map(|e| e.partition()));
            // New partitions are read at once, paused or not before (see
            // `pacer`).
            if let Err(e) = consumer.resume(partitions) {
                tracing::warn!(error = %e, "could not resume the assigned partitions");
            }
            self.demand.reassigned();
        }
    }
}

/// The consumer type Herald uses.
pub type GroupConsumer = StreamConsumer<GroupContext>;

/// Create the group member and subscribe it to the topic; `ledger` follows
/// its assignment, and an assignment wakes the consumer through `demand`.
pub fn create(cfg: &Config, ledger: Ledger, demand: Demand) -> Result<GroupConsumer, KafkaError> {
    let consumer: GroupConsumer = base_config(cfg)
        .set("group.id", &cfg.group_id)
        // librdkafka commits in the background, but only offsets we stored
        // explicitly after the store write (enable.auto.offset.store=false).
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "500")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("max.poll.interval.ms", "10000")
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        .set("fetch.wait.max.ms", cfg.fetch_wait_ms.to_string())
        .create_with_context(GroupContext {
            ledger,
            requests: RequestCounter::new("consumer"),
            demand,
        })?;
    consumer.subscribe(&[&cfg.topic])?;
    Ok(consumer)
}

/// Where the consumer's records go: the writer (store, then bus), and the
/// dead-letter topic for those that cannot be stored.
pub struct Targets {
    /// Store, then bus.
    pub writer: Writer,
    /// Records early delivery already stored.
    pub ledger: Ledger,
    /// The user directory: records from or to anyone else are dead
    /// letters, and the names shown are the directory's.
    pub directory: Directory,
    /// API key names, for records services sent.
    pub services: ServiceNames,
    /// Topic name, for ids derived from record positions.
    pub topic: String,
    /// Consumer group id.
    pub group: String,
    /// Where unusable records go.
    pub dlq: String,
    /// Producer for the dead-letter topic.
    pub producer: Producer,
}

/// Bound on one stall check (its broker requests take up to 2 s each; a
/// rejoin's `unsubscribe` has no deadline of its own).
const STALL_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Sleep until `at`; never, without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// How long this member may hold no partition before it suspects a stuck
/// group (a little more than the session timeout).
const STALL_AFTER: Duration = Duration::from_secs(15);

/// Detects partitions left without a consumer by a broker that never
/// rebalances again.
///
/// Seen with tansu 0.6: when a member is killed (`kill -9`), the broker
/// never asks the survivors to rejoin; they keep their old assignment
/// (possibly empty) and the dead member's partitions are consumed by nobody.
/// (Its group description is broken too: `DescribeGroups` fails on the
/// sqlite engine, so the group's members cannot be asked for.) Two symptoms
/// are watched for, and either makes this member rejoin by subscribing
/// again, which makes the broker rebalance the whole group:
/// - this member has held no partition for [`STALL_AFTER`];
/// - a partition this member does not own has records waiting but its
///   committed offset has not moved for [`ORPHANED_AFTER`]: its owner is
///   gone (or stuck; then a rejoin costs one rebalance, nothing else).
///
/// Apache Kafka rebalances by itself after the session timeout and never
/// gets here.
struct StallGuard {
    empty_since: Option<Instant>,
    /// Partitions of others with records waiting: the committed offset
    /// last seen and since when it has not moved.
    waiting: HashMap<i32, (i64, Instant)>,
}

/// How long a partition owned by another member may have records waiting
/// without its committed offset moving before this member forces a
/// rebalance (well above the commit interval and a store outage's first
/// retries).
const ORPHANED_AFTER: Duration = Duration::from_secs(20);

impl StallGuard {
    fn new() -> Self {
        Self {
            empty_since: None,
            waiting: HashMap::new(),
        }
    }

    fn check(&mut self, consumer: &GroupConsumer, topic: &str, group: &str) {
        let assigned: HashSet<i32> = consumer
            .assignment()
            .map(|a| a.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default();
        if assigned.is_empty() {
            let since = *self.empty_since.get_or_insert_with(Instant::now);
            if since.elapsed() < STALL_AFTER {
                return;
            }
        }
        // Only now ask the broker (each request costs tansu a compile of
        // its SQL).
        let client = consumer.client();
        let partitions = client
            .fetch_metadata(Some(topic), Duration::from_secs(2))
            .ok()
            .and_then(|m| m.topics().first().map(|t| t.partitions().len() as i32))
            .unwrap_or(0);
        if assigned.is_empty() {
            let members = client
                .fetch_group_list(Some(group), Duration::from_secs(2))
                .ok()
                .and_then(|l| l.groups().first().map(|g| g.members().len()));
            if members.is_some_and(|m| partitions > 0 && m > partitions as usize) {
                // More members than partitions: idling is legitimate.
                self.empty_since = None;
                return;
            }
            return self.rejoin(consumer, topic, group, "no partitions assigned");
        }
        self.empty_since = None;
        let mut others = TopicPartitionList::new();
        for p in (0..partitions).filter(|p| !assigned.contains(p)) {
            others.add_partition(topic, p);
        }
        if others.count() == 0 {
            self.waiting.clear();
            return;
        }
        let Ok(committed) = consumer.committed_offsets(others, Duration::from_secs(2)) else {
            return;
        };
        let mut orphaned = None;
        for e in committed.elements() {
            let p = e.partition();
            let Ok((low, high)) = client.fetch_watermarks(topic, p, Duration::from_secs(2)) else {
                continue;
            };
            let at = match e.offset() {
                Offset::Offset(o) => o,
                _ => low,
            };
            if high <= at {
                self.waiting.remove(&p);
                continue;
            }
            match self.waiting.get(&p) {
                Some((seen, since)) if *seen == at => {
                    if since.elapsed() >= ORPHANED_AFTER {
                        orphaned = Some(p);
                    }
                }
                _ => {
                    self.waiting.insert(p, (at, Instant::now()));
                }
            }
        }
        self.waiting.retain(|p, _| !assigned.contains(p));
        if let Some(p) = orphaned {
            let why = format!("partition {p} has records waiting and nobody consuming them");
            self.rejoin(consumer, topic, group, &why);
        }
    }

    fn rejoin(&mut self, consumer: &GroupConsumer, topic: &str, group: &str, why: &str) {
        tracing::warn!(group, "{why}; rejoining the consumer group");
        metrics::counter!("herald_consumer_rejoins_total").increment(1);
        consumer.unsubscribe();
        if let Err(e) = consumer.subscribe(&[topic]) {
            tracing::error!(error = %e, "could not resubscribe");
        }
        self.empty_since = None;
        self.waiting.clear();
    }
}

/// Consume until `shutdown`, then commit what was stored and leave the group.
/// `pacer` pauses the partitions while nothing waits on them.
pub async fn run(
    consumer: GroupConsumer,
    targets: Targets,
    mut pacer: Pacer,
    shutdown: CancellationToken,
) {
    tracing::info!(topic = %targets.topic, dlq = %targets.dlq, "consumer started");
    // Shared with the threads where the stall guard's and the pacer's
    // broker requests run (each may wait seconds for the broker).
    let consumer = Arc::new(consumer);
    let mut guard = Some(StallGuard::new());
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                // Off the runtime: a blocking librdkafka call here held up
                // every task on this worker (on a one-thread runtime, HTTP
                // too) for as long as the broker took to answer. On a
                // thread of its own, and waited for with a bound:
                // `unsubscribe` has no deadline of its own.
                if let Some(mut g) = guard.take() {
                    let (c, topic, group) = (consumer.clone(), targets.topic.clone(), targets.group.clone());
                    let checked = crate::kafka::detached("consumer-stall-guard", move || {
                        g.check(&c, &topic, &group);
                        g
                    });
                    guard = match tokio::time::timeout(STALL_CHECK_TIMEOUT, checked).await {
                        Ok(Ok(g)) => Some(g),
                        _ => {
                            tracing::warn!("the stall check did not finish in time");
                            Some(StallGuard::new())
                        }
                    };
                }
                continue;
            }
            _ = sleep_until(pacer.due_at()), if pacer.due_at().is_some() => {
                pacer.due(&consumer).await;
                continue;
            }
            _ = pacer.advanced(), if pacer.is_paused() => {
                pacer.advance(&consumer);
                continue;
            }
            _ = pacer.notified(), if pacer.is_paused() => {
                pacer.woken(&consumer).await;
                continue;
            }
            m = consumer.recv() => m,
        };
        let first = match first {
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
        // Take whatever else is already waiting, without waiting for more.
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match consumer.recv().now_or_never() {
                Some(Ok(m)) => batch.push(m),
                _ => break,
            }
        }
        let span = tracing::debug_span!("batch", size = batch.len());
        let stored = handle_batch(&batch, &targets, &shutdown)
            .instrument(span)
            .await;
        if !stored {
            // Shut down before the batch was stored: leave its offsets
            // uncommitted so the next member consumes it again.
            break;
        }
        for msg in &batch {
            pacer.consumed(msg.partition(), msg.offset());
            if let Err(e) = consumer.store_offset_from_message(msg) {
                tracing::warn!(error = %e, partition = msg.partition(), offset = msg.offset(), "could not store offset");
            }
        }
        pacer.batch_done();
        metrics::counter!("herald_consumed_records_total").increment(batch.len() as u64);
    }
    close(consumer).await;
}

/// Commit the stored offsets and leave the group (the end of [`run`]).
pub async fn close(consumer: Arc<GroupConsumer>) {
    // Committing and leaving the group talk to the broker and block; if the
    // broker is gone, or holds a rebalance open, they can block for long
    // (librdkafka's close has no deadline of its own), so bound them on a
    // thread nothing has to wait for.
    let close = crate::kafka::detached("consumer-close", move || {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!("consumer offsets committed"),
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(error = %e, "final offset commit failed"),
        }
        consumer.unsubscribe();
        drop(consumer);
    });
    if !matches!(tokio::time::timeout(CLOSE_TIMEOUT, close).await, Ok(Ok(()))) {
        tracing::warn!("leaving the consumer group timed out (broker unreachable?)");
    }
    tracing::info!("consumer stopped");
}

/// Dead-letter the unusable records, store the rest in one transaction,
/// publish what was new. Returns false only when shutdown interrupted a retry.
async fn handle_batch(
    batch: &[BorrowedMessage<'_>],
    targets: &Targets,
    shutdown: &CancellationToken,
) -> bool {
    let mut good = Vec::with_capacity(batch.len());
    let mut unusable = Vec::new();
    let mut services = targets.services.current();
    let mut refreshed = false;
    let mut parsed = Vec::with_capacity(batch.len());
    for msg in batch {
        let src = Source {
            partition: msg.partition(),
            offset: msg.offset(),
        };
        if targets.ledger.take_stored(src) {
            // Stored by early delivery and committed: only the offset is left.
            continue;
        }
        parsed.push((msg, src, parse(msg.payload())));
    }
    // Everyone the batch names, looked up at once (mostly from the cache).
    let ids: Vec<i64> = parsed
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().ok())
        .flat_map(|r| [Some(r.to.id), (!r.from_service).then_some(r.from.id)])
        .flatten()
        .collect();
    let Some(users) = lookup_users(&ids, targets, shutdown).await else {
        return false;
    };
    for (msg, src, record) in parsed {
        let decode = |record: Record, services: &HashMap<i64, String>| {
            resolve(record, &position(msg, targets), &users, services)
        };
        let mut decoded = record.and_then(|r| decode(r, &services));
        if matches!(&decoded, Err(r) if r.kind == UNKNOWN_SERVICE) && !refreshed {
            // A key created since the names were read: read them again
            // (once per batch, so junk naming no key costs one query).
            refreshed = true;
            services = targets.services.refresh(targets.writer.store()).await;
            decoded = parse(msg.payload()).and_then(|r| decode(r, &services));
        }
        match decoded {
            Ok(n) => good.push((n, src)),
            Err(reject) => unusable.push((msg, reject)),
        }
    }
    // The dead letters go out together (one produce round trip for all of
    // them, not one acknowledgement wait each) while the valid records are
    // written: junk in a batch does not hold up the notifications in it.
    let letters = futures::future::join_all(
        unusable
            .iter()
            .map(|(msg, why)| dead_letter(msg, why, targets, shutdown)),
    );
    let (lettered, written) = tokio::join!(letters, write(good, targets, shutdown));
    lettered.into_iter().all(|done| done) && written
}

/// The users of `ids` (deactivated ones too: what was accepted before a
/// deactivation is still stored), retrying while the store is down: a
/// record must not become a dead letter because its recipient could not be
/// looked up. `None` only when shutdown interrupted a retry.
async fn lookup_users(
    ids: &[i64],
    targets: &Targets,
    shutdown: &CancellationToken,
) -> Option<HashMap<i64, User>> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match targets.directory.lookup(ids).await {
            Ok(found) => return Some(found.into_iter().map(|(id, e)| (id, e.user)).collect()),
            Err(e) => {
                tracing::error!(error = %e, "user lookup failed, retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Write `good` in one transaction, retrying until the store takes it.
/// Returns false only when shutdown interrupted a retry.
async fn write(
    mut good: Vec<(Notification, Source)>,
    targets: &Targets,
    shutdown: &CancellationToken,
) -> bool {
    if good.is_empty() {
        return true;
    }
    let size = good.len();
    let mut backoff = Duration::from_millis(100);
    loop {
        match targets.writer.insert(good, Origin::Consumer).await {
            Ok(new) => {
                // Already stored: by early delivery, or delivered twice.
                metrics::counter!("herald_duplicate_records_total").increment((size - new) as u64);
                return true;
            }
            Err((e, batch)) => {
                good = batch;
                // Never skip a valid record: retry until the store is back.
                tracing::error!(error = %e, size, "store write failed, retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Rejection reason of a record sent by a service (an API key) that the
/// store does not know.
const UNKNOWN_SERVICE: &str = "unknown_service";

/// The names of the API keys, by id, as last read from the store (keys are
/// created while Herald runs, so an unknown id makes it read them again).
#[derive(Clone, Default)]
pub struct ServiceNames(Arc<std::sync::Mutex<Arc<HashMap<i64, String>>>>);

impl ServiceNames {
    fn current(&self) -> Arc<HashMap<i64, String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn refresh(&self, store: &crate::store::Store) -> Arc<HashMap<i64, String>> {
        match store.keys().await {
            Ok(keys) => {
                let names = Arc::new(keys.into_iter().map(|k| (k.id, k.name)).collect());
                *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&names);
                names
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading API key names failed");
                self.current()
            }
        }
    }
}

/// Why a record cannot be stored.
struct Reject {
    /// Short label for the metric.
    kind: &'static str,
    /// Full text for the log and the dead-letter header.
    detail: String,
}

fn reject(kind: &'static str, detail: impl Into<String>) -> Reject {
    Reject {
        kind,
        detail: detail.into(),
    }
}

/// Where `msg` was read.
fn position<'a>(msg: &BorrowedMessage<'_>, targets: &'a Targets) -> Position<'a> {
    let timestamp = msg
        .timestamp()
        .to_millis()
        .and_then(DateTime::from_timestamp_millis);
    Position {
        topic: &targets.topic,
        partition: msg.partition(),
        offset: msg.offset(),
        timestamp,
    }
}

/// Where a record was read.
struct Position<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: Option<DateTime<chrono::Utc>>,
}

/// A record's value as a notification, or why it is unusable. Every byte
/// of it is input: anyone who can write to the topic chooses them.
#[cfg(test)]
fn decode_value(
    payload: Option<&[u8]>,
    at: &Position<'_>,
    users: &HashMap<i64, User>,
    services: &HashMap<i64, String>,
) -> Result<Notification, Reject> {
    parse(payload).and_then(|record| resolve(record, at, users, services))
}

/// A record's value as JSON, before anything in it is trusted.
fn parse(payload: Option<&[u8]>) -> Result<Record, Reject> {
    let payload = payload.ok_or_else(|| reject("empty", "empty record"))?;
    serde_json::from_slice(payload)
        .map_err(|e| reject("invalid_json", format!("invalid JSON: {e}")))
}

/// A parsed record as a notification: its users from the directory
/// (`users`, or `services` for API keys), its id, message and extras
/// checked as the API checks them.
fn resolve(
    mut record: Record,
    at: &Position<'_>,
    users: &HashMap<i64, User>,
    services: &HashMap<i64, String>,
) -> Result<Notification, Reject> {
    let Some(to) = users.get(&record.to.id) else {
        return Err(reject(
            "unknown_recipient",
            format!("unknown recipient {}", record.to.id),
        ));
    };
    let from = if record.from_service {
        let Some(name) = services.get(&record.from.id) else {
            return Err(reject(
                UNKNOWN_SERVICE,
                format!("unknown service (API key) {}", record.from.id),
            ));
        };
        User {
            id: record.from.id,
            name: name.clone(),
        }
    } else {
        let Some(user) = users.get(&record.from.id) else {
            return Err(reject(
                "unknown_sender",
                format!("unknown sender {}", record.from.id),
            ));
        };
        user.clone()
    };
    // Names come from the directory, never from the record: a record that
    // says it is from user 4 "IT Security" shows Lena.
    record.to = to.clone();
    record.from = from;
    if let Some(id) = record.id.as_deref().filter(|id| !is_acceptable_id(id)) {
        // Shown escaped and cut short: it may hold CR, LF or a megabyte.
        let shown: String = id.chars().take(80).collect();
        return Err(reject(
            "invalid_id",
            format!(
                "unacceptable notification id {shown:?} ({} bytes)",
                id.len()
            ),
        ));
    }
    record.message = check_message(&record.message).map_err(|e| reject(e.kind(), e.to_string()))?;
    let extras = check_extras(
        record.title.as_deref(),
        record.link.as_deref(),
        &record.actions,
    )
    .map_err(|e| reject("invalid_fields", e.to_string()))?;
    (record.title, record.link, record.actions) = (extras.title, extras.link, extras.actions);
    Ok(record.into_notification(at.topic, at.partition, at.offset, at.timestamp))
}

/// Copy `msg` to the dead-letter topic. A copy the topic refuses (too
/// large, not allowed, or still failing after [`DLQ_ATTEMPTS`]) is sent
/// again truncated to [`TRUNCATED_BYTES`], with the original's size and
/// SHA-256 in headers; if that fails too, the record is skipped, counted and
/// logged with its position (it stays on the source topic until its
/// retention ends). Either way consumption goes on within seconds.
/// Returns false only when shutdown interrupted the retries.
async fn dead_letter(
    msg: &BorrowedMessage<'_>,
    why: &Reject,
    targets: &Targets,
    shutdown: &CancellationToken,
) -> bool {
    tracing::warn!(
        partition = msg.partition(),
        offset = msg.offset(),
        reason = %why.detail,
        dlq = %targets.dlq,
        "unusable record sent to the dead-letter topic"
    );
    let mut letter = DeadLetter {
        error: &why.detail,
        topic: msg.topic(),
        partition: msg.partition(),
        offset: msg.offset(),
        key: msg.key(),
        payload: msg.payload(),
        original: None,
    };
    let refused = match send_bounded(&letter, targets, shutdown).await {
        Ok(()) => {
            metrics::counter!("herald_dead_letters_total", "reason" => why.kind).increment(1);
            return true;
        }
        Err(None) => return false,
        Err(Some(e)) => e,
    };
    let value = msg.payload().unwrap_or_default();
    let original = Original {
        size: value.len(),
        sha256: format!("{:x}", Sha256::digest(value)),
    };
    tracing::warn!(
        partition = msg.partition(),
        offset = msg.offset(),
        size = original.size,
        error = %refused,
        "the dead-letter topic refused the record; sending a truncated copy"
    );
    letter.payload = Some(&value[..value.len().min(TRUNCATED_BYTES)]);
    letter.key = msg.key().map(|k| &k[..k.len().min(TRUNCATED_BYTES)]);
    letter.original = Some(original.clone());
    match send_bounded(&letter, targets, shutdown).await {
        Ok(()) => {
            metrics::counter!("herald_dead_letters_total", "reason" => why.kind).increment(1);
            metrics::counter!("herald_dead_letters_truncated_total").increment(1);
            true
        }
        Err(None) => false,
        Err(Some(e)) => {
            metrics::counter!("herald_dead_letters_dropped_total").increment(1);
            tracing::error!(
                topic = msg.topic(),
                partition = msg.partition(),
                offset = msg.offset(),
                size = original.size,
                sha256 = %original.sha256,
                reason = %why.detail,
                error = %e,
                "unusable record skipped: the dead-letter topic refused even a truncated copy"
            );
            true
        }
    }
}

/// Produce `letter`, up to [`DLQ_ATTEMPTS`] times unless the error is
/// permanent. `Err(None)`: shutdown came first.
async fn send_bounded(
    letter: &DeadLetter<'_>,
    targets: &Targets,
    shutdown: &CancellationToken,
) -> Result<(), Option<KafkaError>> {
    let mut backoff = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        let e = match targets
            .producer
            .send_dead_letter(&targets.dlq, letter)
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if attempt >= DLQ_ATTEMPTS || is_permanent(&e) {
            return Err(Some(e));
        }
        tracing::warn!(error = %e, attempt, "dead-letter produce failed, retrying");
        tokio::select! {
            _ = shutdown.cancelled() => return Err(None),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff *= 2;
        attempt += 1;
    }
}

/// Decode `payload` as a record at a fixed position, against the demo
/// users and one API key (5, "Billing"), and check what must hold for
/// anything accepted: the coverage-guided fuzzer's way in (see
/// `crate::fuzzing`). Panics when an accepted record breaks a rule.
pub(crate) fn fuzz_decode(payload: &[u8]) {
    let users: HashMap<i64, User> = [(1, "Emma"), (2, "Bruno"), (3, "Rick"), (4, "Lena")]
        .into_iter()
        .map(|(id, name)| {
            (
                id,
                User {
                    id,
                    name: name.into(),
                },
            )
        })
        .collect();
    let services = HashMap::from([(5, "Billing".to_owned())]);
    let at = Position {
        topic: "notifications",
        partition: 2,
        offset: 7,
        timestamp: None,
    };
    let Ok(n) = parse(Some(payload)).and_then(|r| resolve(r, &at, &users, &services)) else {
        return;
    };
    assert!(is_acceptable_id(&n.id), "accepted id {:?}", n.id);
    assert_eq!(check_message(&n.message).as_deref(), Ok(n.message.as_str()));
    let names = if n.from_service {
        services.get(&n.from.id).cloned()
    } else {
        users.get(&n.from.id).map(|u| u.name.clone())
    };
    assert_eq!(names.as_deref(), Some(n.from.name.as_str()), "sender name");
    assert_eq!(users.get(&n.to.id), Some(&n.to), "recipient");
    // What is stored must be what the SSE stream and the API can carry.
    serde_json::to_string(&n).expect("serialisable");
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn directory() -> HashMap<i64, User> {
        [(1, "Emma"), (2, "Bruno"), (3, "Rick"), (4, "Lena")]
            .into_iter()
            .map(|(id, name)| {
                let user = User {
                    id,
                    name: name.into(),
                };
                (id, user)
            })
            .collect()
    }

    /// One API key, "Billing", id 5 (ids of keys and users may overlap:
    /// `from_service` tells them apart).
    fn services() -> HashMap<i64, String> {
        HashMap::from([(5, "Billing".to_owned())])
    }

    const AT: Position<'static> = Position {
        topic: "notifications",
        partition: 2,
        offset: 7,
        timestamp: None,
    };

    /// The reasons `/metrics` shows from start: every rejection must use
    /// one of them.
    fn known_reasons() -> &'static [&'static str] {
        crate::telemetry::COUNTERS
            .iter()
            .find(|(name, _, _)| *name == "herald_dead_letters_total")
            .and_then(|(_, _, labels)| labels.map(|(_, values)| values))
            .expect("the dead-letter series")
    }

    /// What every accepted record must satisfy, whatever it claimed.
    fn assert_storable(n: &Notification, users: &HashMap<i64, User>) {
        assert!(is_acceptable_id(&n.id), "id {:?}", n.id);
        assert_eq!(check_message(&n.message).as_deref(), Ok(n.message.as_str()));
        if n.from_service {
            assert_eq!(
                services().get(&n.from.id),
                Some(&n.from.name),
                "a key's name"
            );
        } else {
            assert_eq!(users.get(&n.from.id), Some(&n.from), "a user's name");
        }
        assert_eq!(users.get(&n.to.id), Some(&n.to));
        assert!(app::model::PRIORITY_RANGE.contains(&n.priority));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_are_a_notification_or_a_known_rejection(
            bytes in prop::collection::vec(any::<u8>(), 0..2048),
        ) {
            let users = directory();
            match decode_value(Some(&bytes), &AT, &users, &services()) {
                Ok(n) => assert_storable(&n, &users),
                Err(r) => prop_assert!(known_reasons().contains(&r.kind), "{}", r.kind),
            }
        }

        #[test]
        fn arbitrary_records_are_accepted_only_when_valid(
            from in -1i64..7,
            from_service in any::<bool>(),
            to in -1i64..6,
            claimed_name in any::<String>(),
            message in prop_oneof![any::<String>(), "[a-z \n\t\r]{0,30}", Just("x".repeat(2_001))],
            id in prop::option::of(prop_oneof![any::<String>(), "[A-Za-z0-9._:-]{0,130}"]),
            priority in prop::option::of(any::<u8>()),
        ) {
            let users = directory();
            let mut record = serde_json::json!({
                "from": {"id": from, "name": claimed_name},
                "to": {"id": to, "name": claimed_name},
                "message": message,
            });
            if let Some(id) = &id {
                record["id"] = id.clone().into();
            }
            if let Some(p) = priority {
                record["priority"] = p.into();
            }
            if from_service {
                record["from_service"] = true.into();
            }
            let bytes = serde_json::to_vec(&record).unwrap();
            match decode_value(Some(&bytes), &AT, &users, &services()) {
                Ok(n) => {
                    assert_storable(&n, &users);
                    let expected = id.unwrap_or_else(|| "notifications-2-7".into());
                    prop_assert_eq!(n.id, expected);
                }
                Err(r) => {
                    prop_assert!(known_reasons().contains(&r.kind), "{}", r.kind);
                    // Refused for a reason the record really has.
                    let known_sender = if from_service {
                        services().contains_key(&from)
                    } else {
                        users.contains_key(&from)
                    };
                    let valid_users = known_sender && users.contains_key(&to);
                    let valid_id = id.as_deref().is_none_or(is_acceptable_id);
                    let valid_message = check_message(&message).is_ok();
                    prop_assert!(!(valid_users && valid_id && valid_message), "{}: {}", r.kind, r.detail);
                }
            }
        }
    }

    #[test]
    fn huge_fields_are_refused_without_echoing_them() {
        let refused = |record: serde_json::Value| {
            let bytes = serde_json::to_vec(&record).unwrap();
            decode_value(Some(&bytes), &AT, &directory(), &services()).unwrap_err()
        };
        let (bruno, emma) = (json!({"id": 2, "name": "B"}), json!({"id": 1, "name": "E"}));
        let r = refused(json!({
            "from": bruno, "to": emma, "message": "hi", "id": "x".repeat(1_000_000),
        }));
        assert_eq!(r.kind, "invalid_id");
        assert!(
            r.detail.len() < 200,
            "a short prefix is quoted: {}",
            r.detail.len()
        );
        let r = refused(json!({"from": bruno, "to": emma, "message": "m".repeat(1_000_000)}));
        assert_eq!(r.kind, "oversize");
        let empty = decode_value(None, &AT, &directory(), &services()).unwrap_err();
        assert_eq!(empty.kind, "empty");
    }
}

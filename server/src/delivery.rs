//! Early delivery: storing and announcing a send right after the broker
//! acknowledged it, before the consumer group reads it back.
//!
//! A notification Herald produced is durable once the broker acknowledged
//! it (acks=all). The consumer group will store it, but only after the
//! broker hands it out again, and tansu 0.6 answers a fetch only when
//! `fetch.wait.max.ms` runs out (see `docs/bench/README.md`): most of the
//! send-to-event time was spent waiting for that. So the instance that
//! produced a notification also writes it (through the same [`Writer`])
//! right after the acknowledgement, watched or not:
//! - with SQLite, when this instance's consumer owns the record's partition
//!   (the store that consumer writes to is then this one); when an earlier
//!   record of that partition was left to the consumer, early delivery
//!   holds this one until the consumer has read that one (so a user's
//!   notifications are stored in order), for at most [`HOLD_MAX`];
//! - with PostgreSQL, always: the watcher may be on any instance, and every
//!   instance writes to the one shared store.
//!
//! The consumer commits past the runs of records the [`Ledger`] says early
//! delivery stored right where it stands, without fetching them (`pacer`:
//! that spares the broker handing each record back), skips the ledger's
//! positions among what it does read, finds any other one already stored
//! (the write is idempotent on the notification id), and publishes nothing
//! twice. It remains the path for records from other producers and for
//! anything early delivery skipped (partition not ours, queue full, store
//! error, crash in between). This path commits nothing itself: an offset
//! moves past a record only once it is stored.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use app::model::Notification;

use crate::consumer::BATCH_MAX;
use crate::hub::Hub;
use crate::pacer::Demand;
use crate::store::Source;
use crate::writer::{Origin, Writer};

/// What early delivery may write and what it wrote, shared with the
/// consumer: the partitions this instance's consumer owns right now (kept
/// by its rebalance callbacks), and the positions early delivery stored
/// that the consumer has not read back yet (it skips those instead of
/// writing them again).
#[derive(Clone, Default)]
pub struct Ledger(Arc<LedgerInner>);

#[derive(Default)]
struct LedgerInner {
    owned: RwLock<HashSet<i32>>,
    /// Offsets by partition.
    stored: Mutex<HashMap<i32, BTreeSet<i64>>>,
}

/// Most positions remembered for the consumer; past that it simply finds
/// them already stored.
const LEDGER_MAX: usize = 100_000;

impl Ledger {
    /// A new assignment: these partitions are ours.
    pub fn assign(&self, partitions: impl IntoIterator<Item = i32>) {
        *self.0.owned.write().unwrap_or_else(|e| e.into_inner()) = partitions.into_iter().collect();
    }

    /// Partitions are being revoked: nothing is ours, forget what was
    /// stored (the next owner writes idempotently anyway).
    pub fn revoke(&self) {
        self.assign([]);
        self.0
            .stored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The partitions this instance's consumer owns.
    pub fn owned(&self) -> HashSet<i32> {
        self.0
            .owned
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether `partition` is ours.
    pub fn owns(&self, partition: i32) -> bool {
        self.0
            .owned
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&partition)
    }

    /// Early delivery stored the records at `sources` (those on partitions
    /// this instance does not consume are not remembered).
    fn stored(&self, sources: impl IntoIterator<Item = Source>) {
        let sources: Vec<Source> = sources
            .into_iter()
            .filter(|s| self.owns(s.partition))
            .collect();
        let mut stored = self.0.stored.lock().unwrap_or_else(|e| e.into_inner());
        let mut len: usize = stored.values().map(BTreeSet::len).sum();
        for source in sources {
            if len >= LEDGER_MAX {
                break;
            }
            len += usize::from(
                stored
                    .entry(source.partition)
                    .or_default()
                    .insert(source.offset),
            );
        }
    }

    /// Where a partition's run of records early delivery stored, starting
    /// at `from`, ends: the first offset from `from` on that it did not
    /// store (`from` itself when it did not store that one). The run is
    /// forgotten, with everything before it: the consumer commits past it
    /// without reading it (see `pacer`).
    pub fn take_run(&self, partition: i32, from: i64) -> i64 {
        let mut stored = self.0.stored.lock().unwrap_or_else(|e| e.into_inner());
        let Some(offsets) = stored.get_mut(&partition) else {
            return from;
        };
        let end = run_end(offsets, from);
        *offsets = offsets.split_off(&end);
        end
    }

    /// Whether early delivery already stored the record at `source`. The
    /// consumer reads each partition in order, so everything up to
    /// `source` is forgotten: a position it has passed is never asked for.
    pub fn take_stored(&self, source: Source) -> bool {
        let mut stored = self.0.stored.lock().unwrap_or_else(|e| e.into_inner());
        let Some(offsets) = stored.get_mut(&source.partition) else {
            return false;
        };
        let found = offsets.contains(&source.offset);
        *offsets = offsets.split_off(&(source.offset + 1));
        found
    }
}

/// The first offset from `from` on that `offsets` lacks: the end of the run
/// of consecutive offsets starting at `from` (`from` itself without one).
pub(crate) fn run_end(offsets: &BTreeSet<i64>, from: i64) -> i64 {
    let mut end = from;
    for o in offsets.range(from..) {
        if *o != end {
            break;
        }
        end += 1;
    }
    end
}

/// Most acknowledged notifications waiting for early delivery; beyond that
/// they are left to the consumer.
const EARLY_QUEUE: usize = 10_000;

/// How long a send nobody watches may wait for others to share its write.
/// Each write is a transaction with its own fsync, and committing it costs
/// about as much CPU as the rows in it: a write of ~25 rows (what arrives
/// while the last one commits, at 7,000 sends/s) cost Herald about a third
/// more per send than batches of a few hundred (docs/bench/cost.md). A send
/// to a watched recipient ends the wait at once.
const LINGER: Duration = Duration::from_millis(20);

/// Longest early delivery holds a send for the consumer to read the
/// records before it that were left to it ([`Demand::offered`]). It takes
/// one fetch normally, longer after a rebalance; past this the held sends
/// are left to the consumer too. (Only that partition's sends wait; the
/// others go on.)
const HOLD_MAX: Duration = Duration::from_secs(2);

/// A send handed to early delivery; `urgent` when its recipient was
/// watched here (its stream waits for the write); `held` when records
/// before it on its partition were left to the consumer and are not read
/// yet (it waits for them).
struct Offered {
    notification: Notification,
    source: Source,
    urgent: bool,
    held: bool,
}

/// The sending side of early delivery (held by the service).
#[derive(Clone)]
pub struct Early {
    tx: mpsc::Sender<Offered>,
    /// Tells whom a stream here watches.
    hub: Hub,
    ledger: Ledger,
    /// Told what is handed over and what came of it, so the consumer need
    /// not fetch what early delivery stored.
    demand: Demand,
    /// The store is shared by several instances: write every send, on a
    /// partition of ours or not.
    shared: bool,
}

impl Early {
    /// Early delivery for the partitions `ledger` says are ours; run the
    /// returned task.
    pub fn new(
        writer: Writer,
        ledger: Ledger,
        demand: Demand,
        hub: Hub,
        shutdown: CancellationToken,
    ) -> (Self, impl std::future::Future<Output = ()>) {
        let (tx, rx) = mpsc::channel(EARLY_QUEUE);
        let shared = writer.store().is_shared();
        let task = run(rx, writer, ledger.clone(), demand.clone(), shutdown);
        let early = Self {
            tx,
            hub,
            ledger,
            demand,
            shared,
        };
        (early, task)
    }

    /// Hand over a notification the broker acknowledged at `source`;
    /// whether early delivery took it. Never waits: when the queue is full
    /// (or, with SQLite, the partition is not ours), the consumer will
    /// store it.
    ///
    /// Every send, watched or not: the consumer then commits past what
    /// early delivery stored without fetching it (`pacer`), which spares
    /// the broker handing each record back (about half its CPU per send;
    /// `docs/bench/cost.md`).
    pub fn offer(&self, notification: &Notification, source: Source) -> bool {
        let outcome = if !self.shared && !self.ledger.owns(source.partition) {
            "not_owned"
        } else {
            // Counted pending before it can complete. Held when an earlier
            // record of this partition waits for the consumer: storing this
            // one first would put it before that one. (In order only with
            // SQLite: with a shared store the partition may be another
            // instance's, whose consumer this one cannot follow.)
            let held = self.demand.offered(source, !self.shared);
            let offered = Offered {
                notification: notification.clone(),
                source,
                // With a shared store the watcher may be on any instance:
                // no send waits then.
                urgent: self.shared || self.hub.is_watched(notification.to.id),
                held,
            };
            if self.tx.try_send(offered).is_ok() {
                if held {
                    metrics::counter!("herald_early_held_total").increment(1);
                }
                return true;
            }
            self.demand.settled(&[source], false);
            "queue_full"
        };
        metrics::counter!("herald_early_skipped_total", "reason" => outcome).increment(1);
        false
    }
}

/// Sends held for the consumer, by partition: since when, and in order.
type Held = HashMap<i32, (Instant, Vec<Offered>)>;

/// Store and publish what [`Early::offer`] queued, in batches of whatever is
/// waiting, or of what comes within [`LINGER`] when no send in it is
/// urgent. Sends held for the consumer wait, with every later send of their
/// partition, while the others go on. A failed write is not retried: the
/// consumer stores those.
async fn run(
    mut rx: mpsc::Receiver<Offered>,
    writer: Writer,
    ledger: Ledger,
    demand: Demand,
    shutdown: CancellationToken,
) {
    let mut offered = Vec::with_capacity(BATCH_MAX);
    let mut held: Held = HashMap::new();
    loop {
        let cleared = demand.cleared();
        tokio::pin!(cleared);
        // Before the check: a partition cleared from now on ends the wait.
        // (Only while something is held: otherwise nothing waits on it, and
        // registering would cost every batch a lock.)
        if !held.is_empty() {
            cleared.as_mut().enable();
        }
        let mut ready = release(&mut held, &demand);
        if ready.is_empty() {
            let until = held.values().map(|(since, _)| *since + HOLD_MAX).min();
            let received = tokio::select! {
                _ = shutdown.cancelled() => break,
                n = rx.recv_many(&mut offered, BATCH_MAX) => n,
                _ = &mut cleared, if until.is_some() => continue,
                _ = tokio::time::sleep_until(until.unwrap_or_else(Instant::now)), if until.is_some() => continue,
            };
            if received == 0 {
                break;
            }
            let deadline = Instant::now() + LINGER;
            let mut urgent = offered.iter().any(|o| o.urgent);
            while !urgent && offered.len() < BATCH_MAX {
                let before = offered.len();
                let received = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(deadline) => break,
                    n = rx.recv_many(&mut offered, BATCH_MAX - before) => n,
                };
                if received == 0 {
                    break;
                }
                urgent = offered[before..].iter().any(|o| o.urgent);
            }
        }
        for o in offered.drain(..) {
            let partition = o.source.partition;
            match held.get_mut(&partition) {
                // Bounded like the queue: past that, the consumer's.
                Some((_, queue)) if queue.len() >= EARLY_QUEUE => {
                    demand.settled(&[o.source], false);
                    metrics::counter!("herald_early_skipped_total", "reason" => "queue_full")
                        .increment(1);
                }
                // Behind the held ones of its partition.
                Some((_, queue)) => queue.push(o),
                None if o.held => {
                    held.insert(partition, (Instant::now(), vec![o]));
                }
                None => ready.push(o),
            }
        }
        if !ready.is_empty() {
            write(ready, &writer, &ledger, &demand).await;
        }
    }
}

/// The held sends of partitions whose records left to the consumer it has
/// read, to write now, in order. Those held longer than [`HOLD_MAX`] are
/// left to the consumer too.
fn release(held: &mut Held, demand: &Demand) -> Vec<Offered> {
    let mut ready = Vec::new();
    held.retain(|partition, (since, queue)| {
        if !demand.left_unread(*partition) {
            ready.append(queue);
            false
        } else if since.elapsed() >= HOLD_MAX {
            let back: Vec<Source> = queue.iter().map(|o| o.source).collect();
            demand.settled(&back, false);
            metrics::counter!("herald_early_skipped_total", "reason" => "held_too_long")
                .increment(back.len() as u64);
            tracing::warn!(
                partition,
                records = back.len(),
                "the consumer did not read what was left to it in time; early delivery leaves these to it too"
            );
            false
        } else {
            true
        }
    });
    ready
}

/// Store and publish `offered` in one write.
async fn write(offered: Vec<Offered>, writer: &Writer, ledger: &Ledger, demand: &Demand) {
    let size = offered.len();
    let sources: Vec<Source> = offered.iter().map(|o| o.source).collect();
    let batch = offered
        .into_iter()
        .map(|o| (o.notification, o.source))
        .collect();
    match writer.insert(batch, Origin::Early).await {
        Ok(new) => {
            ledger.stored(sources.iter().copied());
            demand.settled(&sources, true);
            metrics::counter!("herald_early_stored_total").increment(new as u64);
        }
        Err((e, _)) => {
            // The consumer must fetch these after all.
            demand.settled(&sources, false);
            metrics::counter!("herald_early_skipped_total", "reason" => "store_error")
                .increment(size as u64);
            tracing::warn!(error = %e, size, "early delivery failed; the consumer will store these");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i32, offset: i64) -> Source {
        Source { partition, offset }
    }

    #[test]
    fn a_run_ends_at_the_first_record_early_delivery_did_not_store() {
        let ledger = Ledger::default();
        ledger.assign([0]);
        ledger.stored([at(0, 4), at(0, 5), at(0, 6), at(0, 8), at(0, 9)]);
        assert_eq!(ledger.take_run(0, 3), 3, "3 was not stored: no run");
        assert_eq!(ledger.take_run(0, 4), 7, "4, 5, 6; 7 was not stored");
        assert_eq!(ledger.take_run(0, 4), 4, "a run is taken once");
        // The consumer read 7 itself; the run goes on from 8.
        assert_eq!(ledger.take_run(0, 8), 10);
        assert_eq!(ledger.take_run(1, 0), 0, "other partition");
    }

    #[test]
    fn ledger_answers_each_position_once_and_forgets_what_the_consumer_passed() {
        let ledger = Ledger::default();
        ledger.assign([0, 2]);
        assert!(ledger.owns(0) && ledger.owns(2) && !ledger.owns(1));
        ledger.stored([at(0, 5), at(0, 7), at(0, 9), at(2, 1)]);
        assert!(!ledger.take_stored(at(0, 4)), "never stored early");
        assert!(ledger.take_stored(at(0, 5)));
        assert!(!ledger.take_stored(at(0, 5)), "answered once");
        // The consumer skipped 7 (it stored it itself): reading 9 drops it.
        assert!(ledger.take_stored(at(0, 9)));
        assert!(!ledger.take_stored(at(0, 7)));
        assert!(!ledger.take_stored(at(1, 1)), "other partition");
        ledger.revoke();
        assert!(!ledger.owns(0));
        assert!(!ledger.take_stored(at(2, 1)), "revocation forgets");
    }

    /// Early delivery running on a SQLite store, owning partitions 0 and 1.
    struct Fixture {
        early: Early,
        demand: Demand,
        store: crate::store::Store,
        stop: CancellationToken,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let url = crate::test_support::sqlite_database(dir.path());
            let store = crate::store::Store::open(&url).await.unwrap();
            let hub = Hub::default();
            let bus = Arc::new(crate::bus::LocalBus(hub.clone()));
            let writer = Writer::new(store.clone(), bus);
            let (ledger, demand, stop) = (
                Ledger::default(),
                Demand::default(),
                CancellationToken::new(),
            );
            ledger.assign([0, 1]);
            let (early, task) = Early::new(writer, ledger, demand.clone(), hub, stop.clone());
            tokio::spawn(task);
            Self {
                early,
                demand,
                store,
                stop,
                _dir: dir,
            }
        }

        /// What the service does with a send acknowledged at `offset` of
        /// partition 0.
        fn send(&self, offset: i64) {
            self.send_to(0, offset);
        }

        /// What the service does with a send acknowledged at `offset` of
        /// `partition` (its notification: `n{offset}`).
        fn send_to(&self, partition: i32, offset: i64) {
            if !self.early.offer(&note(offset), at(partition, offset)) {
                self.demand.produced(partition, offset);
            }
        }

        async fn end(self) {
            self.stop.cancel();
            self.store.close().await;
        }
    }

    fn note(offset: i64) -> Notification {
        Notification::example(&format!("n{offset}"), &format!("sent {offset}"))
    }

    /// What is stored for the example notifications' recipient, in order.
    async fn stored(store: &crate::store::Store) -> Vec<String> {
        let user = note(0).to.id;
        let rows = store.after(user, 0, None, 1_000).await.unwrap();
        rows.into_iter().map(|s| s.notification.id).collect()
    }

    async fn eventually_stored(store: &crate::store::Store, n: usize) -> Vec<String> {
        stored_within(store, n, Duration::from_secs(5)).await
    }

    /// What is stored once `n` are, or `within` has passed.
    async fn stored_within(store: &crate::store::Store, n: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let ids = stored(store).await;
            if ids.len() >= n || Instant::now() > deadline {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A record left to the consumer (here: as if early delivery's queue had
    /// been full) must not be overtaken, but the sends after it must not be
    /// left to the consumer for good either: under a steady flow the
    /// consumer, one fetch behind, never caught up with records that kept
    /// being left to it, and early delivery stayed off.
    #[tokio::test]
    async fn sends_behind_a_record_left_to_the_consumer_wait_for_it_then_go_early() {
        let f = Fixture::new().await;
        f.demand.produced(0, 10);
        for offset in 11..15 {
            f.send(offset);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            stored(&f.store).await,
            Vec::<String>::new(),
            "10 comes first"
        );

        // The consumer reads and stores 10; the held ones follow, in order,
        // and so do later sends, at once.
        f.store
            .insert_batch(&[(note(10), at(0, 10))])
            .await
            .unwrap();
        f.demand.caught_up_to(&HashMap::from([(0, 11)]));
        f.send(15);
        let ids = eventually_stored(&f.store, 6).await;
        let want: Vec<String> = (10..16).map(|o| format!("n{o}")).collect();
        assert_eq!(ids, want);
        f.end().await;
    }

    /// Only the partition with a record left to the consumer waits: the
    /// sends of the others are written at once.
    #[tokio::test]
    async fn a_held_partition_holds_up_no_other() {
        let f = Fixture::new().await;
        f.demand.produced(0, 10);
        f.send_to(0, 11);
        f.send_to(1, 105);
        // Well before HOLD_MAX, which a held batch waits at most.
        let ids = stored_within(&f.store, 1, HOLD_MAX / 4).await;
        assert_eq!(ids, vec!["n105".to_owned()]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(stored(&f.store).await, vec!["n105".to_owned()], "11 waits");
        f.send_to(1, 106);
        f.demand.caught_up_to(&HashMap::from([(0, 11)]));
        let ids = eventually_stored(&f.store, 3).await;
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert!(ids.contains(&"n11".to_owned()) && ids.contains(&"n106".to_owned()));
        f.end().await;
    }

    /// A consumer that does not read what was left to it within
    /// [`HOLD_MAX`] gets the held sends too, and nothing overtakes them.
    #[tokio::test]
    async fn held_sends_go_to_the_consumer_when_it_does_not_catch_up() {
        let f = Fixture::new().await;
        f.demand.produced(0, 10);
        f.send(11);
        f.send(12);
        tokio::time::sleep(HOLD_MAX + Duration::from_millis(300)).await;
        assert_eq!(stored(&f.store).await, Vec::<String>::new());
        // 11 and 12 are the consumer's now: reading 10 is not enough.
        f.demand.caught_up_to(&HashMap::from([(0, 11)]));
        f.send(13);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(stored(&f.store).await, Vec::<String>::new(), "13 after 12");
        f.demand.caught_up_to(&HashMap::from([(0, 13)]));
        assert_eq!(eventually_stored(&f.store, 1).await, vec!["n13".to_owned()]);
        f.end().await;
    }
}

//! Storing new notifications and announcing them: the one write path shared
//! by the consumer group and early delivery.
//!
//! **Early delivery.** A notification Herald produced is durable once the
//! broker acknowledged it (acks=all). The consumer group will store it, but
//! only after the broker hands it out again, and tansu 0.6 answers a fetch
//! only when `fetch.wait.max.ms` runs out (see `docs/bench/README.md`): most
//! of the send-to-event time was spent waiting for that. So the instance that
//! produced a notification also stores and publishes it right after the
//! acknowledgement, when someone here watches the recipient's inbox and its
//! own consumer owns the record's partition (the store that consumer writes
//! to is then this one). The consumer still reads every record: it skips
//! the positions the [`Ledger`] says early delivery committed, finds any
//! other one already stored (the write is idempotent on the notification
//! id), and publishes nothing twice. It remains the only path for records
//! from other producers and for anything early delivery skipped (nobody
//! watching, queue full, store error, crash in between). Nothing is
//! committed to Kafka by this path: offsets move only when the consumer has
//! read a record and it is stored.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use app::model::Notification;

use crate::consumer::BATCH_MAX;
use crate::hub::{Hub, InboxEvent};
use crate::store::{Source, Store, Stored};

/// The store and the hub: what a new notification is written to, then
/// announced on.
#[derive(Clone)]
pub struct Delivery {
    store: Store,
    hub: Hub,
}

/// Which path wrote a batch (a label on the store metrics).
#[derive(Clone, Copy, Debug)]
pub enum Path {
    /// The consumer group.
    Consumer,
    /// Early delivery after the producer's acknowledgement.
    Early,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Consumer => "consumer",
            Path::Early => "early",
        }
    }
}

impl Delivery {
    /// Write to `store`, announce on `hub`.
    pub fn new(store: Store, hub: Hub) -> Self {
        Self { store, hub }
    }

    /// Store `batch` in one transaction and publish the notifications that
    /// were new, then one `counts` event per watched recipient. Returns how
    /// many were new; the others were already stored. A failed write
    /// hands the batch back with the error, for a retry.
    pub async fn store_and_publish(
        &self,
        batch: Vec<(Notification, Source)>,
        path: Path,
    ) -> Result<usize, (sqlx::Error, Vec<(Notification, Source)>)> {
        let started = Instant::now();
        // Hold the write turn until the events are out, so a read-state
        // change cannot overtake these notifications on their way to streams.
        let _turn = self.store.write_turn().await;
        let seqs = match self.store.insert_batch(&batch).await {
            Ok(seqs) => seqs,
            Err(e) => return Err((e, batch)),
        };
        metrics::histogram!("herald_store_write_seconds", "path" => path.label())
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("herald_store_batch_size", "path" => path.label())
            .record(batch.len() as f64);
        let mut recipients = BTreeSet::new();
        let mut new = 0;
        for ((notification, _), seq) in batch.into_iter().zip(seqs) {
            if let Some(seq) = seq {
                new += 1;
                recipients.insert(notification.to.id);
                self.hub.publish(
                    notification.to.id,
                    InboxEvent::Stored(Stored { seq, notification }),
                );
            }
        }
        // One counts event per watched recipient and batch (the badge), not
        // one per notification.
        for user in recipients.into_iter().filter(|u| self.hub.is_watched(*u)) {
            match self.store.counts(user).await {
                Ok(c) => self.hub.publish(user, InboxEvent::Counts(c)),
                Err(e) => tracing::warn!(error = %e, user, "reading counts failed"),
            }
        }
        Ok(new)
    }
}

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

    /// Whether `partition` is ours.
    pub fn owns(&self, partition: i32) -> bool {
        self.0
            .owned
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&partition)
    }

    /// Early delivery committed the records at `sources`.
    fn stored(&self, sources: impl IntoIterator<Item = Source>) {
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

/// Most acknowledged notifications waiting for early delivery; beyond that
/// they are left to the consumer.
const EARLY_QUEUE: usize = 10_000;

/// The sending side of early delivery (held by the service).
#[derive(Clone)]
pub struct Early {
    tx: mpsc::Sender<(Notification, Source)>,
    ledger: Ledger,
    hub: Hub,
}

impl Early {
    /// Early delivery for the partitions `ledger` says are ours; run the
    /// returned task.
    pub fn new(
        delivery: Delivery,
        ledger: Ledger,
        shutdown: CancellationToken,
    ) -> (Self, impl std::future::Future<Output = ()>) {
        let (tx, rx) = mpsc::channel(EARLY_QUEUE);
        let hub = delivery.hub.clone();
        let task = run(rx, delivery, ledger.clone(), shutdown);
        (Self { tx, ledger, hub }, task)
    }

    /// Hand over a notification the broker acknowledged at `source`. Never
    /// waits: when nobody here is watching the recipient's inbox, the
    /// partition is not ours or the queue is full, the consumer will store
    /// it.
    ///
    /// Why only watched recipients: early delivery buys latency for someone
    /// waiting on a stream, and costs a second, smaller write (more
    /// transactions and fsyncs than the consumer's large batches; measured
    /// in `docs/bench/README.md`). For a recipient with no open stream the
    /// consumer's batch is the cheaper way to the same result.
    pub fn offer(&self, notification: &Notification, source: Source) {
        let outcome = if !self.hub.is_watched(notification.to.id) {
            "unwatched"
        } else if !self.ledger.owns(source.partition) {
            "not_owned"
        } else if self.tx.try_send((notification.clone(), source)).is_err() {
            "queue_full"
        } else {
            return;
        };
        metrics::counter!("herald_early_skipped_total", "reason" => outcome).increment(1);
    }
}

/// Store and publish what [`Early::offer`] queued, in batches of whatever is
/// waiting. A failed write is not retried: the consumer stores those.
async fn run(
    mut rx: mpsc::Receiver<(Notification, Source)>,
    delivery: Delivery,
    ledger: Ledger,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            n = rx.recv_many(&mut batch, BATCH_MAX) => n,
        };
        if received == 0 {
            break;
        }
        let size = batch.len();
        let sources: Vec<Source> = batch.iter().map(|(_, s)| *s).collect();
        match delivery
            .store_and_publish(std::mem::take(&mut batch), Path::Early)
            .await
        {
            Ok(new) => {
                ledger.stored(sources);
                metrics::counter!("herald_early_stored_total").increment(new as u64);
            }
            Err((e, _)) => {
                metrics::counter!("herald_early_skipped_total", "reason" => "store_error")
                    .increment(size as u64);
                tracing::warn!(error = %e, size, "early delivery failed; the consumer will store these");
            }
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
}

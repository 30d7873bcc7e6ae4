//! The one owner of "write, then publish in write order": new
//! notifications (from the consumer group and early delivery) and every
//! inbox state change go through [`Writer`], which writes to the store and
//! hands what it wrote to the event bus.
//!
//! With SQLite it holds the store's write turn from the write until the
//! events are published, so a read-state change cannot overtake new
//! notifications on their way to streams. With PostgreSQL the store
//! announces inside its transaction and the database orders announcements
//! (see `bus`), so writers on any instance proceed in parallel.

use std::sync::Arc;
use std::time::Instant;

use app::model::{Change, Counts, Notification, StateEvent};

use crate::bus::EventBus;
use crate::store::{Source, Store, Stored};

/// Which path wrote a batch (a label on the store metrics).
#[derive(Clone, Copy, Debug)]
pub enum Origin {
    /// The consumer group.
    Consumer,
    /// Early delivery after the producer's acknowledgement.
    Early,
}

impl Origin {
    fn label(self) -> &'static str {
        match self {
            Origin::Consumer => "consumer",
            Origin::Early => "early",
        }
    }
}

/// The store and the bus; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    store: Store,
    bus: Arc<dyn EventBus>,
}

impl Writer {
    /// Write to `store`, announce on `bus`.
    pub fn new(store: Store, bus: Arc<dyn EventBus>) -> Self {
        Self { store, bus }
    }

    /// The store written to (for reads).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Store `batch` in one transaction and publish the notifications that
    /// were new (and the counts of their recipients). Returns how many were
    /// new; the others were already stored. A failed write hands the batch
    /// back with the error, for a retry.
    pub async fn insert(
        &self,
        batch: Vec<(Notification, Source)>,
        origin: Origin,
    ) -> Result<usize, (sqlx::Error, Vec<(Notification, Source)>)> {
        let started = Instant::now();
        let _turn = self.store.write_turn().await;
        // The recipients whose streams want their counts after the write:
        // read inside it, not in a query of their own after it.
        let mut watched: Vec<i64> = batch.iter().map(|(n, _)| n.to.id).collect();
        watched.sort_unstable();
        watched.dedup();
        watched.retain(|u| self.bus.wants_counts(*u));
        let (seqs, counts) = match self.store.insert_batch_counting(&batch, &watched).await {
            Ok(done) => done,
            Err(e) => return Err((e, batch)),
        };
        metrics::histogram!("herald_store_write_seconds", "path" => origin.label())
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("herald_store_batch_size", "path" => origin.label())
            .record(batch.len() as f64);
        let mut news: Vec<Stored> = batch
            .into_iter()
            .zip(seqs)
            .filter_map(|((notification, _), seq)| {
                Some(Stored {
                    seq: seq?,
                    notification,
                })
            })
            .collect();
        // Each recipient's in seq order (rows go in sorted by recipient).
        news.sort_by_key(|s| s.seq);
        let new = news.len();
        self.bus.stored(&self.store, news, counts).await;
        Ok(new)
    }

    /// Set read and/or archived state of notification `id`; publishes a
    /// `state` event when something changed. `None` when there is no such
    /// notification (or it was deleted).
    pub async fn set_state(
        &self,
        id: &str,
        read: Option<bool>,
        archived: Option<bool>,
    ) -> Result<Option<Notification>, sqlx::Error> {
        let _turn = self.store.write_turn().await;
        let Some(change) = self.store.set_state(id, read, archived).await? else {
            return Ok(None);
        };
        let notification = change.stored.notification;
        if let Some(counts) = change.counts {
            let change = Change::Updated {
                notification: notification.clone(),
            };
            self.bus
                .changed(notification.to.id, StateEvent { change, counts });
        }
        Ok(Some(notification))
    }

    /// Delete notification `id`; `false` when there was nothing to delete.
    pub async fn delete(&self, id: &str) -> Result<bool, sqlx::Error> {
        let _turn = self.store.write_turn().await;
        let Some((owner, counts)) = self.store.delete(id).await? else {
            return Ok(false);
        };
        let change = Change::Deleted { id: id.to_owned() };
        self.bus.changed(owner, StateEvent { change, counts });
        Ok(true)
    }

    /// Mark every notification of `user_id` read; returns the counts after.
    pub async fn read_all(&self, user_id: i64) -> Result<Counts, sqlx::Error> {
        let _turn = self.store.write_turn().await;
        match self.store.read_all(user_id).await? {
            Some((through, counts)) => {
                let change = Change::ReadAll { through };
                self.bus.changed(user_id, StateEvent { change, counts });
                Ok(counts)
            }
            None => self.store.counts(user_id).await,
        }
    }
}

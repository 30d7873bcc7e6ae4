//! The event bus: how a written inbox change reaches the SSE streams of
//! every instance.
//!
//! Two implementations of [`EventBus`], chosen by the store:
//! - [`LocalBus`] (SQLite, one instance): the writer hands events straight
//!   to this process's [`Hub`], holding the store's write turn, so streams
//!   see them in write order.
//! - [`PostgresBus`] (PostgreSQL, any number of instances): the store sends
//!   an [`Announcement`] with `NOTIFY herald_inbox` inside the writing
//!   transaction. PostgreSQL delivers it to every listening instance only
//!   once the transaction is durable, and in write order. Each instance's
//!   [`listen`] task turns announcements for users watched on it into hub
//!   events, reading what they name from the store (which already holds
//!   it; a changed notification's read and archived state come with its
//!   announcement, since a newer change may be stored by the time the
//!   row is read). Announcements stay small (NOTIFY payloads are limited to 8000
//!   bytes): the rows themselves are read, not carried.
//!
//! Why `LISTEN/NOTIFY` and not a Kafka topic of stored events: see
//! `docs/scale-out.md` (it is in the writing transaction, so an event is
//! never announced for a write that rolled back, nor lost for one that
//! was kept, and costs no extra broker round trip).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use app::model::{Change, Counts, StateEvent};

use crate::hub::{Hub, InboxEvent};
use crate::store::{Store, Stored};

/// PostgreSQL channel of the announcements.
pub const CHANNEL: &str = "herald_inbox";

/// Largest announcement sent as is; a larger one (an absurdly long
/// notification id) becomes [`Announcement::Resync`].
const MAX_PAYLOAD: usize = 4_000;

/// Most rows the listener reads for one announcement (a batch holds at most
/// `consumer::BATCH_MAX`); beyond it, streams catch up by themselves.
const MAX_ROWS: i64 = 10_000;

/// A written change of one user's inbox, as sent between instances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum Announcement {
    /// New notifications with `seq` in `lo..=hi` (and other users' rows in
    /// between), and the counts after them.
    #[serde(rename = "n")]
    Stored {
        /// The recipient.
        #[serde(rename = "u")]
        user: i64,
        /// Smallest new `seq`.
        lo: i64,
        /// Largest new `seq`.
        hi: i64,
        /// Counts after the write.
        #[serde(rename = "c")]
        counts: Counts,
    },
    /// Read or archived state of notification `id` changed.
    #[serde(rename = "u")]
    Updated {
        /// The owner.
        #[serde(rename = "u")]
        user: i64,
        /// The notification.
        id: String,
        /// Whether it is read, as of this change. The listener reads the
        /// row later, when a newer change may already have been written, so
        /// the state it shows comes from here: with the counts, it is what
        /// this change left. (`None` from an older instance: the row's.)
        #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
        read: Option<bool>,
        /// Whether it is archived, as of this change (as `read`).
        #[serde(rename = "ar", default, skip_serializing_if = "Option::is_none")]
        archived: Option<bool>,
        /// Counts after the change.
        #[serde(rename = "c")]
        counts: Counts,
    },
    /// Notification `id` was deleted.
    #[serde(rename = "d")]
    Deleted {
        /// The owner.
        #[serde(rename = "u")]
        user: i64,
        /// The notification.
        id: String,
        /// Counts after the change.
        #[serde(rename = "c")]
        counts: Counts,
    },
    /// Everything up to `through` was marked read.
    #[serde(rename = "a")]
    ReadAll {
        /// The owner.
        #[serde(rename = "u")]
        user: i64,
        /// Newest notification marked read.
        through: String,
        /// Counts after the change.
        #[serde(rename = "c")]
        counts: Counts,
    },
    /// Something changed that did not fit an announcement: streams of
    /// `user` catch up from the store.
    #[serde(rename = "r")]
    Resync {
        /// The owner.
        #[serde(rename = "u")]
        user: i64,
    },
}

impl Announcement {
    /// Whose inbox changed.
    pub fn user(&self) -> i64 {
        match self {
            Self::Stored { user, .. }
            | Self::Updated { user, .. }
            | Self::Deleted { user, .. }
            | Self::ReadAll { user, .. }
            | Self::Resync { user } => *user,
        }
    }

    /// The NOTIFY payload: JSON, never larger than [`MAX_PAYLOAD`].
    pub fn to_payload(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        if json.len() <= MAX_PAYLOAD && !json.is_empty() {
            return json;
        }
        let resync = Self::Resync { user: self.user() };
        serde_json::to_string(&resync).unwrap_or_default()
    }
}

/// Where the writer hands what it wrote.
#[async_trait::async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Whether the counts of `user`'s inbox are wanted after a write that
    /// stores something for them (read inside the write, see
    /// [`Store::insert_batch_counting`]).
    fn wants_counts(&self, _user: i64) -> bool {
        false
    }

    /// New notifications were written (each recipient's in `seq` order),
    /// with the counts read inside the write (see [`Self::wants_counts`]).
    async fn stored(&self, store: &Store, news: Vec<Stored>, counts: Vec<(i64, Counts)>);

    /// Read state, archive state or deletion of `user`'s inbox changed.
    fn changed(&self, user: i64, event: StateEvent);
}

/// In-process events (SQLite): published to this instance's hub once written.
pub struct LocalBus(pub Hub);

#[async_trait::async_trait]
impl EventBus for LocalBus {
    fn wants_counts(&self, user: i64) -> bool {
        self.0.is_watched(user)
    }

    async fn stored(&self, store: &Store, news: Vec<Stored>, counts: Vec<(i64, Counts)>) {
        let mut recipients = std::collections::BTreeSet::new();
        for stored in news {
            let user = stored.notification.to.id;
            recipients.insert(user);
            self.0.publish(user, InboxEvent::stored(stored));
        }
        // One counts event per watched recipient and batch (the badge), not
        // one per notification: those the write read, and in one query
        // those of streams opened while it ran.
        let mut counts: HashMap<i64, Counts> = counts.into_iter().collect();
        let mut missing = Vec::new();
        for user in recipients.into_iter().filter(|u| self.0.is_watched(*u)) {
            match counts.remove(&user) {
                Some(c) => self.0.publish(user, InboxEvent::Counts(Arc::new(c))),
                None => missing.push(user),
            }
        }
        if missing.is_empty() {
            return;
        }
        match store.counts_of(&missing).await {
            Ok(counts) => {
                for (user, c) in counts {
                    self.0.publish(user, InboxEvent::Counts(Arc::new(c)));
                }
            }
            Err(e) => tracing::warn!(error = %e, ?missing, "reading counts failed"),
        }
    }

    fn changed(&self, user: i64, event: StateEvent) {
        self.0.publish(user, InboxEvent::state(event));
    }
}

/// Events through PostgreSQL: the store already announced the change inside
/// its transaction, and [`listen`] (on every instance, this one included)
/// publishes it. Nothing is left to do after the write.
pub struct PostgresBus;

#[async_trait::async_trait]
impl EventBus for PostgresBus {
    async fn stored(&self, _store: &Store, _news: Vec<Stored>, _counts: Vec<(i64, Counts)>) {}

    fn changed(&self, _user: i64, _event: StateEvent) {}
}

/// Listen for announcements on `url` until `shutdown`, publishing those of
/// users watched here to `hub`. Reconnects by itself; after every
/// (re)connection all streams catch up from the store, since announcements
/// sent while nobody listened are gone.
pub async fn listen(url: String, store: Store, hub: Hub, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = shutdown.cancelled() => return,
            l = connected => match l {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for inbox announcements; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        };
        backoff = Duration::from_millis(100);
        tracing::info!(channel = CHANNEL, "listening for inbox announcements");
        hub.resync_all();
        // Reading the socket and delivering are two tasks, so that whatever
        // arrived while one batch was being delivered is delivered as the
        // next batch, with one store read per user (see `deliver`).
        let (tx, rx) = mpsc::channel(QUEUE);
        let delivering = tokio::spawn(deliver_batches(rx, store.clone(), hub.clone()));
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => {
                    delivering.abort();
                    return;
                }
                r = listener.try_recv() => r,
            };
            match received {
                Ok(Some(n)) => match serde_json::from_str::<Announcement>(n.payload()) {
                    Ok(a) => enqueue(&tx, a, &hub),
                    Err(e) => {
                        metrics::counter!("herald_bus_bad_announcements_total").increment(1);
                        tracing::warn!(error = %e, "ignoring an announcement Herald cannot read");
                    }
                },
                // The connection was lost: connect again (and resync).
                Ok(None) => {
                    tracing::warn!("lost the announcement connection; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "announcement connection failed; reconnecting");
                    break;
                }
            }
        }
        // What was received before the loss is still delivered, then the
        // resync after reconnecting covers what was sent while nobody listened.
        drop(tx);
        let _ = delivering.await;
        metrics::counter!("herald_bus_reconnects_total").increment(1);
    }
}

/// Announcements received but not yet delivered, at most; past that the
/// listener drops them and every stream catches up from the store.
pub(crate) const QUEUE: usize = 10_000;

/// Most announcements delivered as one batch.
const BATCH: usize = 1_000;

/// Queue `a` for [`deliver_batches`] without waiting. When delivery is
/// [`QUEUE`] behind, `a` is dropped and every stream catches up from the
/// store instead.
pub(crate) fn enqueue(tx: &mpsc::Sender<Announcement>, a: Announcement, hub: &Hub) {
    if tx.try_send(a).is_err() {
        metrics::counter!("herald_bus_overflows_total").increment(1);
        hub.resync_all();
    }
}

/// Deliver what `rx` brings, in batches of whatever is waiting.
pub(crate) async fn deliver_batches(mut rx: mpsc::Receiver<Announcement>, store: Store, hub: Hub) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        metrics::counter!("herald_bus_announcements_total").increment(batch.len() as u64);
        deliver(std::mem::take(&mut batch), &store, &hub).await;
    }
}

/// Turn a batch of announcements (in write order) into hub events for this
/// instance's streams. Each user's announcements keep their order; runs of
/// `Stored` for one user become one store read: for one user a larger `seq`
/// becomes visible later (see the PostgreSQL schema), so the rows between the first
/// run's `lo` and the last one's `hi` are exactly the ones announced.
async fn deliver(batch: Vec<Announcement>, store: &Store, hub: &Hub) {
    let mut by_user: Vec<(i64, Vec<Announcement>)> = Vec::new();
    for a in batch {
        let user = a.user();
        if !hub.is_watched(user) {
            continue;
        }
        match by_user.iter_mut().find(|(u, _)| *u == user) {
            // One catch-up serves any number in a row.
            Some((_, list))
                if matches!(a, Announcement::Resync { .. })
                    && matches!(list.last(), Some(Announcement::Resync { .. })) => {}
            Some((_, list)) => list.push(a),
            None => by_user.push((user, vec![a])),
        }
    }
    for (user, list) in by_user {
        let mut pending: Option<(i64, i64, Counts)> = None;
        for a in list {
            if let Announcement::Stored { lo, hi, counts, .. } = a {
                pending = Some(match pending {
                    Some((first, _, _)) => (first, hi, counts),
                    None => (lo, hi, counts),
                });
                continue;
            }
            if let Some((lo, hi, counts)) = pending.take() {
                deliver_stored(user, lo, hi, counts, store, hub).await;
            }
            deliver_change(a, store, hub).await;
        }
        if let Some((lo, hi, counts)) = pending {
            deliver_stored(user, lo, hi, counts, store, hub).await;
        }
    }
}

/// New notifications of `user` with `seq` in `lo..=hi`, and the counts after.
async fn deliver_stored(user: i64, lo: i64, hi: i64, counts: Counts, store: &Store, hub: &Hub) {
    let event = match store.after(user, lo - 1, Some(hi), MAX_ROWS).await {
        Ok(rows) if (rows.len() as i64) < MAX_ROWS => {
            for mut stored in rows {
                // As it was stored (new notifications are unread and not
                // archived), to go with the announced counts: a change
                // read by now has an announcement of its own, which follows.
                stored.notification.read = false;
                stored.notification.archived = false;
                hub.publish(user, InboxEvent::stored(stored));
            }
            InboxEvent::Counts(Arc::new(counts))
        }
        Ok(_) => InboxEvent::Resync,
        Err(e) => {
            tracing::warn!(error = %e, user, "reading announced notifications failed");
            InboxEvent::Resync
        }
    };
    hub.publish(user, event);
}

/// A read-state change, deletion or resync of one user's inbox.
async fn deliver_change(a: Announcement, store: &Store, hub: &Hub) {
    let user = a.user();
    let state = |change, counts| InboxEvent::state(StateEvent { change, counts });
    let event = match a {
        // Runs of these are read together by `deliver`.
        Announcement::Stored { lo, hi, counts, .. } => {
            return deliver_stored(user, lo, hi, counts, store, hub).await;
        }
        Announcement::Updated {
            id,
            read,
            archived,
            counts,
            ..
        } => match store.get(user, &id).await {
            Ok(Some(stored)) => {
                // Only the state can have changed since; the rest of a
                // notification never does.
                let mut notification = stored.notification;
                notification.read = read.unwrap_or(notification.read);
                notification.archived = archived.unwrap_or(notification.archived);
                state(Change::Updated { notification }, counts)
            }
            // Deleted since; its own announcement follows.
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, user, "reading an announced change failed");
                InboxEvent::Resync
            }
        },
        Announcement::Deleted { id, counts, .. } => state(Change::Deleted { id }, counts),
        Announcement::ReadAll {
            through, counts, ..
        } => state(Change::ReadAll { through }, counts),
        Announcement::Resync { .. } => InboxEvent::Resync,
    };
    hub.publish(user, event);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_oversized_ones_become_resyncs() {
        let counts = Counts {
            unread: 1,
            total: 2,
            version: 3,
        };
        let a = Announcement::Updated {
            user: 1,
            id: "x".into(),
            read: Some(true),
            archived: Some(false),
            counts,
        };
        let back: Announcement = serde_json::from_str(&a.to_payload()).unwrap();
        assert_eq!(back, a);
        // An older instance's announcement, without the state, still reads.
        let old = r#"{"k":"u","u":1,"id":"x","c":{"unread":1,"total":2,"version":3}}"#;
        let back: Announcement = serde_json::from_str(old).unwrap();
        assert!(matches!(
            back,
            Announcement::Updated {
                read: None,
                archived: None,
                ..
            }
        ));
        let huge = Announcement::Deleted {
            user: 4,
            id: "x".repeat(MAX_PAYLOAD),
            counts,
        };
        let back: Announcement = serde_json::from_str(&huge.to_payload()).unwrap();
        assert_eq!(back, Announcement::Resync { user: 4 });
    }

    /// A SQLite store holding one notification, `n1`, and a stream of its
    /// recipient on a hub.
    struct One {
        _dir: tempfile::TempDir,
        store: Store,
        user: i64,
        seq: i64,
        hub: Hub,
        rx: tokio::sync::broadcast::Receiver<InboxEvent>,
    }

    impl One {
        async fn stored() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let url = crate::test_support::sqlite_database(dir.path());
            let store = Store::open(&url).await.unwrap();
            let n = app::model::Notification::example("n1", "hello");
            let user = n.to.id;
            let source = crate::store::Source {
                partition: 0,
                offset: 0,
            };
            let seq = store.insert_batch(&[(n, source)]).await.unwrap()[0].unwrap();
            let hub = Hub::default();
            let rx = hub.subscribe(user, Default::default()).unwrap();
            Self {
                _dir: dir,
                store,
                user,
                seq,
                hub,
                rx,
            }
        }
    }

    /// The listener reads an announced notification after a later change
    /// may have been written: the event still shows the state that goes
    /// with its counts (a tab must not show it read next to an unread
    /// count that includes it).
    #[tokio::test]
    async fn an_update_shows_the_state_it_announced_not_the_rows_state_by_then() {
        let One {
            _dir,
            store,
            user,
            seq: _,
            hub,
            mut rx,
        } = One::stored().await;
        // Marked unread (this announcement), then read again before the
        // listener got to it.
        let unread = Counts {
            unread: 1,
            total: 1,
            version: 3,
        };
        store.set_state("n1", Some(true), None).await.unwrap();
        let late = Announcement::Updated {
            user,
            id: "n1".into(),
            read: Some(false),
            archived: Some(false),
            counts: unread,
        };
        deliver(vec![late], &store, &hub).await;
        let Ok(InboxEvent::State(event)) = rx.try_recv() else {
            panic!("no state event");
        };
        let Change::Updated { notification } = &event.change else {
            panic!("{event:?}");
        };
        assert!(!notification.read, "as announced, with {:?}", event.counts);
        assert_eq!(event.counts, unread);
        store.close().await;
    }

    /// Likewise a new notification read (or archived) before the listener
    /// got to its announcement: it is shown as stored, then changed.
    #[tokio::test]
    async fn a_new_notification_shows_as_stored_not_as_changed_by_then() {
        let One {
            _dir,
            store,
            user,
            seq,
            hub,
            mut rx,
        } = One::stored().await;
        let stored = Counts {
            unread: 1,
            total: 1,
            version: 1,
        };
        store.set_state("n1", Some(true), Some(true)).await.unwrap();
        let late = Announcement::Stored {
            user,
            lo: seq,
            hi: seq,
            counts: stored,
        };
        deliver(vec![late], &store, &hub).await;
        let Ok(InboxEvent::Stored(event)) = rx.try_recv() else {
            panic!("no notification event");
        };
        let shown = &event.notification;
        assert!(!shown.read && !shown.archived, "as stored: {shown:?}");
        let Ok(InboxEvent::Counts(counts)) = rx.try_recv() else {
            panic!("no counts event");
        };
        assert_eq!(*counts, stored);
        store.close().await;
    }
}

//! In-process fan-out of inbox events to SSE streams.
//!
//! One bounded `broadcast` channel per user with at least one open stream.
//! Publishing never waits: a stream that falls more than the channel
//! capacity behind gets `Lagged` and catches up from the store, so a slow
//! client can neither block the consumer nor silently lose notifications.
//! Events arrive in write order: from the writer holding the store's write
//! turn (SQLite), or from the PostgreSQL listener (see `bus`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use app::model::{Counts, StateEvent};

use crate::store::Stored;

/// Events buffered per user before a slow stream has to catch up from the
/// store.
pub const CHANNEL_CAPACITY: usize = 256;

/// Something that happened to a user's inbox. Cheap to clone: every
/// stream of the user gets its own copy, sharing the payload.
#[derive(Clone, Debug)]
pub enum InboxEvent {
    /// A new notification was stored.
    Stored(Arc<Stored>),
    /// Existing notifications changed (read, archived, deleted).
    State(Arc<StateEvent>),
    /// The inbox's counts after a batch of new notifications (boxed like
    /// the others: see the size check below).
    Counts(Arc<Counts>),
    /// Events may have been missed (the cross-instance bus reconnected, or
    /// a change too large to announce): catch up from the store, as a
    /// stream that lagged does.
    Resync,
}

// Every user's channel holds CHANNEL_CAPACITY events whether or not they
// are used, so an event stays two words: pointers to shared payloads.
const _: () = assert!(std::mem::size_of::<InboxEvent>() <= 16);

impl InboxEvent {
    /// A new notification.
    pub fn stored(stored: Stored) -> Self {
        Self::Stored(Arc::new(stored))
    }

    /// A change of existing notifications.
    pub fn state(event: StateEvent) -> Self {
        Self::State(Arc::new(event))
    }
}

/// Most streams allowed (0: no limit).
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamLimits {
    /// Per user on this instance.
    pub per_user: usize,
    /// On this instance in all.
    pub total: usize,
}

/// Which stream limit a new stream hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// The user's.
    User,
    /// The instance's.
    Instance,
}

/// Cheap to clone; all clones share the channels.
#[derive(Clone, Debug, Default)]
pub struct Hub {
    channels: Arc<Mutex<HashMap<i64, broadcast::Sender<InboxEvent>>>>,
}

impl Hub {
    /// Receive every event of `user_id`'s inbox from now on, unless the
    /// user already has `limits.per_user` streams here or this instance
    /// `limits.total` (0: no limit). Counted and taken under one lock, so
    /// concurrent opens cannot overshoot.
    pub fn subscribe(
        &self,
        user_id: i64,
        limits: StreamLimits,
    ) -> Result<broadcast::Receiver<InboxEvent>, Full> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let mine = channels.get(&user_id).map_or(0, |tx| tx.receiver_count());
        if limits.per_user > 0 && mine >= limits.per_user {
            return Err(Full::User);
        }
        if limits.total > 0 {
            let total: usize = channels.values().map(|tx| tx.receiver_count()).sum();
            if total >= limits.total {
                return Err(Full::Instance);
            }
        }
        Ok(channels
            .entry(user_id)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe())
    }

    /// Whether `user_id` has an open stream (so work for events can be
    /// skipped when nobody listens).
    pub fn is_watched(&self, user_id: i64) -> bool {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .get(&user_id)
            .is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Tell every open stream to catch up from the store.
    pub fn resync_all(&self) {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        for tx in channels.values() {
            let _ = tx.send(InboxEvent::Resync);
        }
    }

    /// Hand an event to `user_id`'s open streams.
    pub fn publish(&self, user_id: i64, event: InboxEvent) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = channels.get(&user_id) {
            if tx.send(event).is_err() {
                // Nobody listens any more: forget the channel.
                channels.remove(&user_id);
            }
        }
    }
}

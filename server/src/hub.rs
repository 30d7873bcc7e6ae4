//! In-process fan-out of stored notifications to SSE streams.
//!
//! One bounded `broadcast` channel per recipient with at least one open
//! stream. Publishing never waits: a stream that falls more than the channel
//! capacity behind gets `Lagged` and catches up from the store, so a slow
//! client can neither block the consumer nor silently lose events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::store::Stored;

/// Events buffered per recipient before a slow stream has to catch up from
/// the store.
pub const CHANNEL_CAPACITY: usize = 256;

/// Cheap to clone; all clones share the channels.
#[derive(Clone, Debug, Default)]
pub struct Hub {
    channels: Arc<Mutex<HashMap<i64, broadcast::Sender<Arc<Stored>>>>>,
}

impl Hub {
    /// Receive every notification stored for `user_id` from now on.
    pub fn subscribe(&self, user_id: i64) -> broadcast::Receiver<Arc<Stored>> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .entry(user_id)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Hand a freshly stored notification to its recipient's open streams.
    pub fn publish(&self, stored: Stored) {
        let user_id = stored.notification.to.id;
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = channels.get(&user_id) {
            if tx.send(Arc::new(stored)).is_err() {
                // Nobody listens any more: forget the channel.
                channels.remove(&user_id);
            }
        }
    }
}

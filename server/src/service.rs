//! The service layer: send, list, users, subscribe.
//!
//! REST handlers, SSE and the Leptos server functions all call this; no
//! other module validates a send or reads an inbox.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::Stream;
use tokio::sync::broadcast::{error::RecvError, Receiver};
use uuid::Uuid;

use app::model::{Notification, ServiceError, User, MAX_MESSAGE_CHARS};
use app::service::NotificationService;

use crate::hub::Hub;
use crate::kafka::Producer;
use crate::store::{Store, Stored};

/// Notifications returned by a list call, newest first.
pub const LIST_LIMIT: i64 = 100;

/// Rows read per page while replaying missed events to a stream.
const REPLAY_PAGE: i64 = 200;

/// Cheap-to-clone handle on everything a request needs.
#[derive(Clone)]
pub struct Service {
    shared: Arc<Shared>,
}

struct Shared {
    users: BTreeMap<i64, User>,
    store: Store,
    producer: Producer,
    hub: Hub,
}

impl Service {
    /// Assemble the service from its parts.
    pub fn new(users: Vec<User>, store: Store, producer: Producer, hub: Hub) -> Self {
        let users = users.into_iter().map(|u| (u.id, u)).collect();
        Self {
            shared: Arc::new(Shared {
                users,
                store,
                producer,
                hub,
            }),
        }
    }

    /// All users, ordered by id.
    pub fn users(&self) -> Vec<User> {
        self.shared.users.values().cloned().collect()
    }

    /// The user with `id`, or [`ServiceError::UserNotFound`].
    pub fn user(&self, id: i64) -> Result<User, ServiceError> {
        self.shared
            .users
            .get(&id)
            .cloned()
            .ok_or(ServiceError::UserNotFound)
    }

    /// Validate and produce a notification; returns once the broker
    /// acknowledged it (acks=all). Storing happens in the consumer group.
    pub async fn send(
        &self,
        from: i64,
        to: i64,
        message: &str,
    ) -> Result<Notification, ServiceError> {
        let from = self.user(from)?;
        let to = self.user(to)?;
        validate_message(message)?;
        let n = Notification {
            id: Uuid::now_v7().to_string(),
            from,
            to,
            message: message.to_owned(),
            created_at: Utc::now(),
        };
        let started = std::time::Instant::now();
        let produced = self.shared.producer.send(&n).await;
        metrics::histogram!("herald_produce_seconds").record(started.elapsed().as_secs_f64());
        let outcome = if produced.is_ok() {
            "accepted"
        } else {
            "unavailable"
        };
        metrics::counter!("herald_sends_total", "outcome" => outcome).increment(1);
        produced?;
        Ok(n)
    }

    /// The newest [`LIST_LIMIT`] notifications of `user_id`, newest first.
    pub async fn list(&self, user_id: i64) -> Result<Vec<Notification>, ServiceError> {
        self.user(user_id)?;
        let rows = self
            .shared
            .store
            .newest(user_id, LIST_LIMIT)
            .await
            .map_err(store_error)?;
        Ok(rows.into_iter().map(|s| s.notification).collect())
    }

    /// Notifications of `user_id` as they are stored, for an SSE stream.
    ///
    /// With `after` (a notification id, or `"0"` for the very beginning) the
    /// stream first replays everything stored after it, then goes live, with
    /// no gap and no duplicate: it subscribes to the hub *before* reading the
    /// store and drops live events it already replayed. An unknown `after`
    /// starts from now. A stream that lags behind the hub catches up from
    /// the store.
    pub async fn subscribe(
        &self,
        user_id: i64,
        after: Option<&str>,
    ) -> Result<impl Stream<Item = Arc<Stored>> + Send + 'static, ServiceError> {
        self.user(user_id)?;
        let rx = self.shared.hub.subscribe(user_id);
        let store = self.shared.store.clone();
        let resume = match after {
            Some("0") => Some(0),
            Some(id) => store.seq_of(user_id, id).await.map_err(store_error)?,
            None => None,
        };
        let (last_seq, replay) = match resume {
            Some(seq) => (seq, true),
            None => (store.last_seq(user_id).await.map_err(store_error)?, false),
        };
        metrics::gauge!("herald_sse_connections").increment(1.0);
        let sub = Subscription {
            rx,
            store,
            user_id,
            last_seq,
            replay,
            backlog: VecDeque::new(),
        };
        Ok(futures::stream::unfold(sub, |mut sub| async move {
            sub.next().await.map(|item| (item, sub))
        }))
    }

    /// Readiness: the broker answers metadata requests and the store takes
    /// writes. Each part is `Ok` or the reason it is not ready.
    pub async fn readiness(&self) -> (Result<(), String>, Result<(), String>) {
        let broker = self.shared.producer.check_broker(Duration::from_secs(2));
        let store = async {
            self.shared
                .store
                .check_writable()
                .await
                .map_err(|e| e.to_string())
        };
        tokio::join!(broker, store)
    }

    /// The hub (for the consumer and tests).
    pub fn hub(&self) -> &Hub {
        &self.shared.hub
    }
}

#[async_trait::async_trait]
impl NotificationService for Service {
    fn users(&self) -> Vec<User> {
        Service::users(self)
    }

    async fn send(&self, from: i64, to: i64, message: &str) -> Result<Notification, ServiceError> {
        Service::send(self, from, to, message).await
    }

    async fn list(&self, user_id: i64) -> Result<Vec<Notification>, ServiceError> {
        Service::list(self, user_id).await
    }
}

/// Reject what no recipient should get: empty or oversize text.
fn validate_message(message: &str) -> Result<(), ServiceError> {
    let chars = message.trim().chars().count();
    if chars == 0 {
        return Err(ServiceError::Invalid("message must not be empty".into()));
    }
    if chars > MAX_MESSAGE_CHARS {
        return Err(ServiceError::Invalid(format!(
            "message is {chars} characters long; the limit is {MAX_MESSAGE_CHARS}"
        )));
    }
    Ok(())
}

fn store_error(e: sqlx::Error) -> ServiceError {
    tracing::error!(error = %e, "store error");
    ServiceError::Unavailable("the notification store is unavailable".into())
}

/// State of one SSE stream: the hub receiver plus what is left to replay.
struct Subscription {
    rx: Receiver<Arc<Stored>>,
    store: Store,
    user_id: i64,
    /// `seq` of the last notification handed out; nothing at or below it is
    /// sent again.
    last_seq: i64,
    /// Whether the store may hold notifications after `last_seq` that the
    /// hub will not deliver (resume, or lag).
    replay: bool,
    backlog: VecDeque<Arc<Stored>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        metrics::gauge!("herald_sse_connections").decrement(1.0);
    }
}

impl Subscription {
    async fn next(&mut self) -> Option<Arc<Stored>> {
        loop {
            if let Some(s) = self.backlog.pop_front() {
                self.last_seq = s.seq;
                return Some(s);
            }
            if self.replay {
                match self
                    .store
                    .after(self.user_id, self.last_seq, REPLAY_PAGE)
                    .await
                {
                    Ok(page) => {
                        self.replay = page.len() as i64 == REPLAY_PAGE;
                        self.backlog.extend(page.into_iter().map(Arc::new));
                        continue;
                    }
                    Err(e) => {
                        // End the stream; the client reconnects with
                        // Last-Event-ID and resumes where it was.
                        tracing::error!(error = %e, "replay from store failed");
                        return None;
                    }
                }
            }
            match self.rx.recv().await {
                Ok(s) if s.seq <= self.last_seq => continue,
                Ok(s) => {
                    self.last_seq = s.seq;
                    return Some(s);
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        user = self.user_id,
                        missed,
                        "slow stream, catching up from the store"
                    );
                    self.replay = true;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_validated_after_trimming() {
        assert!(validate_message("hi").is_ok());
        assert!(validate_message("  \n\t ").is_err());
        assert!(validate_message("").is_err());
        let long = "é".repeat(MAX_MESSAGE_CHARS);
        assert!(
            validate_message(&long).is_ok(),
            "the limit counts characters, not bytes"
        );
        assert!(validate_message(&format!("{long}x")).is_err());
    }
}

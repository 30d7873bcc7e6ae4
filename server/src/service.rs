//! The service layer: who may do what, send, list, mark, subscribe.
//!
//! REST handlers, SSE and the Leptos server functions all call this; no
//! other module validates a send, applies an access rule or reads an inbox.

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::Stream;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::broadcast::{error::RecvError, error::TryRecvError, Receiver};
use uuid::Uuid;

use app::model::{
    Category, Change, Counts, InboxView, ListFilter, Notification, Page, Principal, ServiceError,
    StateEvent, User, DEFAULT_PAGE, MAX_MESSAGE_CHARS, MAX_PAGE, PRIORITY_RANGE,
};
use app::service::{NotificationService, Session};

use crate::auth::Auth;
use crate::delivery::Early;
use crate::hub::{Hub, InboxEvent};
use crate::kafka::Producer;
use crate::store::Store;

/// Notifications returned by the seed list route, newest first.
pub const SEED_LIST_LIMIT: u32 = 100;

/// Rows read per page while replaying missed events to a stream.
const REPLAY_PAGE: i64 = 200;

/// Per-sender rate limit: a burst, then a steady rate.
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    /// Sends allowed at once; 0 switches the limit off.
    pub burst: u32,
    /// Sends per second after the burst (fractions allowed).
    pub per_second: f64,
}

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
    auth: Auth,
    /// Keyed by sender id; `None` when rate limiting is off.
    limiter: Option<DefaultKeyedRateLimiter<i64>>,
    /// Stores and pushes acknowledged sends before the consumer reads them
    /// back; `None` when switched off.
    early: Option<Early>,
}

/// An event for one SSE stream.
#[derive(Clone, Debug)]
pub enum StreamEvent {
    /// A new notification or a state change, as the hub carried it.
    Inbox(Arc<InboxEvent>),
    /// The inbox's counts.
    Counts(Counts),
}

impl Service {
    /// Assemble the service from its parts.
    pub fn new(
        users: Vec<User>,
        store: Store,
        producer: Producer,
        hub: Hub,
        auth: Auth,
        rate: RateLimit,
        early: Option<Early>,
    ) -> Self {
        let users = users.into_iter().map(|u| (u.id, u)).collect();
        let limiter = NonZeroU32::new(rate.burst).and_then(|burst| {
            // One send every `period`; at least one a day, at most a million a second.
            let per_second = rate.per_second.clamp(1.0 / 86_400.0, 1e6);
            let period = Duration::from_secs_f64(1.0 / per_second);
            Quota::with_period(period).map(|q| RateLimiter::keyed(q.allow_burst(burst)))
        });
        Self {
            shared: Arc::new(Shared {
                users,
                store,
                producer,
                hub,
                auth,
                limiter,
                early,
            }),
        }
    }

    /// The user with `id`, or [`ServiceError::UserNotFound`].
    pub fn user(&self, id: i64) -> Result<User, ServiceError> {
        self.shared
            .users
            .get(&id)
            .cloned()
            .ok_or(ServiceError::UserNotFound)
    }

    /// Token handling (for handlers that need the cookie helpers).
    pub fn auth(&self) -> &Auth {
        &self.shared.auth
    }

    /// The rule for everything about one inbox: only its owner (anyone with
    /// `HERALD_AUTH=off`). Unknown users are 404 before anything else.
    fn check_owner(&self, who: Principal, user_id: i64) -> Result<User, ServiceError> {
        let user = self.user(user_id)?;
        if self.shared.auth.is_open() || who == Principal::User(user_id) {
            Ok(user)
        } else {
            Err(ServiceError::Forbidden(format!(
                "this is {}'s inbox; you may only see and change your own",
                user.name
            )))
        }
    }

    /// The owner of notification `id` after checking `who` may touch it.
    async fn check_notification(&self, who: Principal, id: &str) -> Result<i64, ServiceError> {
        match self.shared.store.owner_of(id).await.map_err(store_error)? {
            Some((owner, false)) => self.check_owner(who, owner).map(|u| u.id),
            _ => Err(ServiceError::NotFound(format!(
                "no notification with id {id:?}"
            ))),
        }
    }

    /// Take one send from `sender`'s allowance, or say when to retry.
    fn check_rate(&self, sender: i64) -> Result<(), ServiceError> {
        let Some(limiter) = &self.shared.limiter else {
            return Ok(());
        };
        limiter.check_key(&sender).map_err(|not_until| {
            metrics::counter!("herald_sends_total", "outcome" => "rate_limited").increment(1);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ServiceError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }

    /// Forget senders idle long enough to have their full burst back (keeps
    /// the limiter's memory bounded by recent senders).
    pub fn prune_rate_limits(&self) {
        if let Some(limiter) = &self.shared.limiter {
            limiter.retain_recent();
        }
    }

    /// The newest [`SEED_LIST_LIMIT`] notifications of the inbox, for the
    /// seed route.
    pub async fn list(
        &self,
        who: Principal,
        user_id: i64,
    ) -> Result<Vec<Notification>, ServiceError> {
        self.check_owner(who, user_id)?;
        let page = self
            .shared
            .store
            .page(user_id, &ListFilter::default(), None, SEED_LIST_LIMIT)
            .await
            .map_err(store_error)?;
        Ok(page.rows.into_iter().map(|s| s.notification).collect())
    }

    /// Events of `user_id`'s inbox as they happen, for an SSE stream.
    ///
    /// With `after` (a notification id, or `"0"` for the very beginning) the
    /// stream first replays every notification stored after it, then goes
    /// live, with no gap and no duplicate: it subscribes to the hub *before*
    /// reading the store and drops live notifications it already replayed.
    /// An unknown `after` starts from now. A stream that lags behind the hub
    /// catches up from the store. Counts come first and whenever the stream
    /// would otherwise wait, so a burst of notifications costs one counts
    /// event.
    pub async fn subscribe(
        &self,
        who: Principal,
        user_id: i64,
        after: Option<&str>,
    ) -> Result<impl Stream<Item = StreamEvent> + Send + 'static, ServiceError> {
        self.check_owner(who, user_id)?;
        let rx = self.shared.hub.subscribe(user_id);
        let store = self.shared.store.clone();
        let id = after.filter(|a| *a != "0");
        let (found, newest, counts) = store.stream_start(user_id, id).await.map_err(store_error)?;
        let resume = match after {
            Some("0") => Some(0),
            Some(_) => found,
            None => None,
        };
        let (last_seq, replay) = match resume {
            Some(seq) => (seq, true),
            None => (newest, false),
        };
        metrics::gauge!("herald_sse_connections").increment(1.0);
        let sub = Subscription {
            rx,
            store,
            user_id,
            last_seq,
            replay,
            backlog: VecDeque::new(),
            counts: Some(counts),
            sent_version: -1,
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
    /// All users, ordered by id.
    fn users(&self) -> Vec<User> {
        self.shared.users.values().cloned().collect()
    }

    /// Who sent a request with these headers.
    fn authenticate(&self, headers: &axum::http::HeaderMap) -> Result<Principal, ServiceError> {
        self.shared.auth.principal(headers)
    }

    fn current_user(&self, headers: &axum::http::HeaderMap) -> Option<User> {
        match self.authenticate(headers) {
            Ok(Principal::User(id)) => self.user(id).ok(),
            _ => None,
        }
    }

    /// Demo sign-in: mint a token for a seeded user.
    fn sign_in(&self, user_id: i64) -> Result<Session, ServiceError> {
        if !self.shared.auth.demo_sign_in() {
            return Err(ServiceError::Forbidden(
                "demo sign-in is switched off on this server; get a token from your \
                 identity provider"
                    .into(),
            ));
        }
        let user = self.user(user_id)?;
        let token = self.shared.auth.mint(user.id)?;
        let set_cookie = self.shared.auth.session_cookie(&token);
        Ok(Session {
            user,
            token,
            set_cookie,
        })
    }

    fn sign_out_cookie(&self) -> String {
        self.shared.auth.clear_cookie()
    }

    /// Validate, rate-limit and produce a notification; returns once the
    /// broker acknowledged it (acks=all). Storing happens in the consumer
    /// group, and earlier through early delivery when it is on (see
    /// `delivery.rs`). `from` defaults to the caller; naming someone else is
    /// 403.
    async fn send(
        &self,
        who: Principal,
        from: Option<i64>,
        to: i64,
        message: &str,
        category: Category,
        priority: u8,
    ) -> Result<Notification, ServiceError> {
        let from = match (who, from) {
            (Principal::User(me), Some(from)) if from != me && !self.shared.auth.is_open() => {
                return Err(ServiceError::Forbidden(format!(
                    "you are signed in as user {me} and cannot send as user {from}"
                )))
            }
            (_, Some(from)) => from,
            (Principal::User(me), None) => me,
            (Principal::Anyone, None) => {
                return Err(ServiceError::Invalid(
                    "missing sender: give `from` (or sign in)".into(),
                ))
            }
        };
        let from = self.user(from)?;
        let to = self.user(to)?;
        let message = validate_message(message)?;
        if !PRIORITY_RANGE.contains(&priority) {
            return Err(ServiceError::Invalid(format!(
                "invalid priority {priority}: expected 1 (min) to 5 (max)"
            )));
        }
        self.check_rate(from.id)?;
        let n = Notification {
            id: Uuid::now_v7().to_string(),
            from,
            to,
            message,
            created_at: Utc::now(),
            category,
            priority,
            read: false,
            archived: false,
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
        let source = produced?;
        if let Some(early) = &self.shared.early {
            early.offer(&n, source);
        }
        Ok(n)
    }

    /// One page of `user_id`'s notifications (newest first, older than the
    /// cursor `before`), the counts, and the id the stream resumes after,
    /// all read at one moment.
    async fn inbox(
        &self,
        who: Principal,
        user_id: i64,
        filter: &ListFilter,
        before: Option<&str>,
        limit: u32,
    ) -> Result<InboxView, ServiceError> {
        self.check_owner(who, user_id)?;
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ServiceError::Invalid(format!(
                "invalid limit {limit}: expected 1 to {MAX_PAGE} (default {DEFAULT_PAGE})"
            )));
        }
        if let Some(p) = filter.min_priority.filter(|p| !PRIORITY_RANGE.contains(p)) {
            return Err(ServiceError::Invalid(format!(
                "invalid min_priority {p}: expected 1 to 5"
            )));
        }
        let (page, counts, newest) = self
            .shared
            .store
            .snapshot(user_id, filter, before, limit)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                ServiceError::Invalid(format!(
                    "invalid cursor {:?}: pass the next_cursor of a previous page",
                    before.unwrap_or_default()
                ))
            })?;
        let next_cursor = if page.more {
            page.rows.last().map(|s| s.notification.id.clone())
        } else {
            None
        };
        Ok(InboxView {
            page: Page {
                notifications: page.rows.into_iter().map(|s| s.notification).collect(),
                next_cursor,
            },
            counts,
            newest,
        })
    }

    /// Mark one notification read or unread, archive or unarchive it, and
    /// tell the owner's streams. Returns it as it is now.
    async fn update(
        &self,
        who: Principal,
        id: &str,
        read: Option<bool>,
        archived: Option<bool>,
    ) -> Result<Notification, ServiceError> {
        if read.is_none() && archived.is_none() {
            return Err(ServiceError::Invalid(
                "nothing to change: give `read` and/or `archived` (true or false)".into(),
            ));
        }
        let owner = self.check_notification(who, id).await?;
        let store = &self.shared.store;
        let turn = store.write_turn().await;
        let (stored, counts) = store
            .set_state(id, read, archived)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ServiceError::NotFound(format!("no notification with id {id:?}")))?;
        if let Some(counts) = counts {
            self.shared.hub.publish(
                owner,
                InboxEvent::State(StateEvent {
                    change: Change::Updated {
                        notification: stored.notification.clone(),
                    },
                    counts,
                }),
            );
        }
        drop(turn);
        Ok(stored.notification)
    }

    /// Unread and total of `user_id`'s inbox.
    async fn counts(&self, who: Principal, user_id: i64) -> Result<Counts, ServiceError> {
        self.check_owner(who, user_id)?;
        self.shared.store.counts(user_id).await.map_err(store_error)
    }

    /// Mark every notification of `user_id` read; returns the counts after.
    async fn read_all(&self, who: Principal, user_id: i64) -> Result<Counts, ServiceError> {
        self.check_owner(who, user_id)?;
        let store = &self.shared.store;
        let turn = store.write_turn().await;
        let counts = match store.read_all(user_id).await.map_err(store_error)? {
            Some((through, counts)) => {
                self.shared.hub.publish(
                    user_id,
                    InboxEvent::State(StateEvent {
                        change: Change::ReadAll { through },
                        counts,
                    }),
                );
                counts
            }
            None => store.counts(user_id).await.map_err(store_error)?,
        };
        drop(turn);
        Ok(counts)
    }

    /// Delete one notification for good (it stays hidden; its id stays
    /// taken so a redelivered record cannot bring it back).
    async fn delete(&self, who: Principal, id: &str) -> Result<(), ServiceError> {
        let owner = self.check_notification(who, id).await?;
        let store = &self.shared.store;
        let turn = store.write_turn().await;
        let counts = store
            .delete(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ServiceError::NotFound(format!("no notification with id {id:?}")))?;
        self.shared.hub.publish(
            owner,
            InboxEvent::State(StateEvent {
                change: Change::Deleted { id: id.to_owned() },
                counts,
            }),
        );
        drop(turn);
        Ok(())
    }
}

/// The message as stored: CRLF made LF (browsers send textarea newlines as
/// CRLF), then checked: 1–2,000 characters after trimming, no control
/// characters but newline and tab.
fn validate_message(message: &str) -> Result<String, ServiceError> {
    let message = message.replace("\r\n", "\n");
    if let Some(c) = message
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
    {
        return Err(ServiceError::Invalid(format!(
            "message contains the control character U+{:04X}; only newline and tab are allowed",
            c as u32
        )));
    }
    let chars = message.trim().chars().count();
    if chars == 0 {
        return Err(ServiceError::Invalid("message must not be empty".into()));
    }
    if chars > MAX_MESSAGE_CHARS {
        return Err(ServiceError::Invalid(format!(
            "message is {chars} characters long; the limit is {MAX_MESSAGE_CHARS}"
        )));
    }
    Ok(message)
}

fn store_error(e: sqlx::Error) -> ServiceError {
    tracing::error!(error = %e, "store error");
    ServiceError::Unavailable("the notification store is unavailable".into())
}

/// State of one SSE stream: the hub receiver plus what is left to replay.
struct Subscription {
    rx: Receiver<Arc<InboxEvent>>,
    store: Store,
    user_id: i64,
    /// `seq` of the last notification handed out; nothing at or below it is
    /// sent again.
    last_seq: i64,
    /// Whether the store may hold notifications after `last_seq` that the
    /// hub will not deliver (resume, or lag).
    replay: bool,
    backlog: VecDeque<Arc<InboxEvent>>,
    /// Newest counts not yet sent.
    counts: Option<Counts>,
    /// Version of the last counts sent (in a counts or a state event).
    sent_version: i64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        metrics::gauge!("herald_sse_connections").decrement(1.0);
    }
}

impl Subscription {
    /// Keep `c` to send later if it is newer than what is pending and sent.
    fn offer_counts(&mut self, c: Counts) {
        let pending = self.counts.map_or(self.sent_version, |p| p.version);
        if c.version > pending {
            self.counts = Some(c);
        }
    }

    /// What to do with one event from the hub; `Some` is sent now.
    fn take(&mut self, event: Arc<InboxEvent>) -> Option<StreamEvent> {
        match &*event {
            InboxEvent::Stored(s) if s.seq <= self.last_seq => None,
            InboxEvent::Stored(s) => {
                self.last_seq = s.seq;
                Some(StreamEvent::Inbox(event))
            }
            InboxEvent::State(st) => {
                self.sent_version = self.sent_version.max(st.counts.version);
                if self.counts.is_some_and(|c| c.version <= self.sent_version) {
                    self.counts = None;
                }
                Some(StreamEvent::Inbox(event))
            }
            InboxEvent::Counts(c) => {
                self.offer_counts(*c);
                None
            }
        }
    }

    fn pending_counts(&mut self) -> Option<StreamEvent> {
        let c = self.counts.take()?;
        self.sent_version = c.version;
        Some(StreamEvent::Counts(c))
    }

    async fn next(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                if let InboxEvent::Stored(s) = &*event {
                    self.last_seq = s.seq;
                }
                return Some(StreamEvent::Inbox(event));
            }
            if self.replay {
                // Boxed: the store's future is large and rarely needed; kept
                // inline it would make every idle stream's state that large.
                let page = Box::pin(self.store.after(self.user_id, self.last_seq, REPLAY_PAGE));
                match page.await {
                    Ok(page) => {
                        self.replay = page.len() as i64 == REPLAY_PAGE;
                        self.backlog
                            .extend(page.into_iter().map(|s| Arc::new(InboxEvent::Stored(s))));
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
            // Whatever is already waiting goes first; counts are sent only
            // when the stream would otherwise wait.
            let received = match self.rx.try_recv() {
                Ok(event) => Ok(event),
                Err(TryRecvError::Empty) => {
                    if let Some(counts) = self.pending_counts() {
                        return Some(counts);
                    }
                    self.rx.recv().await
                }
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
            };
            match received {
                Ok(event) => {
                    if let Some(out) = self.take(event) {
                        return Some(out);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    metrics::counter!("herald_sse_lagged_events_total").increment(missed);
                    tracing::warn!(
                        user = self.user_id,
                        missed,
                        "slow stream, catching up from the store"
                    );
                    self.replay = true;
                    // Counts and state events were lost too: send fresh
                    // counts. (A missed read-state change shows after the
                    // next page load; the counts are right at once.)
                    match Box::pin(self.store.counts(self.user_id)).await {
                        Ok(c) => self.offer_counts(c),
                        Err(e) => {
                            tracing::error!(error = %e, "reading counts failed");
                            return None;
                        }
                    }
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
    fn control_characters_are_refused_but_newlines_and_tabs_kept() {
        assert_eq!(validate_message("a\r\nb\tc").unwrap(), "a\nb\tc");
        assert!(validate_message("nul\0byte").is_err());
        assert!(validate_message("bell\u{7}").is_err());
        assert!(validate_message("lone\rreturn").is_err());
        assert!(validate_message("\u{1b}[31mred").is_err());
    }

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

//! The service layer: who may do what, send, list, mark, subscribe.
//!
//! REST handlers, SSE and the Leptos server functions all call this; no
//! other module validates a send, applies an access rule or reads an inbox.

use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::Stream;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use app::model::{
    Action, Counts, InboxView, ListFilter, NewNotification, Notification, Page, Principal,
    ServiceError, User, DEFAULT_PAGE, DEFAULT_PRIORITY, MAX_ACTIONS, MAX_MESSAGE_CHARS, MAX_PAGE,
    MAX_TITLE_CHARS, PRIORITY_RANGE,
};
use app::service::{NotificationService, Session};

use crate::auth::Auth;
use crate::delivery::Early;
use crate::directory::{check_name, Directory};
use crate::hub::{Full, Hub, StreamLimits};
use crate::kafka::Producer;
use crate::store::{Claim, Store};
use crate::stream::{self, StreamEvent};
use crate::writer::Writer;

/// Notifications returned by the seed list route, newest first.
pub const SEED_LIST_LIMIT: u32 = 100;

/// Per-sender rate limit: a burst, then a steady rate.
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    /// Sends allowed at once; 0 switches the limit off.
    pub burst: u32,
    /// Sends per second after the burst (fractions allowed).
    pub per_second: f64,
}

/// What the service bounds: each sender's sends, and open streams.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Sends per user.
    pub rate: RateLimit,
    /// Sends per API key (backends send more than people).
    pub key_rate: RateLimit,
    /// Open event streams, per user and in all.
    pub streams: StreamLimits,
    /// How long an `Idempotency-Key` stays bound to its first request.
    pub idempotency_ttl: Duration,
}

/// Cheap-to-clone handle on everything a request needs.
#[derive(Clone)]
pub struct Service {
    shared: Arc<Shared>,
}

struct Shared {
    /// Who exists, under which name.
    directory: Directory,
    /// Create unknown users that valid tokens name.
    auto_provision: bool,
    store: Store,
    writer: Writer,
    producer: Producer,
    hub: Hub,
    auth: Auth,
    limiter: Limiter,
    key_limiter: Limiter,
    idempotency_ttl: Duration,
    /// Stores and pushes acknowledged sends before the consumer reads them
    /// back; `None` when switched off.
    early: Option<Early>,
    /// The last readiness answer and when it was found (see
    /// [`READINESS_TTL`]); the lock also makes concurrent probes wait for
    /// one check instead of each making its own.
    readiness: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
    /// Most open streams per user and in all.
    stream_limits: StreamLimits,
    /// What every send records, registered at the first send (see
    /// [`SendMetrics`]).
    send_metrics: OnceLock<SendMetrics>,
}

/// The series every send records, registered once. `metrics::counter!`
/// and its kin look their series up in the recorder's registry on every
/// call (a hash of the name and labels, a comparison, an `Arc` clone and
/// drop): about 760 instructions per send for its two (callgrind,
/// docs/bench/cost.md). Registered at the first send rather than in
/// [`Service::new`], which runs before the recorder is installed (a
/// handle taken from no recorder records nothing, for ever).
struct SendMetrics {
    /// `herald_produce_seconds`.
    produce: metrics::Histogram,
    /// `herald_sends_total{outcome="accepted"}`.
    accepted: metrics::Counter,
    /// `herald_sends_total{outcome="unavailable"}`.
    unavailable: metrics::Counter,
}

impl SendMetrics {
    fn register() -> Self {
        Self {
            produce: metrics::histogram!("herald_produce_seconds"),
            accepted: metrics::counter!("herald_sends_total", "outcome" => "accepted"),
            unavailable: metrics::counter!("herald_sends_total", "outcome" => "unavailable"),
        }
    }
}

/// `Retry-After` of a stream refused for the limits.
const STREAM_RETRY_SECS: u64 = 10;

/// Whether the broker and the store can take work: each `Ok`, or why not.
pub type Readiness = (Result<(), String>, Result<(), String>);

/// How long a readiness answer is reused: a flood of probes (readiness is
/// public) costs the broker a metadata request and the store a write once
/// per second, not once per probe.
pub const READINESS_TTL: Duration = Duration::from_secs(1);

/// The per-sender rate limit: in process with SQLite (one instance), in
/// the shared store with PostgreSQL, so one sender's allowance is the same
/// whichever instance they reach.
/// Whose allowance a send draws from.
#[derive(Clone, Copy, Debug)]
enum Sender {
    /// A user's.
    User(i64),
    /// An API key's.
    Key(i64),
}

impl Sender {
    /// Who owns an `Idempotency-Key`: keys of different senders never meet.
    fn label(self) -> String {
        match self {
            Sender::User(id) => format!("user:{id}"),
            Sender::Key(id) => format!("key:{id}"),
        }
    }
}

/// The id of the notification for `recipient` of the request `sender` sent
/// with `key`: the same on every retry, on every instance (a UUIDv8 of the
/// first 16 bytes of a SHA-256).
fn idempotent_id(sender: Sender, key: &str, recipient: i64) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}\n{key}\n{recipient}", sender.label()));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

/// API keys send; no inbox route is theirs, whoever the inbox belongs to.
fn refuse_keys(who: Principal) -> Result<(), ServiceError> {
    match who {
        Principal::Service { .. } => Err(ServiceError::Forbidden(
            "API keys send; they cannot read or change an inbox".into(),
        )),
        Principal::User(_) | Principal::Anyone => Ok(()),
    }
}

/// Most recipients of one send.
pub const MAX_RECIPIENTS: usize = 1_000;

enum Limiter {
    /// Rate limiting switched off.
    Off,
    /// governor, keyed by sender id.
    Local {
        /// The limiter.
        limiter: DefaultKeyedRateLimiter<i64>,
        /// Its burst, to say why a request larger than it never passes.
        burst: u32,
    },
    /// GCRA in PostgreSQL (see `Store::take_send`).
    Shared {
        /// One send per `period` after the burst.
        period: Duration,
        /// Sends allowed at once.
        burst: u32,
    },
}

impl Limiter {
    fn new(rate: RateLimit, store: &Store) -> Self {
        // One send every `period`; at least one a day, at most a million a second.
        let period = Duration::from_secs_f64(1.0 / rate.per_second.clamp(1.0 / 86_400.0, 1e6));
        match NonZeroU32::new(rate.burst) {
            None => Limiter::Off,
            Some(burst) if store.is_shared() => Limiter::Shared {
                period,
                burst: burst.get(),
            },
            Some(burst) => Quota::with_period(period).map_or(Limiter::Off, |q| Limiter::Local {
                limiter: RateLimiter::keyed(q.allow_burst(burst)),
                burst: burst.get(),
            }),
        }
    }
}

impl Service {
    /// Assemble the service from its parts; `writer` writes to the store it
    /// also reads from.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        directory: Directory,
        auto_provision: bool,
        writer: Writer,
        producer: Producer,
        hub: Hub,
        auth: Auth,
        limits: Limits,
        early: Option<Early>,
    ) -> Self {
        let Limits {
            rate,
            key_rate,
            streams: stream_limits,
            idempotency_ttl,
        } = limits;
        let store = writer.store().clone();
        let limiter = Limiter::new(rate, &store);
        let key_limiter = Limiter::new(key_rate, &store);
        Self {
            shared: Arc::new(Shared {
                directory,
                auto_provision,
                store,
                writer,
                producer,
                hub,
                auth,
                limiter,
                key_limiter,
                idempotency_ttl,
                early,
                readiness: tokio::sync::Mutex::new(None),
                stream_limits,
                send_metrics: OnceLock::new(),
            }),
        }
    }

    /// The active user with `id`, or [`ServiceError::UserNotFound`] (also
    /// for a deactivated one: nobody sends to or as them).
    pub async fn user(&self, id: i64) -> Result<User, ServiceError> {
        match self.shared.directory.get(id).await.map_err(store_error)? {
            Some(e) if e.active => Ok(e.user),
            _ => Err(ServiceError::UserNotFound),
        }
    }

    /// User `id`, active or deactivated (a deactivated user still reads
    /// their inbox), or [`ServiceError::UserNotFound`].
    pub async fn known_user(&self, id: i64) -> Result<User, ServiceError> {
        match self.shared.directory.get(id).await.map_err(store_error)? {
            Some(e) => Ok(e.user),
            None => Err(ServiceError::UserNotFound),
        }
    }

    /// Create or rename user `id` (scope `users`); true when created.
    pub async fn put_user(
        &self,
        who: Principal,
        id: i64,
        name: &str,
    ) -> Result<(User, bool), ServiceError> {
        check_directory_scope(who)?;
        let name = check_name(name)?;
        let created = self
            .shared
            .directory
            .put(id, &name)
            .await
            .map_err(store_error)?;
        Ok((User { id, name }, created))
    }

    /// Deactivate user `id` (scope `users`): their inbox stays readable to
    /// them, sends to them answer 404.
    pub async fn deactivate_user(&self, who: Principal, id: i64) -> Result<User, ServiceError> {
        check_directory_scope(who)?;
        let entry = self.shared.directory.deactivate(id);
        match entry.await.map_err(store_error)? {
            Some(e) => Ok(e.user),
            None => Err(ServiceError::UserNotFound),
        }
    }

    /// The rule for everything about one inbox: only its owner (anyone with
    /// `HERALD_AUTH=off`). Unknown users are 404 before anything else; a
    /// deactivated user keeps their inbox.
    async fn check_owner(&self, who: Principal, user_id: i64) -> Result<User, ServiceError> {
        let user = self.known_user(user_id).await?;
        refuse_keys(who)?;
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
    /// Someone else's notification is answered exactly like a missing one:
    /// an id must not tell whose inbox it is in.
    async fn check_notification(&self, who: Principal, id: &str) -> Result<i64, ServiceError> {
        refuse_keys(who)?;
        match self.shared.store.owner_of(id).await.map_err(store_error)? {
            Some((owner, false)) if self.shared.auth.is_open() || who == Principal::User(owner) => {
                Ok(owner)
            }
            _ => Err(ServiceError::NotFound(format!(
                "no notification with id {id:?}"
            ))),
        }
    }

    /// Take one send from `sender`'s allowance, or say when to retry.
    /// (Keys draw from their own limiter; in the shared table they are
    /// kept apart from users by a negative id.)
    async fn check_rate(&self, sender: Sender, cost: u32) -> Result<(), ServiceError> {
        let (limiter, sender) = match sender {
            Sender::User(id) => (&self.shared.limiter, id),
            Sender::Key(id) => (&self.shared.key_limiter, -id),
        };
        let too_many = |burst: u32| {
            ServiceError::Invalid(format!(
                "{cost} recipients at once is more than this sender's burst of {burst} allows; \
                 send in smaller groups"
            ))
        };
        let wait = match limiter {
            Limiter::Off => return Ok(()),
            Limiter::Local { limiter, burst } => {
                let n = NonZeroU32::new(cost.max(1)).unwrap_or(NonZeroU32::MIN);
                match limiter.check_key_n(&sender, n) {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(not_until)) => not_until.wait_time_from(DefaultClock::default().now()),
                    Err(_) => return Err(too_many(*burst)),
                }
            }
            Limiter::Shared { period, burst } => {
                if cost > *burst {
                    return Err(too_many(*burst));
                }
                let taken = self.shared.store.take_send(sender, *period, *burst, cost);
                match taken.await.map_err(store_error)? {
                    None => return Ok(()),
                    Some(wait) => wait,
                }
            }
        };
        metrics::counter!("herald_sends_total", "outcome" => "rate_limited")
            .increment(u64::from(cost));
        Err(ServiceError::RateLimited {
            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        })
    }

    /// Forget what has expired: senders idle long enough to have their full
    /// burst back (keeps the limiters' memory, or their table, bounded by
    /// recent senders) and `Idempotency-Key`s past their time to live.
    pub async fn prune_expired(&self) {
        let mut shared = false;
        for limiter in [&self.shared.limiter, &self.shared.key_limiter] {
            match limiter {
                Limiter::Off => {}
                Limiter::Local { limiter, .. } => limiter.retain_recent(),
                Limiter::Shared { .. } => shared = true,
            }
        }
        if shared {
            if let Err(e) = self.shared.store.prune_send_allowance().await {
                tracing::warn!(error = %e, "pruning the shared rate limit failed");
            }
        }
        let expired_before = (Utc::now() - self.idempotency_ttl()).to_rfc3339();
        if let Err(e) = self.shared.store.prune_idempotency(&expired_before).await {
            tracing::warn!(error = %e, "pruning expired Idempotency-Keys failed");
        }
    }

    /// Send one message to each of `to` (1 to [`MAX_RECIPIENTS`], each
    /// once), one Kafka record per recipient; answers once the broker
    /// acknowledged them all. All or nothing up front: a sender, message or
    /// recipient that is not right refuses the whole request before
    /// anything is produced, and the rate limit takes one send per
    /// recipient. (`n.to` is ignored.)
    ///
    /// With an `Idempotency-Key` the ids are derived from sender, key and
    /// recipient, so a retry (the answer was lost, even after the broker
    /// had the records) produces the same ids and the store keeps each
    /// once; the same key with another request is 422 for
    /// [`Self::idempotency_ttl`] after its first use.
    /// If the broker takes some records and not others the answer is 503:
    /// retry with the same key to complete it without duplicates.
    pub async fn send_to(
        &self,
        who: Principal,
        n: NewNotification,
        to: &[i64],
        idempotency_key: Option<&str>,
    ) -> Result<Vec<Notification>, ServiceError> {
        let NewNotification {
            from,
            message,
            category,
            priority,
            title,
            link,
            actions,
            ..
        } = n;
        let (category, priority) = (
            category.unwrap_or_default(),
            priority.unwrap_or(DEFAULT_PRIORITY),
        );
        let (from, sender) = match (who, from) {
            (Principal::Service { scopes, .. }, _) if !scopes.send => {
                return Err(ServiceError::Forbidden(
                    "this API key has no `send` scope".into(),
                ))
            }
            (Principal::Service { .. }, Some(_)) => {
                return Err(ServiceError::Invalid(
                    "an API key sends as its service: leave `from` out".into(),
                ))
            }
            (Principal::Service { key, .. }, None) => {
                (self.service_sender(key).await?, Sender::Key(key))
            }
            (Principal::User(me), Some(from)) if from != me && !self.shared.auth.is_open() => {
                return Err(ServiceError::Forbidden(format!(
                    "you are signed in as user {me} and cannot send as user {from}"
                )))
            }
            (_, Some(from)) => (self.user(from).await?, Sender::User(from)),
            (Principal::User(me), None) => (self.user(me).await?, Sender::User(me)),
            (Principal::Anyone, None) => {
                return Err(ServiceError::Invalid(
                    "missing sender: give `from` (or sign in)".into(),
                ))
            }
        };
        let recipients = self.recipients(to).await?;
        let message = check_message(&message).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let extras = check_extras(title.as_deref(), link.as_deref(), &actions)
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        if !PRIORITY_RANGE.contains(&priority) {
            return Err(ServiceError::Invalid(format!(
                "invalid priority {priority}: expected 1 (min) to 5 (max)"
            )));
        }
        let ids = match idempotency_key {
            None => recipients.iter().map(|_| Uuid::now_v7()).collect(),
            Some(key) => {
                let request = serde_json::json!({
                    "to": to,
                    "from": from.name,
                    "message": message,
                    "category": category.as_str(),
                    "priority": priority,
                    "title": extras.title,
                    "link": extras.link,
                    "actions": extras.actions,
                })
                .to_string();
                self.claim_idempotency(sender, key, &request).await?;
                recipients
                    .iter()
                    .map(|r| idempotent_id(sender, key, r.id))
                    .collect::<Vec<_>>()
            }
        };
        let cost = u32::try_from(recipients.len()).unwrap_or(u32::MAX);
        self.check_rate(sender, cost).await?;
        let created_at = Utc::now();
        let sent: Vec<Notification> = recipients
            .into_iter()
            .zip(ids)
            .map(|(to, id)| Notification {
                id: id.to_string(),
                from: from.clone(),
                to,
                message: message.clone(),
                created_at,
                category,
                priority,
                read: false,
                archived: false,
                from_service: matches!(sender, Sender::Key(_)),
                title: extras.title.clone(),
                link: extras.link.clone(),
                actions: extras.actions.clone(),
            })
            .collect();
        let started = Instant::now();
        let produced =
            futures::future::join_all(sent.iter().map(|n| self.shared.producer.send(n))).await;
        let counted = self.shared.send_metrics.get_or_init(SendMetrics::register);
        counted.produce.record(started.elapsed().as_secs_f64());
        let mut failed = None;
        for (n, result) in sent.iter().zip(produced) {
            let outcome = match result {
                Ok(source) => {
                    let early = self.shared.early.as_ref();
                    if !early.is_some_and(|e| e.offer(n, source)) {
                        // Only the consumer will store it: it must fetch.
                        self.shared
                            .producer
                            .demand()
                            .produced(source.partition, source.offset);
                    }
                    &counted.accepted
                }
                Err(e) => {
                    failed = Some(e);
                    &counted.unavailable
                }
            };
            outcome.increment(1);
        }
        match failed {
            None => Ok(sent),
            Some(e) => Err(e),
        }
    }

    /// The users of `to`: at least one, at most [`MAX_RECIPIENTS`], each
    /// once, every one known. One unknown recipient answers like the seed
    /// route ("User not found"), naming it when there are several.
    async fn recipients(&self, to: &[i64]) -> Result<Vec<User>, ServiceError> {
        if to.is_empty() || to.len() > MAX_RECIPIENTS {
            return Err(ServiceError::Invalid(format!(
                "`to` takes 1 to {MAX_RECIPIENTS} recipients; got {}",
                to.len()
            )));
        }
        // Most sends have one recipient: no set and no map for it, and an
        // unknown one answers as the seed route does.
        if let [id] = *to {
            return Ok(vec![self.user(id).await?]);
        }
        let mut seen = std::collections::HashSet::with_capacity(to.len());
        if let Some(twice) = to.iter().find(|id| !seen.insert(**id)) {
            return Err(ServiceError::Invalid(format!(
                "recipient {twice} is listed twice"
            )));
        }
        let mut found = self
            .shared
            .directory
            .lookup(to)
            .await
            .map_err(store_error)?;
        to.iter()
            .map(|id| match found.remove(id) {
                Some(e) if e.active => Ok(e.user),
                _ => Err(ServiceError::NotFound(format!("User not found: {id}"))),
            })
            .collect()
    }

    /// Claim `key` for this request, or refuse a key reused for another.
    async fn claim_idempotency(
        &self,
        sender: Sender,
        key: &str,
        request: &str,
    ) -> Result<(), ServiceError> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServiceError::Invalid(
                "Idempotency-Key takes 1 to 255 visible ASCII characters".into(),
            ));
        }
        let expired_before = (Utc::now() - self.idempotency_ttl()).to_rfc3339();
        let hash = crate::keys::hash(request);
        let claim = self
            .shared
            .store
            .claim_idempotency(&sender.label(), key, &hash, &expired_before)
            .await
            .map_err(store_error)?;
        match claim {
            Claim::New | Claim::Retry => Ok(()),
            Claim::Conflict => Err(ServiceError::Unprocessable(
                "this Idempotency-Key was used for another request; use a new key".into(),
            )),
        }
    }

    /// How long an `Idempotency-Key` stays bound to its first request.
    pub fn idempotency_ttl(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.shared.idempotency_ttl).unwrap_or(chrono::Duration::days(1))
    }

    /// Who an API key (`hk_…`) is: a live key of the store, checked on
    /// every use so a revoked key is refused at once on every instance.
    pub async fn authenticate_key(&self, key: &str) -> Result<Principal, ServiceError> {
        let found = self
            .shared
            .store
            .live_key(&crate::keys::hash(key))
            .await
            .map_err(store_error)?;
        let Some(found) = found else {
            return Err(ServiceError::Unauthorized(
                "unknown or revoked API key".into(),
            ));
        };
        metrics::counter!("herald_api_key_requests_total", "key" => found.name.clone())
            .increment(1);
        Ok(Principal::Service {
            key: found.id,
            scopes: crate::keys::parse_scopes(&found.scopes),
        })
    }

    /// The sender a key's notifications show: the key's id and name.
    async fn service_sender(&self, key: i64) -> Result<User, ServiceError> {
        let name = self.shared.store.key_name(key).await.map_err(store_error)?;
        let name =
            name.ok_or_else(|| ServiceError::Unauthorized("unknown or revoked API key".into()))?;
        Ok(User { id: key, name })
    }

    /// The newest [`SEED_LIST_LIMIT`] notifications of the inbox, for the
    /// seed route.
    pub async fn list(
        &self,
        who: Principal,
        user_id: i64,
    ) -> Result<Vec<Notification>, ServiceError> {
        self.check_owner(who, user_id).await?;
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
        self.check_owner(who, user_id).await?;
        let rx = self
            .shared
            .hub
            .subscribe(user_id, self.shared.stream_limits)
            .map_err(|full| {
                metrics::counter!("herald_sse_refused_total").increment(1);
                let message = match full {
                    Full::User => "this user has too many open streams; close one or retry later",
                    Full::Instance => "this instance has too many open streams; retry later",
                };
                ServiceError::TooManyStreams {
                    message: message.into(),
                    retry_after_secs: STREAM_RETRY_SECS,
                }
            })?;
        stream::open(&self.shared.store, rx, user_id, after)
            .await
            .map_err(store_error)
    }

    /// When the credentials of these headers expire (see
    /// [`Auth::expiry`](crate::auth::Auth::expiry)); `None` without a token.
    pub fn credentials_expire(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Option<std::time::SystemTime> {
        self.shared.auth.expiry(headers)
    }

    /// Readiness: the broker answers metadata requests and the store takes
    /// writes. Each part is `Ok` or the reason it is not ready. Answers are
    /// reused for [`READINESS_TTL`].
    pub async fn readiness(&self) -> Readiness {
        let mut last = self.shared.readiness.lock().await;
        if let Some((at, answer)) = last.as_ref() {
            if at.elapsed() < READINESS_TTL {
                return answer.clone();
            }
        }
        metrics::counter!("herald_readiness_checks_total").increment(1);
        let broker = self.shared.producer.check_broker(Duration::from_secs(2));
        let store = async {
            self.shared
                .store
                .check_writable()
                .await
                .map_err(|e| e.to_string())
        };
        let answer = tokio::join!(broker, store);
        *last = Some((Instant::now(), answer.clone()));
        answer
    }
}

#[async_trait::async_trait]
impl NotificationService for Service {
    /// The seeded demo users, when demo sign-in is on.
    async fn demo_users(&self) -> Vec<User> {
        if !self.shared.auth.demo_sign_in() {
            return Vec::new();
        }
        match self.shared.directory.lookup(&DEMO_USERS).await {
            Ok(found) => DEMO_USERS
                .iter()
                .filter_map(|id| found.get(id).filter(|e| e.active))
                .map(|e| e.user.clone())
                .collect(),
            Err(e) => {
                store_error(e);
                Vec::new()
            }
        }
    }

    /// Prefix search of the directory, for signed-in users, keys with
    /// scope `users`, and anyone with auth off.
    async fn search_users(
        &self,
        who: Principal,
        query: &str,
        limit: u32,
    ) -> Result<Vec<User>, ServiceError> {
        if let Principal::Service { scopes, .. } = who {
            if !scopes.users {
                return Err(ServiceError::Forbidden(
                    "this API key has no `users` scope".into(),
                ));
            }
        }
        self.shared.directory.search(query, limit).await
    }

    /// Who sent a request with these headers; creates the user a valid
    /// token names on first use when auto-provisioning is on.
    async fn authenticate(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<Principal, ServiceError> {
        let (who, name) = self.shared.auth.principal_named(headers)?;
        if let (true, Principal::User(id)) = (self.shared.auto_provision, who) {
            let directory = &self.shared.directory;
            if directory.get(id).await.map_err(store_error)?.is_none() {
                // A `name` Herald would refuse to store is replaced, not
                // a reason to refuse a valid token.
                let name = name
                    .and_then(|n| check_name(&n).ok())
                    .unwrap_or_else(|| format!("User {id}"));
                directory.provision(id, &name).await.map_err(store_error)?;
            }
        }
        Ok(who)
    }

    async fn current_user(&self, headers: &axum::http::HeaderMap) -> Option<User> {
        match self.authenticate(headers).await {
            Ok(Principal::User(id)) => self.known_user(id).await.ok(),
            _ => None,
        }
    }

    /// Demo sign-in: mint a token for a demo user.
    async fn sign_in(
        &self,
        user_id: i64,
        headers: &axum::http::HeaderMap,
    ) -> Result<Session, ServiceError> {
        if !self.shared.auth.demo_sign_in() {
            return Err(ServiceError::Forbidden(
                "demo sign-in is switched off on this server; get a token from your \
                 identity provider"
                    .into(),
            ));
        }
        let user = self.user(user_id).await?;
        let token = self.shared.auth.mint(user.id)?;
        let set_cookie = self.shared.auth.session_cookie(&token, headers);
        Ok(Session {
            user,
            token,
            set_cookie,
        })
    }

    fn sign_out_cookies(&self) -> Vec<String> {
        self.shared.auth.clear_cookies()
    }

    /// Validate, rate-limit and produce a notification; returns once the
    /// broker acknowledged it (acks=all). Storing happens in the consumer
    /// group, and earlier through early delivery when it is on (see
    /// `delivery.rs`). `from` defaults to the caller; naming someone else is
    /// 403.
    async fn send(&self, who: Principal, n: NewNotification) -> Result<Notification, ServiceError> {
        let to = [n.to];
        let mut sent = self.send_to(who, n, &to, None).await?;
        sent.pop().ok_or(ServiceError::Internal)
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
        self.check_owner(who, user_id).await?;
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
                // Well formed but naming no notification of this inbox:
                // like any other unknown notification id, 404.
                ServiceError::NotFound(format!(
                    "invalid cursor {:?}: no notification of this inbox has that id; \
                     pass the next_cursor of a previous page",
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
        self.check_notification(who, id).await?;
        self.shared
            .writer
            .set_state(id, read, archived)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ServiceError::NotFound(format!("no notification with id {id:?}")))
    }

    /// Unread and total of `user_id`'s inbox.
    async fn counts(&self, who: Principal, user_id: i64) -> Result<Counts, ServiceError> {
        self.check_owner(who, user_id).await?;
        self.shared.store.counts(user_id).await.map_err(store_error)
    }

    /// Mark every notification of `user_id` read; returns the counts after.
    async fn read_all(&self, who: Principal, user_id: i64) -> Result<Counts, ServiceError> {
        self.check_owner(who, user_id).await?;
        self.shared
            .writer
            .read_all(user_id)
            .await
            .map_err(store_error)
    }

    /// Delete one notification for good (it stays hidden; its id stays
    /// taken so a redelivered record cannot bring it back).
    async fn delete(&self, who: Principal, id: &str) -> Result<(), ServiceError> {
        self.check_notification(who, id).await?;
        if self.shared.writer.delete(id).await.map_err(store_error)? {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!(
                "no notification with id {id:?}"
            )))
        }
    }
}

/// What a message may be, as a pattern (for the OpenAPI document; with at
/// most [`MAX_MESSAGE_CHARS`] characters it is exactly what
/// [`check_message`] accepts, which a test checks): no control character
/// but tab, newline and carriage return, and not only white space.
pub const MESSAGE_PATTERN: &str = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$";

/// A title, an action's label or a user's name: no control character at
/// all, not only white space.
pub const LINE_PATTERN: &str =
    "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// A link or an action's URL: `http` or `https`, a host name (labels of
/// letters, digits and inner hyphens, the last one starting with a letter)
/// or an IPv4 address in dotted form (no IPv6, no user name), an optional
/// port, then any visible ASCII.
/// The server applies this very pattern (then parses the URL), so the
/// document and the check cannot disagree.
pub const WEB_URL_PATTERN: &str = "^[Hh][Tt][Tt][Pp][Ss]?://(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)*[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?|(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3})(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?(?:[/?#][!-~]*)?$";

/// Longest link or action URL, in bytes.
pub const MAX_URL_BYTES: usize = 2_048;

/// Longest action label, in characters.
pub const MAX_LABEL_CHARS: usize = 40;

/// The message as stored: CRLF and a lone CR made LF (browsers send
/// textarea newlines as CRLF), then checked: at most 2,000 characters, not
/// only white space, no control characters but newline and tab. Sends
/// through the API and records from the topic pass the same check (and the
/// OpenAPI document states the same rule).
pub fn check_message(message: &str) -> Result<String, BadMessage> {
    // Counted as sent (the limit the document states), not as stored.
    let chars = message.chars().count();
    let message = message.replace("\r\n", "\n").replace('\r', "\n");
    if let Some(c) = message
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
    {
        return Err(if c == '\0' {
            BadMessage::Nul
        } else {
            BadMessage::Control(c)
        });
    }
    if message.trim().is_empty() {
        return Err(BadMessage::Empty);
    }
    if chars > MAX_MESSAGE_CHARS {
        return Err(BadMessage::TooLong(chars));
    }
    Ok(message)
}

/// A notification's title, link and actions as stored, once checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// Trimmed title.
    pub title: Option<String>,
    /// Absolute http(s) URL, as sent but for the scheme in lowercase.
    pub link: Option<String>,
    /// Buttons.
    pub actions: Vec<Action>,
}

/// Check a title (1-120 characters after trimming, no control characters),
/// a link and up to two actions (labels 1-40 characters, URLs absolute
/// `http`/`https` with a host, at most 2,048 bytes). Sends through the API
/// and records from the topic pass the same check.
pub fn check_extras(
    title: Option<&str>,
    link: Option<&str>,
    actions: &[Action],
) -> Result<Extras, BadField> {
    // Lengths count what was sent; what is stored is trimmed.
    let title = match title {
        None => None,
        Some(t) if t.trim().is_empty() || t.chars().count() > MAX_TITLE_CHARS => {
            return Err(BadField::Title(format!(
                "title must be 1 to {MAX_TITLE_CHARS} characters"
            )))
        }
        Some(t) if t.chars().any(char::is_control) => {
            return Err(BadField::Title(
                "title must not hold control characters".into(),
            ))
        }
        Some(t) => Some(t.trim().to_owned()),
    };
    let link = link.map(|l| web_url("link", l)).transpose()?;
    if actions.len() > MAX_ACTIONS {
        return Err(BadField::Actions(format!(
            "at most {MAX_ACTIONS} actions; got {}",
            actions.len()
        )));
    }
    let actions = actions
        .iter()
        .map(|a| {
            let label = &a.label;
            if label.trim().is_empty()
                || label.chars().count() > MAX_LABEL_CHARS
                || label.chars().any(char::is_control)
            {
                return Err(BadField::Actions(format!(
                    "an action's label must be 1 to {MAX_LABEL_CHARS} characters, \
                     no control characters"
                )));
            }
            Ok(Action {
                label: label.trim().to_owned(),
                url: web_url("action url", &a.url)?,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Extras {
        title,
        link,
        actions,
    })
}

/// `text` as an absolute `http`/`https` URL with a host, or why not: no
/// `javascript:`, `data:` or relative URL ever reaches an `href`.
fn web_url(field: &str, text: &str) -> Result<String, BadField> {
    static PATTERN: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(WEB_URL_PATTERN).expect("a valid pattern"));
    let bad = |why: &str| BadField::Link(format!("{field} {why}"));
    if text.len() > MAX_URL_BYTES {
        return Err(bad("is longer than 2,048 bytes"));
    }
    if !PATTERN.is_match(text) {
        return Err(bad(
            "must be an http or https URL with a host name (letters, digits, hyphens), \
             an optional port, and only visible ASCII after it",
        ));
    }
    let url = url::Url::parse(text).map_err(|e| bad(&format!("is not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(bad("must be an http or https URL with a host"));
    }
    // Kept as sent but for the scheme's case: the pattern already allows
    // only a clean ASCII URL, and the parser's normal form (percent
    // encoding, a `/` added) could outgrow the length the document states.
    let (scheme, rest) = text.split_once("://").unwrap_or((text, ""));
    Ok(format!("{}://{rest}", scheme.to_ascii_lowercase()))
}

/// Why [`check_extras`] refused a field.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadField {
    /// The title.
    #[error("{0}")]
    Title(String),
    /// The link, or an action's URL.
    #[error("{0}")]
    Link(String),
    /// The actions.
    #[error("{0}")]
    Actions(String),
}

/// Why [`check_message`] refused a message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadMessage {
    /// NUL, which PostgreSQL cannot store in text.
    #[error(
        "message contains the control character U+0000 (NUL); only newline and tab are allowed"
    )]
    Nul,
    /// Another control character than newline and tab.
    #[error("message contains the control character U+{:04X}; only newline and tab are allowed", u32::from(*.0))]
    Control(char),
    /// Nothing but white space.
    #[error("message must not be empty")]
    Empty,
    /// Over [`MAX_MESSAGE_CHARS`] characters.
    #[error("message is {0} characters long; the limit is {MAX_MESSAGE_CHARS}")]
    TooLong(usize),
}

impl BadMessage {
    /// The `reason` label of the dead-letter metric.
    pub fn kind(&self) -> &'static str {
        match self {
            BadMessage::Nul => "nul_byte",
            BadMessage::Control(_) => "control_character",
            BadMessage::Empty => "empty_message",
            BadMessage::TooLong(_) => "oversize",
        }
    }
}

/// Managing the directory takes an API key with scope `users` (or auth
/// off); users cannot rename each other.
fn check_directory_scope(who: Principal) -> Result<(), ServiceError> {
    match who {
        Principal::Service { scopes, .. } if scopes.users => Ok(()),
        Principal::Service { .. } => Err(ServiceError::Forbidden(
            "this API key has no `users` scope".into(),
        )),
        Principal::Anyone => Ok(()),
        Principal::User(_) => Err(ServiceError::Forbidden(
            "managing users takes an API key with the `users` scope".into(),
        )),
    }
}

/// The users the demo sign-in offers: the Go tutorial's four.
const DEMO_USERS: [i64; 4] = [1, 2, 3, 4];

/// A store failure as the client sees it (the cause goes to the log).
pub(crate) fn store_error(e: sqlx::Error) -> ServiceError {
    tracing::error!(error = %e, "store error");
    ServiceError::Unavailable("the notification store is unavailable".into())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Characters where the rules differ: controls, CR, LF, tab, spaces of
    /// several kinds, zero-width and ordinary letters.
    fn tricky_text() -> impl Strategy<Value = String> {
        let chars = prop::sample::select(vec![
            'a', 'é', ' ', '\t', '\n', '\r', '\0', '\u{7}', '\u{b}', '\u{1b}', '\u{7f}', '\u{85}',
            '\u{a0}', '\u{2028}', '\u{3000}', '\u{200b}', '\u{feff}', '字',
        ]);
        prop::collection::vec(chars, 0..12).prop_map(|v| v.into_iter().collect())
    }

    fn pattern(p: &str) -> regex::Regex {
        regex::Regex::new(p).unwrap()
    }

    proptest! {
        /// The OpenAPI document's patterns are exactly the server's rules
        /// (within the stated lengths), so a client generated from the
        /// document is refused only for what the document forbids.
        #[test]
        fn documented_patterns_are_the_checks(text in tricky_text()) {
            prop_assert_eq!(
                check_message(&text).is_ok(),
                pattern(MESSAGE_PATTERN).is_match(&text),
                "message {:?}", text
            );
            let line = pattern(LINE_PATTERN).is_match(&text);
            prop_assert_eq!(check_extras(Some(&text), None, &[]).is_ok(), line, "title {:?}", text);
            let action = Action { label: text.clone(), url: "https://example.com".into() };
            prop_assert_eq!(check_extras(None, None, &[action]).is_ok(), line, "label {:?}", text);
            prop_assert_eq!(crate::directory::check_name(&text).is_ok(), line, "name {:?}", text);
        }

        /// Every URL the document's pattern admits is accepted (and one it
        /// does not is refused, by construction: the server applies it).
        #[test]
        fn urls_the_pattern_admits_are_accepted(
            url in proptest::string::string_regex(
                WEB_URL_PATTERN.trim_start_matches('^').trim_end_matches('$'),
            ).unwrap()
        ) {
            // International-domain labels must hold valid punycode, which
            // a pattern cannot say; clients do not make such names up.
            prop_assume!(!url.to_ascii_lowercase().contains("xn--"));
            prop_assume!(url.len() <= MAX_URL_BYTES);
            prop_assert!(web_url("link", &url).is_ok(), "{:?}: {:?}", url, web_url("link", &url));
        }
    }

    #[test]
    fn urls_outside_the_pattern_are_refused() {
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "//example.com/x",
            "https://user@example.com/",
            "https://127.0.0.1.5/",
            "https://256.1.1.1/",
            "https://[::1]/",
            "https://example.com:65536/",
            "https://exa mple.com/",
            "https://example.com/caf\u{e9}",
            "ftp://example.com/",
        ] {
            assert!(web_url("link", bad).is_err(), "{bad}");
        }
        for good in [
            "https://example.com",
            "HTTP://Shop.example:8080/a?b#c",
            "http://localhost/x",
            "http://127.0.0.1:3000/api/health?order=1",
        ] {
            assert!(web_url("link", good).is_ok(), "{good}");
        }
    }

    #[test]
    fn control_characters_are_refused_but_newlines_and_tabs_kept() {
        assert_eq!(check_message("a\r\nb\tc").unwrap(), "a\nb\tc");
        assert_eq!(check_message("old\rmac").unwrap(), "old\nmac");
        assert!(check_message("nul\0byte").is_err());
        assert!(check_message("bell\u{7}").is_err());
        assert!(check_message("\u{1b}[31mred").is_err());
    }

    #[test]
    fn messages_are_validated_after_trimming() {
        assert!(check_message("hi").is_ok());
        assert!(check_message("  \n\t ").is_err());
        assert!(check_message("").is_err());
        let long = "é".repeat(MAX_MESSAGE_CHARS);
        assert!(
            check_message(&long).is_ok(),
            "the limit counts characters, not bytes"
        );
        assert!(check_message(&format!("{long}x")).is_err());
    }
}

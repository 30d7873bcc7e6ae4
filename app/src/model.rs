//! Types shared by the server, the server functions and the browser.
//!
//! They are compiled for both `ssr` and `hydrate`, so they depend on nothing
//! server-only.

use chrono::{DateTime, Utc};
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// A person who can send and receive notifications.
///
/// Serialized exactly as the Go tutorial does: `{"id":1,"name":"Emma"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct User {
    /// Positive integer id (the demo users are 1 Emma, 2 Bruno, 3 Rick, 4 Lena).
    pub id: i64,
    /// Display name.
    pub name: String,
}

/// What kind of notification this is; the UI shows and filters by it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Plain information (the default).
    #[default]
    Info,
    /// Somebody mentioned or addressed you.
    Mention,
    /// Needs attention.
    Alert,
}

impl Category {
    /// Every category, in the order the UI lists them.
    pub const ALL: [Category; 3] = [Category::Info, Category::Mention, Category::Alert];

    /// The lowercase name used in JSON, query strings and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Info => "info",
            Category::Mention => "mention",
            Category::Alert => "alert",
        }
    }

    /// Parse the lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Lowest and highest priority (1 = min, 5 = max, as ntfy numbers them).
pub const PRIORITY_RANGE: std::ops::RangeInclusive<u8> = 1..=5;
/// Priority of a notification sent without one.
pub const DEFAULT_PRIORITY: u8 = 3;

fn default_priority() -> u8 {
    DEFAULT_PRIORITY
}

/// A stored notification as the JSON API, the SSE stream and the UI see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Notification {
    /// Unique id: a UUIDv7 for notifications Herald produced, or
    /// `topic-partition-offset` for records written by other producers.
    pub id: String,
    /// Sender.
    pub from: User,
    /// Recipient.
    pub to: User,
    /// The text, as sent.
    pub message: String,
    /// When the notification was accepted (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Kind of notification.
    #[serde(default)]
    pub category: Category,
    /// 1 (min) to 5 (max); 3 by default.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Whether the recipient has read it.
    #[serde(default)]
    pub read: bool,
    /// Whether the recipient archived it (archived ones leave the default list).
    #[serde(default)]
    pub archived: bool,
    /// Whether the sender is a backend service (an API key: `from.id` is
    /// the key's id, `from.name` its name), not a user. Left out when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_service: bool,
    /// A title shown above the message (up to 120 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Where a click on the notification leads: an absolute `http` or
    /// `https` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Up to two buttons, each opening its URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
}

/// A button on a notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Its text (1 to 40 characters).
    #[cfg_attr(feature = "ssr", schema(min_length = 1, max_length = 40))]
    pub label: String,
    /// What it opens: an absolute `http` or `https` URL.
    #[cfg_attr(feature = "ssr", schema(max_length = 2048))]
    pub url: String,
}

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 120;

/// Most actions on one notification.
pub const MAX_ACTIONS: usize = 2;

/// Whether `url` may go into an `href`: it starts with `https://` or
/// `http://` (checked in full by the server when the notification is
/// accepted; the UI checks again before rendering, so no `javascript:`
/// URL can reach a link even from a record written past the server).
pub fn is_web_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

#[cfg(any(test, feature = "test-support"))]
impl Notification {
    /// The example every crate's tests start from: Bruno to Emma, unread,
    /// `info` at the default priority, sent now. A test changes what it is
    /// about with struct update syntax (`..Notification::example(…)`).
    pub fn example(id: &str, message: &str) -> Self {
        Notification {
            id: id.to_owned(),
            from: User {
                id: 2,
                name: "Bruno".into(),
            },
            to: User {
                id: 1,
                name: "Emma".into(),
            },
            message: message.to_owned(),
            created_at: Utc::now(),
            category: Category::default(),
            priority: DEFAULT_PRIORITY,
            read: false,
            archived: false,
            from_service: false,
            title: None,
            link: None,
            actions: Vec::new(),
        }
    }
}

/// Unread and total notifications of an inbox (archived and deleted ones
/// are not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Counts {
    /// Notifications not yet read.
    pub unread: i64,
    /// Notifications in the inbox.
    pub total: i64,
    /// Grows with every change of this inbox. A client that gets counts
    /// from several places (a page load, the event stream) keeps the ones
    /// with the largest version, whatever order they arrived in.
    pub version: i64,
}

/// The signed-in user and their inbox's counts (for the header badge,
/// rendered on the server).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// Who is signed in.
    pub user: User,
    /// Their inbox's counts when the page was rendered.
    pub counts: Counts,
}

/// A notification to send, as its sender states it: the body of `POST
/// /api/notifications`, the UI's form, the Go tutorial's fields. The
/// service checks it and fills in the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewNotification {
    /// Sender id; defaults to the caller, and must be the caller when auth
    /// is on. Required when auth is off and no token is sent.
    #[serde(default)]
    pub from: Option<i64>,
    /// Recipient id.
    pub to: i64,
    /// The text: at most 2,000 characters, not only white space, no control
    /// characters but newline and tab.
    pub message: String,
    /// `info` (default), `mention` or `alert`.
    #[serde(default)]
    pub category: Option<Category>,
    /// 1 (min) to 5 (max); 3 by default.
    #[serde(default)]
    pub priority: Option<u8>,
    /// A title (up to 120 characters).
    #[serde(default)]
    pub title: Option<String>,
    /// Where a click leads: an absolute `http`/`https` URL.
    #[serde(default)]
    pub link: Option<String>,
    /// Up to two buttons `{label, url}`.
    #[serde(default)]
    pub actions: Vec<Action>,
}

/// Which notifications a list shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter {
    /// Archived ones instead of the inbox.
    #[serde(default)]
    pub archived: bool,
    /// Only unread ones.
    #[serde(default)]
    pub unread: bool,
    /// Only this category.
    #[serde(default)]
    pub category: Option<Category>,
    /// Only this priority or higher.
    #[serde(default)]
    pub min_priority: Option<u8>,
}

impl ListFilter {
    /// Whether `n` belongs in a list with this filter.
    pub fn matches(&self, n: &Notification) -> bool {
        n.archived == self.archived
            && (!self.unread || !n.read)
            && self.category.is_none_or(|c| c == n.category)
            && self.min_priority.is_none_or(|p| n.priority >= p)
    }
}

/// Default page size of a list.
pub const DEFAULT_PAGE: u32 = 50;
/// Largest page size a client may ask for.
pub const MAX_PAGE: u32 = 200;

/// One page of a list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The notifications, newest first.
    pub notifications: Vec<Notification>,
    /// Pass as `before` to get the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Everything the inbox view needs at once, read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxView {
    /// The requested page.
    pub page: Page,
    /// The inbox's counts.
    pub counts: Counts,
    /// Id of the newest notification of the user, whatever its state: the
    /// event stream resumes after it (`None`: the user has none yet).
    pub newest: Option<String>,
}

/// A change to notifications that already exist, pushed to every open
/// stream of their owner (SSE event `state`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Read or archived state of one notification changed; here it is now.
    Updated {
        /// The notification after the change.
        notification: Notification,
    },
    /// One notification was deleted.
    Deleted {
        /// Its id.
        id: String,
    },
    /// Every notification up to and including `through` is now read.
    ReadAll {
        /// Id of the newest notification marked read.
        through: String,
    },
}

/// Body of the SSE `state` event: what changed and the counts after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct StateEvent {
    /// What changed.
    #[serde(flatten)]
    pub change: Change,
    /// Counts after the change.
    pub counts: Counts,
}

/// Who is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Principal {
    /// A signed-in user (from a verified token).
    User(i64),
    /// A backend service, by its API key (`Authorization: Bearer hk_…`).
    Service {
        /// The key's id; the service's notifications carry it as the
        /// sender id.
        key: i64,
        /// What the key may do.
        scopes: Scopes,
    },
    /// Nobody in particular: only with `HERALD_AUTH=off`, where every route
    /// is open.
    Anyone,
}

impl Principal {
    /// The signed-in user's id, if any.
    pub fn user_id(self) -> Option<i64> {
        match self {
            Principal::User(id) => Some(id),
            Principal::Service { .. } | Principal::Anyone => None,
        }
    }
}

/// What an API key may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scopes {
    /// Send notifications to any user, as the service.
    pub send: bool,
    /// Manage the user directory.
    pub users: bool,
}

/// Longest message accepted, in Unicode scalar values.
pub const MAX_MESSAGE_CHARS: usize = 2_000;

/// Longest notification id a record may carry.
pub const MAX_ID_CHARS: usize = 128;

/// Whether `id` may name a notification: 1 to [`MAX_ID_CHARS`] ASCII
/// letters, digits and `.`, `_`, `-`, `:`. That admits the UUIDs Herald
/// makes, the `topic-partition-offset` ids it gives foreign records (Kafka
/// topic names use the same characters) and the usual keys of other
/// producers, and keeps out what could break a stream, a header or a log
/// line (CR, LF, NUL, spaces, quotes).
pub fn is_acceptable_id(id: &str) -> bool {
    (1..=MAX_ID_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

/// Why a service call failed, in words a client can act on.
///
/// The REST layer maps each variant to an HTTP status; server functions
/// fail with it too (encoded as JSON), under the same status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ServiceError {
    /// The request is malformed (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// No valid token (HTTP 401).
    #[error("{0}")]
    Unauthorized(String),
    /// Valid token, but not allowed (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// A user id names nobody (HTTP 404). The text is the Go tutorial's.
    #[error("User not found")]
    UserNotFound,
    /// Some other thing does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The sender sent too much too fast (HTTP 429 with `Retry-After`).
    #[error("too many notifications from this sender: retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the next send is allowed.
        retry_after_secs: u64,
    },
    /// Too many open streams, of this user or on this instance (HTTP 429
    /// with `Retry-After`).
    #[error("{message}")]
    TooManyStreams {
        /// What is full.
        message: String,
        /// Seconds before trying again.
        retry_after_secs: u64,
    },
    /// Well-formed, but in conflict with an earlier request (HTTP 422): an
    /// `Idempotency-Key` reused for another request.
    #[error("{0}")]
    Unprocessable(String),
    /// The broker or the store cannot take the request right now (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure (HTTP 500); details are only logged.
    #[error("internal error")]
    Internal,
}

/// Server functions fail with a [`ServiceError`]. What goes wrong around
/// the call (arguments that do not decode, no network) becomes one too:
/// the client's mistakes are [`ServiceError::Invalid`], an unreachable
/// server is [`ServiceError::Unavailable`], the rest is a bug.
impl FromServerFnError for ServiceError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(e: ServerFnErrorErr) -> Self {
        match e {
            ServerFnErrorErr::Args(_)
            | ServerFnErrorErr::MissingArg(_)
            | ServerFnErrorErr::Deserialization(_)
            | ServerFnErrorErr::Serialization(_) => ServiceError::Invalid(e.to_string()),
            ServerFnErrorErr::Request(_) => ServiceError::Unavailable(e.to_string()),
            ServerFnErrorErr::Registration(_)
            | ServerFnErrorErr::UnsupportedRequestMethod(_)
            | ServerFnErrorErr::ServerError(_)
            | ServerFnErrorErr::MiddlewareError(_)
            | ServerFnErrorErr::Response(_) => ServiceError::Internal,
        }
    }
}

#[cfg(feature = "ssr")]
impl ServiceError {
    /// The HTTP status this error answers with: the one mapping, used by
    /// the REST handlers and the server functions alike.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            ServiceError::Invalid(_) => StatusCode::BAD_REQUEST,
            ServiceError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
            ServiceError::UserNotFound | ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::RateLimited { .. } | ServiceError::TooManyStreams { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ServiceError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds a client should wait before trying again (`Retry-After`),
    /// for the errors that go away by themselves.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ServiceError::RateLimited { retry_after_secs }
            | ServiceError::TooManyStreams {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            // Sends recover by themselves once the broker is back.
            ServiceError::Unavailable(_) => Some(1),
            _ => None,
        }
    }
}

/// Human wording of the time between `then` and `now` ("just now", "5 min ago").
pub fn relative_time(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds().max(0);
    match secs {
        0..=9 => "just now".to_string(),
        10..=59 => format!("{secs} s ago"),
        60..=3_599 => format!("{} min ago", secs / 60),
        3_600..=86_399 => format!("{} h ago", secs / 3_600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn only_web_urls_reach_an_href() {
        for ok in [
            "https://a.example/x",
            "http://a.example",
            "HTTPS://A.EXAMPLE",
        ] {
            assert!(is_web_url(ok), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            " https://a.example",
            "data:,x",
            "/x",
            "",
            "https:",
        ] {
            assert!(!is_web_url(bad), "{bad}");
        }
    }

    #[test]
    fn relative_time_reads_naturally() {
        let now = Utc::now();
        assert_eq!(relative_time(now, now), "just now");
        assert_eq!(relative_time(now - Duration::seconds(42), now), "42 s ago");
        assert_eq!(relative_time(now - Duration::minutes(5), now), "5 min ago");
        assert_eq!(relative_time(now - Duration::hours(3), now), "3 h ago");
        assert_eq!(relative_time(now - Duration::days(2), now), "2 d ago");
        // A clock slightly ahead on the client must not print negative ages.
        assert_eq!(relative_time(now + Duration::seconds(3), now), "just now");
    }

    #[test]
    fn notification_json_has_the_seed_fields() {
        let n = Notification {
            created_at: DateTime::parse_from_rfc3339("2026-11-27T08:00:00Z")
                .unwrap()
                .into(),
            category: Category::Mention,
            priority: 4,
            ..Notification::example("x", "hi")
        };
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["from"], serde_json::json!({"id":2,"name":"Bruno"}));
        assert_eq!(v["to"], serde_json::json!({"id":1,"name":"Emma"}));
        assert_eq!(v["message"], "hi");
        assert_eq!(v["created_at"], "2026-11-27T08:00:00Z");
        assert_eq!(v["category"], "mention");
        assert_eq!(v["priority"], 4);
        assert_eq!(v["read"], false);
    }

    #[test]
    fn state_events_name_their_change() {
        let e = StateEvent {
            change: Change::ReadAll {
                through: "abc".into(),
            },
            counts: Counts {
                unread: 0,
                total: 3,
                version: 9,
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"change":"read_all","through":"abc",
                               "counts":{"unread":0,"total":3,"version":9}})
        );
    }
}

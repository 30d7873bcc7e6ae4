//! Types shared by the server, the server functions and the browser.
//!
//! They are compiled for both `ssr` and `hydrate`, so they depend on nothing
//! server-only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A person who can send and receive notifications.
///
/// Serialized exactly as the Go tutorial does: `{"id":1,"name":"Emma"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct User {
    /// Positive integer id (1 Emma, 2 Bruno, 3 Rick, 4 Lena are seeded).
    pub id: i64,
    /// Display name.
    pub name: String,
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
}

/// Longest message accepted, in Unicode scalar values after trimming.
pub const MAX_MESSAGE_CHARS: usize = 2_000;

/// Why a service call failed, in words a client can act on.
///
/// Shared with the browser so server functions can return it unchanged; the
/// REST layer maps each variant to an HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ServiceError {
    /// The request is malformed (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// A user id names nobody (HTTP 404). The text is the Go tutorial's.
    #[error("User not found")]
    UserNotFound,
    /// The broker or the store cannot take the request right now (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure (HTTP 500); details are only logged.
    #[error("internal error")]
    Internal,
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
            id: "x".into(),
            from: User {
                id: 2,
                name: "Bruno".into(),
            },
            to: User {
                id: 1,
                name: "Emma".into(),
            },
            message: "hi".into(),
            created_at: DateTime::parse_from_rfc3339("2026-11-27T08:00:00Z")
                .unwrap()
                .into(),
        };
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["from"], serde_json::json!({"id":2,"name":"Bruno"}));
        assert_eq!(v["to"], serde_json::json!({"id":1,"name":"Emma"}));
        assert_eq!(v["message"], "hi");
        assert_eq!(v["created_at"], "2026-11-27T08:00:00Z");
    }
}

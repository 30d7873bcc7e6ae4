//! `GET /api/users/{id}/events`: a user's inbox as Server-Sent Events.
//!
//! Three event types:
//! - `notification`: `id: <notification id>`, `data: <notification JSON>`.
//!   A client resumes with the `Last-Event-ID` header (browsers send it on
//!   reconnect) or `?since=<id>` (EventSource cannot set headers on the first
//!   connection); `since=0` replays everything.
//! - `state`: read, archived or deleted state changed (`data:` a
//!   [`StateEvent`](app::model::StateEvent)); no `id`, so it does not move
//!   the resume point.
//! - `counts`: `{"unread":N,"total":M,"version":V}`, first on connect and
//!   after each burst of notifications.
//!
//! A stream ends when the token that opened it expires; the browser
//! reconnects with its current cookie (and resumes), or gets 401.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::{stream, StreamExt};
use serde::Deserialize;

use crate::error::AppError;
use crate::rest::extract::{ApiQuery, Caller, UserId};
use crate::stream::StreamEvent;
use crate::AppState;

/// How long a browser waits before reconnecting (the SSE `retry:` field).
pub const RETRY: Duration = Duration::from_millis(1_000);

/// Query of the events route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Resume after this notification id (`0`: from the beginning).
    pub since: Option<String>,
}

/// A user's inbox as Server-Sent Events; owner only.
///
/// `notification` events (`id: <notification id>`, `data: <notification
/// JSON>`), `state` events (read / archived / deleted changes, with the
/// counts after them) and `counts` events (`{"unread","total","version"}`:
/// keep the largest version). The stream starts with `retry: 1000` and
/// carries keep-alive comments. Resume with the `Last-Event-ID` header or
/// `?since=`.
#[utoipa::path(get, path = "/api/users/{user}/events", tag = "api",
    params(
        ("user" = i64, Path, minimum = 1, description = "User id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this notification id (browsers send it on reconnect)"),
        EventsQuery,
    ),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        crate::rest::ClientErrors,
    ))]
pub async fn events(
    State(state): State<AppState>,
    Caller(who): Caller,
    UserId(user): UserId,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    // The header reflects the newest event the browser saw, so it wins.
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|s| !s.is_empty())
        .or(query.since);
    let inbox = state.service.subscribe(who, user, after.as_deref()).await?;
    // A stream lives no longer than the token that opened it.
    let expires = state.service.credentials_expire(&headers).map(|at| {
        let left = at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        tokio::time::sleep(left)
    });
    let expired = async move {
        match expires {
            Some(sleep) => sleep.await,
            None => std::future::pending().await,
        }
    };
    let events = inbox.map(|e| Ok::<_, Infallible>(to_sse(e)));
    let body = stream::once(async { Ok(Event::default().retry(RETRY)) })
        .chain(events)
        .take_until(expired)
        // End the stream at shutdown so graceful shutdown can finish.
        .take_until(state.shutdown.clone().cancelled_owned());
    // Tell nginx-like proxies in front of several instances not to buffer
    // the stream.
    let no_buffering = [("x-accel-buffering", "no")];
    let sse = Sse::new(body).keep_alive(KeepAlive::new().interval(state.keepalive));
    Ok((no_buffering, sse))
}

fn to_sse(e: StreamEvent) -> Event {
    let (kind, event) = match e {
        StreamEvent::Notification(s) => (
            "notification",
            Event::default()
                .id(&s.notification.id)
                .data(json(&s.notification)),
        ),
        StreamEvent::State(st) => ("state", Event::default().data(json(&*st))),
        StreamEvent::Counts(c) => ("counts", Event::default().data(json(&c))),
    };
    metrics::counter!("herald_sse_events_total", "type" => kind).increment(1);
    event.event(kind)
}

/// Serializing these plain structs cannot fail; an empty data line would
/// show a bug without breaking the stream.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

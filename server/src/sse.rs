//! `GET /api/users/{id}/events`: a user's notifications as Server-Sent Events.
//!
//! Each event is `event: notification`, `id: <notification id>`,
//! `data: <notification JSON>`. A client resumes with the `Last-Event-ID`
//! header (browsers send it on reconnect) or `?since=<id>` (EventSource cannot
//! set headers on the first connection); `since=0` replays everything.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::{stream, StreamExt};
use serde::Deserialize;

use crate::error::AppError;
use crate::rest::{parse_id, ApiPath, ApiQuery};
use crate::AppState;

/// How long a browser waits before reconnecting (the SSE `retry:` field).
pub const RETRY: Duration = Duration::from_millis(1_000);

/// Query of the events route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// Resume after this notification id (`0`: from the beginning).
    pub since: Option<String>,
}

/// A user's notifications as Server-Sent Events.
///
/// Each event: `event: notification`, `id: <notification id>`, `data:
/// <notification JSON>`; the stream starts with `retry: 1000` and carries
/// keep-alive comments. Resume with the `Last-Event-ID` header or `?since=`.
#[utoipa::path(get, path = "/api/users/{user}/events", tag = "api",
    params(
        ("user" = i64, Path, description = "User id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this notification id (browsers send it on reconnect)"),
        EventsQuery,
    ),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Not a positive integer", body = crate::rest::MessageBody),
        (status = 404, description = "`{\"message\":\"User not found\"}`", body = crate::rest::MessageBody),
    ))]
pub async fn events(
    State(state): State<AppState>,
    ApiPath(user): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    let user = parse_id("user id", Some(&user))?;
    // The header reflects the newest event the browser saw, so it wins.
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|s| !s.is_empty())
        .or(query.since);
    let notifications = state.service.subscribe(user, after.as_deref()).await?;
    let events = notifications.map(|s| {
        let n = &s.notification;
        let data = serde_json::to_string(n).unwrap_or_default();
        Ok::<_, Infallible>(Event::default().event("notification").id(&n.id).data(data))
    });
    let body = stream::once(async { Ok(Event::default().retry(RETRY)) })
        .chain(events)
        // End the stream at shutdown so graceful shutdown can finish.
        .take_until(state.shutdown.clone().cancelled_owned());
    Ok(Sse::new(body).keep_alive(KeepAlive::new().interval(state.keepalive)))
}

//! The JSON API: users, sending, inbox pages, counts and read state.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use app::model::{Category, Counts, ListFilter, NewNotification, Notification, User, DEFAULT_PAGE};
use app::service::NotificationService as _;

use super::extract::{positive_id, ApiJson, ApiPath, ApiQuery, Caller, UserId};
use super::{ClientErrors, SendLimits};
use crate::error::AppError;
use crate::service::Service;

/// All users, ordered by id.
#[utoipa::path(get, path = "/api/users", tag = "api",
    responses((status = 200, description = "`{\"users\":[{\"id\":1,\"name\":\"Emma\"},…]}`", body = UsersBody)))]
pub async fn users(State(service): State<Service>) -> Json<UsersBody> {
    Json(UsersBody {
        users: service.users(),
    })
}

/// Body of `GET /api/users`.
#[derive(Serialize, ToSchema)]
pub struct UsersBody {
    users: Vec<User>,
}

/// Send a notification; answers 202 with it once the broker acknowledged it.
///
/// A user sends as themselves; a service sends with its API key (`Bearer
/// hk_…`, scope `send`) to any user, leaves `from` out, and its
/// notification shows the key's name with `from_service: true`.
#[utoipa::path(post, path = "/api/notifications", tag = "api",
    request_body = NewNotification,
    security(("bearer" = []), ("cookie" = []), ("apiKey" = [])),
    responses(
        (status = 202, description = "Accepted by the broker; it will be stored and streamed", body = Notification),
        ClientErrors, SendLimits,
    ))]
pub async fn create(
    State(service): State<Service>,
    Caller(who): Caller,
    ApiJson(body): ApiJson<NewNotification>,
) -> Result<(StatusCode, Json<Notification>), AppError> {
    body.from.map(|f| positive_id("from", f)).transpose()?;
    positive_id("to", body.to)?;
    let n = service.send(who, body).await?;
    Ok((StatusCode::ACCEPTED, Json(n)))
}

/// Query of a notification list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    /// Cursor: the `next_cursor` of the previous page.
    pub before: Option<String>,
    /// `true`: the archived notifications instead of the inbox.
    pub archived: Option<bool>,
    /// `true`: only unread ones.
    pub unread: Option<bool>,
    /// Only this category (`info`, `mention`, `alert`).
    pub category: Option<Category>,
    /// Only this priority or higher (1–5).
    pub min_priority: Option<u8>,
}

/// Body of a notification list page.
#[derive(Serialize, ToSchema)]
pub struct PageBody {
    /// Newest first.
    notifications: Vec<Notification>,
    /// Pass as `before` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// One page of a user's notifications, newest first; owner only. Stable
/// under concurrent inserts: a cursor names a notification, and the next
/// page holds exactly the older ones.
#[utoipa::path(get, path = "/api/users/{user}/notifications", tag = "api",
    params(("user" = i64, Path, description = "User id"), ListQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "`{\"notifications\":[…],\"next_cursor\":\"…\"|null}`", body = PageBody),
        ClientErrors,
    ))]
pub async fn list(
    State(service): State<Service>,
    Caller(who): Caller,
    UserId(user): UserId,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<PageBody>, AppError> {
    let filter = ListFilter {
        archived: q.archived.unwrap_or(false),
        unread: q.unread.unwrap_or(false),
        category: q.category,
        min_priority: q.min_priority,
    };
    let view = service
        .inbox(
            who,
            user,
            &filter,
            q.before.as_deref(),
            q.limit.unwrap_or(DEFAULT_PAGE),
        )
        .await?;
    Ok(Json(PageBody {
        notifications: view.page.notifications,
        next_cursor: view.page.next_cursor,
    }))
}

/// Unread and total notifications of an inbox.
#[derive(Serialize, ToSchema)]
pub struct CountBody {
    /// Not yet read (archived ones are not counted).
    unread: i64,
    /// In the inbox (archived and deleted ones are not counted).
    total: i64,
}

impl From<Counts> for CountBody {
    fn from(c: Counts) -> Self {
        Self {
            unread: c.unread,
            total: c.total,
        }
    }
}

/// A user's unread count; owner only.
#[utoipa::path(get, path = "/api/users/{user}/notifications/count", tag = "api",
    params(("user" = i64, Path, description = "User id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "`{\"unread\":N,\"total\":M}`", body = CountBody),
        ClientErrors,
    ))]
pub async fn count(
    State(service): State<Service>,
    Caller(who): Caller,
    UserId(user): UserId,
) -> Result<Json<CountBody>, AppError> {
    Ok(Json(service.counts(who, user).await?.into()))
}

/// Mark every notification of a user read; owner only. Open streams get a
/// `state` event.
#[utoipa::path(post, path = "/api/users/{user}/notifications/read-all", tag = "api",
    params(("user" = i64, Path, description = "User id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The counts after: `{\"unread\":0,\"total\":M}`", body = CountBody),
        ClientErrors,
    ))]
pub async fn read_all(
    State(service): State<Service>,
    Caller(who): Caller,
    UserId(user): UserId,
) -> Result<Json<CountBody>, AppError> {
    Ok(Json(service.read_all(who, user).await?.into()))
}

/// Body of `PATCH /api/notifications/{id}`: at least one field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatePatch {
    /// Mark read (`true`) or unread (`false`).
    pub read: Option<bool>,
    /// Archive (`true`) or bring back to the inbox (`false`).
    pub archived: Option<bool>,
}

/// Mark one notification read or unread, archive or unarchive it; owner
/// only. Open streams of the owner get a `state` event.
#[utoipa::path(patch, path = "/api/notifications/{id}", tag = "api",
    params(("id" = String, Path, description = "Notification id")),
    request_body = StatePatch,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The notification after the change", body = Notification),
        ClientErrors,
    ))]
pub async fn update(
    State(service): State<Service>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<StatePatch>,
) -> Result<Json<Notification>, AppError> {
    let n = service.update(who, &id, patch.read, patch.archived).await?;
    Ok(Json(n))
}

/// Delete one notification; owner only. Open streams of the owner get a
/// `state` event.
#[utoipa::path(delete, path = "/api/notifications/{id}", tag = "api",
    params(("id" = String, Path, description = "Notification id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Deleted"),
        ClientErrors,
    ))]
pub async fn delete(
    State(service): State<Service>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, AppError> {
    service.delete(who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

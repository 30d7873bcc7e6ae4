//! The JSON API: sending, inbox pages, counts and read state.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use app::model::{Category, Counts, ListFilter, NewNotification, Notification, DEFAULT_PAGE};
use app::service::NotificationService as _;

use super::extract::{integral, positive_id, ApiJson, ApiPath, ApiQuery, Caller, UserId};
use super::{ClientErrors, SendLimits};
use crate::error::AppError;
use crate::service::Service;

/// Body of `POST /api/notifications`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// Sender id; defaults to the caller, and must be the caller when auth
    /// is on. Left out by API keys (they send as their service).
    #[serde(default, deserialize_with = "integral::option_i64")]
    #[schema(minimum = 1)]
    from: Option<i64>,
    /// One recipient id, or a list of 1 to 1,000 different ones.
    #[schema(schema_with = recipients_schema)]
    to: Recipients,
    /// The text: at most 2,000 characters, not only white space, no control
    /// characters but newline and tab (CRLF and a lone CR are stored as LF).
    #[schema(min_length = 1, max_length = 2000)]
    message: String,
    /// `info` (default), `mention` or `alert`.
    #[serde(default)]
    category: Option<Category>,
    /// 1 (min) to 5 (max); 3 by default.
    #[serde(default, deserialize_with = "integral::option_u8")]
    #[schema(minimum = 1, maximum = 5)]
    priority: Option<u8>,
    /// A title shown above the message (1 to 120 characters).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 120)]
    title: Option<String>,
    /// Where a click on the notification leads: an absolute http(s) URL.
    #[serde(default)]
    #[schema(max_length = 2048)]
    link: Option<String>,
    /// Up to 2 buttons `{"label","url"}` (labels 1-40 characters, http(s) URLs).
    #[serde(default)]
    #[schema(max_items = 2)]
    actions: Vec<app::model::Action>,
}

/// One recipient, or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Recipients {
    /// One user id: the answer is the notification.
    One(#[serde(deserialize_with = "integral::i64")] i64),
    /// Several user ids: the answer lists one notification per recipient,
    /// in the same order.
    Many(#[serde(deserialize_with = "integral::vec_i64")] Vec<i64>),
}

/// `to` in the OpenAPI document: a positive id, or a list of 1 to 1,000.
fn recipients_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{
        ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
    };
    let id = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
    };
    OneOfBuilder::new()
        .item(id())
        .item(
            ArrayBuilder::new()
                .items(id())
                .min_items(Some(1))
                .max_items(Some(1_000))
                .unique_items(true),
        )
        .description(Some(
            "One recipient id, or a list of 1 to 1,000 different ones",
        ))
        .build()
        .into()
}

/// Answer of a send: the notification for one recipient, the list for
/// several (as `to` was given).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum SendAnswer {
    /// `to` was one id.
    One(Notification),
    /// `to` was a list.
    Many(SentBody),
}

/// Answer of a send to a list of recipients.
#[derive(Serialize, ToSchema)]
pub struct SentBody {
    /// One per recipient, in the order of `to`.
    notifications: Vec<Notification>,
}

/// Send a notification; answers 202 once the broker acknowledged it.
///
/// A user sends as themselves; a service sends with its API key (`Bearer
/// hk_…`, scope `send`) to any user, leaves `from` out, and its
/// notification shows the key's name with `from_service: true`.
///
/// `to` is one id (the answer is the notification) or a list of up to
/// 1,000 (the answer is `{"notifications": […]}`, one per recipient). All
/// or nothing: one unknown recipient is 404 naming it, and nothing is sent.
/// With an `Idempotency-Key` header a retry of the same request (within
/// `HERALD_IDEMPOTENCY_TTL_SECS`, on any instance, even when the first
/// answer was lost) answers the same ids and stores nothing twice; the key
/// with another request is 422.
#[utoipa::path(post, path = "/api/notifications", tag = "api",
    request_body = SendBody,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Makes retries safe: 1-255 visible ASCII characters, chosen by the client per request")),
    security(("bearer" = []), ("cookie" = []), ("apiKey" = [])),
    responses(
        (status = 202, description = "Accepted by the broker; it will be stored and streamed. One recipient: the notification; a list: `{\"notifications\":[…]}`", body = SendAnswer),
        (status = 422, description = "The Idempotency-Key was used for another request", body = super::MessageBody),
        ClientErrors, SendLimits,
    ))]
pub async fn create(
    State(service): State<Service>,
    Caller(who): Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SendBody>,
) -> Result<Response, AppError> {
    body.from.map(|f| positive_id("from", f)).transpose()?;
    let to = match &body.to {
        Recipients::One(id) => vec![*id],
        Recipients::Many(ids) => ids.clone(),
    };
    for id in &to {
        positive_id("to", *id)?;
    }
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            AppError::bad_request("Idempotency-Key takes 1 to 255 visible ASCII characters")
        })?),
    };
    let n = NewNotification {
        from: body.from,
        // Ignored by `send_to`, which takes the list (an empty one is its
        // 400, not a panic here).
        to: to.first().copied().unwrap_or_default(),
        message: body.message,
        category: body.category,
        priority: body.priority,
        title: body.title,
        link: body.link,
        actions: body.actions,
    };
    let mut sent = service.send_to(who, n, &to, key).await?;
    Ok(match body.to {
        Recipients::One(_) => {
            let one = sent
                .pop()
                .ok_or(AppError::Service(app::model::ServiceError::Internal))?;
            (StatusCode::ACCEPTED, Json(SendAnswer::One(one))).into_response()
        }
        Recipients::Many(_) => (
            StatusCode::ACCEPTED,
            Json(SendAnswer::Many(SentBody {
                notifications: sent,
            })),
        )
            .into_response(),
    })
}

/// Query of a notification list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Cursor: the `next_cursor` of the previous page (an unknown one is
    /// 404).
    pub before: Option<String>,
    /// `true`: the archived notifications instead of the inbox.
    pub archived: Option<bool>,
    /// `true`: only unread ones.
    pub unread: Option<bool>,
    /// Only this category (`info`, `mention`, `alert`).
    pub category: Option<Category>,
    /// Only this priority or higher (1–5).
    #[param(minimum = 1, maximum = 5)]
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
    params(("user" = i64, Path, minimum = 1, description = "User id"), ListQuery),
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
    params(("user" = i64, Path, minimum = 1, description = "User id")),
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
    params(("user" = i64, Path, minimum = 1, description = "User id")),
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
    #[serde(default, deserialize_with = "given")]
    #[schema(nullable = false)]
    pub read: Option<bool>,
    /// Archive (`true`) or bring back to the inbox (`false`).
    #[serde(default, deserialize_with = "given")]
    #[schema(nullable = false)]
    pub archived: Option<bool>,
}

/// A field that may be left out but, when given, is `true` or `false`
/// (`null` is refused, as the document says).
fn given<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    bool::deserialize(d).map(Some)
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

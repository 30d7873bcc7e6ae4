//! REST handlers: the Go tutorial's routes, byte for byte, and the JSON API.
//!
//! Handlers only parse and shape; the work, access rules included, is in
//! [`Service`]. Every route that touches an inbox takes a [`Caller`].

use axum::extract::{FromRequest, FromRequestParts, Multipart, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use app::model::{
    Category, Counts, ListFilter, Notification, Principal, ServiceError, User, DEFAULT_PAGE,
    DEFAULT_PRIORITY,
};
use app::service::NotificationService as _;

use crate::error::AppError;
use crate::service::Service;
use crate::AppState;

/// Who sent the request: from `Authorization: Bearer` or the session
/// cookie. Rejected with 401 when auth is on and no valid token came.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        Ok(Caller(state.service.authenticate(&parts.headers)?))
    }
}

/// JSON body extractor whose rejections are [`AppError`]s (JSON, 400).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct ApiJson<T>(pub T);

/// Query extractor whose rejections are [`AppError`]s.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct ApiQuery<T>(pub T);

/// Path extractor whose rejections are [`AppError`]s.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct ApiPath<T>(pub T);

/// Parse a user id named `field`; the error names the field and the value.
pub fn parse_id(field: &str, raw: Option<&str>) -> Result<i64, AppError> {
    let raw = raw.map(str::trim).unwrap_or_default();
    if raw.is_empty() {
        return Err(AppError::bad_request(format!(
            "missing {field}: expected a positive integer user id"
        )));
    }
    match raw.parse::<i64>() {
        Ok(id) => positive_id(field, id),
        Err(_) => Err(AppError::bad_request(format!(
            "invalid {field} {raw:?}: expected a positive integer user id"
        ))),
    }
}

/// Check that the user id named `field` is positive.
pub fn positive_id(field: &str, id: i64) -> Result<i64, AppError> {
    if id > 0 {
        Ok(id)
    } else {
        Err(AppError::bad_request(format!(
            "invalid {field} {id}: expected a positive integer user id"
        )))
    }
}

/// The fields of a seed `POST /send`, whatever encoding they came in.
#[derive(Default, Debug)]
struct SendFields {
    from: Option<String>,
    to: Option<String>,
    message: Option<String>,
}

impl SendFields {
    fn set(&mut self, name: &str, value: String) {
        match name {
            "fromID" => self.from = Some(value),
            "toID" => self.to = Some(value),
            "message" => self.message = Some(value),
            _ => {}
        }
    }

    /// Read URL-encoded or multipart form fields (as Gin's `PostForm` does),
    /// or a JSON object with the same names.
    async fn read(req: Request) -> Result<Self, AppError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let mut fields = SendFields::default();
        if content_type.starts_with("multipart/form-data") {
            let mut form = Multipart::from_request(req, &()).await.map_err(|e| {
                AppError::from_body("invalid multipart form", e.status(), e.body_text())
            })?;
            while let Some(field) = form.next_field().await.map_err(|e| {
                AppError::from_body("invalid multipart form", e.status(), e.body_text())
            })? {
                let name = field.name().unwrap_or_default().to_owned();
                let value = field.text().await.map_err(|e| {
                    AppError::from_body(
                        &format!("invalid multipart field {name}"),
                        e.status(),
                        e.body_text(),
                    )
                })?;
                fields.set(&name, value);
            }
            return Ok(fields);
        }
        let body = axum::body::Bytes::from_request(req, &())
            .await
            .map_err(|e| AppError::from_body("unreadable body", e.status(), e.body_text()))?;
        if content_type.starts_with("application/json") {
            let object: serde_json::Map<String, Value> = serde_json::from_slice(&body)
                .map_err(|e| AppError::bad_request(format!("invalid JSON body: {e}")))?;
            for (name, value) in object {
                let text = match value {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    other => {
                        return Err(AppError::bad_request(format!(
                            "invalid {name}: expected a string or a number, got {other}"
                        )))
                    }
                };
                fields.set(&name, text);
            }
        } else {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
                .map_err(|e| AppError::bad_request(format!("invalid form body: {e}")))?;
            for (name, value) in pairs {
                fields.set(&name, value);
            }
        }
        Ok(fields)
    }
}

/// Send a notification (the Go tutorial's route).
///
/// Form fields `fromID`, `toID`, `message` (URL-encoded or multipart), or a
/// JSON object with the same names. Answers once the broker acknowledged it.
/// With auth on, `fromID` must be the caller.
#[utoipa::path(post, path = "/send", tag = "seed",
    request_body(content = SeedSendFields, content_type = "application/x-www-form-urlencoded"),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Acknowledged by the broker: `{\"message\":\"Notification sent successfully!\"}`", body = MessageBody),
        ClientErrors, SendLimits,
    ))]
pub async fn seed_send(
    State(service): State<Service>,
    Caller(who): Caller,
    req: Request,
) -> Result<Json<Value>, AppError> {
    let fields = SendFields::read(req).await?;
    let from = parse_id("fromID", fields.from.as_deref())?;
    let to = parse_id("toID", fields.to.as_deref())?;
    let message = fields.message.unwrap_or_default();
    service
        .send(
            who,
            Some(from),
            to,
            &message,
            Category::Info,
            DEFAULT_PRIORITY,
        )
        .await?;
    Ok(Json(
        json!({ "message": "Notification sent successfully!" }),
    ))
}

/// A notification as the Go tutorial lists it: exactly these fields.
#[derive(Serialize, ToSchema)]
pub struct SeedNotification {
    from: User,
    to: User,
    message: String,
}

/// The Go tutorial's list body; a struct so the field order is kept
/// (`message` first, as Go's sorted map keys put it).
#[derive(Serialize, ToSchema)]
pub struct SeedList {
    /// Only when the list is empty: "No notifications found for user".
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    notifications: Vec<SeedNotification>,
}

/// List a user's newest 100 notifications, newest first (the Go
/// tutorial's route); owner only.
#[utoipa::path(get, path = "/notifications/{user}", tag = "seed",
    params(("user" = i64, Path, description = "User id (the tutorial's `userID`)")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "`{\"notifications\":[…]}`, or `{\"message\":\"No notifications found for user\",\"notifications\":[]}`", body = SeedList),
        ClientErrors,
    ))]
pub async fn seed_list(
    State(service): State<Service>,
    Caller(who): Caller,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<SeedList>, AppError> {
    let user = parse_id("userID", Some(&user))?;
    let list = service.list(who, user).await?;
    let message = list.is_empty().then_some("No notifications found for user");
    let notifications = list
        .into_iter()
        .map(|n| SeedNotification {
            from: n.from,
            to: n.to,
            message: n.message,
        })
        .collect();
    Ok(Json(SeedList {
        message,
        notifications,
    }))
}

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

/// Every error answer: what to fix, in words.
#[derive(Serialize, ToSchema)]
pub struct MessageBody {
    message: String,
}

/// The client errors every authenticated route can answer (for the OpenAPI
/// document).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ClientErrors {
    /// Malformed input: a bad id, field, parameter or body; the message names what to fix
    #[response(status = 400)]
    BadRequest(MessageBody),
    /// No valid token: missing, forged or expired (the message says which)
    #[response(status = 401)]
    Unauthorized(MessageBody),
    /// Someone else's inbox or notification, or a sender that is not the caller
    #[response(status = 403)]
    Forbidden(MessageBody),
    /// `{"message":"User not found"}`, or no such notification
    #[response(status = 404)]
    NotFound(MessageBody),
}

/// What a send can answer besides [`ClientErrors`] (for the OpenAPI
/// document).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum SendLimits {
    /// Body over the size limit (`HERALD_MAX_BODY_BYTES`)
    #[response(status = 413)]
    TooLarge(MessageBody),
    /// The sender is over its rate limit; retry after `Retry-After` seconds
    #[response(status = 429)]
    TooManyRequests(MessageBody),
    /// The broker did not acknowledge in time; retry after `Retry-After` seconds
    #[response(status = 503)]
    Unavailable(MessageBody),
}

/// Form fields of `POST /send`.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct SeedSendFields {
    /// Sender id (must be the caller when auth is on).
    fromID: String,
    /// Recipient id.
    toID: String,
    /// The text (1–2,000 characters after trimming).
    message: String,
}

/// Body of `POST /api/session`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// Id of the seeded user to sign in as.
    pub user: i64,
}

/// Answer of a sign-in.
#[derive(Serialize, ToSchema)]
pub struct SessionBody {
    /// Who is signed in.
    user: User,
    /// The token, for `Authorization: Bearer …` (the browser gets it as a
    /// cookie too).
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

/// Demo sign-in: pick a seeded user, get a token and the session cookie.
/// Off when the server runs with `HERALD_DEMO_SIGN_IN=false`.
#[utoipa::path(post, path = "/api/session", tag = "auth",
    request_body = SignIn,
    responses(
        (status = 200, description = "`{\"user\":{…},\"token\":\"…\"}` and `Set-Cookie: herald_session=…; HttpOnly; SameSite=Lax`", body = SessionBody),
        (status = 400, description = "Malformed body", body = MessageBody),
        (status = 403, description = "Demo sign-in is switched off", body = MessageBody),
        (status = 404, description = "`{\"message\":\"User not found\"}`", body = MessageBody),
    ))]
pub async fn sign_in(
    State(service): State<Service>,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<Response, AppError> {
    let user = positive_id("user", body.user)?;
    let session = service.sign_in(user)?;
    let mut res = Json(SessionBody {
        user: session.user,
        token: Some(session.token),
    })
    .into_response();
    set_cookie(&mut res, &session.set_cookie)?;
    Ok(res)
}

/// Who the token or cookie belongs to.
#[utoipa::path(get, path = "/api/session", tag = "auth",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "`{\"user\":{…}}`", body = SessionBody),
        (status = 401, description = "No valid token", body = MessageBody),
    ))]
pub async fn session(
    State(service): State<Service>,
    Caller(who): Caller,
) -> Result<Json<SessionBody>, AppError> {
    let Principal::User(id) = who else {
        return Err(ServiceError::Unauthorized("not signed in".into()).into());
    };
    Ok(Json(SessionBody {
        user: service.user(id)?,
        token: None,
    }))
}

/// Sign out: remove the session cookie. (Tokens stay valid until they
/// expire; there is no revocation list.)
#[utoipa::path(delete, path = "/api/session", tag = "auth",
    responses((status = 204, description = "Cookie removed")))]
pub async fn sign_out(State(service): State<Service>) -> Result<Response, AppError> {
    let mut res = StatusCode::NO_CONTENT.into_response();
    set_cookie(&mut res, &service.auth().clear_cookie())?;
    Ok(res)
}

fn set_cookie(res: &mut Response, value: &str) -> Result<(), AppError> {
    let value = HeaderValue::from_str(value).map_err(|e| {
        tracing::error!(error = %e, "cookie header");
        AppError::from(ServiceError::Internal)
    })?;
    res.headers_mut().append(header::SET_COOKIE, value);
    Ok(())
}

/// Body of `POST /api/notifications`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNotification {
    /// Sender id; defaults to the caller, and must be the caller when auth
    /// is on. Required when auth is off and no token is sent.
    #[serde(default)]
    pub from: Option<i64>,
    /// Recipient id.
    pub to: i64,
    /// The text: 1–2,000 characters after trimming, no control characters
    /// but newline and tab.
    pub message: String,
    /// `info` (default), `mention` or `alert`.
    #[serde(default)]
    pub category: Option<Category>,
    /// 1 (min) to 5 (max); 3 by default.
    #[serde(default)]
    pub priority: Option<u8>,
}

/// Send a notification; answers 202 with it once the broker acknowledged it.
#[utoipa::path(post, path = "/api/notifications", tag = "api",
    request_body = NewNotification,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 202, description = "Accepted by the broker; it will be stored and streamed", body = Notification),
        ClientErrors, SendLimits,
    ))]
pub async fn create(
    State(service): State<Service>,
    Caller(who): Caller,
    ApiJson(body): ApiJson<NewNotification>,
) -> Result<(StatusCode, Json<Notification>), AppError> {
    let from = body.from.map(|f| positive_id("from", f)).transpose()?;
    let to = positive_id("to", body.to)?;
    let n = service
        .send(
            who,
            from,
            to,
            &body.message,
            body.category.unwrap_or_default(),
            body.priority.unwrap_or(DEFAULT_PRIORITY),
        )
        .await?;
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
    ApiPath(user): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<PageBody>, AppError> {
    let user = parse_id("user id", Some(&user))?;
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
    ApiPath(user): ApiPath<String>,
) -> Result<Json<CountBody>, AppError> {
    let user = parse_id("user id", Some(&user))?;
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
    ApiPath(user): ApiPath<String>,
) -> Result<Json<CountBody>, AppError> {
    let user = parse_id("user id", Some(&user))?;
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

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/api/health", tag = "ops",
    responses((status = 200, description = "`{\"status\":\"ok\"}`")))]
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: 200 when the broker answers metadata requests and the store
/// takes writes, else 503 naming what is not ready.
#[utoipa::path(get, path = "/api/ready", tag = "ops",
    responses(
        (status = 200, description = "`{\"status\":\"ready\",\"broker\":\"ok\",\"store\":\"ok\"}`"),
        (status = 503, description = "`{\"status\":\"unready\",\"broker\":\"<why>\",\"store\":…,\"message\":…}`"),
    ))]
pub async fn ready(State(service): State<Service>) -> Response {
    let (broker, store) = service.readiness().await;
    let word = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.clone(),
    };
    let body = json!({
        "status": if broker.is_ok() && store.is_ok() { "ready" } else { "unready" },
        "broker": word(&broker),
        "store": word(&store),
    });
    if broker.is_ok() && store.is_ok() {
        Json(body).into_response()
    } else {
        let mut body = body;
        body["message"] = json!("not ready: see broker and store");
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// A known route with the wrong method: JSON 405 instead of an empty body.
pub async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// Any other `/api/…` path: JSON 404 instead of the HTML page.
pub async fn api_not_found() -> AppError {
    ServiceError::NotFound("no such API route".into()).into()
}

//! REST handlers: the Go tutorial's routes, byte for byte, and the JSON API.
//!
//! Handlers only parse and shape; the work is in [`Service`].

use axum::extract::{FromRequest, FromRequestParts, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use app::model::{Notification, User};

use crate::error::AppError;
use crate::service::Service;

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
        return Err(AppError::BadRequest(format!(
            "missing {field}: expected a positive integer user id"
        )));
    }
    match raw.parse::<i64>() {
        Ok(id) => positive_id(field, id),
        Err(_) => Err(AppError::BadRequest(format!(
            "invalid {field} {raw:?}: expected a positive integer user id"
        ))),
    }
}

/// Check that the user id named `field` is positive.
fn positive_id(field: &str, id: i64) -> Result<i64, AppError> {
    if id > 0 {
        Ok(id)
    } else {
        Err(AppError::BadRequest(format!(
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
                AppError::BadRequest(format!("invalid multipart form: {}", e.body_text()))
            })?;
            while let Some(field) = form.next_field().await.map_err(|e| {
                AppError::BadRequest(format!("invalid multipart form: {}", e.body_text()))
            })? {
                let name = field.name().unwrap_or_default().to_owned();
                let value = field.text().await.map_err(|e| {
                    AppError::BadRequest(format!(
                        "invalid multipart field {name}: {}",
                        e.body_text()
                    ))
                })?;
                fields.set(&name, value);
            }
            return Ok(fields);
        }
        let body = axum::body::Bytes::from_request(req, &())
            .await
            .map_err(|e| AppError::BadRequest(format!("unreadable body: {}", e.body_text())))?;
        if content_type.starts_with("application/json") {
            let object: serde_json::Map<String, Value> = serde_json::from_slice(&body)
                .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))?;
            for (name, value) in object {
                let text = match value {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    other => {
                        return Err(AppError::BadRequest(format!(
                            "invalid {name}: expected a string or a number, got {other}"
                        )))
                    }
                };
                fields.set(&name, text);
            }
        } else {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
                .map_err(|e| AppError::BadRequest(format!("invalid form body: {e}")))?;
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
#[utoipa::path(post, path = "/send", tag = "seed",
    request_body(content = SeedSendFields, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Acknowledged by the broker: `{\"message\":\"Notification sent successfully!\"}`", body = MessageBody),
        (status = 400, description = "A field is missing or malformed; the message names it", body = MessageBody),
        (status = 404, description = "`{\"message\":\"User not found\"}`", body = MessageBody),
        (status = 503, description = "The broker did not acknowledge in time; retry", body = MessageBody),
    ))]
pub async fn seed_send(
    State(service): State<Service>,
    req: Request,
) -> Result<Json<Value>, AppError> {
    let fields = SendFields::read(req).await?;
    let from = parse_id("fromID", fields.from.as_deref())?;
    let to = parse_id("toID", fields.to.as_deref())?;
    let message = fields.message.unwrap_or_default();
    service.send(from, to, &message).await?;
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

/// List a user's notifications, newest first (the Go tutorial's route).
#[utoipa::path(get, path = "/notifications/{user}", tag = "seed",
    params(("user" = i64, Path, description = "User id (the tutorial's `userID`)")),
    responses(
        (status = 200, description = "`{\"notifications\":[…]}`, or `{\"message\":\"No notifications found for user\",\"notifications\":[]}`", body = SeedList),
        (status = 400, description = "Not a positive integer", body = MessageBody),
        (status = 404, description = "`{\"message\":\"User not found\"}`", body = MessageBody),
    ))]
pub async fn seed_list(
    State(service): State<Service>,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<SeedList>, AppError> {
    let user = parse_id("userID", Some(&user))?;
    let list = service.list(user).await?;
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

/// Body of a notification list.
#[derive(Serialize, ToSchema)]
pub struct NotificationsBody {
    notifications: Vec<Notification>,
}

/// Every error answer: what to fix, in words.
#[derive(Serialize, ToSchema)]
pub struct MessageBody {
    message: String,
}

/// Form fields of `POST /send`.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct SeedSendFields {
    /// Sender id.
    fromID: String,
    /// Recipient id.
    toID: String,
    /// The text (1–2,000 characters after trimming).
    message: String,
}

/// Body of `POST /api/notifications`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNotification {
    /// Sender id.
    pub from: i64,
    /// Recipient id.
    pub to: i64,
    /// The text.
    pub message: String,
}

/// Send a notification; answers 202 with it once the broker acknowledged it.
#[utoipa::path(post, path = "/api/notifications", tag = "api",
    request_body = NewNotification,
    responses(
        (status = 202, description = "Accepted by the broker; it will be stored and streamed", body = Notification),
        (status = 400, description = "Malformed body, unknown field, bad id or message", body = MessageBody),
        (status = 404, description = "`{\"message\":\"User not found\"}`", body = MessageBody),
        (status = 503, description = "The broker did not acknowledge in time; retry", body = MessageBody),
    ))]
pub async fn create(
    State(service): State<Service>,
    ApiJson(body): ApiJson<NewNotification>,
) -> Result<(StatusCode, Json<Notification>), AppError> {
    let from = positive_id("from", body.from)?;
    let to = positive_id("to", body.to)?;
    let n = service.send(from, to, &body.message).await?;
    Ok((StatusCode::ACCEPTED, Json(n)))
}

/// A user's newest 100 notifications, newest first.
#[utoipa::path(get, path = "/api/users/{user}/notifications", tag = "api",
    params(("user" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "`{\"notifications\":[…]}`", body = NotificationsBody),
        (status = 400, description = "Not a positive integer", body = MessageBody),
        (status = 404, description = "`{\"message\":\"User not found\"}`", body = MessageBody),
    ))]
pub async fn list(
    State(service): State<Service>,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<NotificationsBody>, AppError> {
    let user = parse_id("user id", Some(&user))?;
    let notifications = service.list(user).await?;
    Ok(Json(NotificationsBody { notifications }))
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

/// Any other `/api/…` path: JSON 404 instead of the HTML page.
pub async fn api_not_found() -> AppError {
    AppError::NotFound("no such API route".into())
}

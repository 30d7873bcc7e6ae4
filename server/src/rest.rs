//! REST handlers: the Go tutorial's routes, byte for byte, and the JSON API.
//!
//! Handlers only parse and shape; the work is in [`Service`].

use axum::extract::{FromRequest, FromRequestParts, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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
        Ok(id) if id > 0 => Ok(id),
        _ => Err(AppError::BadRequest(format!(
            "invalid {field} {raw:?}: expected a positive integer user id"
        ))),
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

/// `POST /send` (Go tutorial): form fields `fromID`, `toID`, `message`.
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
#[derive(Serialize)]
struct SeedNotification<'a> {
    from: &'a User,
    to: &'a User,
    message: &'a str,
}

/// The Go tutorial's list body; a struct so the field order is kept.
#[derive(Serialize)]
struct SeedList<'a> {
    notifications: Vec<SeedNotification<'a>>,
}

/// `GET /notifications/{userID}` (Go tutorial), newest first.
pub async fn seed_list(
    State(service): State<Service>,
    ApiPath(user): ApiPath<String>,
) -> Result<Response, AppError> {
    let user = parse_id("userID", Some(&user))?;
    let list = service.list(user).await?;
    if list.is_empty() {
        return Ok(Json(json!({
            "message": "No notifications found for user",
            "notifications": [],
        }))
        .into_response());
    }
    let notifications: Vec<SeedNotification> = list
        .iter()
        .map(|n| SeedNotification {
            from: &n.from,
            to: &n.to,
            message: &n.message,
        })
        .collect();
    Ok(Json(SeedList { notifications }).into_response())
}

/// `GET /api/users`.
pub async fn users(State(service): State<Service>) -> Json<Value> {
    Json(json!({ "users": service.users() }))
}

/// Body of `POST /api/notifications`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNotification {
    /// Sender id.
    pub from: i64,
    /// Recipient id.
    pub to: i64,
    /// The text.
    pub message: String,
}

/// `POST /api/notifications` → 202 with the accepted notification.
pub async fn create(
    State(service): State<Service>,
    ApiJson(body): ApiJson<NewNotification>,
) -> Result<(StatusCode, Json<Notification>), AppError> {
    for (field, id) in [("from", body.from), ("to", body.to)] {
        if id <= 0 {
            return Err(AppError::BadRequest(format!(
                "invalid {field} {id}: expected a positive integer user id"
            )));
        }
    }
    let n = service.send(body.from, body.to, &body.message).await?;
    Ok((StatusCode::ACCEPTED, Json(n)))
}

/// `GET /api/users/{id}/notifications`, newest first.
pub async fn list(
    State(service): State<Service>,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<Value>, AppError> {
    let user = parse_id("user id", Some(&user))?;
    let list = service.list(user).await?;
    Ok(Json(json!({ "notifications": list })))
}

/// `GET /api/health`: the process is up and serving.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /api/ready`: 200 when the broker answers and the store takes
/// writes, else 503 naming what is not ready.
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

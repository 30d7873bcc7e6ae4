//! The Go tutorial's routes, byte for byte: `POST /send` (form fields
//! `fromID`, `toID`, `message`) and `GET /notifications/:userID`.

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use app::model::{NewNotification, User};
use app::service::NotificationService as _;

use super::extract::{parse_id, ApiPath, Caller};
use super::{ClientErrors, MessageBody, SendLimits};
use crate::error::AppError;
use crate::service::Service;

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
        let form = "application/x-www-form-urlencoded";
        if !(content_type.starts_with("application/json")
            || content_type.starts_with(form)
            // No type and no body: Gin reads no fields, and neither do we
            // (the answer is the tutorial's 400 for the missing ids).
            || (content_type.is_empty() && body.is_empty()))
        {
            // A `text/plain` body is what a cross-site HTML form can send
            // without asking; it is no form of ours.
            return Err(AppError::UnsupportedType(format!(
                "POST /send reads a form ({form} or multipart/form-data) or JSON, not {:?}",
                if content_type.is_empty() {
                    "a body without Content-Type"
                } else {
                    &content_type
                }
            )));
        }
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

/// Read `body` as `POST /send` reads one of `content_type`, then its ids:
/// the form fuzzer's way in (see `crate::fuzzing`). Must never panic.
pub(crate) fn fuzz_send_form(content_type: &str, body: &[u8]) {
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/send")
        .header(header::CONTENT_TYPE, content_type)
        .body(axum::body::Body::from(body.to_vec()));
    let Ok(req) = req else { return };
    let read = futures::executor::block_on(SendFields::read(req));
    if let Ok(fields) = read {
        let from = parse_id("fromID", fields.from.as_deref());
        let to = parse_id("toID", fields.to.as_deref());
        if let (Ok(from), Ok(to)) = (from, to) {
            assert!(from > 0 && to > 0);
        }
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
        (status = 415, description = "A body that is neither a form nor JSON", body = MessageBody),
        ClientErrors, SendLimits,
    ))]
pub async fn seed_send(
    State(service): State<Service>,
    Caller(who): Caller,
    req: Request,
) -> Result<impl IntoResponse, AppError> {
    let fields = SendFields::read(req).await?;
    let from = parse_id("fromID", fields.from.as_deref())?;
    let to = parse_id("toID", fields.to.as_deref())?;
    let message = fields.message.unwrap_or_default();
    let n = NewNotification {
        from: Some(from),
        to,
        message,
        ..NewNotification::default()
    };
    service.send(who, n).await?;
    // The same bytes every time: written once rather than built and
    // serialized for every send (the seed route is the hot one).
    Ok(([(header::CONTENT_TYPE, "application/json")], SENT_BODY))
}

/// The seed route's answer to an accepted send, byte for byte the Go
/// tutorial's.
const SENT_BODY: &str = r#"{"message":"Notification sent successfully!"}"#;

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
    params(("user" = i64, Path, minimum = 1, description = "User id (the tutorial's `userID`)")),
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

/// Form fields of `POST /send`.
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct SeedSendFields {
    /// Sender id (must be the caller when auth is on).
    #[schema(pattern = "^[1-9][0-9]{0,17}$")]
    fromID: String,
    /// Recipient id.
    #[schema(pattern = "^[1-9][0-9]{0,17}$")]
    toID: String,
    /// The text (at most 2,000 characters, not only white space).
    #[schema(min_length = 1, max_length = 2000)]
    message: String,
}

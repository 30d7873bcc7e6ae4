//! Errors: [`AppError`] for HTTP answers, [`StartError`] for start-up.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use app::model::ServiceError;

/// Every error an HTTP handler can answer with. Always JSON
/// `{"message": …}`, the shape the Go tutorial uses.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the client sent something malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: valid token, someone else's inbox or name.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `{"message":"User not found"}` or another missing thing.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists, the method does not.
    #[error("this route does not take that method; see /api/openapi.json")]
    MethodNotAllowed,
    /// 413: the body is larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// 429: the sender is over its rate limit; retry after that many seconds.
    #[error("too many notifications from this sender: retry in {0} s")]
    TooManyRequests(u64),
    /// 503: broker or store unavailable; the client may retry.
    #[error("{0}")]
    Unavailable(String),
    /// 500: our bug. The details go to the log, not to the client.
    #[error("internal error")]
    Internal,
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(m) => AppError::BadRequest(m),
            ServiceError::Unauthorized(m) => AppError::Unauthorized(m),
            ServiceError::Forbidden(m) => AppError::Forbidden(m),
            ServiceError::UserNotFound => AppError::NotFound("User not found".into()),
            ServiceError::NotFound(m) => AppError::NotFound(m),
            ServiceError::RateLimited { retry_after_secs } => {
                AppError::TooManyRequests(retry_after_secs)
            }
            ServiceError::Unavailable(m) => AppError::Unavailable(m),
            ServiceError::Internal => AppError::Internal,
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        AppError::from_body("invalid JSON body", r.status(), r.body_text())
    }
}

impl AppError {
    /// A body the server could not take: 413 when over the size limit,
    /// else 400, prefixed with `what`.
    pub fn from_body(what: &str, status: StatusCode, detail: String) -> Self {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge("the request body is too large; the limit is set by HERALD_MAX_BODY_BYTES (16 KiB by default)".into())
        } else {
            AppError::BadRequest(format!("{what}: {detail}"))
        }
    }
}

impl From<PathRejection> for AppError {
    fn from(r: PathRejection) -> Self {
        AppError::BadRequest(format!("invalid path: {}", r.body_text()))
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        AppError::BadRequest(format!("invalid query string: {}", r.body_text()))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut res = (status, Json(json!({ "message": self.to_string() }))).into_response();
        let headers = res.headers_mut();
        match self {
            // Sends recover by themselves once the broker is back.
            AppError::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            AppError::TooManyRequests(secs) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            AppError::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"herald\""),
                );
            }
            _ => {}
        }
        res
    }
}

/// Why Herald could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Kafka client creation or topic set-up failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The broker did not answer in time at start.
    #[error("kafka: {0}")]
    Broker(String),
    /// Opening the SQLite store failed.
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    /// A migration failed.
    #[error("store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Binding the listener or creating a directory failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

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
    /// What the service layer answered; its status comes from
    /// [`ServiceError::status`], shared with the server functions.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// 405: the route exists, the method does not.
    #[error("this route does not take that method; see /api/openapi.json")]
    MethodNotAllowed,
    /// 413: the body is larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// 415: a body of a type the route does not read.
    #[error("{0}")]
    UnsupportedType(String),
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        AppError::from_body("invalid JSON body", r.status(), r.body_text())
    }
}

impl AppError {
    /// 400: the client sent something malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        AppError::Service(ServiceError::Invalid(message.into()))
    }

    /// A body the server could not take: 413 when over the size limit,
    /// else 400, prefixed with `what`.
    pub fn from_body(what: &str, status: StatusCode, detail: String) -> Self {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge("the request body is too large; the limit is set by HERALD_MAX_BODY_BYTES (16 KiB by default)".into())
        } else {
            AppError::bad_request(format!("{what}: {detail}"))
        }
    }
}

impl From<PathRejection> for AppError {
    fn from(r: PathRejection) -> Self {
        AppError::bad_request(format!("invalid path: {}", r.body_text()))
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        AppError::bad_request(format!("invalid query string: {}", r.body_text()))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            AppError::Service(e) => e.status(),
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        };
        let mut res = (status, Json(json!({ "message": self.to_string() }))).into_response();
        if let AppError::Service(e) = &self {
            let headers = res.headers_mut();
            if let Some(secs) = e.retry_after_secs() {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            if status == StatusCode::UNAUTHORIZED {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"herald\""),
                );
            }
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
    /// A setting Herald cannot use (e.g. a `DATABASE_URL` of an unknown
    /// kind).
    #[error("configuration: {0}")]
    Config(String),
    /// Opening the store failed.
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    /// A migration failed.
    #[error("store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Binding the listener or creating a directory failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

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
    /// 404 `{"message":"User not found"}` or another missing thing.
    #[error("{0}")]
    NotFound(String),
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
            ServiceError::UserNotFound => AppError::NotFound("User not found".into()),
            ServiceError::Unavailable(m) => AppError::Unavailable(m),
            ServiceError::Internal => AppError::Internal,
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        AppError::BadRequest(format!("invalid JSON body: {}", r.body_text()))
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
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut res = (status, Json(json!({ "message": self.to_string() }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Sends recover by themselves once the broker is back.
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
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

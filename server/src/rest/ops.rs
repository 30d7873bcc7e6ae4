//! Health, readiness, and the JSON answers for unknown routes and methods.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use app::model::ServiceError;

use crate::error::AppError;
use crate::service::Service;

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

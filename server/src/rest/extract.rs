//! Who is calling, and extractors whose rejections are [`AppError`]s (JSON
//! bodies instead of axum's plain-text ones).

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;

use app::model::Principal;
use app::service::NotificationService as _;

use crate::error::AppError;
use crate::AppState;

/// Who sent the request: from `Authorization: Bearer` (a token or an API
/// key) or the session cookie. Rejected with 401 when auth is on and no
/// valid token came.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        // API keys (`Bearer hk_…`) are looked up in the store; tokens are
        // checked in memory.
        if let Some(key) = crate::auth::api_key(&parts.headers) {
            return Ok(Caller(state.service.authenticate_key(key).await?));
        }
        Ok(Caller(state.service.authenticate(&parts.headers).await?))
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

/// The `{user}` path parameter: a positive user id, or a 400 that names it.
pub struct UserId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for UserId {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let ApiPath(raw) = ApiPath::<String>::from_request_parts(parts, state).await?;
        parse_id("user id", Some(&raw)).map(UserId)
    }
}

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

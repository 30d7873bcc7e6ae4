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

/// Integers of JSON bodies, also when written as integral floats (`7.0`):
/// JSON Schema's `integer` admits those, so clients generated from the
/// OpenAPI document may send them. `7.5`, or a number out of range, is
/// refused as before.
pub mod integral {
    use serde::de::{Deserialize, Deserializer, Error};

    fn exact<E: Error>(n: &serde_json::Number) -> Result<i64, E> {
        if let Some(i) = n.as_i64() {
            return Ok(i);
        }
        match n.as_f64() {
            // Within ±2^53 every integral float is exact.
            Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => Ok(f as i64),
            _ => Err(E::custom(format!(
                "invalid number {n}: expected an integer"
            ))),
        }
    }

    /// An `i64`.
    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        exact(&serde_json::Number::deserialize(d)?)
    }

    /// An optional `i64`.
    pub fn option_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<serde_json::Number>::deserialize(d)?
            .map(|n| exact(&n))
            .transpose()
    }

    /// A list of `i64`s.
    pub fn vec_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
        Vec::<serde_json::Number>::deserialize(d)?
            .iter()
            .map(exact)
            .collect()
    }

    /// An optional `u8`.
    pub fn option_u8<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
        option_i64(d)?
            .map(|i| {
                u8::try_from(i)
                    .map_err(|_| D::Error::custom(format!("invalid number {i}: expected 0 to 255")))
            })
            .transpose()
    }
}

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

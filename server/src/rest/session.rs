//! Demo sign-in, "who am I" and sign-out.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use app::model::{Principal, ServiceError, User};
use app::service::NotificationService as _;

use super::extract::{positive_id, ApiJson, Caller};
use super::MessageBody;
use crate::error::AppError;
use crate::service::Service;

/// Body of `POST /api/session`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// Id of the demo user to sign in as.
    #[serde(deserialize_with = "super::extract::integral::i64")]
    #[schema(minimum = 1)]
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

/// Demo sign-in: pick a demo user, get a token and the session cookie.
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
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<Response, AppError> {
    let user = positive_id("user", body.user)?;
    let session = service.sign_in(user, &headers).await?;
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
        user: service.known_user(id).await?,
        token: None,
    }))
}

/// Sign out: remove the session cookie. (Tokens stay valid until they
/// expire; there is no revocation list.)
#[utoipa::path(delete, path = "/api/session", tag = "auth",
    responses((status = 204, description = "Cookie removed")))]
pub async fn sign_out(State(service): State<Service>) -> Result<Response, AppError> {
    let mut res = StatusCode::NO_CONTENT.into_response();
    for cookie in service.sign_out_cookies() {
        set_cookie(&mut res, &cookie)?;
    }
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

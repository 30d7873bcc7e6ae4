//! REST handlers: the Go tutorial's routes, byte for byte, and the JSON API.
//!
//! Handlers only parse and shape; the work, access rules included, is in
//! [`Service`](crate::service::Service). Every route that touches an inbox
//! takes a [`Caller`](extract::Caller).
//!
//! - `extract`: who is calling, and extractors whose rejections are JSON.
//! - `seed`: the Go tutorial's `POST /send` and `GET /notifications/:userID`.
//! - `api`: the JSON API (sending, `/api/notifications…`, inbox pages).
//! - `users`: the user directory (`/api/users`): search, put, deactivate.
//! - `session`: demo sign-in, who am I, sign-out.
//! - `ops`: health, readiness, and the JSON 404/405 answers.
//! - this file: the error bodies the OpenAPI document names.

pub mod api;
pub mod extract;
pub mod ops;
pub mod seed;
pub mod session;
pub mod users;

use serde::Serialize;
use utoipa::ToSchema;

/// Every error answer: what to fix, in words.
#[derive(Serialize, ToSchema)]
pub struct MessageBody {
    message: String,
}

/// The client errors every authenticated route can answer (for the OpenAPI
/// document).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ClientErrors {
    /// Malformed input: a bad id, field, parameter or body; the message names what to fix
    #[response(status = 400)]
    BadRequest(MessageBody),
    /// No valid token: missing, forged or expired (the message says which)
    #[response(status = 401)]
    Unauthorized(MessageBody),
    /// Someone else's inbox, a sender that is not the caller, or an unsafe request another site's page made with the cookie
    #[response(status = 403)]
    Forbidden(MessageBody),
    /// `{"message":"User not found"}`, or no such notification (someone else's is answered the same)
    #[response(status = 404)]
    NotFound(MessageBody),
}

/// What a send can answer besides [`ClientErrors`] (for the OpenAPI
/// document).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum SendLimits {
    /// Body over the size limit (`HERALD_MAX_BODY_BYTES`)
    #[response(status = 413)]
    TooLarge(MessageBody),
    /// The sender is over its rate limit; retry after `Retry-After` seconds
    #[response(status = 429)]
    TooManyRequests(MessageBody),
    /// The broker did not acknowledge in time; retry after `Retry-After` seconds
    #[response(status = 503)]
    Unavailable(MessageBody),
}

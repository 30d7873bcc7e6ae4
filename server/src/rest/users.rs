//! The user directory: search it (for picking recipients), and, with an API
//! key of scope `users`, create, rename and deactivate users as the
//! application's identity provider knows them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use app::model::User;
use app::service::NotificationService as _;

use super::extract::{ApiJson, ApiQuery, Caller, UserId};
use super::ClientErrors;
use crate::error::AppError;
use crate::service::Service;

/// Users shown by a search without `limit`.
const DEFAULT_SEARCH: u32 = 20;

/// Query of `GET /api/users`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Name prefix, any case (a user id also finds that user first).
    /// Without it, users are listed by id.
    #[param(max_length = 100)]
    q: Option<String>,
    /// Most users answered: 1 to 50 (default 20).
    #[param(minimum = 1, maximum = 50)]
    limit: Option<u32>,
}

/// Body of `GET /api/users`.
#[derive(Serialize, ToSchema)]
pub struct UsersBody {
    users: Vec<User>,
}

/// Active users whose name starts with `q` (ignoring case), by name; for
/// signed-in users and API keys with scope `users`. Fast on millions of
/// users: one range scan of an index.
#[utoipa::path(get, path = "/api/users", tag = "users",
    params(SearchQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "`{\"users\":[{\"id\":3,\"name\":\"Rick\"},…]}`", body = UsersBody),
        ClientErrors,
    ))]
pub async fn search(
    State(service): State<Service>,
    Caller(who): Caller,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<UsersBody>, AppError> {
    let q = query.q.unwrap_or_default();
    let limit = query.limit.unwrap_or(DEFAULT_SEARCH);
    let users = service.search_users(who, &q, limit).await?;
    Ok(Json(UsersBody { users }))
}

/// Body of `PUT /api/users/{user}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutUser {
    /// Display name: at most 100 characters, not only white space, no
    /// control characters (stored trimmed).
    #[schema(min_length = 1, max_length = 100)]
    name: String,
}

/// Create user `{user}` or rename them (a deactivated user becomes active
/// again); API keys with scope `users`. Notifications already stored keep
/// the name they were sent with.
#[utoipa::path(put, path = "/api/users/{user}", tag = "users",
    params(("user" = i64, Path, minimum = 1, description = "User id, as the identity provider knows them")),
    request_body = PutUser,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created: `{\"id\":48213,\"name\":\"Ana\"}`", body = User),
        (status = 200, description = "Renamed (or reactivated)", body = User),
        ClientErrors,
    ))]
pub async fn put(
    State(service): State<Service>,
    Caller(who): Caller,
    UserId(user): UserId,
    ApiJson(body): ApiJson<PutUser>,
) -> Result<(StatusCode, Json<User>), AppError> {
    let (user, created) = service.put_user(who, user, &body.name).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(user)))
}

/// Deactivate user `{user}`; API keys with scope `users`. Their inbox stays
/// readable to them; sends to them answer 404 "User not found".
#[utoipa::path(delete, path = "/api/users/{user}", tag = "users",
    params(("user" = i64, Path, minimum = 1, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deactivated (also when already deactivated)"),
        ClientErrors,
    ))]
pub async fn deactivate(
    State(service): State<Service>,
    Caller(who): Caller,
    UserId(user): UserId,
) -> Result<StatusCode, AppError> {
    service.deactivate_user(who, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use crate::directory::{MAX_NAME_CHARS, MAX_QUERY_CHARS, MAX_SEARCH};

    #[test]
    fn documented_bounds_match_the_directory() {
        // The OpenAPI attributes above repeat these numbers (attributes
        // take literals); keep them in step.
        assert_eq!(MAX_NAME_CHARS, 100);
        assert_eq!(MAX_QUERY_CHARS, 100);
        assert_eq!(MAX_SEARCH, 50);
    }
}

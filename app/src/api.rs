//! Server functions: the UI's only way to reach the service.
//!
//! Each one fetches the [`SharedService`](crate::service::SharedService) from
//! Leptos context (the server provides it), learns who is asking from the
//! request's session cookie, and calls the service, which applies the same
//! access rules as the REST API. No logic lives here.
//!
//! They fail with the service's own [`ServiceError`], sent as JSON; the
//! server gives the answer the REST API's status for it (see the server's
//! `router`), and the UI shows its words.

use leptos::prelude::*;

use crate::model::{Category, Counts, InboxView, ListFilter, Me, Notification, ServiceError, User};

#[cfg(feature = "ssr")]
mod ctx {
    use leptos::prelude::*;

    use crate::model::{Principal, ServiceError};
    use crate::service::SharedService;

    /// The service from context (a server set up without it is a bug).
    pub fn service() -> Result<SharedService, ServiceError> {
        use_context::<SharedService>().ok_or(ServiceError::Internal)
    }

    /// The request's headers (leptos_axum puts the request parts in context).
    pub fn headers() -> http::HeaderMap {
        use_context::<http::request::Parts>()
            .map(|p| p.headers)
            .unwrap_or_default()
    }

    /// The service and the signed-in user, or the service's 401 wording.
    pub async fn caller() -> Result<(SharedService, Principal, i64), ServiceError> {
        let service = service()?;
        let who = service.authenticate(&headers()).await?;
        let Principal::User(id) = who else {
            return Err(ServiceError::Unauthorized("sign in first".into()));
        };
        Ok((service, who, id))
    }

    /// Add a `Set-Cookie` header to the server function's response.
    pub fn set_cookie(value: &str) {
        if let (Some(res), Ok(v)) = (
            use_context::<leptos_axum::ResponseOptions>(),
            http::HeaderValue::from_str(value),
        ) {
            res.append_header(http::header::SET_COOKIE, v);
        }
    }
}

/// The users the demo sign-in offers (none when it is off).
#[server]
pub async fn demo_users() -> Result<Vec<User>, ServiceError> {
    Ok(ctx::service()?.demo_users().await)
}

/// Users whose name starts with `query`, for the composer's recipient
/// field (the signed-in user included; the composer leaves them out).
#[server]
pub async fn find_users(query: String) -> Result<Vec<User>, ServiceError> {
    let (service, who, _) = ctx::caller().await?;
    service.search_users(who, &query, 8).await
}

/// The signed-in user with their counts, or `None`.
#[server]
pub async fn whoami() -> Result<Option<Me>, ServiceError> {
    let service = ctx::service()?;
    let Some(user) = service.current_user(&ctx::headers()).await else {
        return Ok(None);
    };
    let who = crate::model::Principal::User(user.id);
    let counts = service.counts(who, user.id).await?;
    Ok(Some(Me { user, counts }))
}

/// Demo sign-in: sets the session cookie.
#[server]
pub async fn sign_in(user: i64) -> Result<User, ServiceError> {
    let session = ctx::service()?.sign_in(user, &ctx::headers()).await?;
    ctx::set_cookie(&session.set_cookie);
    Ok(session.user)
}

/// Sign out: removes the session cookie.
#[server]
pub async fn sign_out() -> Result<(), ServiceError> {
    for cookie in ctx::service()?.sign_out_cookies() {
        ctx::set_cookie(&cookie);
    }
    Ok(())
}

/// One page of the signed-in user's notifications, with the counts.
#[server]
pub async fn get_inbox(
    filter: ListFilter,
    before: Option<String>,
) -> Result<InboxView, ServiceError> {
    let (service, who, me) = ctx::caller().await?;
    service
        .inbox(
            who,
            me,
            &filter,
            before.as_deref(),
            crate::model::DEFAULT_PAGE,
        )
        .await
}

/// Send `message` from the signed-in user to `to`; resolves once Kafka
/// acknowledged it. (The fields of the send form, one argument each.)
#[server]
pub async fn send_notification(
    to: i64,
    message: String,
    category: Category,
    priority: u8,
) -> Result<Notification, ServiceError> {
    let (service, who, _) = ctx::caller().await?;
    let n = crate::model::NewNotification {
        from: None,
        to,
        message,
        category: Some(category),
        priority: Some(priority),
        ..Default::default()
    };
    service.send(who, n).await
}

/// Mark one notification read or unread, archive or unarchive it.
#[server]
pub async fn set_state(
    id: String,
    read: Option<bool>,
    archived: Option<bool>,
) -> Result<Notification, ServiceError> {
    let (service, who, _) = ctx::caller().await?;
    service.update(who, &id, read, archived).await
}

/// Mark all of the signed-in user's notifications read.
#[server]
pub async fn mark_all_read() -> Result<Counts, ServiceError> {
    let (service, who, me) = ctx::caller().await?;
    service.read_all(who, me).await
}

/// Delete one notification.
#[server]
pub async fn delete_notification(id: String) -> Result<(), ServiceError> {
    let (service, who, _) = ctx::caller().await?;
    service.delete(who, &id).await
}

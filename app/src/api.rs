//! Server functions: the UI's only way to reach the service.
//!
//! Each one fetches the [`SharedService`](crate::service::SharedService) from
//! Leptos context (the server provides it) and calls it; no logic lives here.

use leptos::prelude::*;

use crate::model::{Notification, User};

#[cfg(feature = "ssr")]
fn service() -> Result<crate::service::SharedService, ServerFnError> {
    use_context::<crate::service::SharedService>()
        .ok_or_else(|| ServerFnError::new("the notification service is not in context"))
}

/// All users, for the "who are you" picker and the recipient list.
#[server]
pub async fn get_users() -> Result<Vec<User>, ServerFnError> {
    Ok(service()?.users())
}

/// The inbox of `user_id`, newest first.
#[server]
pub async fn get_inbox(user_id: i64) -> Result<Vec<Notification>, ServerFnError> {
    service()?
        .list(user_id)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))
}

/// Send `message` from `from` to `to`; resolves once Kafka acknowledged it.
#[server]
pub async fn send_notification(
    from: i64,
    to: i64,
    message: String,
) -> Result<Notification, ServerFnError> {
    service()?
        .send(from, to, &message)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))
}

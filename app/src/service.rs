//! The service interface the server functions call (server only).
//!
//! The implementation lives in the `server` crate (Kafka, SQLite, the SSE
//! hub, tokens, rate limits). It is handed to the Leptos app through context
//! as a [`SharedService`], so the UI's server functions and the REST handlers
//! run the very same code, access rules included.

use std::sync::Arc;

use crate::model::{
    Counts, InboxView, ListFilter, NewNotification, Notification, Principal, ServiceError, User,
};

/// A demo sign-in's outcome.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who is now signed in.
    pub user: User,
    /// The signed token (also sent to scripts in the JSON answer).
    pub token: String,
    /// The `Set-Cookie` header value that carries the token to the browser.
    pub set_cookie: String,
}

/// Operations the UI needs. The REST layer calls the same implementation.
#[async_trait::async_trait]
pub trait NotificationService: Send + Sync + 'static {
    /// The users the demo sign-in offers (none when it is off).
    async fn demo_users(&self) -> Vec<User>;
    /// Up to `limit` active users whose name starts with `query` (any
    /// case), for picking recipients; `who` must be signed in.
    async fn search_users(
        &self,
        who: Principal,
        query: &str,
        limit: u32,
    ) -> Result<Vec<User>, ServiceError>;
    /// Who sent this request: a verified token from the `Authorization`
    /// header or the session cookie. With auth on, no valid token is
    /// [`ServiceError::Unauthorized`]. With auto-provisioning on, the
    /// token's user is created on first use.
    async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Principal, ServiceError>;
    /// The signed-in user of a request, if any (never an error: for the UI
    /// to decide between the inbox and the sign-in screen).
    async fn current_user(&self, headers: &http::HeaderMap) -> Option<User>;
    /// Demo sign-in as a demo user, when the server allows it; the cookie
    /// suits the request with these headers (`Secure` over HTTPS).
    async fn sign_in(
        &self,
        user_id: i64,
        headers: &http::HeaderMap,
    ) -> Result<Session, ServiceError>;
    /// The `Set-Cookie` values that sign the browser out.
    fn sign_out_cookies(&self) -> Vec<String>;
    /// Validate, rate-limit, produce to Kafka and wait for the broker's
    /// acknowledgement. The sender defaults to the caller.
    async fn send(&self, who: Principal, n: NewNotification) -> Result<Notification, ServiceError>;
    /// One page of `user_id`'s notifications with the counts, read at once.
    async fn inbox(
        &self,
        who: Principal,
        user_id: i64,
        filter: &ListFilter,
        before: Option<&str>,
        limit: u32,
    ) -> Result<InboxView, ServiceError>;
    /// Unread and total of `user_id`'s inbox.
    async fn counts(&self, who: Principal, user_id: i64) -> Result<Counts, ServiceError>;
    /// Mark one notification read or unread, archive or unarchive it.
    async fn update(
        &self,
        who: Principal,
        id: &str,
        read: Option<bool>,
        archived: Option<bool>,
    ) -> Result<Notification, ServiceError>;
    /// Mark every notification of `user_id` read.
    async fn read_all(&self, who: Principal, user_id: i64) -> Result<Counts, ServiceError>;
    /// Delete one notification.
    async fn delete(&self, who: Principal, id: &str) -> Result<(), ServiceError>;
}

/// How the service travels through Leptos context.
pub type SharedService = Arc<dyn NotificationService>;

//! The service interface the server functions call (server only).
//!
//! The implementation lives in the `server` crate (Kafka, SQLite, the SSE
//! hub). It is handed to the Leptos app through context as a
//! [`SharedService`], so the UI's server functions and the REST handlers run
//! the very same code.

use std::sync::Arc;

use crate::model::{Notification, ServiceError, User};

/// Operations the UI needs. The REST layer calls the same implementation.
#[async_trait::async_trait]
pub trait NotificationService: Send + Sync + 'static {
    /// All users, ordered by id.
    fn users(&self) -> Vec<User>;
    /// Validate, produce to Kafka and wait for the broker's acknowledgement.
    async fn send(&self, from: i64, to: i64, message: &str) -> Result<Notification, ServiceError>;
    /// The user's stored notifications, newest first.
    async fn list(&self, user_id: i64) -> Result<Vec<Notification>, ServiceError>;
}

/// How the service travels through Leptos context.
pub type SharedService = Arc<dyn NotificationService>;

//! The user directory: who exists, under which name, who is deactivated.
//!
//! It lives in the store (`users`), filled by the application's identity
//! provider through `PUT /api/users/{id}` or by auto-provisioning, and may
//! hold millions of users. Every send looks up its sender and recipients
//! and every consumed record its names, so a small bounded cache sits in
//! front: hits cost no query, and an entry is trusted for
//! `HERALD_DIRECTORY_CACHE_MS` (1 s by default). Changes made here replace
//! the entry at once; changes made through another instance are seen here
//! when the entry expires. Misses are not cached, so a user created on any
//! instance is found at once everywhere.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use app::model::{ServiceError, User};

use crate::store::{Store, UserEntry};

/// Most directory entries one instance keeps in memory.
const CACHE_ENTRIES: u64 = 100_000;

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// Longest search text, in characters.
pub const MAX_QUERY_CHARS: usize = 100;

/// Most users one search answers.
pub const MAX_SEARCH: u32 = 50;

/// The store's user directory with a cache in front; cheap to clone.
#[derive(Clone)]
pub struct Directory {
    store: Store,
    cache: Cache<i64, UserEntry>,
    /// Counts this instance's writes to the directory. A lookup caches what
    /// it read only if no write happened meanwhile: a read that raced a
    /// deactivation would otherwise put the user back in the cache as
    /// active, and sends to them would be accepted until it expired.
    writes: Arc<AtomicU64>,
}

impl Directory {
    /// The directory of `store`, trusting a cached entry for `ttl` (zero:
    /// no cache).
    pub fn new(store: Store, ttl: Duration) -> Self {
        let capacity = if ttl.is_zero() { 0 } else { CACHE_ENTRIES };
        let cache = Cache::builder()
            .max_capacity(capacity)
            .time_to_live(ttl.max(Duration::from_millis(1)))
            .build();
        Self {
            store,
            cache,
            writes: Arc::default(),
        }
    }

    /// The entries of those of `ids` that exist, deactivated ones
    /// included: from the cache, the rest in one store query.
    pub async fn lookup(&self, ids: &[i64]) -> Result<HashMap<i64, UserEntry>, sqlx::Error> {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for &id in ids {
            match self.cache.get(&id) {
                Some(entry) => {
                    found.insert(id, entry);
                }
                None => missing.push(id),
            }
        }
        if !missing.is_empty() {
            missing.sort_unstable();
            missing.dedup();
            let before = self.writes.load(Ordering::Acquire);
            let read = self.store.users_by_id(&missing).await?;
            let fresh = self.writes.load(Ordering::Acquire) == before;
            for entry in read {
                if fresh {
                    self.cache.insert(entry.user.id, entry.clone());
                }
                found.insert(entry.user.id, entry);
            }
        }
        Ok(found)
    }

    /// The entry of user `id`, if they exist (deactivated or not).
    pub async fn get(&self, id: i64) -> Result<Option<UserEntry>, sqlx::Error> {
        // Every send asks for its sender and recipient: a cached entry is
        // answered without building a map around it.
        if let Some(entry) = self.cache.get(&id) {
            return Ok(Some(entry));
        }
        Ok(self.lookup(&[id]).await?.remove(&id))
    }

    /// Create user `id` or rename them (making them active again). True
    /// when they are new. `name` must have passed [`check_name`].
    pub async fn put(&self, id: i64, name: &str) -> Result<bool, sqlx::Error> {
        let created = self.store.put_user(id, name, &search_key(name)).await?;
        self.wrote();
        self.remember(id, name, true);
        Ok(created)
    }

    /// Create user `id` named `name` unless they exist; their entry as it
    /// is now.
    pub async fn provision(&self, id: i64, name: &str) -> Result<UserEntry, sqlx::Error> {
        if self
            .store
            .provision_user(id, name, &search_key(name))
            .await?
        {
            self.wrote();
            tracing::info!(user = id, "user provisioned from a token");
            metrics::counter!("herald_users_provisioned_total").increment(1);
            return Ok(self.remember(id, name, true));
        }
        // Created meanwhile (another request, another instance): read it.
        self.cache.invalidate(&id);
        self.get(id).await?.ok_or(sqlx::Error::RowNotFound)
    }

    /// Deactivate user `id`; their entry afterwards, `None` if unknown.
    pub async fn deactivate(&self, id: i64) -> Result<Option<UserEntry>, sqlx::Error> {
        let known = self.store.deactivate_user(id).await;
        // After the write, whatever came of it: lookups in flight then
        // cache nothing, and the entry cached before is dropped.
        self.wrote();
        self.cache.invalidate(&id);
        if !known? {
            return Ok(None);
        }
        self.get(id).await
    }

    /// Count a write (see `writes`).
    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::AcqRel);
    }

    /// Up to `limit` active users whose name starts with `query` (ignoring
    /// case), by name; with a `query` that is a user id, that user first.
    /// An empty `query` lists users by id.
    pub async fn search(&self, query: &str, limit: u32) -> Result<Vec<User>, ServiceError> {
        let query = query.trim();
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(ServiceError::Invalid(format!(
                "invalid q: at most {MAX_QUERY_CHARS} characters"
            )));
        }
        if !(1..=MAX_SEARCH).contains(&limit) {
            return Err(ServiceError::Invalid(format!(
                "invalid limit {limit}: expected 1 to {MAX_SEARCH}"
            )));
        }
        let mut users = Vec::new();
        if let Some(id) = query.parse::<i64>().ok().filter(|id| *id > 0) {
            if let Some(e) = self.get(id).await.map_err(store_error)? {
                users.extend(e.active.then_some(e.user));
            }
        }
        let key = search_key(query);
        let by_name = self.store.search_users(&key, limit).await;
        for user in by_name.map_err(store_error)? {
            if users.len() < limit as usize && !users.contains(&user) {
                users.push(user);
            }
        }
        Ok(users)
    }

    fn remember(&self, id: i64, name: &str, active: bool) -> UserEntry {
        let entry = UserEntry {
            user: User {
                id,
                name: name.to_owned(),
            },
            active,
        };
        self.cache.insert(id, entry.clone());
        entry
    }
}

/// What names are compared by in a search: lowercase (Unicode rules).
fn search_key(name: &str) -> String {
    name.to_lowercase()
}

/// A display name as stored: trimmed; at most [`MAX_NAME_CHARS`]
/// characters as sent, not only white space, no control characters (the
/// OpenAPI document's `LINE_PATTERN`).
pub fn check_name(name: &str) -> Result<String, ServiceError> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ServiceError::Invalid(format!(
            "invalid name: at most {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(
            "invalid name: control characters are not allowed".into(),
        ));
    }
    let name = name.trim();
    if name.is_empty() {
        return Err(ServiceError::Invalid(
            "invalid name: it must not be empty".into(),
        ));
    }
    Ok(name.to_owned())
}

fn store_error(e: sqlx::Error) -> ServiceError {
    crate::service::store_error(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(check_name("  Ana María ").unwrap(), "Ana María");
        for bad in ["", "   ", "a\u{0}b", "line\nbreak", "bell\u{7}"] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS + 1)).is_err());
    }

    #[test]
    fn search_ignores_case_by_unicode_rules() {
        assert_eq!(search_key("ÉMILE"), "émile");
        assert!(search_key("Émile Zola").starts_with(&search_key("ÉM")));
    }
}

//! The durable store: SQLite for one instance (the embedded default) or
//! PostgreSQL shared by several instances. Both run the same queries
//! through sqlx's Any driver; only the schema differs (`migrations/sqlite`,
//! `migrations/postgres`), so the two behave the same by construction.
//!
//! Writes are idempotent on the notification id, so the consumer may see a
//! record twice (crash before its offset commit, rebalance, or early delivery on
//! another instance) without storing it twice. Unread and total counts per
//! user are kept by triggers, in the same transaction as the change.
//!
//! On PostgreSQL every write also announces itself to all instances
//! (`NOTIFY herald_inbox`, see `bus`) inside its transaction (new rows from
//! the insert trigger, state changes from here), so an
//! announcement is delivered only once the change is durable, in write
//! order; and a recipient's `seq` numbers become visible in increasing order (see
//! the migration), so a stream resuming after `seq` N misses nothing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyConnection, AnyPool, Arguments, Encode, Executor, Row, Transaction, Type};
use tokio::sync::{Mutex, MutexGuard};

use app::model::{Category, Counts, ListFilter, Notification, User};

use crate::bus::Announcement;
use crate::error::StartError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a [`Store`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file: one instance, events in process.
    Sqlite,
    /// A PostgreSQL server: any number of instances, events through
    /// `LISTEN/NOTIFY`, the rate limit in the database.
    Postgres,
}

impl Backend {
    /// The backend a `DATABASE_URL` names, or a start-up error that says
    /// what is accepted (without echoing a password).
    pub fn of_url(url: &str) -> Result<Self, StartError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            let scheme = url.split_once(':').map_or("", |(s, _)| s);
            Err(StartError::Config(format!(
                "DATABASE_URL must be sqlite:PATH (one instance, e.g. sqlite://data/herald.db) \
                 or postgres://USER@HOST:PORT/DB (shared by several instances); \
                 got a URL of scheme {scheme:?}"
            )))
        }
    }
}

/// Where in Kafka a stored notification came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    /// Partition of the record.
    pub partition: i32,
    /// Offset of the record.
    pub offset: i64,
}

/// A notification with its position in the recipient's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Arrival order within the recipient's inbox; larger is newer and
    /// became visible later. SSE resume is based on it.
    pub seq: i64,
    /// The notification itself.
    pub notification: Notification,
}

/// Handle to the database; cheap to clone (a pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// Where notifications are inserted and their state changed. With
    /// SQLite a pool of one connection of its own: a connection drops its
    /// whole page cache when it finds the database changed by another, so
    /// writes that went to whichever pooled connection was free read the
    /// same index pages back from the WAL time after time (a `pread` per
    /// ten rows under load; docs/bench/cost.md). One writer keeps them warm,
    /// and SQLite takes one writer at a time anyway. With PostgreSQL, the
    /// shared pool.
    writes: AnyPool,
    backend: Backend,
    /// Held from a write until its events are published in process, so
    /// streams see changes in write order. Only taken with SQLite (one
    /// writer at a time anyway); PostgreSQL orders announcements itself.
    writer: Arc<Mutex<()>>,
}

/// A user as the directory knows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserEntry {
    /// Id and current name.
    pub user: User,
    /// False once deactivated: they keep their inbox, nobody can send to
    /// them (or as them).
    pub active: bool,
}

/// One page read from the store.
#[derive(Debug)]
pub struct StoredPage {
    /// The rows, newest first.
    pub rows: Vec<Stored>,
    /// Whether older rows match too.
    pub more: bool,
}

/// What a change of read / archived state did.
#[derive(Debug)]
pub struct StateChange {
    /// The notification as it is now.
    pub stored: Stored,
    /// The owner's counts after the change; `None` when nothing changed.
    pub counts: Option<Counts>,
}

impl Store {
    /// Connect to `url` (a SQLite file is created with its directory if
    /// missing) and bring the schema up to date. Several instances may
    /// start at once: sqlx holds a PostgreSQL advisory lock while migrating.
    pub async fn open(url: &str) -> Result<Self, StartError> {
        let backend = Backend::of_url(url)?;
        sqlx::any::install_default_drivers();
        let (pool, writes) = match backend {
            Backend::Sqlite => open_sqlite(url).await?,
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(Duration::from_secs(10))
                    // sqlx pings each connection before handing it out (a
                    // round trip per query). Kept: after a database restart
                    // it is what replaces the dropped connections without
                    // failing a request (skipping it for connections used
                    // in the last 5 s answered 503 to the first query on
                    // such a connection; docs/bench/cost.md).
                    .connect(url)
                    .await?;
                (pool.clone(), pool)
            }
        };
        let migrations = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrations.run(&pool).await?;
        Ok(Self {
            pool,
            writes,
            backend,
            writer: Arc::new(Mutex::new(())),
        })
    }

    /// The database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether several instances may share this store (and its events
    /// travel through the database).
    pub fn is_shared(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// Take the in-process write turn (SQLite); hold the guard until the
    /// change is published. `None` on PostgreSQL, where the database
    /// orders announcements and writers need not wait for each other.
    pub async fn write_turn(&self) -> Option<MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.writer.lock().await),
            Backend::Postgres => None,
        }
    }

    /// A transaction on the writer's connection. On SQLite it takes the
    /// write lock at once (`BEGIN IMMEDIATE`): other writes (readiness
    /// checks, idempotency keys, the user directory) go through the pool's
    /// other connections, and a deferred transaction that reads before it
    /// writes fails with `SQLITE_BUSY_SNAPSHOT`, without waiting, when one
    /// of them committed in between.
    async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.writes.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.writes.begin().await,
        }
    }

    /// The directory entries of `ids` that exist (deactivated ones
    /// included), in no particular order; one query per
    /// [`ID_LIST_MAX`] ids.
    pub async fn users_by_id(&self, ids: &[i64]) -> Result<Vec<UserEntry>, sqlx::Error> {
        let rows = self
            .rows_in(
                "SELECT id, name, deactivated_at FROM users WHERE id IN ",
                ids,
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(UserEntry {
                    user: User {
                        id: row.try_get("id")?,
                        name: row.try_get("name")?,
                    },
                    active: row
                        .try_get::<Option<String>, _>("deactivated_at")?
                        .is_none(),
                })
            })
            .collect()
    }

    /// The rows `select` (a query ending in `IN `) answers for `ids`, one
    /// query per [`ID_LIST_MAX`] ids, on one connection of the pool.
    async fn rows_in(&self, select: &str, ids: &[i64]) -> Result<Vec<AnyRow>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await?;
        let mut rows = Vec::new();
        for chunk in ids.chunks(ID_LIST_MAX) {
            let mut sql = Sql::new(self.backend, select);
            sql.list(chunk);
            rows.extend(sql.fetch_all(&mut conn).await?);
        }
        Ok(rows)
    }

    /// Create user `id` named `name`, or rename it and make it active again.
    /// True when the user is new. (`search_key` is `name` lowercased.)
    pub async fn put_user(
        &self,
        id: i64,
        name: &str,
        search_key: &str,
    ) -> Result<bool, sqlx::Error> {
        if self.provision_user(id, name, search_key).await? {
            return Ok(true);
        }
        sqlx::query(
            "UPDATE users SET name = $2, search_key = $3, deactivated_at = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(search_key)
        .execute(&self.pool)
        .await?;
        Ok(false)
    }

    /// Create user `id` named `name` unless it exists (deactivated or not).
    /// True when it was created.
    pub async fn provision_user(
        &self,
        id: i64,
        name: &str,
        search_key: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO users (id, name, search_key) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(search_key)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deactivate user `id` (kept, with its notifications). False when
    /// there is no such user; deactivating twice keeps the first time.
    pub async fn deactivate_user(&self, id: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE users SET deactivated_at = COALESCE(deactivated_at, $2) WHERE id = $1",
        )
        .bind(id)
        .bind(Utc::now().to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Up to `limit` active users whose `search_key` starts with `prefix`
    /// (lowercase), by search key then id: one range scan of the partial
    /// index `users_by_search_key`. An empty prefix lists users by id.
    pub async fn search_users(&self, prefix: &str, limit: u32) -> Result<Vec<User>, sqlx::Error> {
        let rows: Vec<(i64, String)> = if prefix.is_empty() {
            sqlx::query_as(
                "SELECT id, name FROM users WHERE deactivated_at IS NULL ORDER BY id LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
        } else {
            // Every string that starts with `prefix` sorts (bytewise) from
            // `prefix` up to `prefix` followed by the largest code point.
            sqlx::query_as(
                "SELECT id, name FROM users
                 WHERE deactivated_at IS NULL AND search_key >= $1 AND search_key < $2
                 ORDER BY search_key, id LIMIT $3",
            )
            .bind(prefix)
            .bind(format!("{prefix}\u{10FFFF}"))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
        };
        Ok(rows
            .into_iter()
            .map(|(id, name)| User { id, name })
            .collect())
    }

    /// Store every notification of `batch` atomically, skipping those whose
    /// id exists. Returns each one's new `seq`, or `None` for a duplicate,
    /// in order.
    ///
    /// Multi-row `INSERT`s: sqlx runs SQLite on a thread of its own, and a
    /// statement per row cost two thread hand-offs per notification. With
    /// SQLite, statements of the sizes [`INSERT_SIZES`] lists (why there);
    /// with PostgreSQL, up to [`PG_INSERT_CHUNK`] rows each. Rows go
    /// in sorted by recipient (keeping each recipient's order), so
    /// PostgreSQL writers lock recipients in one global order and never
    /// deadlock. On SQLite a batch is one transaction: its statement(s) and
    /// the counts of its new rows ([`count_new_rows`]), all in one round
    /// trip to SQLite's thread when one statement takes the batch
    /// ([`insert_in_one_trip`]); on PostgreSQL the insert trigger counts.
    pub async fn insert_batch(
        &self,
        batch: &[(Notification, Source)],
    ) -> Result<Vec<Option<i64>>, sqlx::Error> {
        Ok(self.insert_batch_counting(batch, &[]).await?.0)
    }

    /// [`Self::insert_batch`], and on SQLite also the counts of the
    /// inboxes of `watched` (those that have any) as they are after it,
    /// read inside its transaction in the same round trip as the counting
    /// (the writer publishes them to the inboxes' streams). On PostgreSQL
    /// nothing is read, nor past the first [`ID_LIST_MAX`] users (the
    /// caller reads what it lacks).
    pub async fn insert_batch_counting(
        &self,
        batch: &[(Notification, Source)],
        watched: &[i64],
    ) -> Result<(Vec<Option<i64>>, Vec<(i64, Counts)>), sqlx::Error> {
        let mut counts = Vec::new();
        let mut sorted: Vec<&(Notification, Source)> = batch.iter().collect();
        sorted.sort_by_key(|(n, _)| n.to.id);
        let mut inserted = HashMap::with_capacity(batch.len());
        // SQLite reads the counts of at most this many watched users.
        let watched = &watched[..watched.len().min(ID_LIST_MAX)];
        let plan = statement_plan(self.backend, sorted.len());
        match (self.backend, &plan[..]) {
            (_, []) => {}
            (Backend::Postgres, [_]) => {
                // A single statement is a transaction of its own; its
                // trigger counts and announces the new rows.
                let mut conn = self.writes.acquire().await?;
                insert_rows(self.backend, &mut conn, &sorted, &mut inserted).await?;
            }
            (Backend::Sqlite, [_]) => {
                counts = insert_in_one_trip(&self.writes, &sorted, watched, &mut inserted).await?;
            }
            (backend, _) => {
                let mut tx = self.begin_write().await?;
                let mut rest = &sorted[..];
                let mut first_before = None;
                for &take in &plan {
                    let (rows, after) = rest.split_at(take);
                    let before = insert_rows(backend, &mut tx, rows, &mut inserted).await?;
                    first_before = first_before.or(before);
                    rest = after;
                }
                if let Some(before) = first_before {
                    counts = count_new_rows(&mut tx, before, watched).await?;
                }
                tx.commit().await?;
            }
        }
        // An id twice in one batch was stored once, for its first
        // occurrence.
        let seqs = batch
            .iter()
            .map(|(n, _)| inserted.remove(n.id.as_str()))
            .collect();
        Ok((seqs, counts))
    }

    /// Up to `limit` notifications of `user_id` matching `filter`, newest
    /// first, older than `before_seq` when given. Deleted ones never match.
    pub async fn page(
        &self,
        user_id: i64,
        filter: &ListFilter,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<StoredPage, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        page_on(self.backend, &mut conn, user_id, filter, before_seq, limit).await
    }

    /// A page (older than the notification `before`, when given), the
    /// counts and the newest id, all read in one transaction so they agree
    /// with each other. `None` when `before` is not one of `user_id`'s
    /// notifications.
    pub async fn snapshot(
        &self,
        user_id: i64,
        filter: &ListFilter,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Option<(StoredPage, Counts, Option<String>)>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let before_seq = match before {
            None => None,
            Some(id) if !storable(id) => return Ok(None),
            Some(id) => {
                let seq = sqlx::query_scalar(
                    "SELECT seq FROM notifications WHERE recipient_id = $1 AND id = $2",
                )
                .bind(user_id)
                .bind(id.to_owned())
                .fetch_optional(&mut *tx)
                .await?;
                match seq {
                    Some(seq) => Some(seq),
                    None => return Ok(None),
                }
            }
        };
        let page = page_on(self.backend, &mut tx, user_id, filter, before_seq, limit).await?;
        let counts = counts_on(&mut tx, user_id).await?;
        let newest = sqlx::query_scalar(
            "SELECT id FROM notifications WHERE recipient_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some((page, counts, newest)))
    }

    /// Unread and total of `user_id`'s inbox.
    pub async fn counts(&self, user_id: i64) -> Result<Counts, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        counts_on(&mut conn, user_id).await
    }

    /// The counts of each of `users`' inboxes, in `users`' order, in one
    /// query (per [`ID_LIST_MAX`] users) rather than one each: the writer
    /// reads them after every batch for its watched recipients, and under
    /// load that is hundreds of batches a second.
    pub async fn counts_of(&self, users: &[i64]) -> Result<Vec<(i64, Counts)>, sqlx::Error> {
        let mut found = self
            .rows_in(COUNTS_IN, users)
            .await?
            .iter()
            .map(counts_row)
            .collect::<Result<HashMap<_, _>, _>>()?;
        // An inbox nothing was stored in has no row: all zeros, as `counts`.
        Ok(users
            .iter()
            .map(|u| (*u, found.remove(u).unwrap_or_default()))
            .collect())
    }

    /// The owner of notification `id` and whether it was deleted.
    pub async fn owner_of(&self, id: &str) -> Result<Option<(i64, bool)>, sqlx::Error> {
        if !storable(id) {
            return Ok(None);
        }
        let row: Option<(i64, Option<String>)> =
            sqlx::query_as("SELECT recipient_id, deleted_at FROM notifications WHERE id = $1")
                .bind(id.to_owned())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(owner, deleted)| (owner, deleted.is_some())))
    }

    /// Notification `id` of `user_id` unless deleted.
    pub async fn get(&self, user_id: i64, id: &str) -> Result<Option<Stored>, sqlx::Error> {
        if !storable(id) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT * FROM notifications WHERE recipient_id = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .bind(user_id)
        .bind(id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Set the read and/or archived state of notification `id` (which must
    /// exist and not be deleted). `None` when there is no such notification.
    pub async fn set_state(
        &self,
        id: &str,
        read: Option<bool>,
        archived: Option<bool>,
    ) -> Result<Option<StateChange>, sqlx::Error> {
        if !storable(id) {
            return Ok(None);
        }
        let mut tx = self.begin_write().await?;
        // Only rows whose state differs are touched, so a no-op changes no
        // counts and sends no event.
        let changed = sqlx::query(
            "UPDATE notifications SET
                read_at = CASE WHEN $1 IS NULL THEN read_at
                               WHEN $1 THEN COALESCE(read_at, $3) ELSE NULL END,
                archived_at = CASE WHEN $2 IS NULL THEN archived_at
                                   WHEN $2 THEN COALESCE(archived_at, $3) ELSE NULL END
             WHERE id = $4 AND deleted_at IS NULL
               AND (($1 IS NOT NULL AND (read_at IS NOT NULL) <> $1)
                 OR ($2 IS NOT NULL AND (archived_at IS NOT NULL) <> $2))",
        )
        .bind(read)
        .bind(archived)
        .bind(now_text())
        .bind(id.to_owned())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        let row = sqlx::query("SELECT * FROM notifications WHERE id = $1 AND deleted_at IS NULL")
            .bind(id.to_owned())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored = decode(&row)?;
        let counts = if changed {
            let user = stored.notification.to.id;
            let counts = counts_on(&mut tx, user).await?;
            if self.is_shared() {
                let news = Announcement::Updated {
                    user,
                    id: id.to_owned(),
                    read: Some(stored.notification.read),
                    archived: Some(stored.notification.archived),
                    counts,
                };
                announce(&mut tx, &news).await?;
            }
            Some(counts)
        } else {
            None
        };
        tx.commit().await?;
        Ok(Some(StateChange { stored, counts }))
    }

    /// Delete notification `id` (hide it for good). Returns the owner and
    /// their counts afterwards, or `None` if it did not exist or was
    /// deleted.
    pub async fn delete(&self, id: &str) -> Result<Option<(i64, Counts)>, sqlx::Error> {
        if !storable(id) {
            return Ok(None);
        }
        let mut tx = self.begin_write().await?;
        let owner: Option<i64> = sqlx::query_scalar(
            "UPDATE notifications SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL
             RETURNING recipient_id",
        )
        .bind(now_text())
        .bind(id.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user) = owner else {
            return Ok(None);
        };
        let counts = counts_on(&mut tx, user).await?;
        if self.is_shared() {
            let news = Announcement::Deleted {
                user,
                id: id.to_owned(),
                counts,
            };
            announce(&mut tx, &news).await?;
        }
        tx.commit().await?;
        Ok(Some((user, counts)))
    }

    /// Mark every unread notification of `user_id` read. Returns the id of
    /// the newest one it covers and the counts, or `None` when nothing was
    /// unread.
    pub async fn read_all(&self, user_id: i64) -> Result<Option<(String, Counts)>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let through: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, id FROM notifications
             WHERE recipient_id = $1 AND deleted_at IS NULL AND read_at IS NULL
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((seq, id)) = through else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE notifications SET read_at = $1
             WHERE recipient_id = $2 AND deleted_at IS NULL AND read_at IS NULL AND seq <= $3",
        )
        .bind(now_text())
        .bind(user_id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        let counts = counts_on(&mut tx, user_id).await?;
        if self.is_shared() {
            let news = Announcement::ReadAll {
                user: user_id,
                through: id.clone(),
                counts,
            };
            announce(&mut tx, &news).await?;
        }
        tx.commit().await?;
        Ok(Some((id, counts)))
    }

    /// Up to `limit` notifications of `user_id` stored after `after_seq`
    /// (and up to `until_seq` when given), oldest first (the order an SSE
    /// replay sends them in).
    pub async fn after(
        &self,
        user_id: i64,
        after_seq: i64,
        until_seq: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Stored>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT * FROM notifications
             WHERE recipient_id = $1 AND seq > $2 AND seq <= $3 AND deleted_at IS NULL
             ORDER BY seq LIMIT $4",
        )
        .bind(user_id)
        .bind(after_seq)
        .bind(until_seq.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Where a new stream of `user_id` starts, in one query (a burst of
    /// thousands of connecting streams costs one round trip each): the `seq`
    /// of notification `after` if it is the user's, the largest `seq` (0 when
    /// none) and the counts.
    pub async fn stream_start(
        &self,
        user_id: i64,
        after: Option<&str>,
    ) -> Result<(Option<i64>, i64, Counts), sqlx::Error> {
        let (resume, last, unread, total, version): (Option<i64>, i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT
                    (SELECT seq FROM notifications WHERE recipient_id = $1 AND id = $2),
                    COALESCE((SELECT MAX(seq) FROM notifications WHERE recipient_id = $1), 0),
                    COALESCE((SELECT unread FROM inbox_counts WHERE user_id = $1), 0),
                    COALESCE((SELECT total FROM inbox_counts WHERE user_id = $1), 0),
                    COALESCE((SELECT version FROM inbox_counts WHERE user_id = $1), 0)",
            )
            .bind(user_id)
            .bind(after.filter(|a| storable(a)).map(str::to_owned))
            .fetch_one(&self.pool)
            .await?;
        let counts = Counts {
            unread,
            total,
            version,
        };
        Ok((resume, last, counts))
    }

    /// Take one send from `sender`'s allowance in the shared rate limit
    /// (PostgreSQL): a burst of `burst`, then one per `period`. `None`
    /// when allowed, else how long until the next send would be.
    ///
    /// GCRA on one row per sender, decided by one statement on the
    /// database's clock, so every instance draws from the same allowance
    /// (governor, used with SQLite, keeps its state in process).
    pub async fn take_send(
        &self,
        sender: i64,
        period: Duration,
        burst: u32,
        cost: u32,
    ) -> Result<Option<Duration>, sqlx::Error> {
        // `cost` sends at once (one per recipient) advance the arrival time
        // `cost` periods, and must fit the burst as one step.
        let tolerance = period.as_secs_f64() * f64::from(burst);
        let period = period.as_secs_f64() * f64::from(cost.max(1));
        let allowed: Option<f64> = sqlx::query_scalar(
            "INSERT INTO send_allowance AS a (sender_id, tat)
             VALUES ($1, EXTRACT(EPOCH FROM now())::float8 + $2)
             ON CONFLICT (sender_id) DO UPDATE
                SET tat = GREATEST(a.tat, EXTRACT(EPOCH FROM now())::float8) + $2
                WHERE GREATEST(a.tat, EXTRACT(EPOCH FROM now())::float8) + $2 - $3
                      <= EXTRACT(EPOCH FROM now())::float8
             RETURNING tat",
        )
        .bind(sender)
        .bind(period)
        .bind(tolerance)
        .fetch_optional(&self.pool)
        .await?;
        if allowed.is_some() {
            return Ok(None);
        }
        let wait: Option<f64> = sqlx::query_scalar(
            "SELECT tat + $2 - $3 - EXTRACT(EPOCH FROM now())::float8
             FROM send_allowance WHERE sender_id = $1",
        )
        .bind(sender)
        .bind(period)
        .bind(tolerance)
        .fetch_optional(&self.pool)
        .await?;
        Ok(Some(Duration::from_secs_f64(
            wait.unwrap_or(period).clamp(0.0, 86_400.0),
        )))
    }

    /// Forget senders whose allowance is full again (keeps the shared
    /// rate limit's table to recent senders).
    pub async fn prune_send_allowance(&self) -> Result<u64, sqlx::Error> {
        let done =
            sqlx::query("DELETE FROM send_allowance WHERE tat < EXTRACT(EPOCH FROM now())::float8")
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// Record a new API key (its SHA-256, never the key) and return its id.
    /// A name already taken is `Ok(None)`.
    pub async fn create_key(
        &self,
        name: &str,
        key_hash: &str,
        scopes: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "INSERT INTO api_keys (name, key_hash, scopes, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(key_hash)
        .bind(scopes)
        .bind(Utc::now().to_rfc3339())
        .fetch_optional(&self.pool)
        .await
    }

    /// Every API key, revoked ones included, oldest first.
    pub async fn keys(&self) -> Result<Vec<ApiKey>, sqlx::Error> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(api_key).collect()
    }

    /// The key whose SHA-256 is `key_hash`, unless it was revoked.
    pub async fn live_key(&self, key_hash: &str) -> Result<Option<ApiKey>, sqlx::Error> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(api_key).transpose()
    }

    /// The name of key `id`, revoked or not (records it sent before its
    /// revocation still name it).
    pub async fn key_name(&self, id: i64) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT name FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Revoke the key named `name_or_id` (its name, or its id); false when
    /// there is no such live key. Every instance refuses it from the next
    /// request on: keys are checked against the store on each use.
    pub async fn revoke_key(&self, name_or_id: &str) -> Result<bool, sqlx::Error> {
        let id: i64 = name_or_id.parse().unwrap_or(-1);
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1
             WHERE (name = $2 OR id = $3) AND revoked_at IS NULL",
        )
        .bind(Utc::now().to_rfc3339())
        .bind(name_or_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Claim `Idempotency-Key` `key` of `sender` for a request hashing to
    /// `request_hash`. A claim older than `expired_before` (RFC 3339) is
    /// taken over. Answers [`Claim::New`] for a first use, [`Claim::Retry`]
    /// when the same request came before, [`Claim::Conflict`] when another
    /// request used the key.
    pub async fn claim_idempotency(
        &self,
        sender: &str,
        key: &str,
        request_hash: &str,
        expired_before: &str,
    ) -> Result<Claim, sqlx::Error> {
        let claimed: Option<String> = sqlx::query_scalar(
            "INSERT INTO idempotency_keys (sender, key, request_hash, created_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (sender, key) DO UPDATE
                SET request_hash = excluded.request_hash, created_at = excluded.created_at
                WHERE idempotency_keys.created_at < $5
             RETURNING request_hash",
        )
        .bind(sender)
        .bind(key)
        .bind(request_hash)
        .bind(Utc::now().to_rfc3339())
        .bind(expired_before)
        .fetch_optional(&self.pool)
        .await?;
        if claimed.is_some() {
            return Ok(Claim::New);
        }
        let earlier: Option<String> = sqlx::query_scalar(
            "SELECT request_hash FROM idempotency_keys WHERE sender = $1 AND key = $2",
        )
        .bind(sender)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match earlier {
            Some(h) if h == request_hash => Claim::Retry,
            // Gone between the two statements (pruned): a first use.
            None => Claim::New,
            Some(_) => Claim::Conflict,
        })
    }

    /// Forget `Idempotency-Key`s claimed before `expired_before`.
    pub async fn prune_idempotency(&self, expired_before: &str) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(expired_before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Prove the store takes writes (for readiness): rewrite one row.
    pub async fn check_writable(&self) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO readiness (id, checked_at) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(Utc::now().to_rfc3339())
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Close the pools, waiting for running queries.
    pub async fn close(&self) {
        self.writes.close().await;
        self.pool.close().await;
    }
}

/// Open a SQLite file through the Any driver: the shared pool, and the
/// writer's pool of one connection (the same pool for an in-memory
/// database, which exists once per connection). The Any driver takes only
/// a URL, so the settings that `SqliteConnectOptions` would carry are
/// applied per connection.
async fn open_sqlite(url: &str) -> Result<(AnyPool, AnyPool), StartError> {
    let options = SqliteConnectOptions::from_str(url)?;
    let file = options.get_filename();
    let in_memory = file == Path::new(":memory:");
    // Notifications are private: what Herald creates, only its user may
    // read (SQLite gives the -wal and -shm files the database's mode).
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !in_memory {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    // Create the file when missing, unless the URL chose a mode itself.
    let url = if url.contains("mode=") {
        url.to_owned()
    } else {
        if !in_memory {
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(file);
            match created {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e.into()),
                _ => {}
            }
        }
        if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        }
    };
    let options = |max| {
        AnyPoolOptions::new()
            .max_connections(max)
            // sqlx pings a pooled connection before handing it out, one
            // more trip to SQLite's thread per query; a connection to a
            // local file cannot have been dropped by the other end.
            .test_before_acquire(false)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets the API read while the consumer writes. FULL
                    // sync: an offset is committed to Kafka right after the
                    // write, so the write must survive a power cut, not just a
                    // process crash. Temporary storage in memory: each
                    // statement of a transaction of several keeps a
                    // statement journal (to undo it alone if a row fails),
                    // and past 64 KiB SQLite spills it to a temporary file,
                    // one `pwrite` per page (more system calls than the
                    // database's own writes; docs/bench/cost.md). It holds
                    // at most the pages one statement changes.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA busy_timeout = 5000; PRAGMA temp_store = MEMORY;",
                    )
                    .await?;
                    Ok(())
                })
            })
    };
    let pool = options(8).connect(&url).await?;
    let writes = if in_memory {
        pool.clone()
    } else {
        // Lazily: the migrations run on the shared pool first.
        options(1).connect_lazy(&url)?
    };
    Ok((pool, writes))
}

/// Most ids in one `SELECT ... IN (...)`.
const ID_LIST_MAX: usize = 500;

/// The sizes of the `INSERT`s of notifications a larger batch is cut into
/// on SQLite, largest first: as many rows as fit go into a statement of the
/// largest size, and so on; fewer rows than the smallest go into a
/// statement of exactly their number. Why:
/// - few statement texts (these six and the fifteen below the smallest),
///   so the writer's connection compiles each once and keeps it cached: a
///   statement of exactly each batch's size was a new text almost every
///   time, and compiling it cost 5 % of Herald's CPU per send;
/// - no padding: filling a larger statement with copies of the last row
///   (which `ON CONFLICT (id) DO NOTHING` skipped) cost every copy's
///   bindings and a conflict check: 4 % more instructions per notification
///   for 322 rows in a statement of 384 than in three exact ones, and 193
///   rows in a statement of 256 cost 15 % more per row than 256 rows
///   (`examples/store_insert.rs`, docs/bench/cost.md);
/// - few statements: at most six for a batch of up to 500 rows (what the
///   consumer and early delivery write, `consumer::BATCH_MAX`).
///   Each is one more round trip to sqlx's SQLite thread, and a few more
///   B-tree descents. 322 rows in three statements (256, 64, 2) cost 5 %
///   more instructions per row than 256 rows in one (measured while each
///   statement still kept a statement journal; see [`insert_rows`]).
///
/// 512 rows of 15 parameters stay under SQLite's 32,766.
const INSERT_SIZES: [usize; 6] = [512, 256, 128, 64, 32, 16];

/// Most rows in one `INSERT` on PostgreSQL (15 parameters each, well
/// under its 65,535).
const PG_INSERT_CHUNK: usize = 500;

/// How `rows` rows are stored: how many rows each statement takes.
fn statement_plan(backend: Backend, rows: usize) -> Vec<usize> {
    let mut plan = Vec::new();
    let mut left = rows;
    while left > 0 {
        let take = match backend {
            // Exact sizes: each more statement is another round trip inside
            // the transaction, and the fixed sizes were measured on SQLite.
            Backend::Postgres => left.min(PG_INSERT_CHUNK),
            Backend::Sqlite => INSERT_SIZES
                .into_iter()
                .find(|size| *size <= left)
                .unwrap_or(left),
        };
        plan.push(take);
        left -= take;
    }
    plan
}

/// SQL text and its arguments, built together, with the placeholders the
/// backend wants: `$N` for PostgreSQL (sqlx's `QueryBuilder` writes `?` for
/// the Any driver, which PostgreSQL does not take) and `?` for SQLite (it
/// takes `$N` too, but binding named parameters costs a scan of all of
/// them each: a 5,500-parameter batch insert spent a quarter of Herald's
/// CPU there, measured with perf).
///
/// Arguments may borrow for `'q`: sqlx's `Any` encodes an owned `String` by
/// cloning it (it has no by-value encoding), so a borrowed `&str` saves a
/// copy of every text argument.
struct Sql<'q> {
    text: String,
    args: AnyArguments<'q>,
    numbered: bool,
    error: Option<sqlx::error::BoxDynError>,
}

impl<'q> Sql<'q> {
    fn new(backend: Backend, text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: AnyArguments::default(),
            numbered: backend == Backend::Postgres,
            error: None,
        }
    }

    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// `(a, b, …)`, each of `ids` bound, for an `IN`. The last id is
    /// repeated up to the next power of two (an `IN` list means the same
    /// with it twice): a statement text per list length would otherwise
    /// be compiled anew whenever a length drops out of sqlx's cache.
    fn list<T>(&mut self, ids: &[T]) -> &mut Self
    where
        T: 'q + Copy + Send + Encode<'q, Any> + Type<Any>,
    {
        self.list_of(ids, 1)
    }

    /// [`Self::list`], at least `len` long: a query with two lists would
    /// otherwise have a text per pair of lengths.
    fn list_of<T>(&mut self, ids: &[T], len: usize) -> &mut Self
    where
        T: 'q + Copy + Send + Encode<'q, Any> + Type<Any>,
    {
        let Some(&last) = ids.last() else {
            // `IN ()` is no SQL; `IN (NULL)` matches nothing.
            return self.push("(NULL)");
        };
        let padded = ids.len().max(len).next_power_of_two();
        let last = std::iter::repeat(last);
        for (i, id) in ids.iter().copied().chain(last).take(padded).enumerate() {
            self.push(if i == 0 { "(" } else { ", " }).bind(id);
        }
        self.push(")")
    }

    fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'q + Send + Encode<'q, Any> + Type<Any>,
    {
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e);
        }
        if self.numbered {
            let _ = write!(self.text, "${}", self.args.len());
        } else {
            self.text.push('?');
        }
        self
    }

    async fn fetch_all(self, conn: &mut AnyConnection) -> Result<Vec<AnyRow>, sqlx::Error> {
        if let Some(e) = self.error {
            return Err(sqlx::Error::Encode(e));
        }
        sqlx::query_with(&self.text, self.args)
            .fetch_all(conn)
            .await
    }
}

/// The texts an `INSERT` of `rows` binds that the rows do not hold as
/// such. Made before the statement and outliving it, so they are bound by
/// reference like the rest (see [`Sql`]).
struct RowTexts {
    stamps: Vec<String>,
    actions: Vec<Option<String>>,
}

impl RowTexts {
    fn of(rows: &[&(Notification, Source)]) -> Self {
        Self {
            stamps: rows
                .iter()
                .map(|(n, _)| n.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                .collect(),
            actions: rows
                .iter()
                .map(|(n, _)| {
                    (!n.actions.is_empty())
                        .then(|| serde_json::to_string(&n.actions).ok())
                        .flatten()
                })
                .collect(),
        }
    }
}

/// Append one `INSERT` of `rows` to `q` (no conflict clause on
/// PostgreSQL: the caller adds it).
fn push_insert<'q>(
    q: &mut Sql<'q>,
    backend: Backend,
    rows: &[&'q (Notification, Source)],
    texts: &'q RowTexts,
) {
    // SQLite: `OR IGNORE` rather than `ON CONFLICT (id) DO NOTHING`. Both
    // skip a row whose id is stored, but with the latter every `NOT NULL`
    // column may still abort the statement, so SQLite keeps a statement
    // journal (a copy of each page the statement changes, to undo it
    // alone): 3 % of the instructions of storing a notification
    // (`examples/store_insert.rs`, docs/bench/cost.md). `OR IGNORE` would
    // also skip a row with a NULL in such a column, or one that broke
    // another unique key, but neither can happen: the columns bound below
    // from `Option`s are the nullable ones, and besides `seq` (which
    // SQLite assigns) `id` is the table's only unique key.
    q.push(match backend {
        Backend::Sqlite => "INSERT OR IGNORE INTO notifications",
        Backend::Postgres => "INSERT INTO notifications",
    })
    .push(
        "
            (id, recipient_id, recipient_name, sender_id, sender_name, message,
             created_at, kafka_partition, kafka_offset, category, priority,
             sender_kind, title, link, actions) VALUES ",
    );
    for (i, (n, src)) in rows.iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" });
        q.bind(n.id.as_str()).push(", ");
        q.bind(n.to.id).push(", ");
        q.bind(n.to.name.as_str()).push(", ");
        q.bind(n.from.id).push(", ");
        q.bind(n.from.name.as_str()).push(", ");
        q.bind(n.message.as_str()).push(", ");
        q.bind(texts.stamps[i].as_str()).push(", ");
        q.bind(src.partition).push(", ");
        q.bind(src.offset).push(", ");
        q.bind(n.category.as_str()).push(", ");
        q.bind(i64::from(n.priority)).push(", ");
        let kind = if n.from_service {
            SERVICE_SENDER
        } else {
            "user"
        };
        q.bind(kind).push(", ");
        q.bind(n.title.as_deref()).push(", ");
        q.bind(n.link.as_deref()).push(", ");
        q.bind(texts.actions[i].as_deref()).push(")");
    }
}

/// One `INSERT` of `rows` (see [`statement_plan`]). Records the `seq` of
/// each row it stored.
///
/// PostgreSQL says which rows it stored with `RETURNING`. SQLite is told
/// not to: sqlx's worker thread hands each returned row to the async side
/// on its own through a channel, where it is decoded and matched by id,
/// 18 % of the instructions of storing a notification
/// (`examples/store_insert.rs`, docs/bench/cost.md). It answers two rows
/// instead, however many it inserts: the highest `seq` before the
/// insert, and after it the number of rows stored and the last one's
/// `seq`. The batch's transaction holds the write lock
/// ([`Store::begin_write`]), so the rows this statement stored are those
/// above the first figure. When all of `rows` were stored (the usual case:
/// no redelivery, no id twice in the batch), they took consecutive `seq`s
/// in statement order, ending at the last one's, and nothing more is read.
/// Not necessarily the `seq`s right after the first figure:
/// `AUTOINCREMENT` spends a `seq` on every row it tries, so a row skipped
/// as already stored leaves a gap, and the next statement's rows start
/// above it. Otherwise a third query reads the new rows' ids.
/// Returns that first figure (SQLite only), from which [`count_new_rows`]
/// counts the batch's new rows.
async fn insert_rows<'a>(
    backend: Backend,
    conn: &mut AnyConnection,
    rows: &[&'a (Notification, Source)],
    inserted: &mut HashMap<&'a str, i64>,
) -> Result<Option<i64>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(None);
    }
    let texts = RowTexts::of(rows);
    let mut q = Sql::new(
        backend,
        match backend {
            Backend::Sqlite => "SELECT COALESCE(MAX(seq), 0) FROM notifications; ",
            Backend::Postgres => "",
        },
    );
    push_insert(&mut q, backend, rows, &texts);
    let (returned, before) = match backend {
        Backend::Postgres => {
            q.push(" ON CONFLICT (id) DO NOTHING RETURNING id, seq");
            (q.fetch_all(conn).await?, None)
        }
        Backend::Sqlite => {
            q.push("; SELECT changes(), last_insert_rowid()");
            let figures = q.fetch_all(conn).await?;
            let [before, after] = &figures[..] else {
                return Err(sqlx::Error::Protocol(format!(
                    "a batch insert answered {} rows, not 2",
                    figures.len()
                )));
            };
            let before: i64 = before.try_get(0)?;
            if stored_consecutively(rows, before, after, inserted)? {
                return Ok(Some(before));
            }
            let returned = sqlx::query("SELECT id, seq FROM notifications WHERE seq > ?")
                .bind(before)
                .fetch_all(conn)
                .await?;
            (returned, Some(before))
        }
    };
    match_returned(&returned, rows, inserted)?;
    Ok(before)
}

/// SQLite, a batch one `INSERT` takes (under 16 rows, or one of
/// [`INSERT_SIZES`]): its whole transaction in one round trip to SQLite's
/// thread instead of four (`BEGIN`, the insert, the counting, `COMMIT`).
/// At a few thousand sends a second early delivery commits a few rows at a
/// time, and each round trip puts SQLite's thread to sleep and wakes a
/// tokio worker.
///
/// The counting cannot be given where the batch starts, as
/// [`count_new_rows`] is: that is read in the same round trip. It counts
/// instead the rows of the batch's ids with the highest `seq`s, as many as
/// the insert stored (`changes()`, which the `SELECT` between them leaves
/// alone): each id is stored once, and this transaction's rows are above
/// every older one. Then the counts of `watched`, and `COMMIT`.
async fn insert_in_one_trip<'a>(
    writes: &AnyPool,
    rows: &[&'a (Notification, Source)],
    watched: &[i64],
    inserted: &mut HashMap<&'a str, i64>,
) -> Result<Vec<(i64, Counts)>, sqlx::Error> {
    let texts = RowTexts::of(rows);
    let ids: Vec<&str> = rows.iter().map(|(n, _)| n.id.as_str()).collect();
    let mut q = Sql::new(
        Backend::Sqlite,
        "BEGIN IMMEDIATE; SELECT COALESCE(MAX(seq), 0) FROM notifications; ",
    );
    push_insert(&mut q, Backend::Sqlite, rows, &texts);
    q.push("; SELECT changes(), last_insert_rowid(); ")
        .push(COUNT_ADD)
        .push(
            " FROM (SELECT recipient_id, read_at, archived_at, deleted_at
               FROM notifications WHERE id IN ",
        )
        .list(&ids)
        .push(" ORDER BY seq DESC LIMIT changes())")
        .push(COUNT_ADD_END);
    if !watched.is_empty() {
        // As long as the ids' list (a batch's watched recipients are
        // among its recipients): one text per batch size, not one per
        // size and number watched.
        q.push("; ").push(COUNTS_IN).list_of(watched, ids.len());
    }
    q.push("; COMMIT");
    let mut conn = OpenTransaction {
        conn: writes.acquire().await?,
        committed: false,
    };
    let figures = q.fetch_all(&mut conn.conn).await?;
    conn.committed = true;
    let [before, after, counted @ ..] = &figures[..] else {
        return Err(sqlx::Error::Protocol(format!(
            "a batch's transaction answered {} rows, not at least 2",
            figures.len()
        )));
    };
    let before: i64 = before.try_get(0)?;
    if !stored_consecutively(rows, before, after, inserted)? {
        let mut q = Sql::new(
            Backend::Sqlite,
            "SELECT id, seq FROM notifications WHERE seq > ",
        );
        q.bind(before).push(" AND id IN ").list(&ids);
        match_returned(&q.fetch_all(&mut conn.conn).await?, rows, inserted)?;
    }
    counted.iter().map(counts_row).collect()
}

/// A pooled connection whose query began a transaction and ends it with
/// `COMMIT` ([`insert_in_one_trip`]). sqlx stops at the first statement
/// that fails, and when the query's future is dropped before it read every
/// answer, so the `COMMIT` may never have run. Unless `committed`, the
/// connection is closed (SQLite rolls back) instead of going back to the
/// pool, where the next write would begin inside the old transaction.
struct OpenTransaction {
    conn: PoolConnection<Any>,
    committed: bool,
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if !self.committed {
            self.conn.close_on_drop();
        }
    }
}

/// SQLite, after an `INSERT` of `rows` answered `figures` (`changes()`,
/// `last_insert_rowid()`) with the highest `seq` `before` it: when it
/// stored all of them (the usual case: no redelivery, no id twice), they
/// took consecutive `seq`s in statement order ending at the last one's;
/// records those and says so. Otherwise (`false`) the caller reads them.
fn stored_consecutively<'a>(
    rows: &[&'a (Notification, Source)],
    before: i64,
    figures: &AnyRow,
    inserted: &mut HashMap<&'a str, i64>,
) -> Result<bool, sqlx::Error> {
    let (stored, last): (i64, i64) = (figures.try_get(0)?, figures.try_get(1)?);
    let all = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    if stored != all || last - all < before {
        return Ok(false);
    }
    for (seq, (n, _)) in (last - all + 1..).zip(rows) {
        inserted.insert(n.id.as_str(), seq);
    }
    Ok(true)
}

/// Record the `seq` of each of `rows` found among `returned` (`id`, `seq`
/// rows, matched by id: the order of `RETURNING`'s rows is unspecified).
fn match_returned<'a>(
    returned: &[AnyRow],
    rows: &[&'a (Notification, Source)],
    inserted: &mut HashMap<&'a str, i64>,
) -> Result<(), sqlx::Error> {
    let mut ids = HashMap::with_capacity(returned.len());
    for r in returned {
        ids.insert(r.try_get::<String, _>("id")?, r.try_get::<i64, _>("seq")?);
    }
    for (n, _) in rows {
        if let Some(seq) = ids.get(&n.id) {
            inserted.entry(n.id.as_str()).or_insert(*seq);
        }
    }
    Ok(())
}

/// SQLite: add the rows stored after `seq` `before` (this transaction's) to
/// their recipients' counts, one row per recipient, in the transaction
/// that stored them. PostgreSQL's statement trigger does the same
/// (`migrations/postgres/0001_schema.sql`); SQLite's triggers run once per
/// row, and that one cost a fifth of the instructions of storing a
/// notification (`migrations/sqlite/0009_batch_counts.sql`).
///
/// `NOT INDEXED`: for the `GROUP BY`, SQLite's planner otherwise reads the
/// whole of `notifications_by_recipient` instead of the new rows (found
/// with `EXPLAIN QUERY PLAN`; a batch then cost more the larger the table).
///
/// Then, in the same round trip to SQLite's thread, the counts of those of
/// `watched` that have any: after the batch, since its transaction holds
/// the write lock.
async fn count_new_rows(
    conn: &mut AnyConnection,
    before: i64,
    watched: &[i64],
) -> Result<Vec<(i64, Counts)>, sqlx::Error> {
    let mut q = Sql::new(Backend::Sqlite, COUNT_ADD);
    q.push(" FROM notifications NOT INDEXED WHERE seq > ")
        .bind(before)
        .push(COUNT_ADD_END);
    if !watched.is_empty() {
        q.push("; ").push(COUNTS_IN).list(watched);
    }
    q.fetch_all(conn).await?.iter().map(counts_row).collect()
}

/// The head of the statement that adds new rows to their recipients'
/// counts ([`count_new_rows`], [`insert_in_one_trip`]): the rows to count
/// follow, then [`COUNT_ADD_END`].
const COUNT_ADD: &str = "INSERT INTO inbox_counts (user_id, unread, total, version)
     SELECT recipient_id,
            SUM(read_at IS NULL AND archived_at IS NULL AND deleted_at IS NULL),
            SUM(archived_at IS NULL AND deleted_at IS NULL),
            COUNT(*)";

/// The end of [`COUNT_ADD`]'s statement.
const COUNT_ADD_END: &str = " GROUP BY recipient_id
     ON CONFLICT (user_id) DO UPDATE SET
         unread  = unread + excluded.unread,
         total   = total + excluded.total,
         version = version + excluded.version";

/// The counts of the inboxes whose users follow (an `IN` list, see
/// [`Sql::list`]), each as a row for [`counts_row`].
const COUNTS_IN: &str =
    "SELECT user_id, unread, total, version FROM inbox_counts WHERE user_id IN ";

/// A user's counts from a row of `inbox_counts` ([`COUNTS_IN`]).
fn counts_row(row: &AnyRow) -> Result<(i64, Counts), sqlx::Error> {
    let counts = Counts {
        unread: row.try_get("unread")?,
        total: row.try_get("total")?,
        version: row.try_get("version")?,
    };
    Ok((row.try_get("user_id")?, counts))
}

async fn page_on(
    backend: Backend,
    conn: &mut AnyConnection,
    user_id: i64,
    filter: &ListFilter,
    before_seq: Option<i64>,
    limit: u32,
) -> Result<StoredPage, sqlx::Error> {
    let mut q = Sql::new(backend, "SELECT * FROM notifications WHERE recipient_id = ");
    q.bind(user_id)
        .push(" AND deleted_at IS NULL AND archived_at IS ")
        .push(if filter.archived { "NOT NULL" } else { "NULL" });
    if filter.unread {
        q.push(" AND read_at IS NULL");
    }
    if let Some(c) = filter.category {
        q.push(" AND category = ").bind(c.as_str().to_owned());
    }
    if let Some(p) = filter.min_priority {
        q.push(" AND priority >= ").bind(i64::from(p));
    }
    if let Some(seq) = before_seq {
        q.push(" AND seq < ").bind(seq);
    }
    // One more than asked tells whether there is a next page.
    q.push(" ORDER BY seq DESC LIMIT ")
        .bind(i64::from(limit) + 1);
    let rows = q.fetch_all(conn).await?;
    let more = rows.len() > limit as usize;
    let rows = rows
        .iter()
        .take(limit as usize)
        .map(decode)
        .collect::<Result<_, _>>()?;
    Ok(StoredPage { rows, more })
}

async fn counts_on(conn: &mut AnyConnection, user_id: i64) -> Result<Counts, sqlx::Error> {
    let row: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT unread, total, version FROM inbox_counts WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row
        .map(|(unread, total, version)| Counts {
            unread,
            total,
            version,
        })
        .unwrap_or_default())
}

/// Hand `news` to every instance's listener, delivered when (and only if)
/// the surrounding transaction succeeds.
async fn announce(conn: &mut AnyConnection, news: &Announcement) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT herald_announce($1)")
        .bind(news.to_payload())
        .fetch_one(conn)
        .await
        .map(|_| ())
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whether `text` can be stored at all: PostgreSQL's text cannot hold NUL
/// (the statement fails). No stored id contains one, so a lookup of such
/// an id finds nothing; the consumer sends records with one to the
/// dead-letter topic.
pub fn storable(text: &str) -> bool {
    !text.contains('\0')
}

fn decode(r: &AnyRow) -> Result<Stored, sqlx::Error> {
    let bad =
        |column: &str, e: Box<dyn std::error::Error + Send + Sync>| sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: e,
        };
    let created: String = r.try_get("created_at")?;
    let created_at = DateTime::parse_from_rfc3339(&created)
        .map_err(|e| bad("created_at", Box::new(e)))?
        .with_timezone(&Utc);
    let priority: i64 = r.try_get("priority")?;
    let category: String = r.try_get("category")?;
    Ok(Stored {
        seq: r.try_get("seq")?,
        notification: Notification {
            id: r.try_get("id")?,
            from: User {
                id: r.try_get("sender_id")?,
                name: r.try_get("sender_name")?,
            },
            to: User {
                id: r.try_get("recipient_id")?,
                name: r.try_get("recipient_name")?,
            },
            message: r.try_get("message")?,
            created_at,
            category: Category::parse(&category).unwrap_or_default(),
            priority: u8::try_from(priority).map_err(|e| bad("priority", Box::new(e)))?,
            read: r.try_get::<Option<String>, _>("read_at")?.is_some(),
            archived: r.try_get::<Option<String>, _>("archived_at")?.is_some(),
            from_service: r.try_get::<String, _>("sender_kind")? == SERVICE_SENDER,
            title: r.try_get("title")?,
            link: r.try_get("link")?,
            actions: match r.try_get::<Option<String>, _>("actions")? {
                None => Vec::new(),
                Some(text) => {
                    serde_json::from_str(&text).map_err(|e| bad("actions", Box::new(e)))?
                }
            },
        },
    })
}

/// What [`Store::claim_idempotency`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key was free (or expired): this is the first request.
    New,
    /// The same request came with this key before: a retry.
    Retry,
    /// Another request used this key.
    Conflict,
}

/// One API key as stored (without the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id: the sender id of its notifications.
    pub id: i64,
    /// Its name: the sender name of its notifications.
    pub name: String,
    /// Comma-separated scopes (`send`, `users`).
    pub scopes: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

fn api_key(r: &AnyRow) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        scopes: r.try_get("scopes")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// `sender_kind` of a notification a service (an API key) sent.
const SERVICE_SENDER: &str = "service";

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::Category;

    #[tokio::test]
    async fn a_new_sqlite_file_and_its_directory_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new-dir").join("herald.db");
        let store = Store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        store.check_writable().await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(db.parent().unwrap()), 0o700, "directory");
        assert_eq!(mode(&db), 0o600, "database");
        let wal = db.with_extension("db-wal");
        assert_eq!(mode(&wal), 0o600, "write-ahead log");
        store.close().await;
    }

    fn n(id: &str, to: i64) -> Notification {
        let base = Notification::example(id, &format!("message {id}"));
        Notification {
            to: User { id: to, ..base.to },
            category: Category::Alert,
            priority: 5,
            ..base
        }
    }

    fn src(offset: i64) -> Source {
        Source {
            partition: 0,
            offset,
        }
    }

    /// The same store on each backend.
    async fn stores(dir: &tempfile::TempDir) -> Vec<Store> {
        let mut stores = Vec::new();
        for url in crate::test_support::both_backends(dir.path()).await {
            stores.push(Store::open(&url).await.unwrap());
        }
        stores
    }

    #[tokio::test]
    async fn a_batch_stores_each_id_once_and_reports_seqs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for store in stores(&dir).await {
            batch_ids_once(&store).await;
        }
    }

    async fn batch_ids_once(store: &Store) {
        let batch = [(n("a", 1), src(0)), (n("b", 1), src(1))];
        let first = store.insert_batch(&batch).await.unwrap();
        assert!(first.iter().all(Option::is_some));
        assert!(first[0] < first[1], "seqs follow the batch order");
        reported_as_stored(store, &batch, &first).await;
        // "a" again (redelivery), "c" twice in one batch: each stored once.
        let batch = [
            (n("a", 1), src(0)),
            (n("c", 1), src(2)),
            (n("c", 1), src(2)),
        ];
        let second = store.insert_batch(&batch).await.unwrap();
        assert_eq!(second[0], None);
        assert!(second[1].is_some());
        assert_eq!(second[2], None);
        reported_as_stored(store, &batch, &second).await;
        let counts = store.counts(1).await.unwrap();
        assert_eq!((counts.unread, counts.total), (3, 3));
        let page = store
            .page(1, &ListFilter::default(), None, 10)
            .await
            .unwrap();
        let ids: Vec<&str> = page
            .rows
            .iter()
            .map(|s| s.notification.id.as_str())
            .collect();
        assert_eq!(ids, ["c", "b", "a"]);
        assert_eq!(page.rows[0].notification.category, Category::Alert);
        assert_eq!(page.rows[0].notification.priority, 5);
        // Recipients out of order (rows go in sorted by recipient): each
        // send still gets its own row's seq.
        let batch = [
            (n("d", 4), src(3)),
            (n("e", 1), src(4)),
            (n("f", 3), src(5)),
            (n("g", 1), src(6)),
        ];
        let third = store.insert_batch(&batch).await.unwrap();
        assert!(third.iter().all(Option::is_some));
        reported_as_stored(store, &batch, &third).await;
    }

    /// A batch whose transaction fails halfway stores nothing, and leaves
    /// no transaction open on the writer's connection (the next write would
    /// begin inside it and fail, and so would every write after it). SQLite
    /// only: its one-round-trip write begins and commits its transaction
    /// inside the query, while PostgreSQL's goes through sqlx's
    /// transactions; the failure is a SQLite trigger.
    #[tokio::test]
    async fn a_batch_that_fails_halfway_stores_nothing_and_the_next_one_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&crate::test_support::sqlite_database(dir.path()))
            .await
            .unwrap();
        // Counting a notification for user 666 fails, after its row went in.
        sqlx::query(
            "CREATE TRIGGER fail_for_666 BEFORE INSERT ON inbox_counts
             WHEN NEW.user_id = 666 BEGIN SELECT RAISE(ABORT, 'no counts for 666'); END",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        for attempt in 0..3 {
            let bad = [(n(&format!("bad{attempt}"), 666), src(attempt))];
            let err = store.insert_batch(&bad).await.unwrap_err();
            assert!(err.to_string().contains("no counts for 666"), "{err}");
            let good = [(n(&format!("good{attempt}"), 1), src(100 + attempt))];
            let seqs = store.insert_batch(&good).await.unwrap();
            assert!(seqs[0].is_some());
        }
        assert!(store.get(666, "bad0").await.unwrap().is_none());
        assert_eq!(store.counts(1).await.unwrap().total, 3);
    }

    #[tokio::test]
    async fn batches_larger_than_a_chunk_are_stored_whole() {
        let dir = tempfile::tempdir().unwrap();
        for store in stores(&dir).await {
            large_batches(&store).await;
        }
    }

    #[test]
    fn id_lists_come_in_few_lengths_and_never_empty() {
        let text = |ids: &[i64]| {
            let mut q = Sql::new(Backend::Sqlite, "IN ");
            q.list(ids);
            (q.text, q.args.len())
        };
        assert_eq!(text(&[]), ("IN (NULL)".to_owned(), 0));
        assert_eq!(text(&[7]), ("IN (?)".to_owned(), 1));
        assert_eq!(text(&[7, 8, 9]), ("IN (?, ?, ?, ?)".to_owned(), 4));
        for n in 1..=ID_LIST_MAX {
            let ids: Vec<i64> = (0..n as i64).collect();
            assert_eq!(text(&ids).1, n.next_power_of_two());
        }
        // A list as long as another: the watched recipients of a batch of
        // 5 are bound 8 times, however many of them there are.
        for watched in [&[3_i64][..], &[3, 4], &[3, 4, 5, 6, 7]] {
            let mut q = Sql::new(Backend::Sqlite, "IN ");
            q.list_of(watched, 5);
            assert_eq!(q.args.len(), 8);
        }
    }

    #[test]
    fn a_batch_is_a_few_statements_of_few_sizes() {
        let sqlite = |rows| statement_plan(Backend::Sqlite, rows);
        assert_eq!(sqlite(0), [0_usize; 0]);
        assert_eq!(sqlite(1), [1]);
        assert_eq!(sqlite(16), [16]);
        assert_eq!(sqlite(21), [16, 5]);
        assert_eq!(sqlite(322), [256, 64, 2]);
        assert_eq!(sqlite(600), [512, 64, 16, 8]);
        let smallest = INSERT_SIZES[INSERT_SIZES.len() - 1];
        for rows in 0..2_000 {
            let plan = sqlite(rows);
            assert_eq!(plan.iter().sum::<usize>(), rows);
            assert!(plan.len() <= rows / 512 + 6, "{rows}: {plan:?}");
            assert!(plan.windows(2).all(|w| w[0] >= w[1]), "{rows}: {plan:?}");
            // Every statement but the last has one of the sizes; the last
            // may be smaller than the smallest.
            for (i, &take) in plan.iter().enumerate() {
                assert!(
                    INSERT_SIZES.contains(&take) || (take < smallest && i == plan.len() - 1),
                    "{rows}: {plan:?}"
                );
            }
            let pg = statement_plan(Backend::Postgres, rows);
            assert_eq!(pg.iter().sum::<usize>(), rows);
            assert_eq!(pg.len(), rows.div_ceil(PG_INSERT_CHUNK));
        }
    }

    async fn large_batches(store: &Store) {
        // Three statements of 512 rows in one transaction, then two
        // smaller ones (16 and 5 rows on SQLite).
        let batch: Vec<_> = (0..INSERT_SIZES[0] as i64 * 3 + 21)
            .map(|i| (n(&format!("n{i}"), 3), src(i)))
            .collect();
        let seqs = store.insert_batch(&batch).await.unwrap();
        assert!(seqs.iter().all(Option::is_some));
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        reported_as_stored(store, &batch, &seqs).await;
        assert_eq!(store.counts(3).await.unwrap().total, batch.len() as i64);
        // A batch whose last row (rows go in by recipient) is already
        // stored: that row stores nothing and counts nothing.
        let mut batch: Vec<_> = (0..39)
            .map(|i| (n(&format!("p{i}"), 4), src(2_000 + i)))
            .collect();
        batch.push((n("n0", 9), src(0)));
        let seqs = store.insert_batch(&batch).await.unwrap();
        assert!(seqs[..39].iter().all(Option::is_some));
        assert_eq!(seqs[39], None);
        reported_as_stored(store, &batch, &seqs).await;
        assert_eq!(store.counts(4).await.unwrap().total, 39);
        assert_eq!(store.counts(9).await.unwrap().total, 0);
        assert_eq!(store.counts(3).await.unwrap().total, 3 * 512 + 21);
        // Batches of new rows for two recipients, each after a row found
        // already stored: on SQLite that row spent a `seq`, which the next
        // statement's rows must not be reported under.
        for round in 0..3_i64 {
            let mut batch: Vec<_> = (0..29)
                .map(|i| {
                    let id = format!("q{round}-{i}");
                    (n(&id, [1, 2][i % 2]), src(3_000 + 29 * round + i as i64))
                })
                .collect();
            batch.push((n(&format!("n{}", round + 1), 9), src(round + 1)));
            let seqs = store.insert_batch(&batch).await.unwrap();
            assert!(seqs[..29].iter().all(Option::is_some));
            assert_eq!(seqs[29], None);
            reported_as_stored(store, &batch, &seqs).await;
        }
        assert_eq!(store.counts(1).await.unwrap().total, 3 * 15);
        assert_eq!(store.counts(2).await.unwrap().total, 3 * 14);
        assert_eq!(store.counts(9).await.unwrap().total, 0);
        // Several inboxes' counts in one read: each as read alone, in the
        // order asked, zeros for an inbox that holds nothing.
        let mut alone = Vec::new();
        for user in [2, 9, 1, 3] {
            alone.push((user, store.counts(user).await.unwrap()));
        }
        assert_eq!(store.counts_of(&[2, 9, 1, 3]).await.unwrap(), alone);
        assert_eq!(alone[1].1, Counts::default());
        // A write reads the counts of the watched recipients it stored
        // something for, as they are after it (SQLite; PostgreSQL's
        // writer reads none).
        let batch: Vec<_> = (0..5)
            .map(|i| (n(&format!("w{i}"), [1, 2][i % 2]), src(5_000 + i as i64)))
            .collect();
        let (seqs, mut counts) = store
            .insert_batch_counting(&batch, &[1, 2, 7])
            .await
            .unwrap();
        assert!(seqs.iter().all(Option::is_some));
        counts.sort_by_key(|(user, _)| *user);
        match store.backend {
            Backend::Sqlite => {
                let after = vec![
                    (1, store.counts(1).await.unwrap()),
                    (2, store.counts(2).await.unwrap()),
                ];
                assert_eq!(after[0].1.total, 3 * 15 + 3);
                assert_eq!(counts, after);
            }
            Backend::Postgres => assert!(counts.is_empty()),
        }
    }

    /// Each `seq` a batch insert reported is the one its notification was
    /// stored under (streams resume and order by it).
    async fn reported_as_stored(
        store: &Store,
        batch: &[(Notification, Source)],
        seqs: &[Option<i64>],
    ) {
        assert_eq!(batch.len(), seqs.len());
        for ((n, _), seq) in batch.iter().zip(seqs) {
            if let Some(seq) = seq {
                let stored = store.get(n.to.id, &n.id).await.unwrap().unwrap();
                assert_eq!(stored.seq, *seq, "the seq reported for {}", n.id);
            }
        }
    }

    fn ids(page: &StoredPage) -> Vec<&str> {
        page.rows
            .iter()
            .map(|s| s.notification.id.as_str())
            .collect()
    }

    #[tokio::test]
    async fn state_changes_move_counts_and_versions_in_the_same_write() {
        let dir = tempfile::tempdir().unwrap();
        for store in stores(&dir).await {
            state_changes(&store).await;
        }
    }

    async fn state_changes(store: &Store) {
        let batch: Vec<_> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, id)| (n(id, 1), src(i as i64)))
            .collect();
        store.insert_batch(&batch).await.unwrap();
        let start = store.counts(1).await.unwrap();
        assert_eq!((start.unread, start.total), (3, 3));

        let read = store
            .set_state("a", Some(true), None)
            .await
            .unwrap()
            .unwrap();
        assert!(read.stored.notification.read);
        let after_read = read.counts.expect("a change has counts");
        assert_eq!((after_read.unread, after_read.total), (2, 3));
        assert!(after_read.version > start.version);
        let again = store
            .set_state("a", Some(true), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.counts, None, "a no-op changes nothing");
        assert_eq!(store.counts(1).await.unwrap(), after_read);

        let archived = store
            .set_state("b", None, Some(true))
            .await
            .unwrap()
            .unwrap();
        let c = archived.counts.unwrap();
        assert_eq!((c.unread, c.total), (1, 2), "archived leaves the inbox");
        let inbox = store
            .page(1, &ListFilter::default(), None, 10)
            .await
            .unwrap();
        assert_eq!(ids(&inbox), ["c", "a"]);
        let only_archived = ListFilter {
            archived: true,
            ..ListFilter::default()
        };
        let shelf = store.page(1, &only_archived, None, 10).await.unwrap();
        assert_eq!(ids(&shelf), ["b"]);
        let unread = ListFilter {
            unread: true,
            ..ListFilter::default()
        };
        assert_eq!(ids(&store.page(1, &unread, None, 10).await.unwrap()), ["c"]);

        let (owner, c) = store.delete("c").await.unwrap().unwrap();
        assert_eq!(owner, 1);
        assert_eq!((c.unread, c.total), (0, 1));
        assert_eq!(store.delete("c").await.unwrap(), None, "deleted once");
        assert_eq!(store.owner_of("c").await.unwrap(), Some((1, true)));
        assert!(store.get(1, "c").await.unwrap().is_none());
        assert!(store
            .set_state("c", Some(false), None)
            .await
            .unwrap()
            .is_none());
        // A redelivered record cannot bring a deleted notification back.
        let redelivered = store.insert_batch(&[(n("c", 1), src(2))]).await.unwrap();
        assert_eq!(redelivered, [None]);

        store.set_state("a", Some(false), None).await.unwrap();
        let (through, c) = store.read_all(1).await.unwrap().unwrap();
        assert_eq!(through, "b", "the newest unread one, archived or not");
        assert_eq!(c.unread, 0);
        assert_eq!(
            store.read_all(1).await.unwrap(),
            None,
            "nothing left unread"
        );
        assert_eq!(
            store.counts(2).await.unwrap(),
            Counts::default(),
            "other inboxes untouched"
        );
    }

    #[tokio::test]
    async fn cursor_pages_are_stable_while_new_notifications_arrive() {
        let dir = tempfile::tempdir().unwrap();
        for store in stores(&dir).await {
            cursor_pages(&store).await;
        }
    }

    async fn cursor_pages(store: &Store) {
        let batch: Vec<_> = (0..10).map(|i| (n(&format!("p{i}"), 4), src(i))).collect();
        store.insert_batch(&batch).await.unwrap();
        let all = ListFilter::default();
        let first = store.page(4, &all, None, 4).await.unwrap();
        assert_eq!(ids(&first), ["p9", "p8", "p7", "p6"]);
        assert!(first.more);
        let newer: Vec<_> = (10..12).map(|i| (n(&format!("p{i}"), 4), src(i))).collect();
        store.insert_batch(&newer).await.unwrap();
        let (second, counts, newest) = store
            .snapshot(4, &all, Some("p6"), 4)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            ids(&second),
            ["p5", "p4", "p3", "p2"],
            "not shifted by new ones"
        );
        assert_eq!(counts.total, 12);
        assert_eq!(newest.as_deref(), Some("p11"));
        let last = store
            .snapshot(4, &all, Some("p2"), 4)
            .await
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(ids(&last), ["p1", "p0"]);
        assert!(!last.more);
        assert!(
            store
                .snapshot(4, &all, Some("p1"), 4)
                .await
                .unwrap()
                .is_some()
                && store
                    .snapshot(3, &all, Some("p1"), 4)
                    .await
                    .unwrap()
                    .is_none(),
            "a cursor is only valid in its owner's inbox"
        );
    }

    #[tokio::test]
    async fn streams_start_and_replay_from_a_position() {
        let dir = tempfile::tempdir().unwrap();
        for store in stores(&dir).await {
            stream_positions(&store).await;
        }
    }

    async fn stream_positions(store: &Store) {
        let (none, last, counts) = store.stream_start(1, Some("x")).await.unwrap();
        assert_eq!((none, last, counts), (None, 0, Counts::default()));
        let batch: Vec<_> = (0..5).map(|i| (n(&format!("s{i}"), 1), src(i))).collect();
        let seqs = store.insert_batch(&batch).await.unwrap();
        store
            .insert_batch(&[(n("other", 3), src(9))])
            .await
            .unwrap();
        let (resume, last, counts) = store.stream_start(1, Some("s1")).await.unwrap();
        assert_eq!(resume, seqs[1]);
        assert_eq!(Some(last), seqs[4]);
        assert_eq!(counts.total, 5);
        let rest = store.after(1, resume.unwrap(), None, 100).await.unwrap();
        let rest: Vec<&str> = rest.iter().map(|s| s.notification.id.as_str()).collect();
        assert_eq!(rest, ["s2", "s3", "s4"], "oldest first, only this user's");
        let window = store.after(1, resume.unwrap(), seqs[3], 100).await.unwrap();
        assert_eq!(window.len(), 2, "up to the given seq");
        assert_eq!(store.stream_start(3, Some("s1")).await.unwrap().0, None);
    }

    /// Any resume position a client sends (`Last-Event-ID`, `?since=`: NUL,
    /// CR/LF, quotes, 2,000 characters) starts a stream: after the
    /// notification it names if that is the user's, from now otherwise;
    /// never a store error.
    #[tokio::test]
    async fn any_resume_position_is_a_known_id_or_now() {
        use proptest::strategy::{Strategy, ValueTree};
        use proptest::test_runner::TestRunner;
        let dir = tempfile::tempdir().unwrap();
        for store in stores(&dir).await {
            let batch: Vec<_> = (0..3).map(|i| (n(&format!("r{i}"), 1), src(i))).collect();
            store.insert_batch(&batch).await.unwrap();
            store
                .insert_batch(&[(n("theirs", 2), src(9))])
                .await
                .unwrap();
            let ids = proptest::prop_oneof![
                proptest::sample::select(vec!["r0", "r2", "theirs", "0", "", "r1\0", "r1\r\n"])
                    .prop_map(String::from),
                "\\PC{0,40}",
                ".{0,40}",
                "[\\x00-\\x7f]{1000,2000}",
            ];
            let mut runner = TestRunner::deterministic();
            for _ in 0..200 {
                let after = ids.new_tree(&mut runner).unwrap().current();
                let (resume, _, _) = store
                    .stream_start(1, Some(&after))
                    .await
                    .unwrap_or_else(|e| panic!("{after:?}: {e}"));
                let known = ["r0", "r1", "r2"].contains(&after.as_str());
                assert_eq!(resume.is_some(), known, "{after:?}");
            }
        }
    }

    /// PostgreSQL only: with SQLite the limit is governor's, in process
    /// (one instance), and `take_send` is never called.
    #[tokio::test]
    async fn the_shared_rate_limit_allows_the_burst_then_says_how_long_to_wait() {
        let url = crate::test_support::postgres_database().await;
        let store = Store::open(&url).await.unwrap();
        let period = Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(store.take_send(2, period, 3, 1).await.unwrap(), None);
        }
        let wait = store
            .take_send(2, period, 3, 1)
            .await
            .unwrap()
            .expect("over the burst");
        assert!(wait > Duration::from_secs(8) && wait <= period, "{wait:?}");
        assert_eq!(
            store.take_send(3, period, 3, 1).await.unwrap(),
            None,
            "per sender"
        );
        // A send to three recipients takes three at once: the whole burst.
        assert_eq!(store.take_send(4, period, 3, 3).await.unwrap(), None);
        assert!(store.take_send(4, period, 3, 1).await.unwrap().is_some());
        assert_eq!(
            store.prune_send_allowance().await.unwrap(),
            0,
            "both still recent"
        );
    }

    #[tokio::test]
    async fn a_database_url_of_another_kind_is_refused() {
        for url in ["mysql://u@h/db", "herald.db", "postgres:/nohost", ""] {
            let err = Store::open(url).await.unwrap_err().to_string();
            assert!(err.contains("DATABASE_URL must be"), "{url}: {err}");
        }
    }

    /// PostgreSQL only: SQLite has one writer at a time, so its `seq`
    /// cannot become visible out of order.
    ///
    /// Four writers insert batches for two users at once while a reader
    /// follows user 1 the way a stream does (`after` its last `seq`). Had a
    /// smaller `seq` become visible after a larger one, the reader would have
    /// moved past it and never seen it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_make_each_users_seqs_visible_in_order() {
        let url = crate::test_support::postgres_database().await;
        let store = Store::open(&url).await.unwrap();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    for b in 0..40 {
                        let batch: Vec<_> = (0..6)
                            .map(|i| {
                                let to = if i % 2 == 0 { 1 } else { 3 };
                                (n(&format!("w{w}-b{b}-{i}"), to), src(i))
                            })
                            .collect();
                        store.insert_batch(&batch).await.unwrap();
                    }
                })
            })
            .collect();
        let mut last = 0;
        let mut seen = std::collections::HashSet::new();
        let mut finished = false;
        while !finished {
            finished = writers.iter().all(|w| w.is_finished());
            for row in store.after(1, last, None, 10_000).await.unwrap() {
                assert!(row.seq > last);
                last = row.seq;
                assert!(seen.insert(row.notification.id));
            }
        }
        for w in writers {
            w.await.unwrap();
        }
        assert_eq!(
            seen.len(),
            4 * 40 * 3,
            "the follower saw every row of user 1"
        );
    }

    /// SQLite: batch inserts and "mark all read" run on the writer's
    /// connection while other writes (readiness checks, idempotency keys,
    /// the user directory) go through the shared pool's connections. Both
    /// read before they write (a batch the highest `seq`, "mark all read"
    /// the newest unread); begun as a plain (deferred) transaction, a write
    /// committed by another connection in between would fail them with
    /// `SQLITE_BUSY` instead of waiting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_writes_wait_for_writes_on_other_connections() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/herald.db", dir.path().display());
        let store = Store::open(&url).await.unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let others: Vec<_> = (0..2)
            .map(|_| {
                let (store, stop) = (store.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        store.check_writable().await.unwrap();
                    }
                })
            })
            .collect();
        for b in 0..300 {
            let batch: Vec<_> = (0..8)
                .map(|i| (n(&format!("b{b}-{i}"), 1 + i % 3), src(b * 8 + i)))
                .collect();
            let seqs = store.insert_batch(&batch).await.unwrap();
            assert!(seqs.iter().all(Option::is_some));
            store.read_all(1 + b % 3).await.unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for o in others {
            o.await.unwrap();
        }
        let mut total = 0;
        for user in [1, 2, 3] {
            total += store.counts(user).await.unwrap().total;
        }
        assert_eq!(total, 300 * 8);
    }
}

//! The durable store: SQLite through sqlx, schema from `migrations/`.
//!
//! Writes are idempotent on the notification id, so the consumer may see a
//! record twice (crash before commit, rebalance) without storing it twice.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use app::model::{Notification, User};

use crate::error::StartError;

/// Where in Kafka a stored notification came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// Partition of the record.
    pub partition: i32,
    /// Offset of the record.
    pub offset: i64,
}

/// A notification with its position in the recipient's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Arrival order; larger is newer. SSE resume is based on it.
    pub seq: i64,
    /// The notification itself.
    pub notification: Notification,
}

/// Handle to the SQLite database; cheap to clone (a pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Open (creating the file and its directory if needed) and migrate.
    pub async fn open(url: &str) -> Result<Self, StartError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            // WAL lets the API read while the consumer writes. FULL sync:
            // an offset is committed to Kafka right after the write, so the
            // write must survive a power cut, not just a process crash.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let file = options.get_filename();
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            if file != Path::new(":memory:") {
                std::fs::create_dir_all(dir)?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// All users, ordered by id.
    pub async fn users(&self) -> Result<Vec<User>, sqlx::Error> {
        let rows = sqlx::query("SELECT id, name FROM users ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| User {
                id: r.get("id"),
                name: r.get("name"),
            })
            .collect())
    }

    /// Store `n` unless a notification with its id exists. Returns the new
    /// row's `seq`, or `None` for a duplicate.
    pub async fn insert(&self, n: &Notification, src: Source) -> Result<Option<i64>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        insert_one(&mut conn, n, src).await
    }

    /// Store every notification of `batch` in one transaction (one fsync),
    /// skipping those whose id exists. Returns each one's new `seq`, or
    /// `None` for a duplicate, in order.
    pub async fn insert_batch(
        &self,
        batch: &[(Notification, Source)],
    ) -> Result<Vec<Option<i64>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut seqs = Vec::with_capacity(batch.len());
        for (n, src) in batch {
            seqs.push(insert_one(&mut tx, n, *src).await?);
        }
        tx.commit().await?;
        Ok(seqs)
    }

    /// The newest `limit` notifications of `user_id`, newest first.
    pub async fn newest(&self, user_id: i64, limit: i64) -> Result<Vec<Stored>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT * FROM notifications WHERE recipient_id = ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Up to `limit` notifications of `user_id` stored after `after_seq`,
    /// oldest first (the order an SSE replay sends them in).
    pub async fn after(
        &self,
        user_id: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<Stored>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT * FROM notifications WHERE recipient_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(user_id)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// `seq` of notification `id` if it belongs to `user_id`.
    pub async fn seq_of(&self, user_id: i64, id: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT seq FROM notifications WHERE recipient_id = ? AND id = ?")
            .bind(user_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Largest `seq` of `user_id`'s notifications (0 when there are none).
    pub async fn last_seq(&self, user_id: i64) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM notifications WHERE recipient_id = ?")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await
    }

    /// Prove the store takes writes (for readiness): rewrite one row in a
    /// transaction.
    pub async fn check_writable(&self) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT OR REPLACE INTO readiness (id, checked_at) VALUES (1, ?)")
            .bind(chrono::Utc::now().to_rfc3339())
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Close the pool, waiting for running queries.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn insert_one(
    conn: &mut sqlx::SqliteConnection,
    n: &Notification,
    src: Source,
) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO notifications
            (id, recipient_id, recipient_name, sender_id, sender_name, message,
             created_at, kafka_partition, kafka_offset)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO NOTHING
         RETURNING seq",
    )
    .bind(&n.id)
    .bind(n.to.id)
    .bind(&n.to.name)
    .bind(n.from.id)
    .bind(&n.from.name)
    .bind(&n.message)
    .bind(n.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    .bind(src.partition)
    .bind(src.offset)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| r.get("seq")))
}

fn decode(r: &sqlx::sqlite::SqliteRow) -> Result<Stored, sqlx::Error> {
    let created: String = r.get("created_at");
    let created_at = DateTime::parse_from_rfc3339(&created)
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?
        .with_timezone(&Utc);
    Ok(Stored {
        seq: r.get("seq"),
        notification: Notification {
            id: r.get("id"),
            from: User {
                id: r.get("sender_id"),
                name: r.get("sender_name"),
            },
            to: User {
                id: r.get("recipient_id"),
                name: r.get("recipient_name"),
            },
            message: r.get("message"),
            created_at,
        },
    })
}

//! The durable store: SQLite through sqlx, schema from `migrations/`.
//!
//! Writes are idempotent on the notification id, so the consumer may see a
//! record twice (crash before commit, rebalance) without storing it twice.
//! Unread and total counts per user are kept by triggers (see
//! `migrations/0003_inbox.sql`), in the same transaction as the change.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use tokio::sync::{Mutex, MutexGuard};

use app::model::{Category, Counts, ListFilter, Notification, User};

use crate::error::StartError;

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
    /// Arrival order; larger is newer. SSE resume is based on it.
    pub seq: i64,
    /// The notification itself.
    pub notification: Notification,
}

/// Handle to the SQLite database; cheap to clone (a pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// Held from a write until its events are published, so streams see
    /// changes in the order they were committed (SQLite has one writer at a
    /// time anyway, so this costs no concurrency).
    writer: Arc<Mutex<()>>,
}

/// One page read from the store.
#[derive(Debug)]
pub struct StoredPage {
    /// The rows, newest first.
    pub rows: Vec<Stored>,
    /// Whether older rows match too.
    pub more: bool,
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
        Ok(Self {
            pool,
            writer: Arc::new(Mutex::new(())),
        })
    }

    /// Take the write turn; hold the guard until the change is published.
    pub async fn write_turn(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().await
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

    /// Store every notification of `batch` atomically (one fsync), skipping
    /// those whose id exists. Returns each one's new `seq`, or `None` for a
    /// duplicate, in order.
    ///
    /// One multi-row `INSERT` per [`INSERT_CHUNK`] rows: sqlx runs SQLite on
    /// a thread of its own, and a statement per row cost two thread
    /// hand-offs per notification.
    pub async fn insert_batch(
        &self,
        batch: &[(Notification, Source)],
    ) -> Result<Vec<Option<i64>>, sqlx::Error> {
        let mut inserted = HashMap::with_capacity(batch.len());
        if batch.len() <= INSERT_CHUNK {
            // A single statement is a transaction of its own.
            let mut conn = self.pool.acquire().await?;
            insert_rows(&mut conn, batch, &mut inserted).await?;
        } else {
            let mut tx = self.pool.begin().await?;
            for chunk in batch.chunks(INSERT_CHUNK) {
                insert_rows(&mut tx, chunk, &mut inserted).await?;
            }
            tx.commit().await?;
        }
        // RETURNING order is unspecified: match rows by id. An id twice in
        // one batch was stored once, for its first occurrence.
        Ok(batch
            .iter()
            .map(|(n, _)| inserted.remove(n.id.as_str()))
            .collect())
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
        page_on(&mut conn, user_id, filter, before_seq, limit).await
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
            Some(id) => {
                let seq = sqlx::query_scalar(
                    "SELECT seq FROM notifications WHERE recipient_id = ? AND id = ?",
                )
                .bind(user_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                match seq {
                    Some(seq) => Some(seq),
                    None => return Ok(None),
                }
            }
        };
        let page = page_on(&mut tx, user_id, filter, before_seq, limit).await?;
        let counts = counts_on(&mut tx, user_id).await?;
        let newest = sqlx::query_scalar(
            "SELECT id FROM notifications WHERE recipient_id = ? ORDER BY seq DESC LIMIT 1",
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

    /// The owner of notification `id` and whether it was deleted.
    pub async fn owner_of(&self, id: &str) -> Result<Option<(i64, bool)>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT recipient_id, deleted_at IS NOT NULL AS deleted FROM notifications WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (r.get("recipient_id"), r.get("deleted"))))
    }

    /// Set the read and/or archived state of notification `id` (which must
    /// exist and not be deleted). Returns it afterwards, with the counts when
    /// something changed.
    pub async fn set_state(
        &self,
        id: &str,
        read: Option<bool>,
        archived: Option<bool>,
    ) -> Result<Option<(Stored, Option<Counts>)>, sqlx::Error> {
        let now = now_text();
        let mut tx = self.pool.begin().await?;
        // Only rows whose state differs are touched, so a no-op changes no
        // counts and sends no event.
        let changed = sqlx::query(
            "UPDATE notifications SET
                read_at = CASE WHEN ?1 IS NULL THEN read_at
                               WHEN ?1 THEN COALESCE(read_at, ?3) ELSE NULL END,
                archived_at = CASE WHEN ?2 IS NULL THEN archived_at
                                   WHEN ?2 THEN COALESCE(archived_at, ?3) ELSE NULL END
             WHERE id = ?4 AND deleted_at IS NULL
               AND ((?1 IS NOT NULL AND (read_at IS NOT NULL) != ?1)
                 OR (?2 IS NOT NULL AND (archived_at IS NOT NULL) != ?2))",
        )
        .bind(read)
        .bind(archived)
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        let row = sqlx::query("SELECT * FROM notifications WHERE id = ? AND deleted_at IS NULL")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored = decode(&row)?;
        let counts = if changed {
            Some(counts_on(&mut tx, stored.notification.to.id).await?)
        } else {
            None
        };
        tx.commit().await?;
        Ok(Some((stored, counts)))
    }

    /// Delete notification `id` (hide it for good). Returns the owner's
    /// counts afterwards, or `None` if it did not exist or was deleted.
    pub async fn delete(&self, id: &str) -> Result<Option<Counts>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let owner: Option<i64> = sqlx::query_scalar(
            "UPDATE notifications SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL
             RETURNING recipient_id",
        )
        .bind(now_text())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let counts = match owner {
            Some(user) => Some(counts_on(&mut tx, user).await?),
            None => None,
        };
        tx.commit().await?;
        Ok(counts)
    }

    /// Mark every unread notification of `user_id` read. Returns the id of
    /// the newest one it covers and the counts, or `None` when nothing was
    /// unread.
    pub async fn read_all(&self, user_id: i64) -> Result<Option<(String, Counts)>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let through: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, id FROM notifications
             WHERE recipient_id = ? AND deleted_at IS NULL AND read_at IS NULL
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((seq, id)) = through else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE notifications SET read_at = ?
             WHERE recipient_id = ? AND deleted_at IS NULL AND read_at IS NULL AND seq <= ?",
        )
        .bind(now_text())
        .bind(user_id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        let counts = counts_on(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(Some((id, counts)))
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
            "SELECT * FROM notifications
             WHERE recipient_id = ? AND seq > ? AND deleted_at IS NULL ORDER BY seq LIMIT ?",
        )
        .bind(user_id)
        .bind(after_seq)
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
                    (SELECT seq FROM notifications WHERE recipient_id = ?1 AND id = ?2),
                    COALESCE((SELECT MAX(seq) FROM notifications WHERE recipient_id = ?1), 0),
                    COALESCE((SELECT unread FROM inbox_counts WHERE user_id = ?1), 0),
                    COALESCE((SELECT total FROM inbox_counts WHERE user_id = ?1), 0),
                    COALESCE((SELECT version FROM inbox_counts WHERE user_id = ?1), 0)",
            )
            .bind(user_id)
            .bind(after)
            .fetch_one(&self.pool)
            .await?;
        let counts = Counts {
            unread,
            total,
            version,
        };
        Ok((resume, last, counts))
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

/// Rows per multi-row `INSERT` (11 parameters each, well under SQLite's
/// 32,766).
pub const INSERT_CHUNK: usize = 500;

async fn insert_rows<'a>(
    conn: &mut sqlx::SqliteConnection,
    rows: &'a [(Notification, Source)],
    inserted: &mut HashMap<&'a str, i64>,
) -> Result<(), sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new(
        "INSERT INTO notifications
            (id, recipient_id, recipient_name, sender_id, sender_name, message,
             created_at, kafka_partition, kafka_offset, category, priority) ",
    );
    q.push_values(rows, |mut b, (n, src)| {
        b.push_bind(&n.id)
            .push_bind(n.to.id)
            .push_bind(&n.to.name)
            .push_bind(n.from.id)
            .push_bind(&n.from.name)
            .push_bind(&n.message)
            .push_bind(n.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            .push_bind(src.partition)
            .push_bind(src.offset)
            .push_bind(n.category.as_str())
            .push_bind(n.priority);
    });
    q.push(" ON CONFLICT (id) DO NOTHING RETURNING id, seq");
    let returned = q.build().fetch_all(&mut *conn).await?;
    let ids: HashMap<String, i64> = returned
        .iter()
        .map(|r| (r.get::<String, _>("id"), r.get::<i64, _>("seq")))
        .collect();
    for (n, _) in rows {
        if let Some(seq) = ids.get(&n.id) {
            inserted.entry(n.id.as_str()).or_insert(*seq);
        }
    }
    Ok(())
}

async fn page_on(
    conn: &mut sqlx::SqliteConnection,
    user_id: i64,
    filter: &ListFilter,
    before_seq: Option<i64>,
    limit: u32,
) -> Result<StoredPage, sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM notifications WHERE recipient_id = ");
    q.push_bind(user_id)
        .push(" AND deleted_at IS NULL AND archived_at IS ")
        .push(if filter.archived { "NOT NULL" } else { "NULL" });
    if filter.unread {
        q.push(" AND read_at IS NULL");
    }
    if let Some(c) = filter.category {
        q.push(" AND category = ").push_bind(c.as_str());
    }
    if let Some(p) = filter.min_priority {
        q.push(" AND priority >= ").push_bind(p);
    }
    if let Some(seq) = before_seq {
        q.push(" AND seq < ").push_bind(seq);
    }
    // One more than asked tells whether there is a next page.
    q.push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows = q.build().fetch_all(&mut *conn).await?;
    let more = rows.len() > limit as usize;
    let rows = rows
        .iter()
        .take(limit as usize)
        .map(decode)
        .collect::<Result<_, _>>()?;
    Ok(StoredPage { rows, more })
}

async fn counts_on(conn: &mut sqlx::SqliteConnection, user_id: i64) -> Result<Counts, sqlx::Error> {
    let row: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT unread, total, version FROM inbox_counts WHERE user_id = ?")
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

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
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
            category: Category::parse(r.get("category")).unwrap_or_default(),
            priority: r.get("priority"),
            read: r.get::<Option<String>, _>("read_at").is_some(),
            archived: r.get::<Option<String>, _>("archived_at").is_some(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::Category;

    fn n(id: &str, to: i64) -> Notification {
        Notification {
            id: id.into(),
            from: User {
                id: 2,
                name: "Bruno".into(),
            },
            to: User {
                id: to,
                name: "Emma".into(),
            },
            message: format!("message {id}"),
            created_at: Utc::now(),
            category: Category::Alert,
            priority: 5,
            read: false,
            archived: false,
        }
    }

    fn src(offset: i64) -> Source {
        Source {
            partition: 0,
            offset,
        }
    }

    #[tokio::test]
    async fn a_batch_stores_each_id_once_and_reports_seqs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let first = store
            .insert_batch(&[(n("a", 1), src(0)), (n("b", 1), src(1))])
            .await
            .unwrap();
        assert!(first.iter().all(Option::is_some));
        assert!(first[0] < first[1], "seqs follow the batch order");
        // "a" again (redelivery), "c" twice in one batch: each stored once.
        let second = store
            .insert_batch(&[
                (n("a", 1), src(0)),
                (n("c", 1), src(2)),
                (n("c", 1), src(2)),
            ])
            .await
            .unwrap();
        assert_eq!(second[0], None);
        assert!(second[1].is_some());
        assert_eq!(second[2], None);
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
    }

    #[tokio::test]
    async fn batches_larger_than_a_chunk_are_stored_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let batch: Vec<_> = (0..INSERT_CHUNK as i64 * 2 + 7)
            .map(|i| (n(&format!("n{i}"), 3), src(i)))
            .collect();
        let seqs = store.insert_batch(&batch).await.unwrap();
        assert!(seqs.iter().all(Option::is_some));
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(store.counts(3).await.unwrap().total, batch.len() as i64);
    }
}

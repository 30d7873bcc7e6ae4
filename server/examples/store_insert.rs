//! What storing a notification costs the store on its own: batches of new
//! notifications written with `Store::insert_batch` into a fresh SQLite
//! file (the early delivery and consumer write path, without Kafka or
//! HTTP), CPU time per row from `/proc`, split by thread.
//!
//! `cargo run --release -p server --example store_insert -- [BATCHES] [ROWS]`
//! (defaults 400 batches of 322 rows: early delivery's mean batch under
//! the cost issue's workload, three statements; batches of exactly one
//! statement's size once hid a slow path that the server's batches took,
//! see `docs/bench/cost.md`). Run it under
//! `valgrind --tool=callgrind` for instruction counts, which are stable on
//! a shared machine where CPU time is not (see `docs/bench/cost.md`).
//!
//! `STORE_BENCH_SQL` (statements separated by `;`) is run on the new
//! database before the first write: a way to measure what a schema change
//! (an index or trigger less) would save before writing its migration.

use std::collections::BTreeMap;
use std::time::Instant;

use app::model::{Notification, User};
use herald::store::{Source, Store};

// The server's allocator (see `src/main.rs`), so the figures are its.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU time (user, system) in clock ticks per thread name, from `/proc`.
fn cpu_by_thread() -> BTreeMap<String, (u64, u64)> {
    let mut by = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
        ) else {
            continue;
        };
        // Fields after the command's closing parenthesis; utime and stime
        // are the 14th and 15th of the whole line.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        let name = comm.trim().trim_end_matches(|c: char| c.is_ascii_digit());
        let e = by.entry(name.to_owned()).or_insert((0, 0));
        e.0 += u.parse::<u64>().unwrap_or(0);
        e.1 += s.parse::<u64>().unwrap_or(0);
    }
    by
}

/// `rows` new notifications from Bruno to Emma, Rick and Lena in turn.
fn batch(rows: usize, offset: &mut i64) -> Vec<(Notification, Source)> {
    let names = ["Emma", "Rick", "Lena"];
    (0..rows)
        .map(|i| {
            *offset += 1;
            let id = uuid::Uuid::now_v7().to_string();
            let base = Notification::example(&id, "Hello from the store benchmark");
            let to = User {
                id: [1, 3, 4][i % 3],
                name: names[i % 3].into(),
            };
            let source = Source {
                partition: 0,
                offset: *offset,
            };
            (Notification { to, ..base }, source)
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let batches: usize = args.next().map_or(Ok(400), |a| a.parse())?;
    let rows: usize = args.next().map_or(Ok(322), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/herald.db", dir.path().display());
    let store = Store::open(&url).await?;
    if let Ok(sql) = std::env::var("STORE_BENCH_SQL") {
        use sqlx::Connection as _;
        let mut conn = sqlx::SqliteConnection::connect(&url).await?;
        sqlx::raw_sql(&sql).execute(&mut conn).await?;
        conn.close().await?;
    }
    let mut offset = 0;
    // Warm up: statement cache, pages, the WAL.
    for _ in 0..10 {
        store.insert_batch(&batch(rows, &mut offset)).await?;
    }
    let work: Vec<_> = (0..batches).map(|_| batch(rows, &mut offset)).collect();
    let before = cpu_by_thread();
    let started = Instant::now();
    for b in &work {
        let seqs = store.insert_batch(b).await?;
        assert!(seqs.iter().all(Option::is_some), "every row is new");
    }
    let wall = started.elapsed();
    let after = cpu_by_thread();
    let n = (batches * rows) as f64;
    // Clock ticks are 10 ms on Linux.
    let us = |ticks: u64| ticks as f64 * 10_000.0 / n;
    let mut total = 0.0;
    for (name, (u1, s1)) in &after {
        let (u0, s0) = before.get(name).copied().unwrap_or((0, 0));
        // A thread that ended in between takes its ticks with it.
        let (u, s) = (us(u1.saturating_sub(u0)), us(s1.saturating_sub(s0)));
        total += u + s;
        println!("{name:24} user {u:6.2} sys {s:6.2} µs per row");
    }
    println!(
        "{batches} batches of {rows}: {total:.2} µs CPU per row, {:.2} µs wall per row",
        wall.as_secs_f64() * 1e6 / n
    );
    store.close().await;
    Ok(())
}

//! What the broker's acknowledgement costs on its own: Herald's producer
//! (`kafka::Producer`, configured from the same environment as the
//! server: `KAFKA_BROKERS`, `HERALD_LINGER_MS`, …) sends notifications at a
//! steady rate, with nothing else of Herald running: no HTTP, no store, no
//! streams, no consumer. It prints the acknowledgement's latency (from the
//! send to the broker's answer reaching the caller) and when it went over
//! 10 ms, so the tail a broker adds to every send can be told apart from
//! Herald's (docs/bench/cost.md, eleventh session).
//!
//! `KAFKA_BROKERS=host:port cargo run --release -p server --example broker_ack -- [RATE] [SECONDS]`
//! (defaults 1,000 sends a second for 15 s; recipients 1, 3 and 4 in turn,
//! so the keys spread over partitions as the server's sends do). The
//! topic is `herald-broker-ack` unless `HERALD_TOPIC` names one: a Herald
//! running on the same broker (`./scripts/dev`) would otherwise store
//! every one of these sends in its users' inboxes.

use std::time::{Duration, Instant};

use app::model::{Notification, User};
use clap::Parser;
use herald::config::Config;
use herald::kafka::{ensure_topics, Producer};

// The server's allocator (see `src/main.rs`), so the figures are its.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Over this, a send counts as slow.
const SLOW: Duration = Duration::from_millis(10);

/// Slow sends less than this apart belong to one window.
const WINDOW_GAP: Duration = Duration::from_millis(50);

fn notification(i: u64) -> Notification {
    let names = ["Emma", "Rick", "Lena"];
    let id = uuid::Uuid::now_v7().to_string();
    let base = Notification::example(&id, "Hello from the broker benchmark");
    let k = (i % 3) as usize;
    let to = User {
        id: [1, 3, 4][k],
        name: names[k].into(),
    };
    Notification { to, ..base }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args.next().map_or(Ok(1_000), |a| a.parse())?;
    let seconds: u64 = args.next().map_or(Ok(15), |a| a.parse())?;
    if rate == 0 || seconds == 0 {
        return Err("RATE and SECONDS must be above 0".into());
    }
    let mut cfg = Config::parse_from(["herald"]);
    if std::env::var_os("HERALD_TOPIC").is_none() {
        cfg.topic = "herald-broker-ack".into();
    }
    ensure_topics(&cfg).await?;
    let producer = Producer::new(&cfg)?;
    // Warm up: connections, metadata, the broker's statement caches.
    for i in 0..200 {
        producer.send(&notification(i)).await?;
    }
    let total = rate
        .checked_mul(seconds)
        .filter(|t| *t <= 100_000_000)
        .ok_or("RATE × SECONDS is too large")?;
    let started = Instant::now();
    let mut sends = Vec::with_capacity(total as usize);
    for i in 0..total {
        // Paced from the start, so a late tick does not shift the rest.
        let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let (producer, n) = (producer.clone(), notification(i));
        sends.push(tokio::spawn(async move {
            let at = Instant::now();
            let ok = producer.send(&n).await.is_ok();
            (at.duration_since(started), at.elapsed(), ok)
        }));
    }
    let mut done = Vec::with_capacity(sends.len());
    for s in sends {
        done.push(s.await?);
    }
    // Failed sends are counted, not timed.
    let failed = done.iter().filter(|(_, _, ok)| !ok).count();
    let mut latencies: Vec<Duration> = done
        .iter()
        .filter(|(_, _, ok)| *ok)
        .map(|(_, d, _)| *d)
        .collect();
    if latencies.is_empty() {
        return Err("every send failed".into());
    }
    latencies.sort();
    println!(
        "{total} sends at {rate}/s, {failed} failed; acknowledgement ms: p50 {:.2}, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
        percentile(&latencies, 1.0),
    );
    // Windows of slow sends: where they start and how slow they got.
    // (Tasks may start in another order than they were spawned.)
    let mut slow: Vec<(Duration, Duration)> = done
        .iter()
        .filter(|(_, took, ok)| *ok && *took > SLOW)
        .map(|(at, took, _)| (*at, *took))
        .collect();
    slow.sort();
    let mut windows: Vec<(Duration, Duration, Duration)> = Vec::new();
    for (at, took) in &slow {
        match windows.last_mut() {
            Some((_, last, worst)) if at.saturating_sub(*last) < WINDOW_GAP => {
                *last = *at;
                *worst = (*worst).max(*took);
            }
            _ => windows.push((*at, *at, *took)),
        }
    }
    println!(
        "{} windows of sends slower than {} ms:",
        windows.len(),
        SLOW.as_millis()
    );
    for (start, end, worst) in &windows {
        println!(
            "  at {:7.3} s, {:4.0} ms long, slowest {:.1} ms",
            start.as_secs_f64(),
            (*end - *start).as_secs_f64() * 1e3,
            worst.as_secs_f64() * 1e3
        );
    }
    producer.flush(Duration::from_secs(5));
    Ok(())
}

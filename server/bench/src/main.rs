//! `herald-bench`: load a running Herald through its public HTTP API only and
//! report throughput and latency.
//!
//! Modes: `send` (concurrent senders for a duration), `e2e` (fixed send rate,
//! time from request start to the SSE event, and to the HTTP answer),
//! `fanout` (K open streams: server
//! RSS per connection and broadcast latency), `store` (list latency for a big
//! inbox, seeded through the API). Each run prints a table and writes
//! `<out>/<mode>.json` and `<out>/<mode>.svg` (latency by percentile).
//!
//! Example: `cargo run --release -p server --bin herald-bench -- --url
//! http://127.0.0.1:3000 send --concurrency 64 --seconds 10`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "herald-bench",
    about = "Load a running Herald and report throughput and latency"
)]
struct Cli {
    /// Base URL of the Herald under test.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Base URL the `e2e` streams are opened on (default: `--url`). With
    /// several instances, sends go to `--url` and streams to this one, which
    /// must share the token secret.
    #[arg(long)]
    watch_url: Option<String>,
    /// Directory for `<mode>.json` and `<mode>.svg`.
    #[arg(long, default_value = "docs/bench")]
    out: PathBuf,
    /// Exit with status 1 if any request failed or any event was not delivered.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Concurrent senders for a duration: accepted/s and HTTP latency.
    Send {
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// `seed` = POST /send (form), `api` = POST /api/notifications (JSON).
        #[arg(long, value_enum, default_value = "seed")]
        route: Route,
        /// Herald's process id: report its CPU time per accepted send.
        #[arg(long)]
        server_pid: Option<u32>,
        /// The broker's process id: report its CPU time per accepted send.
        #[arg(long)]
        broker_pid: Option<u32>,
    },
    /// Fixed send rate with SSE subscribers: send-to-event latency, undelivered count.
    E2e {
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// SSE streams, spread over users 1–4.
        #[arg(long, default_value_t = 4)]
        subscribers: usize,
    },
    /// K open SSE streams of one user: server RSS per stream, broadcast latency.
    Fanout {
        #[arg(long, default_value_t = 1_000)]
        connections: usize,
        /// Server process id, to read its RSS from /proc.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// List latency of a big inbox, seeded through the API first.
    Store {
        /// Notifications to send to the user first (0: measure as is).
        #[arg(long, default_value_t = 1_000_000)]
        seed: usize,
        #[arg(long, default_value_t = 4)]
        user: i64,
        /// Timed list requests.
        #[arg(long, default_value_t = 500)]
        requests: usize,
        /// Page size of the timed list requests.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Directory search latency (`GET /api/users?q=…`, prefixes of every
    /// selectivity), after putting `seed` users through `PUT /api/users/{id}`.
    Users {
        /// Users to create first (ids from `--first-id`); 0: search as is.
        #[arg(long, default_value_t = 1_000_000)]
        seed: usize,
        /// Id of the first seeded user.
        #[arg(long, default_value_t = 1_000_000)]
        first_id: i64,
        /// API key with scope `users` (`server keys create --scopes users`).
        #[arg(long, env = "HERALD_BENCH_KEY")]
        key: String,
        /// Timed searches.
        #[arg(long, default_value_t = 1_000)]
        requests: usize,
        /// Users per search answer.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Route {
    Seed,
    Api,
}

/// Latency summary in milliseconds.
#[derive(Serialize)]
struct Latency {
    count: u64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

fn summary(h: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1_000.0;
    Latency {
        count: h.len(),
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
    }
}

/// The broker's acknowledgement as the server measured it, when its
/// metrics are served at `base` (`herald_produce_seconds`: a summary over
/// the server's last minute or so, from the produce call to the
/// acknowledgement): how much of a send's answer the broker alone takes.
/// Its `count` is every send since the server started. `None` when the
/// metrics are elsewhere (`HERALD_OPS_ADDR`) or lack it.
async fn acknowledgement(http: &reqwest::Client, base: &str) -> Option<Latency> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    let ms =
        |q: &str| value(&format!("herald_produce_seconds{{quantile=\"{q}\"}}")).map(|s| s * 1e3);
    Some(Latency {
        count: value("herald_produce_seconds_count")? as u64,
        p50: ms("0.5")?,
        p90: ms("0.9")?,
        p99: ms("0.99")?,
        p999: ms("0.999")?,
        max: ms("1")?,
    })
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let _ = h.record((d.as_micros() as u64).max(1));
}

/// One token per seeded user (1–4), from the demo sign-in.
static TOKENS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// `rb` sent as `user` (Bearer token).
fn as_user(rb: reqwest::RequestBuilder, user: i64) -> reqwest::RequestBuilder {
    match TOKENS.get().and_then(|t| t.get((user - 1) as usize)) {
        Some(token) => rb.bearer_auth(token),
        None => rb,
    }
}

/// Sign in as each seeded user through the demo sign-in, so every send and
/// stream carries its own user's token, as real clients do.
async fn sign_in_all(http: &reqwest::Client, base: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut tokens = Vec::new();
    for user in 1..=4 {
        let res = http
            .post(format!("{base}/api/session"))
            .json(&json!({ "user": user }))
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(format!(
                "demo sign-in as user {user} answered {}: herald-bench needs \
                 HERALD_DEMO_SIGN_IN=true on the server",
                res.status()
            )
            .into());
        }
        let body: Value = res.json().await?;
        tokens.push(body["token"].as_str().unwrap_or_default().to_owned());
    }
    let _ = TOKENS.set(tokens);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1_024)
        .build()?;
    let base = cli.url.trim_end_matches('/').to_owned();
    sign_in_all(&http, &base).await?;
    let (name, report, hist, failures) = match cli.mode {
        Mode::Send {
            concurrency,
            seconds,
            route,
            server_pid,
            broker_pid,
        } => {
            let pids = [server_pid, broker_pid];
            send(&http, &base, concurrency, seconds, route, pids).await
        }
        Mode::E2e {
            rate,
            seconds,
            subscribers,
        } => {
            let watch = cli.watch_url.as_deref().unwrap_or(&base);
            let watch = watch.trim_end_matches('/').to_owned();
            e2e(&http, &base, &watch, rate, seconds, subscribers).await?
        }
        Mode::Fanout {
            connections,
            server_pid,
        } => fanout(&http, &base, connections, server_pid).await?,
        Mode::Store {
            seed,
            user,
            requests,
            limit,
        } => store(&http, &base, seed, user, requests, limit).await?,
        Mode::Users {
            seed,
            first_id,
            key,
            requests,
            limit,
        } => {
            let seeding = Seeding {
                count: seed,
                first_id,
            };
            users(&http, &base, &key, seeding, requests, limit).await?
        }
    };
    std::fs::create_dir_all(&cli.out)?;
    let json_path = cli.out.join(format!("{name}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)?;
    let svg_path = cli.out.join(format!("{name}.svg"));
    chart(
        &svg_path,
        &format!("herald-bench {name}: latency by percentile"),
        &hist,
    )?;
    print_table(name, &report);
    println!("wrote {} and {}", json_path.display(), svg_path.display());
    if cli.check && failures > 0 {
        eprintln!("check failed: {failures} failed requests or undelivered events");
        std::process::exit(1);
    }
    Ok(())
}

type Outcome = (&'static str, Value, Histogram<u64>, u64);

async fn send(
    http: &reqwest::Client,
    base: &str,
    concurrency: usize,
    seconds: f64,
    route: Route,
    [server_pid, broker_pid]: [Option<u32>; 2],
) -> Outcome {
    let cpu_before = [server_pid.and_then(cpu_us), broker_pid.and_then(cpu_us)];
    let hist = Arc::new(Mutex::new(histogram()));
    let statuses: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let seq = Arc::new(AtomicUsize::new(0));
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, base, hist, statuses, seq) = (
            http.clone(),
            base.to_owned(),
            hist.clone(),
            statuses.clone(),
            seq.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut local = histogram();
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            while Instant::now() < end {
                let i = seq.fetch_add(1, Ordering::Relaxed);
                let (from, to) = ((i % 4) as i64 + 1, ((i + 1) % 4) as i64 + 1);
                let message = format!("bench send {i}");
                let t = Instant::now();
                let res = match route {
                    Route::Seed => {
                        let (f, t) = (from.to_string(), to.to_string());
                        as_user(http.post(format!("{base}/send")), from)
                            .form(&[
                                ("fromID", f.as_str()),
                                ("toID", t.as_str()),
                                ("message", message.as_str()),
                            ])
                            .send()
                            .await
                    }
                    Route::Api => {
                        as_user(http.post(format!("{base}/api/notifications")), from)
                            .json(&json!({"from": from, "to": to, "message": message}))
                            .send()
                            .await
                    }
                };
                let key = match res {
                    Ok(r) => {
                        let status = r.status();
                        let _ = r.bytes().await;
                        record(&mut local, t.elapsed());
                        status.as_u16().to_string()
                    }
                    Err(e) => format!(
                        "error: {}",
                        if e.is_timeout() { "timeout" } else { "connect" }
                    ),
                };
                *counts.entry(key).or_default() += 1;
            }
            hist.lock().unwrap().add(&local).expect("same bounds");
            let mut all = statuses.lock().unwrap();
            for (k, v) in counts {
                *all.entry(k).or_default() += v;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = [server_pid.and_then(cpu_us), broker_pid.and_then(cpu_us)];
    let statuses = statuses.lock().unwrap().clone();
    let ok: u64 = statuses
        .iter()
        .filter(|(k, _)| k.starts_with('2'))
        .map(|(_, v)| v)
        .sum();
    let total: u64 = statuses.values().sum();
    let hist = hist.lock().unwrap().clone();
    let mut report = json!({
        "mode": "send", "route": route, "concurrency": concurrency, "seconds": elapsed,
        "accepted": ok, "accepted_per_second": ok as f64 / elapsed,
        "statuses": statuses, "latency_ms": summary(&hist),
    });
    for (i, key) in ["server_cpu_us_per_send", "broker_cpu_us_per_send"]
        .into_iter()
        .enumerate()
    {
        if let (Some(a), Some(b)) = (cpu_before[i], cpu_after[i]) {
            report[key] = json!(b.saturating_sub(a) as f64 / ok.max(1) as f64);
        }
    }
    ("send", report, hist, total - ok)
}

/// Open an SSE stream; returns the event stream once the server answered.
async fn open_stream(
    http: &reqwest::Client,
    url: &str,
    user: i64,
) -> Result<
    impl futures::Stream<
        Item = Result<
            eventsource_stream::Event,
            eventsource_stream::EventStreamError<reqwest::Error>,
        >,
    >,
    reqwest::Error,
> {
    let res = as_user(http.get(url), user)
        .header("accept", "text/event-stream")
        .timeout(Duration::from_secs(24 * 3600))
        .send()
        .await?
        .error_for_status()?;
    Ok(res.bytes_stream().eventsource())
}

async fn e2e(
    http: &reqwest::Client,
    base: &str,
    watch: &str,
    rate: u64,
    seconds: f64,
    subscribers: usize,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let total = (rate as f64 * seconds) as usize;
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    let origin = Instant::now();
    // Request start per notification, in ns since `origin` (0 = not sent).
    let starts: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let hist = Arc::new(Mutex::new(histogram()));
    // Request start to the HTTP answer: the part of the event's latency
    // the send itself takes (the broker's acknowledgement included).
    let answers = Arc::new(Mutex::new(histogram()));
    let delivered = Arc::new(AtomicUsize::new(0));
    let mut streams_per_user = [0usize; 4];
    let mut readers = Vec::new();
    for j in 0..subscribers {
        let user = j % 4 + 1;
        streams_per_user[user - 1] += 1;
        let mut events = open_stream(
            http,
            &format!("{watch}/api/users/{user}/events"),
            user as i64,
        )
        .await?;
        let (starts, hist, delivered, prefix) = (
            starts.clone(),
            hist.clone(),
            delivered.clone(),
            format!("bench e2e {run} "),
        );
        readers.push(tokio::spawn(async move {
            while let Some(Ok(ev)) = events.next().await {
                if ev.event != "notification" {
                    continue;
                }
                let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                    continue;
                };
                let Some(i) = v["message"]
                    .as_str()
                    .and_then(|m| m.strip_prefix(&prefix))
                    .and_then(|s| s.parse::<usize>().ok())
                else {
                    continue;
                };
                let sent = starts.get(i).map_or(0, |s| s.load(Ordering::Acquire));
                if sent > 0 {
                    let now = origin.elapsed().as_nanos() as u64;
                    record(
                        &mut hist.lock().unwrap(),
                        Duration::from_nanos(now.saturating_sub(sent)),
                    );
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let accepted = Arc::new(Mutex::new(vec![0usize; 4]));
    let failed = Arc::new(AtomicUsize::new(0));
    let inflight = Arc::new(tokio::sync::Semaphore::new(1_024));
    let started = Instant::now();
    let mut senders = Vec::with_capacity(total);
    for i in 0..total {
        tokio::time::sleep_until(
            (started + Duration::from_secs_f64(i as f64 / rate as f64)).into(),
        )
        .await;
        let permit = inflight.clone().acquire_owned().await?;
        let (http, base, starts, accepted, failed, run, answers) = (
            http.clone(),
            base.to_owned(),
            starts.clone(),
            accepted.clone(),
            failed.clone(),
            run.clone(),
            answers.clone(),
        );
        senders.push(tokio::spawn(async move {
            let to = i % 4 + 1;
            let from = (i + 1) % 4 + 1;
            let t = Instant::now();
            starts[i].store(
                (origin.elapsed().as_nanos() as u64).max(1),
                Ordering::Release,
            );
            let res = as_user(http.post(format!("{base}/api/notifications")), from as i64)
                .json(&json!({"from": from, "to": to, "message": format!("bench e2e {run} {i}")}))
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => {
                    record(&mut answers.lock().unwrap(), t.elapsed());
                    accepted.lock().unwrap()[to - 1] += 1
                }
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(permit);
        }));
    }
    for s in senders {
        let _ = s.await;
    }
    let send_seconds = started.elapsed().as_secs_f64();
    let expected: usize = accepted
        .lock()
        .unwrap()
        .iter()
        .zip(streams_per_user)
        .map(|(a, s)| a * s)
        .sum();
    let grace = Instant::now() + Duration::from_secs(10);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for r in readers {
        r.abort();
    }
    let delivered = delivered.load(Ordering::Relaxed);
    let undelivered = expected.saturating_sub(delivered);
    let failed = failed.load(Ordering::Relaxed);
    let hist = hist.lock().unwrap().clone();
    let mut report = json!({
        "mode": "e2e", "rate": rate, "seconds": send_seconds, "subscribers": subscribers,
        "sent": total, "failed_sends": failed, "expected_events": expected,
        "delivered_events": delivered, "undelivered": undelivered,
        "latency_ms": summary(&hist),
        "send_latency_ms": summary(&answers.lock().unwrap()),
    });
    if let Some(ack) = acknowledgement(http, base).await {
        report["ack_latency_ms"] = json!(ack);
    }
    Ok(("e2e", report, hist, (failed + undelivered) as u64))
}

/// CPU time (user + system) process `pid` has used so far, in µs, from
/// `/proc/<pid>/stat` (clock ticks of USER_HZ, 100 per second on Linux).
fn cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10_000)
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn fanout(
    http: &reqwest::Client,
    base: &str,
    connections: usize,
    server_pid: Option<u32>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let before = server_pid.and_then(rss_kb);
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    let ready = Arc::new(AtomicUsize::new(0));
    let got: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let mut readers = Vec::new();
    let opened = Instant::now();
    for _ in 0..connections {
        let mut events = open_stream(http, &format!("{base}/api/users/1/events"), 1).await?;
        // The server subscribes before it answers: the stream is live now.
        ready.fetch_add(1, Ordering::Relaxed);
        let (got, needle) = (got.clone(), format!("fanout {run}"));
        readers.push(tokio::spawn(async move {
            while let Some(Ok(ev)) = events.next().await {
                if ev.event == "notification" && ev.data.contains(&needle) {
                    got.lock().unwrap().push(Instant::now());
                    break;
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready.load(Ordering::Relaxed) < connections && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_seconds = opened.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server_pid.and_then(rss_kb);
    let t0 = Instant::now();
    let res = as_user(http.post(format!("{base}/api/notifications")), 2)
        .json(&json!({"from": 2, "to": 1, "message": format!("fanout {run}")}))
        .send()
        .await?;
    let sent_ok = res.status().is_success();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().len() < connections && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut hist = histogram();
    for t in got.lock().unwrap().iter() {
        record(&mut hist, t.duration_since(t0));
    }
    for r in readers {
        r.abort();
    }
    let reached = hist.len() as usize;
    let per_conn = match (before, after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / connections as f64),
        _ => None,
    };
    let report = json!({
        "mode": "fanout", "connections": connections, "streams_live": ready.load(Ordering::Relaxed),
        "open_seconds": open_seconds, "rss_kb_before": before, "rss_kb_after": after,
        "rss_kb_per_connection": per_conn, "reached": reached,
        "latency_ms": summary(&hist),
    });
    let failures = (connections - reached) as u64 + u64::from(!sent_ok);
    Ok(("fanout", report, hist, failures))
}

async fn store(
    http: &reqwest::Client,
    base: &str,
    seed: usize,
    user: i64,
    requests: usize,
    limit: u32,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let mut seeded_in = 0.0;
    let mut failures = 0u64;
    if seed > 0 {
        // Count the seeded notifications as the consumer stores them.
        let mut events =
            open_stream(http, &format!("{base}/api/users/{user}/events"), user).await?;
        let run = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos()
        );
        let prefix = format!("\"store {run} ");
        let stored = Arc::new(AtomicUsize::new(0));
        let counter = stored.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(ev)) = events.next().await {
                if ev.data.contains(&prefix) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let t = Instant::now();
        let (http, base) = (http.clone(), base.to_owned());
        let failed = fan_out(seed, move |i| {
            let (http, base, run) = (http.clone(), base.clone(), run.clone());
            async move {
                let from = if user == 1 { 2 } else { 1 };
                as_user(http.post(format!("{base}/api/notifications")), from)
                    .json(&json!({"from": from, "to": user, "message": format!("store {run} {i}")}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
        let deadline = Instant::now() + Duration::from_secs(600);
        while stored.load(Ordering::Relaxed) < seed - failed && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        reader.abort();
        seeded_in = t.elapsed().as_secs_f64();
        failures +=
            failed as u64 + (seed - failed).saturating_sub(stored.load(Ordering::Relaxed)) as u64;
    }
    let mut hist = histogram();
    let mut listed = 0;
    for _ in 0..requests {
        let t = Instant::now();
        let res = as_user(
            http.get(format!(
                "{base}/api/users/{user}/notifications?limit={limit}"
            )),
            user,
        )
        .send()
        .await?;
        let ok = res.status().is_success();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        record(&mut hist, t.elapsed());
        listed = body["notifications"].as_array().map_or(0, Vec::len);
        if !ok {
            failures += 1;
        }
    }
    let report = json!({
        "mode": "store", "user": user, "seeded": seed, "seed_seconds": seeded_in,
        "list_requests": requests, "page_size": limit, "listed_per_request": listed,
        "latency_ms": summary(&hist),
    });
    Ok(("store", report, hist, failures))
}

/// Run `job(0..total)` on 64 concurrent tasks (each takes the next index
/// when it is done); how many jobs answered false.
async fn fan_out<F, Fut>(total: usize, job: F) -> usize
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (next, failed, job) = (next.clone(), failed.clone(), job.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                if !job(i).await {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    failed.load(Ordering::Relaxed)
}

/// First names and surnames the seeded users combine (1,600 distinct
/// names, each shared by many users, as in a real directory).
const FIRST: [&str; 40] = [
    "Emma", "Bruno", "Rick", "Lena", "Ana", "Emil", "Maria", "Jonas", "Sofia", "Liam", "Noah",
    "Mia", "Olga", "Pedro", "Ines", "Yusuf", "Aiko", "Chen", "Zoe", "Ravi", "Sara", "Tomas", "Ewa",
    "Ivan", "Lucia", "Marta", "Omar", "Nina", "Hugo", "Ida", "Leo", "Elif", "Kai", "Greta", "Jan",
    "Amir", "Rita", "Paul", "Vera", "Émile",
];
const LAST: [&str; 40] = [
    "Lindqvist",
    "Rossi",
    "Sanchez",
    "Novak",
    "Silva",
    "Okafor",
    "Kowalski",
    "Müller",
    "Tanaka",
    "Dubois",
    "Jensen",
    "Garcia",
    "Haddad",
    "Ivanova",
    "Kim",
    "Larsen",
    "Moreau",
    "Nakamura",
    "Olsen",
    "Petrov",
    "Quinn",
    "Reyes",
    "Schmidt",
    "Torres",
    "Ueda",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zimmer",
    "Abebe",
    "Brennan",
    "Costa",
    "Diaz",
    "Eriksen",
    "Fischer",
    "Gomez",
    "Horvat",
    "Ito",
    "Jovanovic",
];

/// How many users a `users` run creates first, and from which id.
struct Seeding {
    count: usize,
    first_id: i64,
}

/// Put `seeding.count` users into the directory (64 at a time), then time
/// searches for prefixes that match many users, few, or none.
async fn users(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    seeding: Seeding,
    requests: usize,
    limit: u32,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let t = Instant::now();
    let (http2, base2, key2) = (http.clone(), base.to_owned(), key.to_owned());
    let first_id = seeding.first_id;
    let failed = fan_out(seeding.count, move |i| {
        let (http, base, key) = (http2.clone(), base2.clone(), key2.clone());
        async move {
            let name = format!("{} {}", FIRST[i % 40], LAST[(i / 40) % 40]);
            http.put(format!("{base}/api/users/{}", first_id + i as i64))
                .bearer_auth(&key)
                .json(&json!({ "name": name }))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    let seed_seconds = t.elapsed().as_secs_f64();
    let mut failures = failed as u64;
    // Many matches ("e", "em"), some ("emma l", "ri"), one name
    // ("émile varga"), none ("zz"), and an id.
    let queries = [
        "e",
        "em",
        "emma l",
        "ri",
        "ana s",
        "émile varga",
        "zz",
        "1000007",
        "sa",
    ];
    let mut hist = histogram();
    let mut found = serde_json::Map::new();
    for i in 0..requests {
        let q = queries[i % queries.len()];
        let t = Instant::now();
        let res = http
            .get(format!("{base}/api/users"))
            .query(&[("q", q), ("limit", &limit.to_string())])
            .bearer_auth(key)
            .send()
            .await?;
        let ok = res.status().is_success();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        record(&mut hist, t.elapsed());
        let n = body["users"].as_array().map_or(0, Vec::len);
        found.insert(q.to_owned(), json!(n));
        if !ok {
            failures += 1;
        }
    }
    let report = json!({
        "mode": "users", "seeded": seeding.count, "seed_seconds": seed_seconds,
        "seed_per_second": seeding.count as f64 / seed_seconds.max(1e-9),
        "searches": requests, "limit": limit, "found_per_query": found,
        "latency_ms": summary(&hist),
    });
    Ok(("users", report, hist, failures))
}

fn print_table(name: &str, report: &Value) {
    println!("herald-bench {name}");
    let Some(obj) = report.as_object() else {
        return;
    };
    // Every `…latency_ms` field is a summary, printed as a row of its own.
    let is_latency = |k: &str| k.ends_with("latency_ms");
    for (k, v) in obj.iter().filter(|(k, _)| !is_latency(k)) {
        println!("  {k:<24} {v}");
    }
    println!(
        "  {:<14} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "", "count", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for (k, l) in obj.iter().filter(|(k, _)| is_latency(k)) {
        let ms = |q: &str| l[q].as_f64().unwrap_or(0.0);
        println!(
            "  {:<14} {:>8} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
            k.trim_end_matches("_ms"),
            l["count"],
            ms("p50"),
            ms("p90"),
            ms("p99"),
            ms("p999"),
            ms("max")
        );
    }
}

/// Latency (ms) by percentile, as an SVG line chart.
fn chart(
    path: &Path,
    title: &str,
    hist: &Histogram<u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let points: Vec<(f64, f64)> = if hist.is_empty() {
        Vec::new()
    } else {
        (0..=1000)
            .map(|i| {
                let q = i as f64 / 1000.0;
                (q * 100.0, hist.value_at_quantile(q) as f64 / 1_000.0)
            })
            .collect()
    };
    let ymax = points.iter().map(|p| p.1).fold(0.1, f64::max) * 1.1;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..100f64, 0f64..ymax)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .draw()?;
    chart.draw_series(LineSeries::new(points, &BLUE))?;
    root.present()?;
    Ok(())
}

//! Opt-in soak test: mixed load on a Herald process for a long time, with
//! a broker restart halfway. Run it by hand (30 minutes by default):
//!
//! ```text
//! HERALD_SOAK_SECS=1800 cargo test --release -p server --test soak -- --ignored --nocapture
//! ```
//!
//! Sends at a steady pace, streams opening and closing, inbox pages and
//! marks all run together. It checks what an operator would: every
//! acknowledged send stored exactly once, no 5xx but the 503s of sends
//! while the broker is away, inbox routes unaffected by the broker, and a
//! flat RSS. Figures go to `target/reliability-figures.txt` and
//! docs/reliability.md.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Answers counted by route kind and status.
#[derive(Default)]
struct Tally {
    /// (kind, status) → answers; status 0 is a transport error.
    by_status: BTreeMap<(&'static str, u16), usize>,
    /// Sends refused with a 5xx other than 503, or any 5xx elsewhere.
    unexpected: Vec<String>,
}

impl Tally {
    fn count(&mut self, kind: &'static str, status: u16, outage: bool) {
        *self.by_status.entry((kind, status)).or_default() += 1;
        let ok = match (kind, status) {
            (_, 200..=299) => true,
            // Sends need the broker: while it is away (and while the
            // producer reconnects) they are 503 or time out.
            ("send", 503 | 0) => outage,
            _ => false,
        };
        if !ok {
            self.unexpected.push(format!("{kind} {status}"));
        }
    }
}

/// Resident set size of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes HERALD_SOAK_SECS (30 minutes by default); run by hand"]
async fn soak_mixed_load_with_a_broker_restart() {
    let secs: u64 = std::env::var("HERALD_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_800);
    let run = Duration::from_secs(secs);
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Tansu::start(&dir.path().join("broker")).await;
    let mut cfg = config(dir.path(), &broker.brokers());
    cfg.send_timeout_ms = 2_000;
    let mut server = HeraldProcess::spawn(&cfg).await;
    let pid = server.pid().expect("running");
    let base = server.base.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let outage = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let mut tasks = tokio::task::JoinSet::new();

    // Sends: 100 a second from 4 workers, users 1-4 to each other.
    let sent = Arc::new(AtomicUsize::new(0));
    for w in 0..4 {
        let (http, base, stop, outage, tally, outcomes, sent) = (
            http.clone(),
            base.clone(),
            stop.clone(),
            outage.clone(),
            tally.clone(),
            outcomes.clone(),
            sent.clone(),
        );
        tasks.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(40));
            while !stop.load(Ordering::Relaxed) {
                every.tick().await;
                let i = sent.fetch_add(1, Ordering::Relaxed);
                let (from, to) = ((i % 4) as i64 + 1, ((i + w) % 4) as i64 + 1);
                let message = format!("soak {i}");
                let res = http
                    .post(format!("{base}/api/notifications"))
                    .json(&json!({"from": from, "to": to, "message": message}))
                    .send()
                    .await;
                let status = res.as_ref().map_or(0, |r| r.status().as_u16());
                let id = match res {
                    Ok(r) if r.status().is_success() => r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_owned)),
                    _ => None,
                };
                tally
                    .lock()
                    .unwrap()
                    .count("send", status, outage.load(Ordering::Relaxed));
                let mut o = outcomes.lock().unwrap();
                match id {
                    Some(id) => o.acked.push((id, message)),
                    None => o.failed.push(message),
                }
            }
        });
    }

    // Streams: four at a time, each open for 1-4 s, from the start or
    // resuming, then closed; each must deliver its first event (counts).
    for w in 0..4u64 {
        let (base, stop, tally) = (base.clone(), stop.clone(), tally.clone());
        tasks.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let user = (n + w) % 4 + 1;
                let since = if n.is_multiple_of(3) { "?since=0" } else { "" };
                let url = format!("{base}/api/users/{user}/events{since}");
                let res = reqwest::Client::new()
                    .get(&url)
                    .header("accept", "text/event-stream")
                    .send()
                    .await;
                let status = res.as_ref().map_or(0, |r| r.status().as_u16());
                tally.lock().unwrap().count("stream", status, false);
                if let Ok(res) = res {
                    use futures::StreamExt;
                    let mut body = res.bytes_stream();
                    let open_for = Duration::from_millis(1_000 + (n * 700 + w * 300) % 3_000);
                    let first = tokio::time::timeout(Duration::from_secs(5), body.next()).await;
                    if !matches!(first, Ok(Some(Ok(_)))) {
                        tally.lock().unwrap().count("stream-first-event", 0, false);
                    }
                    let _ = tokio::time::timeout(open_for, async {
                        while let Some(Ok(_)) = body.next().await {}
                    })
                    .await;
                }
            }
        });
    }

    // Inbox work: first and second page, mark one read, now and then all.
    {
        let (http, base, stop, tally) = (http.clone(), base.clone(), stop.clone(), tally.clone());
        tasks.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let user = n % 4 + 1;
                let page = http
                    .get(format!("{base}/api/users/{user}/notifications?limit=20"))
                    .send()
                    .await;
                let status = page.as_ref().map_or(0, |r| r.status().as_u16());
                tally.lock().unwrap().count("list", status, false);
                let body: Value = match page {
                    Ok(r) => r.json().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
                if let Some(cursor) = body["next_cursor"].as_str() {
                    let next = http
                        .get(format!(
                            "{base}/api/users/{user}/notifications?limit=20&before={cursor}"
                        ))
                        .send()
                        .await;
                    let status = next.as_ref().map_or(0, |r| r.status().as_u16());
                    tally.lock().unwrap().count("list", status, false);
                }
                if let Some(id) = body["notifications"][0]["id"].as_str() {
                    let mark = http
                        .patch(format!("{base}/api/notifications/{id}"))
                        .json(&json!({"read": true}))
                        .send()
                        .await;
                    let status = mark.as_ref().map_or(0, |r| r.status().as_u16());
                    tally.lock().unwrap().count("mark", status, false);
                }
                if n.is_multiple_of(20) {
                    let all = http
                        .post(format!("{base}/api/users/{user}/notifications/read-all"))
                        .send()
                        .await;
                    let status = all.as_ref().map_or(0, |r| r.status().as_u16());
                    tally.lock().unwrap().count("read-all", status, false);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    // RSS every 10 s.
    let samples = Arc::new(Mutex::new(Vec::new()));
    {
        let (stop, samples) = (stop.clone(), samples.clone());
        tasks.spawn(async move {
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                samples
                    .lock()
                    .unwrap()
                    .push((t0.elapsed().as_secs(), rss_kib(pid)));
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        });
    }

    // Halfway: the broker goes away for 10 s. Sends may fail from the
    // kill until the producer has its connection back (a minute at most).
    let t0 = Instant::now();
    tokio::time::sleep(run / 2).await;
    outage.store(true, Ordering::Relaxed);
    broker.kill().await;
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    broker.restart().await;
    let back = down.elapsed();
    tokio::time::sleep(Duration::from_secs(60)).await;
    outage.store(false, Ordering::Relaxed);
    tokio::time::sleep(run.saturating_sub(t0.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let rows = settle_acked(&cfg, &outcomes, Duration::from_secs(120)).await;
    let failed_but_stored = check_exactly_once(&rows, &outcomes);
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    let samples = samples.lock().unwrap().clone();
    // Flat: the largest RSS of the last quarter against the largest of the
    // second (after warm-up, before the outage).
    let quarter = |q: u64| {
        samples
            .iter()
            .filter(|(t, _)| *t * 4 / secs.max(1) == q)
            .map(|(_, kib)| *kib)
            .max()
            .unwrap_or(0)
    };
    let (warm, end) = (quarter(1), quarter(3));
    let statuses: Vec<String> = tally
        .by_status
        .iter()
        .map(|((kind, status), n)| format!("{kind} {status}: {n}"))
        .collect();
    figure(&format!(
        "soak: {secs} s; sends acked {} failed {} (failed-but-stored {failed_but_stored}), \
         stored {} (0 lost, 0 twice); broker away {back:?}; answers {}; \
         RSS max second quarter {warm} KiB, last quarter {end} KiB",
        outcomes.acked.len(),
        outcomes.failed.len(),
        rows.len(),
        statuses.join(", ")
    ));
    assert!(
        tally.unexpected.is_empty(),
        "unexpected answers: {:?}",
        &tally.unexpected[..tally.unexpected.len().min(20)]
    );
    assert!(
        end <= warm + warm / 4 + 16 * 1024,
        "RSS grew: {warm} KiB → {end} KiB ({samples:?})"
    );
    assert_eq!(server.terminate().await.code(), Some(0));
}

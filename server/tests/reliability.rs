//! Lose nothing, store nothing twice: crashes, redelivery, dead letters and
//! injected broker faults. Figures are printed (run with `--nocapture`) and
//! recorded in docs/reliability.md.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use app::model::User;
use common::*;
use rdkafka::message::{Headers, Message};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_kill_9_mid_load_loses_no_acknowledged_notification() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &shared_brokers());
    let mut server = HeraldProcess::spawn(&cfg).await;
    let total: usize = std::env::var("HERALD_CRASH_SENDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let t0 = Instant::now();
    let sends = load(std::slice::from_ref(&server.base), total, 32, "crash").await;
    while sends.answered() < total / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().await;
    let killed_at = sends.answered();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restart = Instant::now();
    server.restart().await;
    let back_in = restart.elapsed();
    let outcomes = sends.finish().await;
    let rows = settle(&cfg, outcomes.acked.len(), Duration::from_secs(40)).await;
    let failed_but_stored = check_exactly_once(&rows, &outcomes);
    figure(&format!(
        "crash: {total} sends, concurrency 32, kill -9 after {killed_at} answers; \
         acked {} failed {} stored {} (failed-but-stored {failed_but_stored}); \
         restart serving again in {back_in:?}; total {:?}",
        outcomes.acked.len(),
        outcomes.failed.len(),
        rows.len(),
        t0.elapsed()
    ));
    assert!(outcomes.acked.len() > total / 2, "most sends succeed");
    assert_eq!(server.terminate().await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_kill_9_mid_load_gives_503s_then_recovers_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Tansu::start(&dir.path().join("broker")).await;
    let h = Herald::with(|c| {
        c.kafka_brokers = broker.brokers();
        c.send_timeout_ms = 2_000;
    })
    .await;
    let total = 2_000;
    let sends = load(std::slice::from_ref(&h.base), total, 16, "outage").await;
    while sends.answered() < total / 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    broker.kill().await;
    let down = Instant::now();
    // While the broker is down, sends are answered 503 within the bound.
    let mut outage_latencies = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        // Raw: Retry-After is a header.
        let res = req(Method::POST, &h.url("/send"), None)
            .form(&[("fromID", "1"), ("toID", "2"), ("message", "while down")])
            .send()
            .await
            .unwrap();
        outage_latencies.push(t.elapsed());
        assert_eq!(res.status().as_u16(), 503);
        assert!(res.headers().contains_key("retry-after"));
    }
    broker.restart().await;
    let outage = down.elapsed();
    let mut outcomes = sends.finish().await;
    // Sends work again without restarting Herald.
    let recovered = Instant::now();
    eventually("sends recovering", Duration::from_secs(30), || async {
        let (status, body) = call_text(
            req(Method::POST, &h.url("/api/notifications"), None)
                .json(&json!({"from": 2, "to": 1, "message": "after recovery"})),
        )
        .await;
        if status == 202 {
            Ok(())
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await;
    let recovery = recovered.elapsed();
    outcomes.failed.push("while down".into());
    let rows = settle(&h.cfg, outcomes.acked.len() + 1, Duration::from_secs(60)).await;
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|(_, m)| m != "after recovery")
        .collect();
    let max = outage_latencies.iter().max().unwrap();
    assert!(
        *max <= Duration::from_millis(2_500),
        "503 within the bound: {outage_latencies:?}"
    );
    let failed_but_stored = check_exactly_once(&rows, &outcomes);
    figure(&format!(
        "broker: {total} sends, concurrency 16, broker kill -9 for {outage:?}; acked {} failed {} \
         (failed-but-stored {failed_but_stored}); 503 latency during outage max {max:?}; \
         first 202 {recovery:?} after the load ended",
        outcomes.acked.len(),
        outcomes.failed.len()
    ));
    h.shutdown().await;
}

#[tokio::test]
async fn redelivered_records_are_not_stored_twice() {
    let h = Herald::new().await;
    for i in 0..30 {
        let (status, body) = call(
            req(Method::POST, &h.url("/api/notifications"), None)
                .json(&json!({"from": 1, "to": 3, "message": format!("redelivery {i}")})),
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    assert_eq!(settle(&h.cfg, 30, Duration::from_secs(20)).await.len(), 30);
    let mut again = h.shutdown().await;

    // A new consumer group over the same topic and store sees every record
    // again, as after lost commits.
    again.cfg.group_id = format!("{}-again", again.cfg.group_id);
    let h = again.start().await;
    let mut sse = SseClient::connect(&h.url("/api/users/3/events"), None).await;
    wait_for_committed(&h.cfg, 30, Duration::from_secs(20)).await;
    let rows = stored_rows(&h.cfg).await;
    assert_eq!(rows.len(), 30, "redelivery stored nothing twice");
    // Nor were they pushed again as new events.
    assert!(sse
        .next_notification(Duration::from_millis(500))
        .await
        .is_none());
    h.shutdown().await;
}

#[tokio::test]
async fn poison_records_go_to_the_dead_letter_topic_and_the_next_is_delivered() {
    let h = Herald::new().await;
    let topic = h.cfg.topic.clone();
    let records = [
        "{not json".to_owned(),
        r#"{"from":{"id":2,"name":"Bruno"},"to":{"id":77,"name":"Nobody"},"message":"to nobody"}"#.to_owned(),
        format!(r#"{{"from":{{"id":2,"name":"Bruno"}},"to":{{"id":1,"name":"Emma"}},"message":"{}"}}"#, "x".repeat(2_001)),
        // PostgreSQL cannot store NUL: the write would fail on every retry.
        r#"{"from":{"id":2,"name":"Bruno"},"to":{"id":1,"name":"Emma"},"message":"nul \u0000 inside"}"#.to_owned(),
        r#"{"from":{"id":99,"name":"Nobody"},"to":{"id":1,"name":"Emma"},"message":"from nobody"}"#.to_owned(),
        // Valid, but it lies about the sender's name: the directory's shows.
        r#"{"from":{"id":4,"name":"IT Security"},"to":{"id":1,"name":"Emma"},"message":"valid after poison"}"#.to_owned(),
    ];
    produce_raw(&h.cfg, &records).await;
    let list = wait_for_count(&h, 1, 1, Duration::from_secs(5)).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].message, "valid after poison");
    assert_eq!(
        list[0].from,
        User {
            id: 4,
            name: "Lena".into()
        }
    );

    // The five poison records are on the DLQ with headers naming why.
    let dlq = dead_letter_reader(&h.cfg);
    let mut letters = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while letters.len() < 5 && Instant::now() < deadline {
        if let Some(Ok(m)) = dlq.poll(Duration::from_millis(200)) {
            let mut headers = HashMap::new();
            if let Some(h) = m.headers() {
                for hd in h.iter() {
                    headers.insert(
                        hd.key.to_owned(),
                        String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned(),
                    );
                }
            }
            letters.push((
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                headers,
            ));
        }
    }
    assert_eq!(letters.len(), 5, "{letters:?}");
    letters.sort_by_key(|(_, h)| h["herald.source.offset"].parse::<i64>().unwrap());
    assert_eq!(letters[0].0, "{not json");
    assert!(letters[0].1["herald.error"].contains("invalid JSON"));
    assert!(letters[1].1["herald.error"].contains("unknown recipient 77"));
    assert!(letters[2].1["herald.error"].contains("2001"));
    assert!(letters[3].1["herald.error"].contains("NUL"));
    assert!(letters[4].1["herald.error"].contains("unknown sender 99"));
    for (_, headers) in &letters {
        assert_eq!(headers["herald.source.topic"], topic);
        headers["herald.source.partition"].parse::<i32>().unwrap();
    }

    // The metric counts them (every series shows from start at 0, so the
    // value is what tells).
    let (_, metrics) = get(&h.url("/metrics")).await;
    for reason in [
        "invalid_json",
        "unknown_recipient",
        "oversize",
        "nul_byte",
        "unknown_sender",
    ] {
        let series = format!("herald_dead_letters_total{{reason=\"{reason}\"}}");
        let value = counter(&metrics, &series);
        assert!(value >= 1.0, "{series}{value}");
    }
    h.shutdown().await;
}

//! Restarts, foreign records, resume, broker outages, graceful shutdown.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn send(h: &Herald, from: i64, to: i64, message: &str) -> Value {
    let (status, body) = post_json(
        &h.url("/api/notifications"),
        json!({"from": from, "to": to, "message": message}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    body
}

#[tokio::test]
async fn restart_keeps_notifications_and_duplicates_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &shared_brokers());
    // Without early delivery, listed means consumed: the commit check below
    // is exact. (`early_delivery.rs` restarts with it on.)
    cfg.early_delivery = false;
    let h = Herald::start(cfg).await;
    let mut ids = HashSet::new();
    for i in 0..20 {
        ids.insert(
            send(&h, 2, 1, &format!("before restart {i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        wait_for_count(&h, 1, 20, Duration::from_secs(10))
            .await
            .len(),
        20
    );
    let cfg = h.shutdown().await;
    // Graceful shutdown committed every consumed record.
    assert_eq!(committed_total(&cfg), 20);

    let mut cfg = cfg;
    cfg.early_delivery = true;
    let h = Herald::start(cfg).await;
    ids.insert(
        send(&h, 2, 1, "after restart").await["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let list = wait_for_count(&h, 1, 21, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let list = if list.len() == 21 {
        wait_for_count(&h, 1, 22, Duration::from_millis(1)).await
    } else {
        list
    };
    let listed: HashSet<String> = list
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(list.len(), 21, "all kept, none twice");
    assert_eq!(listed, ids);
    h.shutdown().await;
}

#[tokio::test]
async fn go_tutorial_records_are_consumed_and_bad_json_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start(config(dir.path(), &shared_brokers())).await;
    let topic = h.cfg.topic.clone();
    produce_raw(&h.cfg, &[
        "{this is not json".to_owned(),
        r#"{"from":{"id":2,"name":"Bruno"},"to":{"id":1,"name":"Emma"},"message":"Bruno started following you"}"#.to_owned(),
    ]).await;
    let list = wait_for_count(&h, 1, 1, Duration::from_secs(5)).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["message"], "Bruno started following you");
    let id = list[0]["id"].as_str().unwrap();
    assert!(id.starts_with(&format!("{topic}-")), "derived id {id}");
    chrono::DateTime::parse_from_rfc3339(list[0]["created_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        get(&h.url("/notifications/1")).await.1,
        r#"{"notifications":[{"from":{"id":2,"name":"Bruno"},"to":{"id":1,"name":"Emma"},"message":"Bruno started following you"}]}"#
    );
    h.shutdown().await;
}

#[tokio::test]
async fn sse_resumes_after_last_event_id_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start(config(dir.path(), &shared_brokers())).await;
    let events = h.url("/api/users/4/events");

    let mut sse = SseClient::connect(&events, None).await;
    let first = sse.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(first.retry, Some(1000), "a retry hint comes first");
    send(&h, 1, 4, "one").await;
    send(&h, 1, 4, "two").await;
    let _ = sse.next_notification(Duration::from_secs(3)).await.unwrap();
    let two = sse.next_notification(Duration::from_secs(3)).await.unwrap();
    drop(sse);

    let mut expected = Vec::new();
    for i in 0..5 {
        expected.push(
            send(&h, 3, 4, &format!("missed {i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    wait_for_count(&h, 4, 7, Duration::from_secs(5)).await;

    let mut sse = SseClient::connect(&events, two.id.as_deref()).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(
            sse.next_notification(Duration::from_secs(3))
                .await
                .unwrap()
                .id
                .unwrap(),
        );
    }
    assert_eq!(got, expected, "exactly the missed ones, in order");
    let live = send(&h, 2, 4, "live again").await;
    let ev = sse.next_notification(Duration::from_secs(3)).await.unwrap();
    assert_eq!(
        ev.id.as_deref(),
        live["id"].as_str(),
        "then live, no duplicate"
    );

    // `?since=0` replays the whole inbox, oldest first.
    let mut sse = SseClient::connect(&format!("{events}?since=0"), None).await;
    let ev = sse.next_notification(Duration::from_secs(3)).await.unwrap();
    assert!(ev.data.contains("\"one\""), "{}", ev.data);
    h.shutdown().await;
}

#[tokio::test]
async fn broker_outage_gives_fast_503_and_sends_recover_by_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Tansu::start(&dir.path().join("broker")).await;
    let mut cfg = config(dir.path(), &broker.brokers());
    cfg.send_timeout_ms = 2_000;
    let h = Herald::start(cfg).await;
    send(&h, 2, 3, "before the outage").await;
    wait_for_count(&h, 3, 1, Duration::from_secs(5)).await;

    broker.kill().await;
    let t0 = Instant::now();
    let res = client()
        .post(h.url("/send"))
        .form(&[
            ("fromID", "2"),
            ("toID", "3"),
            ("message", "during the outage"),
        ])
        .send()
        .await
        .unwrap();
    let took = t0.elapsed();
    assert_eq!(res.status().as_u16(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let v: Value = res.json().await.unwrap();
    assert!(v["message"].is_string());
    assert!(
        took <= Duration::from_millis(2_500),
        "503 within the bound, took {took:?}"
    );

    broker.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = client()
            .post(h.url("/api/notifications"))
            .json(&json!({"from": 2, "to": 3, "message": "after the outage"}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        if status == 202 {
            break;
        }
        eprintln!(
            "after restart: {status} {}",
            res.text().await.unwrap_or_default()
        );
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(broker.dir.join("tansu.log")).unwrap_or_default();
            let start = log.find("panicked").unwrap_or(0);
            let tail: Vec<_> = log[start..]
                .lines()
                .filter(|l| !l.trim_start().starts_with("at "))
                .take(25)
                .collect();
            panic!(
                "sends did not recover; tansu log tail:\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let list = wait_for_count(&h, 3, 2, Duration::from_secs(15)).await;
    let texts: Vec<_> = list
        .iter()
        .map(|n| n["message"].as_str().unwrap())
        .collect();
    assert!(
        texts.contains(&"before the outage") && texts.contains(&"after the outage"),
        "{texts:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn binary_stops_cleanly_on_sigterm_with_an_open_stream() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &shared_brokers());
    let mut server = HeraldProcess::spawn(&cfg).await;
    let mut sse = SseClient::connect(&format!("{}/api/users/1/events", server.base), None).await;
    sse.next(Duration::from_secs(2)).await.unwrap();

    let status = server.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    // Events already on the wire (the first counts) may still be read; then
    // the stream must end, not hang.
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        while sse.next(Duration::from_secs(5)).await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "stream closed");
}

#[tokio::test]
async fn sigterm_exits_promptly_even_when_the_broker_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Tansu::start(&dir.path().join("broker")).await;
    let cfg = config(dir.path(), &broker.brokers());
    let mut server = HeraldProcess::spawn(&cfg).await;
    send_seed(&server.base).await;
    broker.kill().await;
    let t0 = Instant::now();
    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t0.elapsed()
    );
}

async fn send_seed(base: &str) {
    let res = client()
        .post(format!("{base}/send"))
        .form(&[("fromID", "1"), ("toID", "2"), ("message", "hello")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

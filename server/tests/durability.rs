//! Restarts, foreign records, resume, broker outages, graceful shutdown.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use app::model::Notification;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Send through the JSON API; the accepted notification.
async fn send(h: &Herald, from: i64, to: i64, message: &str) -> Notification {
    let (status, sent) = call_as(
        req(Method::POST, &h.url("/api/notifications"), None)
            .json(&json!({"from": from, "to": to, "message": message})),
    )
    .await;
    assert_eq!(status, 202);
    sent
}

#[tokio::test]
async fn restart_keeps_notifications_and_duplicates_none() {
    // Without early delivery, listed means consumed: the commit check below
    // is exact. (`early_delivery.rs` restarts with it on.)
    let h = Herald::with(|c| c.early_delivery = false).await;
    let mut ids = HashSet::new();
    for i in 0..20 {
        ids.insert(send(&h, 2, 1, &format!("before restart {i}")).await.id);
    }
    assert_eq!(
        wait_for_count(&h, 1, 20, Duration::from_secs(10))
            .await
            .len(),
        20
    );
    let mut stopped = h.shutdown().await;
    // Graceful shutdown committed every consumed record.
    assert_eq!(committed_total(&stopped.cfg), 20);

    stopped.cfg.early_delivery = true;
    let h = stopped.start().await;
    ids.insert(send(&h, 2, 1, "after restart").await.id);
    wait_for_count(&h, 1, 21, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let list = inbox(&h, 1).await;
    let listed: HashSet<String> = list.iter().map(|n| n.id.clone()).collect();
    assert_eq!(list.len(), 21, "all kept, none twice");
    assert_eq!(listed, ids);
    h.shutdown().await;
}

#[tokio::test]
async fn go_tutorial_records_are_consumed_and_bad_json_is_skipped() {
    let h = Herald::new().await;
    let topic = h.cfg.topic.clone();
    produce_raw(&h.cfg, &[
        "{this is not json".to_owned(),
        r#"{"from":{"id":2,"name":"Bruno"},"to":{"id":1,"name":"Emma"},"message":"Bruno started following you"}"#.to_owned(),
    ]).await;
    let list = wait_for_count(&h, 1, 1, Duration::from_secs(5)).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].message, "Bruno started following you");
    let id = &list[0].id;
    assert!(id.starts_with(&format!("{topic}-")), "derived id {id}");
    // The time it was given is on the wire as RFC 3339.
    let (_, raw) = call(req(Method::GET, &h.url("/api/users/1/notifications"), None)).await;
    chrono::DateTime::parse_from_rfc3339(raw["notifications"][0]["created_at"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        get(&h.url("/notifications/1")).await.1,
        r#"{"notifications":[{"from":{"id":2,"name":"Bruno"},"to":{"id":1,"name":"Emma"},"message":"Bruno started following you"}]}"#
    );
    h.shutdown().await;
}

#[tokio::test]
async fn sse_resumes_after_last_event_id_without_gap_or_duplicate() {
    let h = Herald::new().await;
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
        expected.push(send(&h, 3, 4, &format!("missed {i}")).await.id);
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
    assert_eq!(ev.id, Some(live.id), "then live, no duplicate");

    // `?since=0` replays the whole inbox, oldest first.
    let mut sse = SseClient::connect(&format!("{events}?since=0"), None).await;
    let ev = sse.next_notification(Duration::from_secs(3)).await.unwrap();
    assert_eq!(ev.decode::<Notification>().message, "one", "{}", ev.data);
    h.shutdown().await;
}

#[tokio::test]
async fn broker_outage_gives_fast_503_and_sends_recover_by_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Tansu::start(&dir.path().join("broker")).await;
    let h = Herald::with(|c| {
        c.kafka_brokers = broker.brokers();
        c.send_timeout_ms = 2_000;
    })
    .await;
    send(&h, 2, 3, "before the outage").await;
    wait_for_count(&h, 3, 1, Duration::from_secs(5)).await;

    broker.kill().await;
    let t0 = Instant::now();
    // Raw: Retry-After is a header.
    let res = req(Method::POST, &h.url("/send"), None)
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
    // Not `eventually`: when time runs out, what tells is the broker's log.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = call_text(
            req(Method::POST, &h.url("/api/notifications"), None)
                .json(&json!({"from": 2, "to": 3, "message": "after the outage"})),
        )
        .await;
        if status == 202 {
            break;
        }
        eprintln!("after restart: {status} {body}");
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
    let texts: Vec<_> = list.iter().map(|n| n.message.as_str()).collect();
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

/// One send through the Go tutorial's route of the Herald at `base`.
async fn send_seed(base: &str) {
    let (status, body) = call_text(req(Method::POST, &format!("{base}/send"), None).form(&[
        ("fromID", "1"),
        ("toID", "2"),
        ("message", "hello"),
    ]))
    .await;
    assert_eq!(status, 200, "{body}");
}

/// The producer is not idempotent by default, so a batch the broker kept
/// but whose acknowledgement was lost comes back on the topic when
/// librdkafka retries it. Herald stores and streams such a copy once: the
/// notification's id decides, not the record's position.
#[tokio::test]
async fn a_record_the_topic_holds_twice_is_stored_and_streamed_once() {
    let h = Herald::new().await;
    let mut sse = SseClient::connect(&h.url("/api/users/1/events"), None).await;
    let _hint = sse.next(Duration::from_secs(2)).await.unwrap();
    let record = |id: &str, message: &str| {
        json!({
            "id": id,
            "from": {"id": 2, "name": "Bruno"},
            "to": {"id": 1, "name": "Emma"},
            "message": message,
        })
        .to_string()
    };
    let copy = record(
        "0193a5b4-7c1e-7a2b-9c3d-4e5f60718293",
        "sent once, on the topic twice",
    );
    let after = record("0193a5b4-7c1e-7a2b-9c3d-4e5f60718294", "the next one");
    produce_raw(&h.cfg, &[copy.clone(), copy, after]).await;

    let mut streamed = Vec::new();
    while let Some(n) = sse.next_notification(Duration::from_secs(5)).await {
        let n: Notification = serde_json::from_str(&n.data).unwrap();
        streamed.push(n.message);
        if streamed.len() == 2 {
            break;
        }
    }
    assert_eq!(streamed, ["sent once, on the topic twice", "the next one"]);
    // Whatever else arrives now would be the copy streamed again.
    assert!(
        sse.next_notification(Duration::from_millis(1500))
            .await
            .is_none(),
        "the copy is not streamed"
    );
    let list = inbox(&h, 1).await;
    let messages: Vec<&str> = list.iter().map(|n| n.message.as_str()).collect();
    assert_eq!(messages, ["the next one", "sent once, on the topic twice"]);
    h.shutdown().await;
}

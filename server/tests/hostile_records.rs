//! Records on the topic are input: whoever can write to the broker chooses
//! every byte of a record. Ids that could break a stream and messages the
//! API would refuse go to the dead-letter topic; the valid records around
//! them are stored and streamed as usual.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// A record in Herald's format from Bruno to Emma, with `extra` fields.
fn record(extra: serde_json::Value) -> String {
    let mut r = json!({
        "from": {"id": 2, "name": "Bruno"},
        "to": {"id": 1, "name": "Emma"},
        "message": "fine",
    });
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r.to_string()
}

#[tokio::test]
async fn ids_that_could_break_a_stream_and_messages_the_api_refuses_are_dead_lettered() {
    let h = Herald::new().await;
    let refused = [
        // An SSE `id:` line ends at CR or LF: the rest would become a
        // field of its own.
        record(json!({"id": "evil\r\nevent: state\r\ndata: {}", "message": "crlf id"})),
        record(json!({"id": "lf\nid", "message": "lf id"})),
        record(json!({"id": "with space", "message": "space id"})),
        record(json!({"id": "x".repeat(129), "message": "long id"})),
        record(json!({"id": "", "message": "empty id"})),
        // A link or button that would run script in the inbox.
        record(json!({"message": "click me", "link": "javascript:alert(1)"})),
        record(json!({"message": "press", "actions": [{"label": "x", "url": "data:,x"}]})),
        // Terminal escapes would reach logs and screens.
        record(json!({"message": "\u{1b}[31mred"})),
        record(json!({"message": "  \n\t "})),
    ];
    let accepted = [
        record(json!({"id": "0193a5b4-7c1e-7a2b-9c3d-4e5f60718293", "message": "uuid id"})),
        record(json!({"id": "billing:order-48213.shipped_1", "message": "key id"})),
        record(json!({"id": "y".repeat(128), "message": "longest id"})),
        // Without an id the record gets `topic-partition-offset`.
        record(json!({"message": "line 1\r\nline 2\tend"})),
    ];
    produce_raw(&h.cfg, &[refused.to_vec(), accepted.to_vec()].concat()).await;

    let list = wait_for_count(&h, 1, accepted.len(), Duration::from_secs(10)).await;
    let mut messages: Vec<&str> = list.iter().map(|n| n.message.as_str()).collect();
    messages.sort();
    assert_eq!(
        messages,
        ["key id", "line 1\nline 2\tend", "longest id", "uuid id"],
        "only the acceptable records are listed, CRLF stored as LF"
    );

    // A replay of the whole inbox is exactly those four events, each with
    // its id on one line.
    let mut sse = SseClient::connect(&h.url("/api/users/1/events?since=0"), None).await;
    let mut ids = Vec::new();
    while let Some(ev) = sse.next_notification(Duration::from_secs(2)).await {
        ids.push(ev.id.clone().expect("an id"));
    }
    let mut listed: Vec<String> = list.into_iter().map(|n| n.id).collect();
    listed.sort();
    ids.sort();
    assert_eq!(ids, listed);

    let metrics = wait_for_counter(
        &h,
        "herald_dead_letters_total{reason=\"invalid_id\"}",
        5.0,
        Duration::from_secs(10),
    )
    .await;
    for (reason, n) in [
        ("control_character", 1.0),
        ("empty_message", 1.0),
        ("invalid_fields", 2.0),
    ] {
        let series = format!("herald_dead_letters_total{{reason=\"{reason}\"}}");
        assert_eq!(counter(&metrics, &series), n, "{series}\n{metrics}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_record_too_large_for_the_dead_letter_topic_goes_there_truncated_and_the_next_is_stored()
{
    use rdkafka::message::{Headers, Message};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use sha2::{Digest, Sha256};

    let h = Herald::new().await;
    // 1.5 MB of junk: the topic takes it (this producer allows 4 MB), but
    // Herald's producer, with Kafka's default 1 MB limit, cannot copy it.
    let junk = "x".repeat(1_500_000);
    let big: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &h.cfg.kafka_brokers)
        .set("message.max.bytes", "4000000")
        .create()
        .unwrap();
    for payload in [junk.clone(), record(json!({"message": "behind the junk"}))] {
        big.send(
            FutureRecord::to(&h.cfg.topic).key("1").payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    }
    let list = wait_for_count(&h, 1, 1, Duration::from_secs(20)).await;
    assert_eq!(list[0].message, "behind the junk");

    let dlq = dead_letter_reader(&h.cfg);
    let letter = eventually("the truncated dead letter", Duration::from_secs(20), || {
        let polled = dlq.poll(Duration::from_millis(200));
        async move {
            let m = polled?.ok()?;
            let headers: Vec<(String, String)> = m
                .headers()?
                .iter()
                .map(|hd| {
                    let value = String::from_utf8_lossy(hd.value.unwrap_or_default());
                    (hd.key.to_owned(), value.into_owned())
                })
                .collect();
            Some((m.payload().unwrap_or_default().to_vec(), headers))
        }
    })
    .await;
    let header = |k: &str| {
        letter
            .1
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("header {k} missing: {:?}", letter.1))
    };
    assert_eq!(letter.0, junk.as_bytes()[..1024]);
    assert_eq!(header("herald.truncated"), "true");
    assert_eq!(header("herald.original.size"), "1500000");
    assert_eq!(
        header("herald.original.sha256"),
        format!("{:x}", Sha256::digest(junk.as_bytes()))
    );
    assert!(header("herald.error").contains("invalid JSON"));
    let (_, metrics) = get(&h.url("/metrics")).await;
    assert_eq!(
        counter(&metrics, "herald_dead_letters_truncated_total"),
        1.0
    );
    assert_eq!(
        counter(
            &metrics,
            "herald_dead_letters_total{reason=\"invalid_json\"}"
        ),
        1.0
    );
    h.shutdown().await;
}

/// When the dead-letter topic cannot take even the truncated copy (here:
/// Herald may produce at most 1,000 bytes, less than the 1 KiB copy), the
/// record is skipped, counted and logged, and the valid record behind it is
/// stored within seconds: junk can never stop a partition.
#[tokio::test]
async fn a_record_the_dead_letter_topic_refuses_even_truncated_is_skipped_and_the_next_is_stored() {
    let h = Herald::with(|c| c.kafka_message_max_bytes = 1_000).await;
    let junk = "y".repeat(1_500);
    produce_raw(
        &h.cfg,
        &[junk, record(json!({"message": "behind the skipped junk"}))],
    )
    .await;
    let list = wait_for_count(&h, 1, 1, Duration::from_secs(20)).await;
    assert_eq!(list[0].message, "behind the skipped junk");
    // (The metrics are the process's: other tests of this file run beside
    // this one and count their own dead letters, so only the dropped
    // count, which nothing else here increments, is checked.)
    wait_for_counter(
        &h,
        "herald_dead_letters_dropped_total",
        1.0,
        Duration::from_secs(10),
    )
    .await;
    let dlq = dead_letter_reader(&h.cfg);
    assert!(
        dlq.poll(Duration::from_secs(2)).is_none(),
        "the dead-letter topic stays empty"
    );
    h.shutdown().await;
}

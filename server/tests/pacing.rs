//! The consumer fetches only while records wait (`pacer`): an idle instance
//! stops fetching, and what arrives is still stored promptly: this
//! instance's sends at once (by early delivery, the consumer committing
//! past them unread), other producers' records at the next look.
//!
//! One test in this file: the request counters it reads are per process.

mod common;

use std::time::{Duration, Instant};

use common::*;

const FETCHES: &str = "herald_kafka_requests_total{client=\"consumer\",request=\"Fetch\"}";
const LOOKS: &str = "herald_kafka_requests_total{client=\"consumer\",request=\"ListOffsets\"}";

async fn metrics(h: &Herald) -> String {
    let (status, body) = get(&h.url("/metrics")).await;
    assert_eq!(status, 200);
    body
}

#[tokio::test]
async fn an_idle_consumer_stops_fetching_and_still_stores_what_arrives() {
    // Looks far apart: only this instance's own sends can wake it.
    let h = Herald::with(|c| c.idle_probe_ms = 600_000).await;
    // Nobody watches user 3, so the consumer is what stores this.
    seed_send(&h, 3, "before the quiet").await;
    wait_for_count(&h, 3, 1, Duration::from_secs(10)).await;

    // Caught up: after a look it pauses. librdkafka reports its requests
    // once a second, so leave time for the last fetches to be counted.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = metrics(&h).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = metrics(&h).await;
    let fetched = counter(&after, FETCHES) - counter(&before, FETCHES);
    // Without pausing: about 60 fetches in 3 s at the default 50 ms wait
    // (189 measured with 10 ms); the old fixed 250 ms wait, 12.
    assert!(
        fetched <= 2.0,
        "an idle consumer made {fetched} fetch requests in 3 s"
    );
    assert!(
        counter(&after, FETCHES) > 0.0,
        "the request counters are read"
    );

    // Paused, with no look due for ten minutes: a send of this instance is
    // stored by early delivery (nobody watches user 3), and the consumer
    // commits past it without fetching it.
    let sent = Instant::now();
    seed_send(&h, 3, "after the quiet").await;
    let list = wait_for_count(&h, 3, 2, Duration::from_secs(10)).await;
    assert!(list.iter().any(|n| n.message == "after the quiet"));
    figure(&format!(
        "pacing: a send to a paused consumer stored after {:?}",
        sent.elapsed()
    ));
    let early = |m: &str| counter(m, "herald_early_stored_total");
    assert!(early(&metrics(&h).await) > early(&after), "stored early");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = metrics(&h).await;
    let fetched = counter(&later, FETCHES) - counter(&after, FETCHES);
    let read = |m: &str| counter(m, "herald_consumed_records_total");
    let read_back = read(&later) - read(&after);
    figure(&format!(
        "pacing: for a send while paused the consumer fetched {fetched} times and read {read_back} records"
    ));
    assert_eq!(read_back, 0.0, "the consumer read the record back");
    assert!(fetched < 1.0, "the consumer fetched {fetched} times for it");
    // Committed all the same: a restart on the same group would not read
    // it again.
    wait_for_committed(&h.cfg, 2, Duration::from_secs(5)).await;
    h.shutdown().await;

    // Another producer's record (another service, the Go tutorial) while
    // the consumer is paused: the next look finds it.
    let h = Herald::new().await;
    seed_send(&h, 3, "wake-up").await;
    wait_for_count(&h, 3, 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let looks = counter(&metrics(&h).await, LOOKS);
    assert!(looks > 0.0, "a paused consumer looks at the end offsets");
    let sent = Instant::now();
    produce_raw(
        &h.cfg,
        &[r#"{"from":{"id":2,"name":"Bruno"},"to":{"id":4,"name":"Lena"},"message":"from elsewhere"}"#
            .to_owned()],
    )
    .await;
    let list = wait_for_count(&h, 4, 1, Duration::from_secs(5)).await;
    assert_eq!(list[0].message, "from elsewhere");
    figure(&format!(
        "pacing: another producer's record stored after {:?} (looks every {} ms)",
        sent.elapsed(),
        h.cfg.idle_probe_ms
    ));
}

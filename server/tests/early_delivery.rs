//! Early delivery (store and push right after the broker's acknowledgement)
//! and the consumer group write the same notifications: each must still be
//! stored once and streamed once, with early delivery on (the default) and
//! off.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use herald::Config;
use tokio::sync::Mutex;

const SENDS: usize = 30;

/// The tests of this file take turns: they compare this process's metrics
/// registry (shared by every Herald the test binary starts) before and
/// after, so another test's sends must not move it meanwhile.
static METRICS: Mutex<()> = Mutex::const_new(());

/// Start Herald ([`Herald::with`] `tune`) and wait until its consumer owns
/// the partitions (early delivery only writes those): once a first
/// notification is stored, the group has assigned them.
async fn start_assigned(tune: impl FnOnce(&mut Config)) -> Herald {
    let h = Herald::with(tune).await;
    seed_send(&h, 3, "warm-up").await;
    let listed = wait_for_count(&h, 3, 1, Duration::from_secs(20)).await;
    assert_eq!(listed.len(), 1, "the warm-up notification was not stored");
    h
}

#[tokio::test]
async fn each_send_is_stored_and_streamed_once_with_early_delivery_on() {
    sends_are_stored_and_streamed_once(true).await;
}

#[tokio::test]
async fn each_send_is_stored_and_streamed_once_with_early_delivery_off() {
    sends_are_stored_and_streamed_once(false).await;
}

async fn sends_are_stored_and_streamed_once(early: bool) {
    let _turn = METRICS.lock().await;
    let early_before = metric("herald_early_stored_total");
    let h = start_assigned(|c| c.early_delivery = early).await;
    let mut stream = SseClient::connect(&h.url("/api/users/1/events"), None).await;

    for i in 0..SENDS {
        seed_send(&h, 1, &format!("early {i}")).await;
    }

    let mut seen: HashMap<String, usize> = HashMap::new();
    while seen.len() < SENDS {
        let e = stream
            .next_notification(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("only {} of {SENDS} notifications streamed", seen.len()));
        *seen.entry(e.id.expect("event id")).or_default() += 1;
    }

    // Wait until the group committed every record (read back by the
    // consumer, or committed past without reading it when early delivery
    // stored it), so a second publication would have happened by now.
    wait_for_committed(&h.cfg, (SENDS + 1) as i64, Duration::from_secs(20)).await;
    let (_, metrics) = get(&h.url("/metrics")).await;
    while let Some(e) = stream.next_notification(Duration::from_millis(700)).await {
        *seen.entry(e.id.expect("event id")).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "streamed more than once: {twice:?}");
    assert_eq!(seen.len(), SENDS);

    let listed = inbox(&h, 1).await;
    assert_eq!(listed.len(), SENDS, "stored once each: {listed:?}");
    for n in &listed {
        assert!(seen.contains_key(&n.id));
    }

    let early_stored = counter(&metrics, "herald_early_stored_total") - early_before;
    if early {
        // Under no load the acknowledgement comes long before the consumer's
        // fetch: early delivery is what stored them.
        assert!(
            early_stored > 0.0,
            "early delivery stored nothing:\n{metrics}"
        );
    } else {
        assert_eq!(early_stored, 0.0, "early delivery is off:\n{metrics}");
    }
    h.shutdown().await;
}

/// A counter of this process's metrics registry (see [`METRICS`]).
fn metric(name: &str) -> f64 {
    counter(&herald::telemetry::text(), name)
}

/// Shut down right after early delivery stored the sends, before the
/// consumer read them all back and committed: after a restart the consumer
/// reads them again and must neither store nor stream them twice.
#[tokio::test]
async fn a_restart_between_early_delivery_and_the_commit_duplicates_nothing() {
    let _turn = METRICS.lock().await;
    let h = start_assigned(|_| {}).await;
    // Early delivery only writes for recipients someone is watching.
    let watching = SseClient::connect(&h.url("/api/users/1/events"), None).await;
    for i in 0..SENDS {
        seed_send(&h, 1, &format!("restart {i}")).await;
    }
    assert_eq!(
        wait_for_count(&h, 1, SENDS, Duration::from_secs(10))
            .await
            .len(),
        SENDS
    );
    drop(watching);
    let h = h.restart().await;
    let mut stream = SseClient::connect(&h.url("/api/users/1/events"), None).await;
    wait_for_committed(&h.cfg, (SENDS + 1) as i64, Duration::from_secs(20)).await;
    assert!(
        stream
            .next_notification(Duration::from_millis(500))
            .await
            .is_none(),
        "a notification was streamed again after the restart"
    );
    let listed = inbox(&h, 1).await;
    assert_eq!(listed.len(), SENDS, "{listed:?}");
    h.shutdown().await;
}

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

/// While another member of the group owns some partitions, sends to those
/// are left to the consumer (not this instance's to write early). Once this
/// instance owns every partition again, early delivery must take every
/// send again, under a steady flow too: it used to leave each send behind
/// such a record to the consumer as well, which then never caught up, and
/// early delivery stayed off for those partitions until the flow paused.
#[tokio::test]
async fn early_delivery_takes_every_send_again_after_a_rebalance_under_a_steady_flow() {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let _turn = METRICS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &shared_brokers());
    // SQLite only: with a shared store (the PostgreSQL pass) an instance
    // writes every send early, its consumer's partitions or not, so nothing
    // is left to the consumer here.
    if !cfg.database_url.starts_with("sqlite:") {
        return;
    }
    herald::kafka::ensure_topics(&cfg).await.unwrap();
    // The other member joins first and reads (serving its rebalances).
    let other: Arc<StreamConsumer> = Arc::new(
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &cfg.kafka_brokers)
            .set("group.id", &cfg.group_id)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap(),
    );
    other.subscribe(&[&cfg.topic]).unwrap();
    let reading = tokio::spawn({
        let other = other.clone();
        async move {
            loop {
                let _ = other.recv().await;
            }
        }
    });
    eventually(
        "the other member owns partitions",
        Duration::from_secs(20),
        || async {
            match other.assignment() {
                Ok(a) if a.count() > 0 => Ok(()),
                _ => Err("no assignment yet"),
            }
        },
    )
    .await;
    let h = Herald::start(cfg).await;
    let _watching = SseClient::connect(&h.url("/api/users/1/events"), None).await;

    // A steady flow of sends (to users 1, 3 and 4: every partition).
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let flow = tokio::spawn({
        let (base, sent, stop) = (h.base.clone(), sent.clone(), stop.clone());
        async move {
            let client = client();
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let to = [1, 3, 4][sent.load(Ordering::Relaxed) % 3];
                seed_send_with(&client, &base, to, "flow").await;
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let not_owned = r#"herald_early_skipped_total{reason="not_owned"}"#;
    let skipped = metric(not_owned);
    eventually(
        "sends to the other member's partitions",
        Duration::from_secs(20),
        || async {
            if metric(not_owned) > skipped {
                Ok(())
            } else {
                Err("none left to the consumer yet")
            }
        },
    )
    .await;

    // The other member leaves: this instance owns every partition again.
    reading.abort();
    let _ = reading.await;
    tokio::task::spawn_blocking(move || {
        other.unsubscribe();
        drop(other);
    })
    .await
    .unwrap();
    eventually(
        "no send left as not owned for a second",
        Duration::from_secs(30),
        || async {
            let before = metric(not_owned);
            tokio::time::sleep(Duration::from_secs(1)).await;
            if metric(not_owned) == before {
                Ok(())
            } else {
                Err("still not owning every partition")
            }
        },
    )
    .await;
    // Give the consumer a moment to read what was left to it, then count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (sent_before, early_before) = (
        sent.load(Ordering::Relaxed),
        metric("herald_early_stored_total"),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sent_after, early_after) = (
        sent.load(Ordering::Relaxed),
        metric("herald_early_stored_total"),
    );
    stop.store(true, Ordering::Relaxed);
    flow.await.unwrap();
    let sends = (sent_after - sent_before) as f64;
    let early = early_after - early_before;
    assert!(sends > 100.0, "only {sends} sends in 2 s");
    assert!(
        early >= 0.9 * sends,
        "early delivery stored {early} of the {sends} sends of the last 2 s"
    );
    h.shutdown().await;
}

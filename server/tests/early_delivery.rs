//! Early delivery (store and push right after the broker's acknowledgement)
//! and the consumer group write the same notifications: each must still be
//! stored once and streamed once, with early delivery on (the default) and
//! off.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

const SENDS: usize = 30;

/// Sends early delivery left to the consumer because nobody watched.
const UNWATCHED: &str = r#"herald_early_skipped_total{reason="unwatched"}"#;

async fn send(h: &Herald, to: i64, message: &str) {
    let res = client()
        .post(h.url("/send"))
        .form(&[
            ("fromID", "2"),
            ("toID", &to.to_string()),
            ("message", message),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

/// Start Herald and wait until its consumer owns the partitions (early
/// delivery only writes those): once a first notification is stored, the
/// group has assigned them.
async fn start_assigned(cfg: herald::Config) -> Herald {
    let h = Herald::start(cfg).await;
    send(&h, 3, "warm-up").await;
    let listed = wait_for_count(&h, 3, 1, Duration::from_secs(20)).await;
    assert_eq!(listed.len(), 1, "the warm-up notification was not stored");
    h
}

async fn sends_are_stored_and_streamed_once(early: bool) {
    let dir = tempfile::tempdir().unwrap();
    let consumed_before = metric("herald_consumed_records_total");
    let early_before = metric("herald_early_stored_total");
    let unwatched_before = metric(UNWATCHED);
    let mut cfg = config(dir.path(), &shared_brokers());
    cfg.early_delivery = early;
    let h = start_assigned(cfg).await;
    let mut stream = SseClient::connect(&h.url("/api/users/1/events"), None).await;

    for i in 0..SENDS {
        send(&h, 1, &format!("early {i}")).await;
    }

    let mut seen: HashMap<String, usize> = HashMap::new();
    while seen.len() < SENDS {
        let e = stream
            .next_notification(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("only {} of {SENDS} notifications streamed", seen.len()));
        *seen.entry(e.id.expect("event id")).or_default() += 1;
    }

    // Wait until the consumer group has read every record back (early
    // delivery stored them first when on), so a second publication would
    // have happened by now.
    let metrics = wait_for_counter(
        &h,
        "herald_consumed_records_total",
        consumed_before + (SENDS + 1) as f64,
        Duration::from_secs(20),
    )
    .await;
    while let Some(e) = stream.next_notification(Duration::from_millis(700)).await {
        *seen.entry(e.id.expect("event id")).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "streamed more than once: {twice:?}");
    assert_eq!(seen.len(), SENDS);

    let (status, body) = get(&h.url("/api/users/1/notifications?limit=200")).await;
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let listed = listed["notifications"].as_array().unwrap();
    assert_eq!(listed.len(), SENDS, "stored once each: {body}");
    for n in listed {
        assert!(seen.contains_key(n["id"].as_str().unwrap()));
    }

    let early_stored = counter(&metrics, "herald_early_stored_total") - early_before;
    if early {
        // Under no load the acknowledgement comes long before the consumer's
        // fetch: early delivery is what stored them. Not the warm-up to
        // user 3, whom nobody watched.
        assert!(
            early_stored > 0.0,
            "early delivery stored nothing:\n{metrics}"
        );
        if h.cfg.database_url.starts_with("sqlite") {
            assert!(
                counter(&metrics, UNWATCHED) > unwatched_before,
                "the unwatched warm-up went early:\n{metrics}"
            );
        } else {
            // A shared store: the watcher may be on any instance, so every
            // send goes early, watched here or not.
            assert_eq!(
                counter(&metrics, UNWATCHED),
                unwatched_before,
                "with PostgreSQL nothing is skipped as unwatched:\n{metrics}"
            );
        }
    } else {
        assert_eq!(early_stored, 0.0, "early delivery is off:\n{metrics}");
    }
    h.shutdown().await;
}

/// A counter of this process's metrics registry (shared by every Herald
/// this test binary starts, hence one test running its cases in turn and
/// comparing before and after).
fn metric(name: &str) -> f64 {
    counter(&herald::telemetry::text(), name)
}

/// Shut down right after early delivery stored the sends, before the
/// consumer read them all back and committed: after a restart the consumer
/// reads them again and must neither store nor stream them twice.
async fn a_restart_between_early_delivery_and_the_commit_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &shared_brokers());
    let h = start_assigned(cfg).await;
    // Early delivery only writes for recipients someone is watching.
    let watching = SseClient::connect(&h.url("/api/users/1/events"), None).await;
    for i in 0..SENDS {
        send(&h, 1, &format!("restart {i}")).await;
    }
    assert_eq!(
        wait_for_count(&h, 1, SENDS, Duration::from_secs(10))
            .await
            .len(),
        SENDS
    );
    drop(watching);
    let cfg = h.shutdown().await;

    let h = Herald::start(cfg).await;
    let mut stream = SseClient::connect(&h.url("/api/users/1/events"), None).await;
    // Wait until the restarted group has committed every record.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while committed_total(&h.cfg) < (SENDS + 1) as i64 {
        assert!(
            std::time::Instant::now() < deadline,
            "records not committed after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        stream
            .next_notification(Duration::from_millis(500))
            .await
            .is_none(),
        "a notification was streamed again after the restart"
    );
    let (_, body) = get(&h.url("/api/users/1/notifications?limit=200")).await;
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        listed["notifications"].as_array().unwrap().len(),
        SENDS,
        "{body}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn each_send_is_stored_and_streamed_once_with_early_delivery_on_off_and_across_a_restart() {
    sends_are_stored_and_streamed_once(true).await;
    sends_are_stored_and_streamed_once(false).await;
    a_restart_between_early_delivery_and_the_commit_duplicates_nothing().await;
}

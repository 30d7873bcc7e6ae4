//! The producer's acknowledgements reach each send as soon as the broker
//! answers (`acks`: librdkafka's delivery reports served on the runtime).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use herald::kafka::{ensure_topics, Producer};

/// A send waiting alone must be woken by its own report. Were wake-ups
/// lost, reports would wait in librdkafka's queue for the serving task's
/// next safety poll (once a second): the median send would take hundreds
/// of milliseconds instead of a few.
#[tokio::test]
async fn a_lone_send_hears_its_acknowledgement_at_once_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path(), &common::shared_brokers());
    ensure_topics(&cfg).await.unwrap();
    let producer = Producer::new(&cfg).unwrap();
    producer
        .send(&app::model::Notification::example("warm-up", "warm-up"))
        .await
        .unwrap();

    let mut took = Vec::new();
    let mut last: HashMap<i32, i64> = HashMap::new();
    for i in 0..40 {
        let n =
            app::model::Notification::example(&uuid::Uuid::now_v7().to_string(), &format!("#{i}"));
        let t = Instant::now();
        let source = producer.send(&n).await.unwrap();
        took.push(t.elapsed());
        if let Some(before) = last.insert(source.partition, source.offset) {
            assert!(source.offset > before, "positions grow within a partition");
        }
        // Alone: nothing else is queued while the next send starts.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    took.sort();
    let median = took[took.len() / 2];
    common::figure(&format!(
        "acks: 40 lone sends acknowledged in {median:?} at the median, {:?} at most",
        took[took.len() - 1]
    ));
    assert!(median < Duration::from_millis(250), "median {median:?}");
}

//! `/api/ready` is public, so it must not be a lever on the broker and the
//! store. A file of its own: the metric it reads is process-wide, and other
//! tests' instances would move it too.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test]
async fn a_flood_of_readiness_probes_costs_one_check_per_second() {
    let h = Herald::new().await;
    eventually("ready", Duration::from_secs(20), || async {
        (get(&h.url("/api/ready")).await.0 == 200).then_some(())
    })
    .await;
    let before = counter(
        &get(&h.url("/metrics")).await.1,
        "herald_readiness_checks_total",
    );
    // The checks that made it ready were counted: the series is there.
    assert!(before >= 1.0, "herald_readiness_checks_total is {before}");
    let started = Instant::now();
    let probes: Vec<_> = (0..300)
        .map(|_| {
            let url = h.url("/api/ready");
            tokio::spawn(async move { get(&url).await.0 })
        })
        .collect();
    for p in probes {
        assert_eq!(p.await.unwrap(), 200, "every probe still gets the answer");
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = counter(
        &get(&h.url("/metrics")).await.1,
        "herald_readiness_checks_total",
    );
    // At most one check per second the flood lasted (and one more for the
    // second it started in).
    let allowed = seconds.ceil() + 1.0;
    assert!(
        after - before <= allowed,
        "{} checks for 300 probes in {seconds:.2} s",
        after - before
    );
    h.shutdown().await;
}

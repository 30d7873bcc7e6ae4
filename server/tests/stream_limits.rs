//! Event streams are bounded per user and per instance: one more gets a
//! JSON 429 with `Retry-After`, and a closed stream frees its place.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Open a stream of `user` with their token; the status and, unless 200,
/// the answer.
async fn open(h: &Herald, user: i64) -> (u16, Option<String>, reqwest::Response) {
    let res = client()
        .get(h.url(&format!("/api/users/{user}/events")))
        .bearer_auth(token(user))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (res.status().as_u16(), retry, res)
}

#[tokio::test]
async fn streams_beyond_the_limits_get_429_and_closed_ones_free_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = secured_config(dir.path(), &shared_brokers());
    cfg.max_streams_per_user = 2;
    cfg.max_streams = 3;
    cfg.sse_keepalive_secs = 1;
    let h = Herald::start(cfg).await;

    let (a, _, first) = open(&h, 1).await;
    let (b, _, _second) = open(&h, 1).await;
    assert_eq!((a, b), (200, 200));
    let (status, retry, res) = open(&h, 1).await;
    assert_eq!(status, 429);
    assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() > 0));
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("this user has too many open streams"),
        "{body}"
    );

    // Another user fits until the instance is full.
    let (status, _, _bruno) = open(&h, 2).await;
    assert_eq!(status, 200);
    let (status, _, res) = open(&h, 3).await;
    assert_eq!(status, 429);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("this instance has too many"),
        "{body}"
    );

    // Closing one of Emma's streams frees a place (once the server notices,
    // at the latest with the next keep-alive).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _again) = open(&h, 1).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream kept its place"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    h.shutdown().await;
}

//! Event streams are bounded per user and per instance: one more gets a
//! JSON 429 with `Retry-After`, and a closed stream frees its place.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;

/// Open a stream of `user` with their token; the status and, unless 200,
/// the answer.
async fn open(h: &Herald, user: i64) -> (u16, Option<String>, reqwest::Response) {
    // Raw: the stream stays open while the answer is held.
    let url = h.url(&format!("/api/users/{user}/events"));
    let res = req(Method::GET, &url, Some(&token(user)))
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
    let h = Herald::with(|c| {
        secure(c);
        c.max_streams_per_user = 2;
        c.max_streams = 3;
        c.sse_keepalive_secs = 1;
    })
    .await;

    let (a, _, first) = open(&h, 1).await;
    let (b, _, _second) = open(&h, 1).await;
    assert_eq!((a, b), (200, 200));
    let (status, retry, res) = open(&h, 1).await;
    assert_eq!(status, 429);
    assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() > 0));
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        message(&body).contains("this user has too many open streams"),
        "{body}"
    );

    // Another user fits until the instance is full.
    let (status, _, _bruno) = open(&h, 2).await;
    assert_eq!(status, 200);
    let (status, _, res) = open(&h, 3).await;
    assert_eq!(status, 429);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        message(&body).contains("this instance has too many"),
        "{body}"
    );

    // Closing one of Emma's streams frees a place (once the server notices,
    // at the latest with the next keep-alive).
    drop(first);
    eventually(
        "the closed stream freeing its place",
        Duration::from_secs(10),
        || async { (open(&h, 1).await.0 == 200).then_some(()) },
    )
    .await;
    h.shutdown().await;
}

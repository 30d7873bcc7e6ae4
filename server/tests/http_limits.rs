//! HTTP is hostile: clients that never finish their headers, connections
//! left idle, bodies that trickle in and more connections than the process
//! can hold must not take Herald's sockets, memory or time from anyone
//! else.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A Herald whose header timeout is one second.
async fn impatient(tweak: impl FnOnce(&mut herald::config::Config)) -> Herald {
    Herald::with(|cfg| {
        cfg.header_read_timeout_ms = 1_000;
        tweak(cfg);
    })
    .await
}

fn addr(h: &Herald) -> String {
    h.base.trim_start_matches("http://").to_owned()
}

/// Whether the server closes `conn` within `within` (reads end or fail).
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let end = Instant::now() + within;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A response (an error page) before the close is fine.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn clients_that_never_finish_their_headers_are_cut_off_and_slow_nobody() {
    let h = impatient(|_| {}).await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut c = TcpStream::connect(addr(&h)).await.unwrap();
        c.write_all(b"GET /api/health HTTP/1.1\r\nHost: herald\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(c);
    }
    // Everyone else is served meanwhile.
    let (status, _) = get(&h.url("/api/health")).await;
    assert_eq!(status, 200);
    let (status, _) = call(req(reqwest::Method::GET, &h.url("/api/users"), None)).await;
    assert_eq!(status, 200);
    // And the 200 are gone once their second is up.
    for (i, c) in slow.iter_mut().enumerate() {
        assert!(
            closed_within(c, Duration::from_secs(5)).await,
            "slow connection {i} still open"
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let h = impatient(|_| {}).await;
    let mut c = TcpStream::connect(addr(&h)).await.unwrap();
    c.write_all(b"GET /api/health HTTP/1.1\r\nHost: herald\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = c.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(closed_within(&mut c, Duration::from_secs(5)).await);
    h.shutdown().await;
}

#[tokio::test]
async fn a_body_that_trickles_in_ends_with_503_but_streams_stay_open() {
    let h = impatient(|cfg| cfg.request_timeout_ms = 1_000).await;
    let mut c = TcpStream::connect(addr(&h)).await.unwrap();
    c.write_all(
        b"POST /api/notifications HTTP/1.1\r\nHost: herald\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"to\":",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("an answer within the request timeout")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");

    // A stream lives past the request timeout.
    let mut sse = SseClient::connect(&h.url("/api/users/1/events"), None).await;
    sse.next(Duration::from_secs(2)).await.expect("counts");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, _) = call(
        req(reqwest::Method::POST, &h.url("/api/notifications"), None)
            .json(&serde_json::json!({"from": 2, "to": 1, "message": "still there?"})),
    )
    .await;
    assert_eq!(status, 202);
    let ev = sse
        .next_notification(Duration::from_secs(5))
        .await
        .expect("the stream outlived the request timeout");
    assert_eq!(
        ev.decode::<app::model::Notification>().message,
        "still there?"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let h = impatient(|cfg| cfg.max_connections = 3).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(addr(&h)).await.unwrap());
    }
    // Give the server the moment it needs to accept all three.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(
        quick.get(h.url("/api/health")).send().await.is_err(),
        "a fourth connection is not served while three are open"
    );
    // The idle three are cut off after their header timeout; then it is.
    let (status, _) = get(&h.url("/api/health")).await;
    assert_eq!(status, 200);
    h.shutdown().await;
}

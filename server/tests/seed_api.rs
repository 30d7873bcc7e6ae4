//! The Go tutorial's contract, byte for byte, against a real broker.

mod common;

use std::time::{Duration, Instant};

use app::model::{Notification, User};
use common::*;
use reqwest::Method;

const SENT: &str = r#"{"message":"Notification sent successfully!"}"#;
const NOT_FOUND: &str = r#"{"message":"User not found"}"#;
const EMPTY: &str = r#"{"message":"No notifications found for user","notifications":[]}"#;

/// `POST url` with a form, as (status, exact body).
async fn post_form(url: &str, form: &[(&str, &str)]) -> (u16, String) {
    call_text(req(Method::POST, url, None).form(form)).await
}

/// The `message` of an error body, which must be JSON and have one.
fn message_of(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    v["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {body}"))
        .to_owned()
}

#[tokio::test]
async fn seed_send_is_stored_listed_and_streamed_within_two_seconds() {
    let h = Herald::new().await;

    // Emma has nothing yet: the tutorial's empty answer, exactly.
    assert_eq!(
        get(&h.url("/notifications/1")).await,
        (200, EMPTY.to_owned())
    );

    let mut sse = SseClient::connect(&h.url("/api/users/1/events"), None).await;
    let t0 = Instant::now();
    let sent = post_form(
        &h.url("/send"),
        &[("fromID", "2"), ("toID", "1"), ("message", "Hi Emma!")],
    )
    .await;
    assert_eq!(sent, (200, SENT.to_owned()));

    let ev = sse
        .next_notification(Duration::from_secs(2))
        .await
        .expect("SSE event within 2 s");
    let streamed: Notification = ev.decode();
    assert_eq!(streamed.message, "Hi Emma!");
    assert_eq!(
        streamed.from,
        User {
            id: 2,
            name: "Bruno".into()
        }
    );
    assert_eq!(
        ev.id.as_deref(),
        Some(streamed.id.as_str()),
        "SSE id is the notification id"
    );

    let list = wait_for_count(&h, 1, 1, Duration::from_secs(2)).await;
    assert_eq!(list.len(), 1);
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(
        get(&h.url("/notifications/1")).await,
        (
            200,
            r#"{"notifications":[{"from":{"id":2,"name":"Bruno"},"to":{"id":1,"name":"Emma"},"message":"Hi Emma!"}]}"#
                .to_owned()
        )
    );
    // Bruno received nothing.
    assert_eq!(
        get(&h.url("/notifications/2")).await,
        (200, EMPTY.to_owned())
    );
    h.shutdown().await;
}

#[tokio::test]
async fn seed_send_accepts_json_and_multipart_and_lists_newest_first() {
    let h = Herald::new().await;

    let sent = call_text(
        req(Method::POST, &h.url("/send"), None)
            .json(&serde_json::json!({"fromID": 3, "toID": "4", "message": "first"})),
    )
    .await;
    assert_eq!(sent, (200, SENT.to_owned()));
    wait_for_count(&h, 4, 1, Duration::from_secs(5)).await;

    let form = reqwest::multipart::Form::new()
        .text("fromID", "1")
        .text("toID", "4")
        .text("message", "second");
    let (status, _) = call_text(req(Method::POST, &h.url("/send"), None).multipart(form)).await;
    assert_eq!(status, 200);

    let list = wait_for_count(&h, 4, 2, Duration::from_secs(5)).await;
    let texts: Vec<_> = list.iter().map(|n| n.message.as_str()).collect();
    assert_eq!(texts, ["second", "first"], "newest first");
    h.shutdown().await;
}

#[tokio::test]
async fn seed_errors_are_json_and_change_nothing() {
    let h = Herald::new().await;
    let send = h.url("/send");

    let (status, body) =
        post_form(&send, &[("fromID", "abc"), ("toID", "1"), ("message", "x")]).await;
    assert_eq!(status, 400);
    assert!(message_of(&body).contains("fromID"), "{body}");

    let (status, body) =
        post_form(&send, &[("fromID", "2"), ("toID", "1.5"), ("message", "x")]).await;
    assert_eq!(status, 400);
    assert!(message_of(&body).contains("toID"), "{body}");

    let (status, body) = post_form(&send, &[("toID", "1"), ("message", "x")]).await;
    assert_eq!(status, 400);
    assert!(message_of(&body).contains("fromID"), "{body}");

    let (status, body) =
        post_form(&send, &[("fromID", "-2"), ("toID", "1"), ("message", "x")]).await;
    assert_eq!(status, 400, "{body}");

    assert_eq!(
        post_form(&send, &[("fromID", "2"), ("toID", "99"), ("message", "x")]).await,
        (404, NOT_FOUND.to_owned())
    );
    assert_eq!(
        post_form(&send, &[("fromID", "99"), ("toID", "1"), ("message", "x")]).await,
        (404, NOT_FOUND.to_owned())
    );

    let (status, body) =
        post_form(&send, &[("fromID", "2"), ("toID", "1"), ("message", "   ")]).await;
    assert_eq!(status, 400);
    assert!(message_of(&body).contains("empty"), "{body}");

    let (status, body) = post_form(&send, &[("fromID", "2"), ("toID", "1")]).await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = call_text(
        req(Method::POST, &send, None)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, 400);
    message_of(&body);

    let (status, body) = get(&h.url("/notifications/abc")).await;
    assert_eq!(status, 400);
    assert!(message_of(&body).contains("userID"), "{body}");
    assert_eq!(
        get(&h.url("/notifications/99")).await,
        (404, NOT_FOUND.to_owned())
    );

    // Nothing was produced: a valid send afterwards is the only one stored.
    assert_eq!(
        post_form(&send, &[("fromID", "2"), ("toID", "1"), ("message", "ok")])
            .await
            .0,
        200
    );
    let list = wait_for_count(&h, 1, 1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let list_after = inbox(&h, 1).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list_after.len(), 1, "rejected sends must not be stored");
    h.shutdown().await;
}

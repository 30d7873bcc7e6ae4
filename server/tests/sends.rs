//! Sends an application can rely on: one message to many recipients, all
//! or nothing, and retries made safe by an `Idempotency-Key`.

mod common;

use std::time::Duration;

use app::model::Notification;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn send(h: &Herald, key: Option<&str>, body: Value) -> reqwest::RequestBuilder {
    let r = req(Method::POST, &h.url("/api/notifications"), Some(&token(2))).json(&body);
    match key {
        Some(k) => r.header("idempotency-key", k),
        None => r,
    }
}

/// The notifications of a list send's answer.
fn sent(body: &Value) -> Vec<Notification> {
    serde_json::from_value(body["notifications"].clone()).expect("a list of notifications")
}

#[tokio::test]
async fn one_message_to_several_recipients_is_one_notification_each() {
    let h = Herald::with(secure).await;
    let (status, body) = call(send(
        &h,
        None,
        json!({"to": [1, 3, 4], "message": "Lunch at 12"}),
    ))
    .await;
    assert_eq!(status, 202, "{body}");
    let list = sent(&body);
    let to: Vec<i64> = list.iter().map(|n| n.to.id).collect();
    assert_eq!(to, [1, 3, 4], "one per recipient, in order");
    for n in &list {
        let inbox = wait_for_inbox(&h, n.to.id, 1).await;
        assert_eq!(inbox[0].id, n.id);
        assert_eq!(inbox[0].message, "Lunch at 12");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn one_bad_recipient_sends_nothing() {
    let h = Herald::with(secure).await;
    let (status, body) = call(send(&h, None, json!({"to": [1, 77, 3], "message": "x"}))).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        message(&body).contains("77"),
        "names the unknown one: {body}"
    );
    for (to, why) in [
        (json!([]), "1 to 1000"),
        (json!([1, 3, 1]), "listed twice"),
        (json!((1..=1001).collect::<Vec<i64>>()), "1 to 1000"),
        (json!([1, 0]), "positive"),
    ] {
        let (status, body) = call(send(&h, None, json!({"to": to, "message": "x"}))).await;
        assert_eq!(status, 400, "{to}: {body}");
        assert!(message(&body).contains(why), "{to}: {body}, want {why}");
    }
    // A single unknown recipient keeps the seed's exact words.
    let (status, body) = call(send(&h, None, json!({"to": 77, "message": "x"}))).await;
    assert_eq!((status, message(&body)), (404, "User not found"));
    let rows = settle(&h.cfg, 0, Duration::from_secs(3)).await;
    assert!(rows.is_empty(), "nothing was sent: {rows:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_retry_with_the_same_key_answers_the_same_ids_and_stores_each_once() {
    let h = Herald::with(secure).await;
    let body = json!({"to": [1, 3], "message": "Your order shipped"});
    let (status, first) = call(send(&h, Some("order-48213-shipped"), body.clone())).await;
    assert_eq!(status, 202, "{first}");
    // The answer was "lost": the client sends the same request again.
    let (status, again) = call(send(&h, Some("order-48213-shipped"), body.clone())).await;
    assert_eq!(status, 202, "{again}");
    let ids = |b: &Value| sent(b).into_iter().map(|n| n.id).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&again), "the same ids");
    // A client that gives up mid-request and retries: still once.
    let hasty = send(
        &h,
        Some("order-48214-shipped"),
        json!({"to": 4, "message": "Also shipped"}),
    )
    .timeout(Duration::from_millis(1));
    let _ = hasty.send().await;
    let (status, retried) = call(send(
        &h,
        Some("order-48214-shipped"),
        json!({"to": 4, "message": "Also shipped"}),
    ))
    .await;
    assert_eq!(status, 202, "{retried}");

    let rows = settle(&h.cfg, 3, Duration::from_secs(10)).await;
    assert_eq!(rows.len(), 3, "each notification stored once: {rows:?}");
    assert_eq!(wait_for_inbox(&h, 1, 1).await[0].id, ids(&first)[0]);
    assert_eq!(wait_for_inbox(&h, 4, 1).await[0].id, retried["id"]);
    h.shutdown().await;
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_422_and_keys_are_per_sender() {
    let h = Herald::with(secure).await;
    let (status, _) = call(send(&h, Some("k-1"), json!({"to": 1, "message": "first"}))).await;
    assert_eq!(status, 202);
    let (status, body) = call(send(&h, Some("k-1"), json!({"to": 1, "message": "second"}))).await;
    assert_eq!(status, 422, "{body}");
    assert!(message(&body).contains("Idempotency-Key"), "{body}");
    // Another sender's key of the same name is its own.
    let (status, body) = call(
        req(Method::POST, &h.url("/api/notifications"), Some(&token(3)))
            .header("idempotency-key", "k-1")
            .json(&json!({"to": 1, "message": "second"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = call(send(
        &h,
        Some("has space"),
        json!({"to": 1, "message": "x"}),
    ))
    .await;
    assert_eq!(status, 400);
    let rows = settle(&h.cfg, 2, Duration::from_secs(10)).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn title_link_and_actions_are_kept_and_only_web_urls_accepted() {
    let h = Herald::with(secure).await;
    let mut sse = SseClient::connect_as(&h.url("/api/users/1/events"), &token(1)).await;
    let body = json!({
        "to": 1,
        "message": "Order 48213 left the warehouse",
        "title": "  Your order shipped  ",
        "link": "https://shop.example/orders/48213",
        "actions": [
            {"label": "Track", "url": "https://shop.example/track/48213"},
            {"label": "Help", "url": "HTTP://help.example/"},
        ],
    });
    let (status, sent) = call_as::<Notification>(send(&h, None, body)).await;
    assert_eq!(status, 202);
    assert_eq!(sent.title.as_deref(), Some("Your order shipped"), "trimmed");
    assert_eq!(
        sent.link.as_deref(),
        Some("https://shop.example/orders/48213")
    );
    assert_eq!(sent.actions.len(), 2);
    assert_eq!(
        sent.actions[1].url, "http://help.example/",
        "the scheme in lowercase"
    );
    let streamed: Notification = sse
        .next_notification(Duration::from_secs(5))
        .await
        .expect("streamed")
        .decode();
    assert_eq!(streamed, sent);
    assert_eq!(wait_for_inbox(&h, 1, 1).await, vec![sent]);

    for (extra, field) in [
        (json!({"link": "javascript:alert(1)"}), "link"),
        (json!({"link": "JaVaScRiPt:alert(1)"}), "link"),
        (
            json!({"link": "data:text/html,<script>alert(1)</script>"}),
            "link",
        ),
        (json!({"link": "/relative/path"}), "link"),
        (json!({"link": "https://"}), "link"),
        (json!({"link": "https://a.example/ x"}), "link"),
        (
            json!({"actions": [{"label": "x", "url": "javascript:void(0)"}]}),
            "action url",
        ),
        (
            json!({"actions": [{"label": "", "url": "https://a.example"}]}),
            "label",
        ),
        (
            json!({"actions": [{"label": "a", "url": "https://a.example"}, {"label": "b", "url": "https://a.example"}, {"label": "c", "url": "https://a.example"}]}),
            "at most 2",
        ),
        (
            json!({"actions": [{"label": "a", "url": "https://a.example", "onclick": "x"}]}),
            "unknown field",
        ),
        (json!({"title": "t".repeat(121)}), "title"),
        (json!({"title": "bell\u{7}"}), "title"),
    ] {
        let mut body = json!({"to": 1, "message": "x"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = call(send(&h, None, body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            message(&answer).contains(field),
            "{body}: {answer}, want {field}"
        );
    }
    h.shutdown().await;
}

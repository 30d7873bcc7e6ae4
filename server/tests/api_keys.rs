//! An application's backend sends with an API key: `server keys create`
//! prints it once, the service sends to any user under its own name, it
//! reads no inbox, and a revoked key is refused at once.

mod common;

use std::time::Duration;

use app::model::Notification;
use common::*;
use reqwest::Method;
use serde_json::json;

fn send_as(h: &Herald, key: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
    req(Method::POST, &h.url("/api/notifications"), None)
        .bearer_auth(key)
        .json(&body)
}

#[tokio::test]
async fn a_service_sends_to_any_user_under_its_own_name_and_reads_nothing() {
    let h = Herald::with(secure).await;
    let (key, id) = create_key(&h.cfg, "Billing", "send");
    let (ok, listed) = keys(&h.cfg, &["list"]);
    assert!(
        ok && listed.contains("Billing") && listed.contains("send"),
        "{listed}"
    );
    assert!(
        !listed.contains(&key[3..]),
        "the key is shown once, never listed"
    );

    let (status, sent) = call_as::<Notification>(send_as(
        &h,
        &key,
        json!({"to": 1, "message": "Your order shipped"}),
    ))
    .await;
    assert_eq!(status, 202);
    assert!(sent.from_service);
    assert_eq!((sent.from.id, sent.from.name.as_str()), (id, "Billing"));
    let inbox = wait_for_inbox(&h, 1, 1).await;
    assert_eq!(
        inbox,
        vec![sent.clone()],
        "Emma sees the service's notification"
    );

    // A key sends; it reads and changes no inbox, and cannot pose as a user.
    let emma = h.url("/api/users/1/notifications");
    for (method, url) in [
        (Method::GET, emma.clone()),
        (Method::GET, format!("{emma}/count")),
        (Method::POST, format!("{emma}/read-all")),
        (Method::GET, h.url("/api/users/1/events")),
        (
            Method::DELETE,
            h.url(&format!("/api/notifications/{}", sent.id)),
        ),
        (Method::GET, h.url("/notifications/1")),
    ] {
        let (status, body) = call(req(method.clone(), &url, None).bearer_auth(&key)).await;
        assert_eq!(status, 403, "{method} {url}: {body}");
    }
    let (status, body) = call(send_as(
        &h,
        &key,
        json!({"from": 2, "to": 1, "message": "as Bruno"}),
    ))
    .await;
    assert_eq!(status, 400, "{body}");

    let (_, metrics) = get(&h.url("/metrics")).await;
    let used = counter(&metrics, "herald_api_key_requests_total{key=\"Billing\"}");
    assert!(used >= 8.0, "key use is counted per key: {used}\n{metrics}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_revoked_unknown_or_unscoped_key_is_refused() {
    let h = Herald::with(secure).await;
    let (key, _) = create_key(&h.cfg, "Orders", "send");
    let (directory, _) = create_key(&h.cfg, "Directory sync", "users");
    let (ok, _) = keys(&h.cfg, &["create", "--name", "Orders"]);
    assert!(!ok, "names are unique");

    let (status, _) = call(send_as(&h, &key, json!({"to": 3, "message": "before"}))).await;
    assert_eq!(status, 202);
    let (status, body) = call(send_as(
        &h,
        &directory,
        json!({"to": 3, "message": "no scope"}),
    ))
    .await;
    assert_eq!(status, 403, "{body}");
    let forged = format!("hk_{}", "0".repeat(64));
    let (status, _) = call(send_as(&h, &forged, json!({"to": 3, "message": "forged"}))).await;
    assert_eq!(status, 401);

    let (ok, out) = keys(&h.cfg, &["revoke", "Orders"]);
    assert!(ok, "{out}");
    // Checked against the store on every use: refused at once.
    let (status, body) = call(send_as(&h, &key, json!({"to": 3, "message": "after"}))).await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("revoked"), "{body}");
    let (ok, listed) = keys(&h.cfg, &["list"]);
    assert!(ok);
    let orders = listed.lines().find(|l| l.contains("Orders")).unwrap();
    assert!(
        !orders.ends_with("\t-"),
        "the list shows when it was revoked: {orders}"
    );

    let rick = eventually("Rick's inbox", Duration::from_secs(10), || async {
        let list = inbox(&h, 3).await;
        (!list.is_empty()).then_some(list)
    })
    .await;
    assert_eq!(
        rick.len(),
        1,
        "only the send before the revocation: {rick:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_service_record_on_the_topic_shows_the_keys_name() {
    let h = Herald::new().await;
    let (_, id) = create_key(&h.cfg, "Shipping", "send");
    let record = |from: i64, message: &str| {
        json!({
            "from": {"id": from, "name": "IT Security"},
            "to": {"id": 1, "name": "Emma"},
            "message": message,
            "from_service": true,
        })
        .to_string()
    };
    produce_raw(&h.cfg, &[record(999, "no such key"), record(id, "shipped")]).await;
    let list = wait_for_count(&h, 1, 1, Duration::from_secs(10)).await;
    assert_eq!(list[0].message, "shipped");
    assert!(list[0].from_service);
    assert_eq!(
        (list[0].from.id, list[0].from.name.as_str()),
        (id, "Shipping")
    );
    wait_for_counter(
        &h,
        "herald_dead_letters_total{reason=\"unknown_service\"}",
        1.0,
        Duration::from_secs(10),
    )
    .await;
    h.shutdown().await;
}

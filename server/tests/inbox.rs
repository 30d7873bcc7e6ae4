//! The inbox: read state and counts, live `state` events to every open
//! stream, archive and delete, cursor pagination, categories and
//! priorities. Real Herald, real broker, auth on.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn send(h: &Herald, from: i64, to: i64, body: Value) -> Value {
    let mut body = body;
    body["to"] = json!(to);
    let (status, sent) = call(
        req(
            Method::POST,
            &h.url("/api/notifications"),
            Some(&token(from)),
        )
        .json(&body),
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    sent
}

async fn count(h: &Herald, user: i64) -> Value {
    let (status, body) = call(req(
        Method::GET,
        &h.url(&format!("/api/users/{user}/notifications/count")),
        Some(&token(user)),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn patch(h: &Herald, user: i64, id: &str, body: Value) -> (u16, Value) {
    call(
        req(
            Method::PATCH,
            &h.url(&format!("/api/notifications/{id}")),
            Some(&token(user)),
        )
        .json(&body),
    )
    .await
}

async fn next_json(sse: &mut SseClient, kind: &str) -> Value {
    let ev = sse
        .next_of(kind, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no {kind} event"));
    serde_json::from_str(&ev.data).unwrap()
}

#[tokio::test]
async fn read_state_counts_and_live_state_events_reach_every_tab() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start(secured_config(dir.path(), &shared_brokers())).await;
    let emma = token(1);
    let events = h.url("/api/users/1/events");
    // Two tabs of Emma.
    let mut tab1 = SseClient::connect_as(&events, &emma).await;
    let mut tab2 = SseClient::connect_as(&events, &emma).await;
    for tab in [&mut tab1, &mut tab2] {
        let c = next_json(tab, "counts").await;
        assert_eq!(
            (c["unread"].as_i64(), c["total"].as_i64()),
            (Some(0), Some(0))
        );
    }

    let mut ids = vec![];
    for i in 0..3 {
        ids.push(send(&h, 2, 1, json!({"message": format!("n{i}")})).await["id"].clone());
    }
    for tab in [&mut tab1, &mut tab2] {
        for id in &ids {
            let n = next_json(tab, "notification").await;
            assert_eq!(&n["id"], id);
            assert_eq!(n["read"], false);
        }
        // The badge follows: counts end at 3 unread.
        let mut c = next_json(tab, "counts").await;
        while c["unread"] != 3 {
            c = next_json(tab, "counts").await;
        }
        assert_eq!(c["total"], 3);
    }
    assert_eq!(count(&h, 1).await, json!({"unread": 3, "total": 3}));

    // Mark one read: the answer, the count and both tabs agree.
    let id0 = ids[0].as_str().unwrap();
    let (status, n) = patch(&h, 1, id0, json!({"read": true})).await;
    assert_eq!((status, &n["read"]), (200, &json!(true)));
    assert_eq!(count(&h, 1).await, json!({"unread": 2, "total": 3}));
    for tab in [&mut tab1, &mut tab2] {
        let st = next_json(tab, "state").await;
        assert_eq!(st["change"], "updated");
        assert_eq!(st["notification"]["id"], *id0);
        assert_eq!(st["notification"]["read"], true);
        assert_eq!(st["counts"]["unread"], 2);
    }
    // Marking it read again changes nothing and sends nothing.
    let (status, _) = patch(&h, 1, id0, json!({"read": true})).await;
    assert_eq!(status, 200);

    // Unread again, then all read from "one tab".
    patch(&h, 1, id0, json!({"read": false})).await;
    let (status, after) = call(req(
        Method::POST,
        &h.url("/api/users/1/notifications/read-all"),
        Some(&emma),
    ))
    .await;
    assert_eq!((status, after), (200, json!({"unread": 0, "total": 3})));
    for tab in [&mut tab1, &mut tab2] {
        let st = next_json(tab, "state").await;
        assert_eq!(
            st["notification"]["read"], false,
            "the unread event came first"
        );
        let st = next_json(tab, "state").await;
        assert_eq!(st["change"], "read_all");
        assert_eq!(st["through"], ids[2], "through the newest");
        assert_eq!(st["counts"]["unread"], 0);
    }
    let list = wait_for_inbox(&h, &emma, 1, 3).await;
    assert!(list.iter().all(|n| n["read"] == true));

    // Bad patches change nothing.
    for (body, status, why) in [
        (json!({}), 400, "nothing to change"),
        (json!({"read": "yes"}), 400, "invalid JSON body"),
        (json!({"read": true, "pinned": true}), 400, "unknown field"),
    ] {
        let (got, answer) = patch(&h, 1, id0, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(why),
            "{answer}"
        );
    }
    let (status, _) = patch(&h, 1, "no-such-id", json!({"read": true})).await;
    assert_eq!(status, 404);
    h.shutdown().await;
}

#[tokio::test]
async fn archive_and_delete_move_notifications_out_of_the_inbox() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start(secured_config(dir.path(), &shared_brokers())).await;
    let emma = token(1);
    let a = send(&h, 2, 1, json!({"message": "to archive"})).await;
    let b = send(&h, 3, 1, json!({"message": "to delete"})).await;
    send(&h, 4, 1, json!({"message": "stays"})).await;
    wait_for_inbox(&h, &emma, 1, 3).await;
    let mut tab = SseClient::connect_as(&h.url("/api/users/1/events"), &emma).await;
    next_json(&mut tab, "counts").await;

    let (status, n) = patch(&h, 1, a["id"].as_str().unwrap(), json!({"archived": true})).await;
    assert_eq!((status, &n["archived"]), (200, &json!(true)));
    let st = next_json(&mut tab, "state").await;
    assert_eq!(st["notification"]["archived"], true);
    assert_eq!(st["counts"]["total"], 2);
    let inbox = wait_for_inbox(&h, &emma, 1, 2).await;
    assert!(inbox.iter().all(|n| n["id"] != a["id"]));
    let (_, archived) = call(req(
        Method::GET,
        &h.url("/api/users/1/notifications?archived=true"),
        Some(&emma),
    ))
    .await;
    assert_eq!(archived["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(archived["notifications"][0]["id"], a["id"]);

    let url = h.url(&format!("/api/notifications/{}", b["id"].as_str().unwrap()));
    let res = req(Method::DELETE, &url, Some(&emma)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 204);
    let st = next_json(&mut tab, "state").await;
    assert_eq!(st["change"], "deleted");
    assert_eq!(st["id"], b["id"]);
    assert_eq!(count(&h, 1).await, json!({"unread": 1, "total": 1}));
    let (status, _) = call(req(Method::DELETE, &url, Some(&emma))).await;
    assert_eq!(status, 404, "deleted is gone");
    let (status, _) = patch(&h, 1, b["id"].as_str().unwrap(), json!({"read": true})).await;
    assert_eq!(status, 404);

    // Unarchive brings it back.
    patch(&h, 1, a["id"].as_str().unwrap(), json!({"archived": false})).await;
    assert_eq!(count(&h, 1).await, json!({"unread": 2, "total": 2}));
    // The seed list is the inbox as well.
    let (_, seed) = call(req(Method::GET, &h.url("/notifications/1"), Some(&emma))).await;
    assert_eq!(seed["notifications"].as_array().unwrap().len(), 2);
    h.shutdown().await;
}

/// Ids no notification can have (PostgreSQL text cannot even hold NUL) are
/// answered like any unknown id, on both backends, never with a 5xx.
#[tokio::test]
async fn ids_holding_nul_are_unknown_ids() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start(secured_config(dir.path(), &shared_brokers())).await;
    let emma = token(1);
    send(&h, 2, 1, json!({"message": "one"})).await;
    wait_for_inbox(&h, &emma, 1, 1).await;
    let (status, body) = patch(&h, 1, "%00", json!({"read": true})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = call(req(
        Method::DELETE,
        &h.url("/api/notifications/%00"),
        Some(&emma),
    ))
    .await;
    assert_eq!(status, 404, "{body}");
    let list = |before: &str| {
        let url = h.url(&format!("/api/users/1/notifications?before={before}"));
        call(req(Method::GET, &url, Some(&emma)))
    };
    let (unknown, _) = list("no-such-id").await;
    let (status, body) = list("%00").await;
    assert_eq!(status, unknown, "{body}");
    let res = req(
        Method::GET,
        &h.url("/api/users/1/events?since=%00"),
        Some(&emma),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        res.status().as_u16(),
        200,
        "a stream from an unknown id starts now"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn cursor_pages_are_complete_and_stable_under_concurrent_inserts() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start(secured_config(dir.path(), &shared_brokers())).await;
    let emma = token(1);
    for i in 0..7 {
        send(&h, 2, 1, json!({"message": format!("m{i}")})).await;
    }
    wait_for_inbox(&h, &emma, 1, 7).await;
    let page = |before: Option<String>| {
        let mut url = h.url("/api/users/1/notifications?limit=3");
        if let Some(b) = before {
            url.push_str(&format!("&before={b}"));
        }
        call(req(Method::GET, &url, Some(&emma)))
    };
    let mut seen = vec![];
    let mut cursor = None;
    let mut sizes = vec![];
    loop {
        let (status, body) = page(cursor.clone()).await;
        assert_eq!(status, 200, "{body}");
        let items = body["notifications"].as_array().unwrap();
        sizes.push(items.len());
        seen.extend(
            items
                .iter()
                .map(|n| n["message"].as_str().unwrap().to_owned()),
        );
        if seen.len() == 3 {
            // New notifications arrive between pages: later pages are not
            // shifted by them.
            send(&h, 3, 1, json!({"message": "late 1"})).await;
            send(&h, 3, 1, json!({"message": "late 2"})).await;
            wait_for_inbox(&h, &emma, 1, 9).await;
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
    let want: Vec<String> = (0..7).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(seen, want, "newest first, each once");

    for (query, why) in [
        ("limit=0", "invalid limit"),
        ("limit=201", "invalid limit"),
        ("limit=ten", "invalid query"),
        ("before=nope", "invalid cursor"),
        ("sort=asc", "unknown field"),
        ("category=spam", "invalid query"),
        ("min_priority=7", "min_priority"),
    ] {
        let (status, body) = call(req(
            Method::GET,
            &h.url(&format!("/api/users/1/notifications?{query}")),
            Some(&emma),
        ))
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(why),
            "{query}: {body}"
        );
    }
    let (_, body) = call(req(
        Method::GET,
        &h.url("/api/users/1/notifications"),
        Some(&emma),
    ))
    .await;
    assert_eq!(body["notifications"].as_array().unwrap().len(), 9);
    assert_eq!(
        body["next_cursor"],
        Value::Null,
        "default page of 50 holds all"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn categories_and_priorities_are_kept_and_filterable() {
    let dir = tempfile::tempdir().unwrap();
    let h = Herald::start(secured_config(dir.path(), &shared_brokers())).await;
    let emma = token(1);
    let alert = send(
        &h,
        2,
        1,
        json!({"message": "disk full", "category": "alert", "priority": 5}),
    )
    .await;
    assert_eq!(
        (&alert["category"], &alert["priority"]),
        (&json!("alert"), &json!(5))
    );
    send(
        &h,
        3,
        1,
        json!({"message": "@emma look", "category": "mention"}),
    )
    .await;
    send(&h, 4, 1, json!({"message": "fyi", "priority": 1})).await;
    let all = wait_for_inbox(&h, &emma, 1, 3).await;
    let kinds: Vec<(&str, i64)> = all
        .iter()
        .map(|n| {
            (
                n["category"].as_str().unwrap(),
                n["priority"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [("info", 1), ("mention", 3), ("alert", 5)]);

    let list = |q: &str| {
        call(req(
            Method::GET,
            &h.url(&format!("/api/users/1/notifications?{q}")),
            Some(&emma),
        ))
    };
    let (_, body) = list("category=alert").await;
    assert_eq!(body["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(body["notifications"][0]["message"], "disk full");
    let (_, body) = list("min_priority=3").await;
    assert_eq!(body["notifications"].as_array().unwrap().len(), 2);
    patch(&h, 1, alert["id"].as_str().unwrap(), json!({"read": true})).await;
    let (_, body) = list("unread=true").await;
    let unread: Vec<&str> = body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["message"].as_str().unwrap())
        .collect();
    assert_eq!(unread, ["fyi", "@emma look"]);
    h.shutdown().await;
}

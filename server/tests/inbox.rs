//! The inbox: read state and counts, live `state` events to every open
//! stream, archive and delete, cursor pagination, categories and
//! priorities. Real Herald, real broker, auth on.

mod common;

use std::time::Duration;

use app::model::{Category, Change, Counts, Notification, Page, StateEvent};
use common::*;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// Send `body` (without `to`) from `from` to `to`; the accepted notification.
async fn send(h: &Herald, from: i64, to: i64, body: Value) -> Notification {
    let mut body = body;
    body["to"] = json!(to);
    let (status, sent) = call_as(
        req(
            Method::POST,
            &h.url("/api/notifications"),
            Some(&token(from)),
        )
        .json(&body),
    )
    .await;
    assert_eq!(status, 202);
    sent
}

/// `GET …/count` as JSON: compared whole, so it also says what the answer
/// leaves out (the `version` of [`Counts`]).
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

/// `PATCH` notification `id` as `user`: the status and the answer.
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

/// `PATCH` that must succeed; the notification after it.
async fn set(h: &Herald, user: i64, id: &str, body: Value) -> Notification {
    let (status, answer) = patch(h, user, id, body).await;
    assert_eq!(status, 200, "{answer}");
    serde_json::from_value(answer).unwrap()
}

/// `user`'s list with `query`, read as `user`.
async fn list(h: &Herald, user: i64, query: &str) -> Page {
    let url = h.url(&format!("/api/users/{user}/notifications?{query}"));
    let (status, page) = call_as(req(Method::GET, &url, Some(&token(user)))).await;
    assert_eq!(status, 200, "{query}");
    page
}

/// The next event of type `kind` (within 5 s), decoded.
async fn next_event<T: DeserializeOwned>(sse: &mut SseClient, kind: &str) -> T {
    sse.next_of(kind, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no {kind} event"))
        .decode()
}

#[tokio::test]
async fn read_state_counts_and_live_state_events_reach_every_tab() {
    let h = Herald::with(secure).await;
    let emma = token(1);
    let events = h.url("/api/users/1/events");
    // Two tabs of Emma.
    let mut tab1 = SseClient::connect_as(&events, &emma).await;
    let mut tab2 = SseClient::connect_as(&events, &emma).await;
    for tab in [&mut tab1, &mut tab2] {
        let c: Counts = next_event(tab, "counts").await;
        assert_eq!((c.unread, c.total), (0, 0));
    }

    let mut ids = vec![];
    for i in 0..3 {
        ids.push(send(&h, 2, 1, json!({"message": format!("n{i}")})).await.id);
    }
    for tab in [&mut tab1, &mut tab2] {
        for id in &ids {
            let n: Notification = next_event(tab, "notification").await;
            assert_eq!(&n.id, id);
            assert!(!n.read);
        }
        // The badge follows: counts end at 3 unread.
        let mut c: Counts = next_event(tab, "counts").await;
        while c.unread != 3 {
            c = next_event(tab, "counts").await;
        }
        assert_eq!(c.total, 3);
    }
    assert_eq!(count(&h, 1).await, json!({"unread": 3, "total": 3}));

    // Mark one read: the answer, the count and both tabs agree.
    let id0 = ids[0].as_str();
    let n = set(&h, 1, id0, json!({"read": true})).await;
    assert!(n.read);
    assert_eq!(count(&h, 1).await, json!({"unread": 2, "total": 3}));
    for tab in [&mut tab1, &mut tab2] {
        let st: StateEvent = next_event(tab, "state").await;
        assert!(
            matches!(&st.change, Change::Updated { notification: n } if n.id == id0 && n.read),
            "{st:?}"
        );
        assert_eq!(st.counts.unread, 2);
    }
    // Marking it read again changes nothing and sends nothing.
    set(&h, 1, id0, json!({"read": true})).await;

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
        let st: StateEvent = next_event(tab, "state").await;
        assert!(
            matches!(&st.change, Change::Updated { notification: n } if !n.read),
            "the unread event came first: {st:?}"
        );
        let st: StateEvent = next_event(tab, "state").await;
        assert_eq!(
            st.change,
            Change::ReadAll {
                through: ids[2].clone()
            },
            "through the newest"
        );
        assert_eq!(st.counts.unread, 0);
    }
    let list = wait_for_inbox(&h, 1, 3).await;
    assert!(list.iter().all(|n| n.read));
    h.shutdown().await;
}

#[tokio::test]
async fn bad_patches_get_a_400_that_says_why_and_unknown_ids_a_404() {
    let h = Herald::with(secure).await;
    let id = send(&h, 2, 1, json!({"message": "to patch"})).await.id;
    wait_for_inbox(&h, 1, 1).await;
    for (body, status, why) in [
        (json!({}), 400, "nothing to change"),
        (json!({"read": "yes"}), 400, "invalid JSON body"),
        (json!({"read": true, "pinned": true}), 400, "unknown field"),
    ] {
        let (got, answer) = patch(&h, 1, &id, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(message(&answer).contains(why), "{answer}");
    }
    let (status, _) = patch(&h, 1, "no-such-id", json!({"read": true})).await;
    assert_eq!(status, 404);
    h.shutdown().await;
}

#[tokio::test]
async fn archive_and_delete_move_notifications_out_of_the_inbox() {
    let h = Herald::with(secure).await;
    let emma = token(1);
    let a = send(&h, 2, 1, json!({"message": "to archive"})).await;
    let b = send(&h, 3, 1, json!({"message": "to delete"})).await;
    send(&h, 4, 1, json!({"message": "stays"})).await;
    wait_for_inbox(&h, 1, 3).await;
    let mut tab = SseClient::connect_as(&h.url("/api/users/1/events"), &emma).await;
    let _: Counts = next_event(&mut tab, "counts").await;

    let n = set(&h, 1, &a.id, json!({"archived": true})).await;
    assert!(n.archived);
    let st: StateEvent = next_event(&mut tab, "state").await;
    assert!(
        matches!(&st.change, Change::Updated { notification: n } if n.archived),
        "{st:?}"
    );
    assert_eq!(st.counts.total, 2);
    let inbox = wait_for_inbox(&h, 1, 2).await;
    assert!(inbox.iter().all(|n| n.id != a.id));
    let archived = list(&h, 1, "archived=true").await.notifications;
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0].id, a.id);

    let url = h.url(&format!("/api/notifications/{}", b.id));
    let (status, _) = call(req(Method::DELETE, &url, Some(&emma))).await;
    assert_eq!(status, 204);
    let st: StateEvent = next_event(&mut tab, "state").await;
    assert_eq!(st.change, Change::Deleted { id: b.id.clone() });
    assert_eq!(count(&h, 1).await, json!({"unread": 1, "total": 1}));
    let (status, _) = call(req(Method::DELETE, &url, Some(&emma))).await;
    assert_eq!(status, 404, "deleted is gone");
    let (status, _) = patch(&h, 1, &b.id, json!({"read": true})).await;
    assert_eq!(status, 404);

    // Unarchive brings it back.
    patch(&h, 1, &a.id, json!({"archived": false})).await;
    assert_eq!(count(&h, 1).await, json!({"unread": 2, "total": 2}));
    // The seed list is the inbox as well (in the Go tutorial's shape).
    let (_, seed) = call(req(Method::GET, &h.url("/notifications/1"), Some(&emma))).await;
    assert_eq!(seed["notifications"].as_array().unwrap().len(), 2);
    h.shutdown().await;
}

/// Ids no notification can have (PostgreSQL text cannot even hold NUL) are
/// answered like any unknown id, on both backends, never with a 5xx.
#[tokio::test]
async fn ids_holding_nul_are_unknown_ids() {
    let h = Herald::with(secure).await;
    let emma = token(1);
    send(&h, 2, 1, json!({"message": "one"})).await;
    wait_for_inbox(&h, 1, 1).await;
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
    // Raw: an event stream never ends; its status is enough.
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
    let h = Herald::with(secure).await;
    for i in 0..7 {
        send(&h, 2, 1, json!({"message": format!("m{i}")})).await;
    }
    wait_for_inbox(&h, 1, 7).await;
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    let mut sizes = vec![];
    loop {
        let query = match &cursor {
            Some(before) => format!("limit=3&before={before}"),
            None => "limit=3".to_owned(),
        };
        let page = list(&h, 1, &query).await;
        sizes.push(page.notifications.len());
        seen.extend(page.notifications.into_iter().map(|n| n.message));
        if seen.len() == 3 {
            // New notifications arrive between pages: later pages are not
            // shifted by them.
            send(&h, 3, 1, json!({"message": "late 1"})).await;
            send(&h, 3, 1, json!({"message": "late 2"})).await;
            wait_for_inbox(&h, 1, 9).await;
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
    let want: Vec<String> = (0..7).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(seen, want, "newest first, each once");

    let page = list(&h, 1, "").await;
    assert_eq!(page.notifications.len(), 9);
    assert_eq!(page.next_cursor, None, "default page of 50 holds all");
    h.shutdown().await;
}

#[tokio::test]
async fn bad_list_queries_get_a_400_that_names_the_problem() {
    let h = Herald::with(secure).await;
    let emma = token(1);
    for (query, why) in [
        ("limit=0", "invalid limit"),
        ("limit=201", "invalid limit"),
        ("limit=ten", "invalid query"),
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
        assert!(message(&body).contains(why), "{query}: {body}");
    }
    // A cursor that names no notification of the inbox is an unknown id.
    let (status, body) = call(req(
        Method::GET,
        &h.url("/api/users/1/notifications?before=nope"),
        Some(&emma),
    ))
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(message(&body).contains("invalid cursor"), "{body}");
    h.shutdown().await;
}

#[tokio::test]
async fn categories_and_priorities_are_kept_and_filterable() {
    let h = Herald::with(secure).await;
    let alert = send(
        &h,
        2,
        1,
        json!({"message": "disk full", "category": "alert", "priority": 5}),
    )
    .await;
    assert_eq!((alert.category, alert.priority), (Category::Alert, 5));
    send(
        &h,
        3,
        1,
        json!({"message": "@emma look", "category": "mention"}),
    )
    .await;
    send(&h, 4, 1, json!({"message": "fyi", "priority": 1})).await;
    let all = wait_for_inbox(&h, 1, 3).await;
    let kinds: Vec<(Category, u8)> = all.iter().map(|n| (n.category, n.priority)).collect();
    assert_eq!(
        kinds,
        [
            (Category::Info, 1),
            (Category::Mention, 3),
            (Category::Alert, 5)
        ]
    );

    let alerts = list(&h, 1, "category=alert").await.notifications;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].message, "disk full");
    assert_eq!(list(&h, 1, "min_priority=3").await.notifications.len(), 2);
    set(&h, 1, &alert.id, json!({"read": true})).await;
    let unread: Vec<String> = list(&h, 1, "unread=true")
        .await
        .notifications
        .into_iter()
        .map(|n| n.message)
        .collect();
    assert_eq!(unread, ["fyi", "@emma look"]);
    h.shutdown().await;
}

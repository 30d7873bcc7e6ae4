//! The JSON API and the server-rendered page.

mod common;

use std::time::Duration;

use app::model::{Notification, User};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn users_are_seeded() {
    let h = Herald::new().await;
    let (status, body) = get(&h.url("/api/users")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"users":[{"id":1,"name":"Emma"},{"id":2,"name":"Bruno"},{"id":3,"name":"Rick"},{"id":4,"name":"Lena"}]}"#
    );
    assert_eq!(
        get(&h.url("/api/health")).await,
        (200, r#"{"status":"ok"}"#.to_owned())
    );
    h.shutdown().await;
}

#[tokio::test]
async fn create_returns_202_with_the_notification_that_is_then_listed() {
    let h = Herald::new().await;
    let (status, body) = call(
        req(Method::POST, &h.url("/api/notifications"), None)
            .json(&json!({"from": 1, "to": 2, "message": "Lunch?"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).unwrap();
    let created: Notification = serde_json::from_value(body).unwrap();
    let user = |id, name: &str| User {
        id,
        name: name.into(),
    };
    assert_eq!(created.from, user(1, "Emma"));
    assert_eq!(created.to, user(2, "Bruno"));
    assert_eq!(created.message, "Lunch?");
    let id = &created.id;
    assert!(uuid::Uuid::parse_str(id).is_ok(), "id is a UUID: {id}");

    let list = wait_for_count(&h, 2, 1, Duration::from_secs(5)).await;
    assert_eq!(
        list,
        vec![created],
        "the listed notification is the one accepted"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn api_rejects_bad_input_with_json_4xx() {
    let h = Herald::new().await;
    let post = |body: Value| {
        let r = req(Method::POST, &h.url("/api/notifications"), None).json(&body);
        async move {
            let (status, v) = call(r).await;
            assert!(v["message"].is_string(), "{v}");
            (status, message(&v).to_owned())
        }
    };
    assert_eq!(
        post(json!({"from": 1, "to": 2, "message": "x", "extra": 1}))
            .await
            .0,
        400
    );
    assert_eq!(
        post(json!({"from": "one", "to": 2, "message": "x"}))
            .await
            .0,
        400
    );
    assert_eq!(post(json!({"from": 1, "to": 2})).await.0, 400);
    assert_eq!(
        post(json!({"from": 0, "to": 2, "message": "x"})).await.0,
        400
    );
    assert_eq!(
        post(json!({"from": 1, "to": 2, "message": ""})).await.0,
        400
    );
    let (status, msg) = post(json!({"from": 1, "to": 2, "message": "x".repeat(2001)})).await;
    assert_eq!(status, 400);
    assert!(msg.contains("2000"), "{msg}");
    assert_eq!(
        post(json!({"from": 1, "to": 42, "message": "x"})).await,
        (404, "User not found".into())
    );

    let (status, body) = get(&h.url("/api/users/x/notifications")).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = get(&h.url("/api/users/7/notifications")).await;
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"message":"User not found"}"#)
    );
    let (status, _) = get(&h.url("/api/users/7/events")).await;
    assert_eq!(status, 404);
    let (status, body) = get(&h.url("/api/nope")).await;
    assert_eq!(status, 404);
    assert!(body.starts_with("{\"message\""), "{body}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(inbox(&h, 2).await.is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn page_is_server_rendered_with_the_inbox() {
    let h = Herald::new().await;
    let (status, body) = get(&h.url("/")).await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>Herald</title>"), "{body}");
    assert!(
        body.contains("Sign in"),
        "signed out, the page offers sign-in: {body}"
    );
    // Rendered whole and in order (out-of-order streaming once misplaced
    // fragments of nested suspense boundaries).
    let in_order = r#"class="page"><div class="screen"><header class="top">"#;
    assert!(body.contains(in_order), "{body}");

    let (status, body) = call(
        req(Method::POST, &h.url("/api/notifications"), None)
            .json(&json!({"from": 3, "to": 1, "message": "Rendered <on> the server"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    wait_for_count(&h, 1, 1, Duration::from_secs(5)).await;
    // The cookie is in a header: a raw request.
    let res = req(Method::POST, &h.url("/api/session"), None)
        .json(&json!({"user": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    let pair = cookie.split(';').next().unwrap().to_owned();
    let (status, body) =
        call_text(req(Method::GET, &h.url("/"), None).header("cookie", pair)).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("Rendered &lt;on&gt; the server"),
        "inbox is rendered and escaped: {body}"
    );
    assert!(body.contains("Rick"));
    assert!(
        body.contains(r#"data-unread="1""#),
        "the badge is rendered on the server: {body}"
    );
    assert!(body.contains(in_order), "{body}");
    h.shutdown().await;
}

#[tokio::test]
async fn openapi_document_describes_every_route_and_every_documented_route_answers() {
    let h = Herald::new().await;
    let (status, body) = get(&h.url("/api/openapi.json")).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for expected in [
        "/send",
        "/notifications/{user}",
        "/api/users",
        "/api/users/{user}",
        "/api/notifications",
        "/api/users/{user}/notifications",
        "/api/users/{user}/events",
        "/api/users/{user}/notifications/count",
        "/api/users/{user}/notifications/read-all",
        "/api/notifications/{id}",
        "/api/session",
        "/api/health",
        "/api/ready",
        "/metrics",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let described = ["summary", "description"]
                .iter()
                .any(|k| op[*k].as_str().is_some_and(|s| !s.trim().is_empty()));
            assert!(described, "{method} {path} has no description");
            for (code, response) in op["responses"].as_object().unwrap() {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|s| !s.is_empty()),
                    "{method} {path} {code} has no description"
                );
            }
            // The route exists: whatever it answers, it is not the router's
            // "no such route" (user 1 exists; notification "none" does not,
            // which is the handler's own 404).
            let url = h.url(&path.replace("{user}", "1").replace("{id}", "none"));
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                other => panic!("unexpected method {other}"),
            };
            // Raw: an event stream never ends, so only its headers are read.
            let res = tokio::time::timeout(
                Duration::from_secs(5),
                req(method.clone(), &url, None).send(),
            )
            .await
            .expect("answers")
            .unwrap();
            let status = res.status().as_u16();
            let streaming = res
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            // An event stream never ends; its status is enough.
            let body = if streaming {
                String::new()
            } else {
                res.text().await.unwrap_or_default()
            };
            assert!(
                status != 405 && !body.contains("no such API route"),
                "{method} {path}: {status} {body}"
            );
            if !path.contains("{id}") {
                assert_ne!(status, 404, "{method} {path}: {body}");
            }
        }
    }
    h.shutdown().await;
}

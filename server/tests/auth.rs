//! Who may do what: tokens (header and cookie), owner-only inboxes, the
//! sender rule, demo sign-in, open mode, rate limits and input limits.
//! Each test runs a real Herald against the shared tansu broker.

mod common;

use std::time::Duration;

use app::model::{Counts, Notification, ServiceError};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Every inbox route, for user `of`, as (method, path, JSON body).
fn inbox_routes(of: i64) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, format!("/api/users/{of}/notifications"), None),
        (
            Method::GET,
            format!("/api/users/{of}/notifications/count"),
            None,
        ),
        (
            Method::POST,
            format!("/api/users/{of}/notifications/read-all"),
            None,
        ),
        (Method::GET, format!("/api/users/{of}/events"), None),
        (Method::GET, format!("/notifications/{of}"), None),
    ]
}

#[tokio::test]
async fn no_forged_expired_or_malformed_token_gets_in() {
    let h = Herald::with(secure).await;
    let forged = token_with("some-other-secret", 1, 3600);
    let expired = token_with(TEST_SECRET, 1, -3600);
    let cases: [(Option<&str>, &str); 4] = [
        (None, "sign in"),
        (Some(&forged), "signature"),
        (Some(&expired), "expired"),
        (Some("not.a.token"), "malformed"),
    ];
    let mut routes = inbox_routes(1);
    routes.push((
        Method::POST,
        "/api/notifications".into(),
        Some(json!({"to": 2, "message": "hi"})),
    ));
    for (token, why) in cases {
        for (method, path, body) in &routes {
            let mut r = req(method.clone(), &h.url(path), token);
            if let Some(b) = body {
                r = r.json(b);
            }
            // Raw: the header is part of the answer.
            let res = r.send().await.unwrap();
            assert_eq!(res.status().as_u16(), 401, "{method} {path} with {why}");
            assert!(res.headers().contains_key("www-authenticate"));
            let body: Value = res.json().await.unwrap();
            assert!(
                message(&body).contains(why),
                "{method} {path}: {body} should say {why}"
            );
        }
    }
    // The seed send too, and a non-Bearer scheme.
    let (status, body) = call(
        req(Method::POST, &h.url("/send"), None)
            .header("authorization", "Basic dXNlcjpwYXNz")
            .form(&[("fromID", "1"), ("toID", "2"), ("message", "hi")]),
    )
    .await;
    assert_eq!(status, 401);
    assert!(message(&body).contains("Bearer"), "{body}");

    // Nothing was produced by any of that.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(stored_rows(&h.cfg).await.is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn a_user_cannot_read_stream_or_change_someone_elses_inbox() {
    let h = Herald::with(secure).await;
    let (emma, bruno) = (token(1), token(2));

    // Bruno owns one notification (sent by Emma).
    let (status, sent) = call_as::<Notification>(
        req(Method::POST, &h.url("/api/notifications"), Some(&emma))
            .json(&json!({"to": 2, "message": "for Bruno only"})),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(sent.from.id, 1, "from defaults to the caller");
    let id = sent.id;
    wait_for_inbox(&h, 2, 1).await;

    for (method, path, _) in inbox_routes(2) {
        let (status, body) = call(req(method.clone(), &h.url(&path), Some(&emma))).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert!(message(&body).contains("Bruno's inbox"), "{body}");
    }
    // Someone else's notification id is answered like an id nobody has:
    // same status, same words, so an id does not tell whose inbox it is in.
    for (method, body) in [
        (Method::PATCH, Some(json!({"read": true}))),
        (Method::DELETE, None),
    ] {
        let answer = |id: &str| {
            let r = req(
                method.clone(),
                &h.url(&format!("/api/notifications/{id}")),
                Some(&emma),
            );
            call(match &body {
                Some(b) => r.json(b),
                None => r,
            })
        };
        let (status, theirs) = answer(&id).await;
        let (missing_status, missing) = answer("no-such-id").await;
        assert_eq!((status, missing_status), (404, 404), "{method}: {theirs}");
        assert_eq!(
            message(&theirs).replace(&id, "ID"),
            message(&missing).replace("no-such-id", "ID"),
            "{method}"
        );
    }

    // Bruno's notification is untouched, and he can do all of it himself.
    let list = wait_for_inbox(&h, 2, 1).await;
    assert!(!list[0].read);
    for (method, path, _) in inbox_routes(2) {
        // Raw: the event stream never ends; its status is enough.
        let res = req(method.clone(), &h.url(&path), Some(&bruno))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{method} {path}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_stream_ends_when_the_token_that_opened_it_expires() {
    let h = Herald::with(secure).await;
    let events = h.url("/api/users/1/events");
    // Valid for two more seconds (plus the five of clock leeway).
    let short = token_with(TEST_SECRET, 1, 2);
    let mut brief = SseClient::connect_as(&events, &short).await;
    let mut long = SseClient::connect_as(&events, &token(1)).await;
    assert!(brief
        .next_of("counts", Duration::from_secs(2))
        .await
        .is_some());
    assert!(
        brief.ends_within(Duration::from_secs(15)).await,
        "the stream outlived its token"
    );
    // The same token cannot open a new one, and a stream with a fresh
    // token is still live.
    let (status, _) = call(req(Method::GET, &events, Some(&short))).await;
    assert_eq!(status, 401);
    let (status, _) = call(
        req(Method::POST, &h.url("/api/notifications"), Some(&token(2)))
            .json(&json!({"to": 1, "message": "still here"})),
    )
    .await;
    assert_eq!(status, 202);
    let ev = long
        .next_notification(Duration::from_secs(5))
        .await
        .expect("the stream with a valid token lives on");
    assert_eq!(ev.decode::<Notification>().message, "still here");
    h.shutdown().await;
}

#[tokio::test]
async fn the_sender_is_the_token_user() {
    let h = Herald::with(secure).await;
    let emma = token(1);
    let (status, body) = call(
        req(Method::POST, &h.url("/api/notifications"), Some(&emma))
            .json(&json!({"from": 2, "to": 3, "message": "pretending to be Bruno"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("cannot send as user 2"), "{body}");

    // The seed route: fromID must be the caller too; then the Go answer.
    let seed = |from: &'static str| {
        req(Method::POST, &h.url("/send"), Some(&emma)).form(&[
            ("fromID", from),
            ("toID", "3"),
            ("message", "seed route"),
        ])
    };
    let (status, _) = call(seed("2")).await;
    assert_eq!(status, 403);
    assert_eq!(
        call_text(seed("1")).await,
        (
            200,
            r#"{"message":"Notification sent successfully!"}"#.to_owned()
        )
    );
    let rows = settle(&h.cfg, 1, Duration::from_secs(10)).await;
    assert_eq!(
        rows.len(),
        1,
        "only the allowed send was produced: {rows:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn demo_sign_in_sets_a_cookie_that_opens_the_owners_inbox_and_stream() {
    let h = Herald::with(secure).await;
    // Raw: the cookie is in a header.
    let res = req(Method::POST, &h.url("/api/session"), None)
        .json(&json!({"user": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in [
        "herald_session=",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"], json!({"id": 4, "name": "Lena"}));
    let pair = cookie.split(';').next().unwrap().to_owned();
    let as_lena = |method, path: &str| req(method, &h.url(path), None).header("cookie", &pair);

    let (status, body) = call(as_lena(Method::GET, "/api/session")).await;
    assert_eq!((status, &body["user"]["name"]), (200, &json!("Lena")));
    // The cookie is the browser's credential for the event stream.
    let mut sse = SseClient::open(as_lena(Method::GET, "/api/users/4/events")).await;
    let counts: Counts = sse
        .next_of("counts", Duration::from_secs(5))
        .await
        .unwrap()
        .decode();
    assert_eq!((counts.unread, counts.total), (0, 0));
    let (status, _) = call(as_lena(Method::GET, "/api/users/1/events")).await;
    assert_eq!(status, 403, "Lena's cookie does not open Emma's stream");
    h.shutdown().await;
}

#[tokio::test]
async fn an_unknown_user_cannot_sign_in() {
    let h = Herald::with(secure).await;
    let (status, body) =
        call(req(Method::POST, &h.url("/api/session"), None).json(&json!({"user": 99}))).await;
    assert_eq!((status, message(&body)), (404, "User not found"));
    h.shutdown().await;
}

#[tokio::test]
async fn signing_out_clears_the_cookie() {
    let h = Herald::with(secure).await;
    // Raw: the cookie is in a header.
    let res = req(Method::DELETE, &h.url("/api/session"), None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);
    let cleared = res.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    h.shutdown().await;
}

#[tokio::test]
async fn demo_sign_in_can_be_switched_off_while_issued_tokens_still_work() {
    let h = Herald::with(|c| {
        secure(c);
        c.demo_sign_in = false;
    })
    .await;
    let (status, body) =
        call(req(Method::POST, &h.url("/api/session"), None).json(&json!({"user": 1}))).await;
    assert_eq!(status, 403);
    assert!(message(&body).contains("identity provider"), "{body}");
    // A token from the operator's identity system (same secret) works.
    let (status, body) = call(req(
        Method::GET,
        &h.url("/api/users/1/notifications/count"),
        Some(&token(1)),
    ))
    .await;
    assert_eq!((status, body), (200, json!({"unread": 0, "total": 0})));
    h.shutdown().await;
}

#[tokio::test]
async fn a_flooding_sender_gets_429_and_others_are_not_starved() {
    let h = Herald::with(|c| {
        secure(c);
        c.rate_limit_burst = 3;
        c.rate_limit_per_sec = 0.2;
    })
    .await;
    let (bruno, rick) = (token(2), token(3));
    let send = |t: &str, text: String| {
        req(Method::POST, &h.url("/api/notifications"), Some(t))
            .json(&json!({"to": 1, "message": text}))
    };
    for i in 0..3 {
        let (status, body) = call(send(&bruno, format!("burst {i}"))).await;
        assert_eq!(status, 202, "{body}");
    }
    // Raw: Retry-After is a header.
    let res = send(&bruno, "one too many".into()).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    let body: Value = res.json().await.unwrap();
    assert!(message(&body).contains("retry in"), "{body}");
    // The seed route counts against the same allowance.
    let (status, _) = call(req(Method::POST, &h.url("/send"), Some(&bruno)).form(&[
        ("fromID", "2"),
        ("toID", "1"),
        ("message", "seed flood"),
    ]))
    .await;
    assert_eq!(status, 429);

    // Rick is unaffected by Bruno's flood.
    let (status, _) = call(send(&rick, "Rick is fine".into())).await;
    assert_eq!(status, 202);

    // After Retry-After, Bruno may send again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (status, _) = call(send(&bruno, "after waiting".into())).await;
    assert_eq!(status, 202);

    let rows = settle(&h.cfg, 5, Duration::from_secs(10)).await;
    let texts: Vec<&str> = rows.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(rows.len(), 5, "refused sends were not produced: {texts:?}");
    assert!(!texts.contains(&"one too many") && !texts.contains(&"seed flood"));
    h.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_a_json_4xx_that_says_what_to_fix_and_changes_nothing() {
    let h = Herald::with(secure).await;
    let emma = token(1);
    let post =
        |body: Value| req(Method::POST, &h.url("/api/notifications"), Some(&emma)).json(&body);
    let cases = [
        (
            json!({"to": 2, "message": "nul\u{0}byte"}),
            400,
            "control character",
        ),
        (
            json!({"to": 2, "message": "esc\u{1b}[31m"}),
            400,
            "control character",
        ),
        (json!({"to": 2, "message": "   "}), 400, "must not be empty"),
        (
            json!({"to": 2, "message": "x".repeat(2001)}),
            400,
            "limit is 2000",
        ),
        (
            json!({"to": 2, "message": "hi", "urgent": true}),
            400,
            "unknown field",
        ),
        (
            json!({"to": 2, "message": "hi", "category": "spam"}),
            400,
            "unknown variant",
        ),
        (
            json!({"to": 2, "message": "hi", "priority": 9}),
            400,
            "priority",
        ),
        (json!({"to": 0, "message": "hi"}), 400, "positive integer"),
        (json!({"to": 9, "message": "hi"}), 404, "User not found"),
    ];
    for (body, status, why) in cases {
        let (got, answer) = call(post(body.clone())).await;
        assert_eq!(got, status, "{body} -> {answer}");
        assert!(
            message(&answer).contains(why),
            "{body} -> {answer}, want {why}"
        );
    }
    // A body over 16 KiB is 413, as JSON.
    let huge = json!({"to": 2, "message": "y".repeat(20_000)});
    let (status, answer) = call(post(huge)).await;
    assert_eq!(status, 413);
    assert!(message(&answer).contains("too large"), "{answer}");
    let (status, answer) = call(req(Method::POST, &h.url("/send"), Some(&emma)).form(&[
        ("fromID", "1"),
        ("toID", "2"),
        ("message", &"z".repeat(20_000)),
    ]))
    .await;
    assert_eq!(status, 413, "{answer}");

    let rows = settle(&h.cfg, 0, Duration::from_secs(10)).await;
    assert!(rows.is_empty(), "no rejected send was produced: {rows:?}");
    h.shutdown().await;
}

/// The UI's server functions have the REST API's body cap and statuses (not
/// a blanket 500), and fail with the service's typed error.
#[tokio::test]
async fn server_functions_answer_bad_input_with_the_rest_status_and_a_typed_error() {
    let h = Herald::with(secure).await;
    let emma = token(1);
    let path = <app::api::SendNotification as leptos::server_fn::ServerFn>::PATH;
    let as_emma = |form: &[(&str, &str)]| {
        req(Method::POST, &h.url(path), None)
            .header("cookie", format!("herald_session={emma}"))
            .form(form)
    };
    let (status, _) = call_text(as_emma(&[("to", "2"), ("message", &"w".repeat(20_000))])).await;
    assert_eq!(status, 413, "server function {path}");
    let valid_but = |message| {
        [
            ("to", "2"),
            ("message", message),
            ("category", "info"),
            ("priority", "3"),
        ]
    };
    // The error itself is typed: the UI decodes the service's own error.
    let (status, e) = call_as::<ServiceError>(as_emma(&valid_but("  "))).await;
    assert_eq!(status, 400);
    assert!(
        matches!(&e, ServiceError::Invalid(m) if m.contains("message")),
        "{e:?}"
    );
    let anonymous = req(Method::POST, &h.url(path), None).form(&valid_but("hi"));
    let (status, e) = call_as::<ServiceError>(anonymous).await;
    assert_eq!(status, 401);
    assert!(matches!(e, ServiceError::Unauthorized(_)), "{e:?}");
    // Arguments the server function cannot decode are the client's mistake.
    let (status, e) = call_as::<ServiceError>(as_emma(&[
        ("to", "2"),
        ("message", "hi"),
        ("priority", "loud"),
    ]))
    .await;
    assert_eq!(status, 400);
    assert!(matches!(e, ServiceError::Invalid(_)), "{e:?}");

    let rows = settle(&h.cfg, 0, Duration::from_secs(10)).await;
    assert!(rows.is_empty(), "no rejected send was produced: {rows:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn newlines_and_tabs_are_kept_and_crlf_from_a_form_is_stored_as_lf() {
    let h = Herald::with(secure).await;
    let (status, sent) = call_as::<Notification>(
        req(Method::POST, &h.url("/api/notifications"), Some(&token(1)))
            .json(&json!({"to": 2, "message": "line 1\r\nline 2\tend"})),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(sent.message, "line 1\nline 2\tend");

    let rows = settle(&h.cfg, 1, Duration::from_secs(10)).await;
    assert_eq!(rows.len(), 1, "the send was produced once: {rows:?}");
    h.shutdown().await;
}

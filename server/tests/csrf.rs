//! Another site's page cannot make a signed-in browser act: unsafe
//! requests carrying the session cookie must come from this site (what
//! `Sec-Fetch-Site` and `Origin` say); bearer tokens are not affected, and
//! `POST /send` reads no body a cross-site form could send unasked.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_cross_site_page_cannot_send_mark_or_delete_with_the_cookie() {
    let h = Herald::with(secure).await;
    let emma = format!("herald_session={}", token(1));
    let bruno = format!("herald_session={}", token(2));
    let host = h.base.trim_start_matches("http://").to_owned();
    let same_site = [("sec-fetch-site", "same-origin".to_owned())];
    let evil = [
        ("sec-fetch-site", "cross-site".to_owned()),
        ("origin", "https://evil.example".to_owned()),
    ];
    let with = |method: Method, path: &str, cookie: &str, headers: &[(&str, String)]| {
        let mut r = client()
            .request(method, h.url(path))
            .header("cookie", cookie);
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        r
    };

    // Bruno's browser, lured to evil.example, sends nothing in his name.
    let send = json!({"to": 1, "message": "free prizes"});
    let (status, body) =
        call(with(Method::POST, "/api/notifications", &bruno, &evil).json(&send)).await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("cross-site"), "{body}");
    let form = [("fromID", "2"), ("toID", "1"), ("message", "free prizes")];
    let (status, _) = call(with(Method::POST, "/send", &bruno, &evil).form(&form)).await;
    assert_eq!(status, 403);
    // Origin alone (older browsers) tells the same.
    let origin_only = [("origin", "https://evil.example".to_owned())];
    let (status, _) = call(with(Method::POST, "/send", &bruno, &origin_only).form(&form)).await;
    assert_eq!(status, 403);
    let path = <app::api::SendNotification as leptos::server_fn::ServerFn>::PATH;
    let fn_form = [
        ("to", "1"),
        ("message", "free prizes"),
        ("category", "info"),
        ("priority", "3"),
    ];
    let res = with(Method::POST, path, &bruno, &evil)
        .form(&fn_form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403, "server function {path}");
    // A refusal carries the strict browser headers like any other answer.
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
    ] {
        assert_eq!(
            res.headers().get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name}"
        );
    }

    // From Herald's own page the same requests work.
    let (status, sent) = call(
        with(Method::POST, "/api/notifications", &bruno, &same_site)
            .json(&json!({"to": 1, "message": "real"})),
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    let id = sent["id"].as_str().unwrap().to_owned();
    let own_origin = [("origin", format!("http://{host}"))];
    let (status, _) = call(with(Method::POST, "/send", &bruno, &own_origin).form(&[
        ("fromID", "2"),
        ("toID", "1"),
        ("message", "also real"),
    ]))
    .await;
    assert_eq!(status, 200);
    wait_for_inbox(&h, 1, 2).await;

    // Emma's read state and inbox are as safe as sends.
    let patch = format!("/api/notifications/{id}");
    let (status, _) =
        call(with(Method::PATCH, &patch, &emma, &evil).json(&json!({"read": true}))).await;
    assert_eq!(status, 403);
    let (status, _) = call(with(
        Method::POST,
        "/api/users/1/notifications/read-all",
        &emma,
        &evil,
    ))
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(with(Method::DELETE, &patch, &emma, &evil)).await;
    assert_eq!(status, 403);
    // Nor can another site sign her out or in as someone else.
    let (status, _) = call(with(Method::DELETE, "/api/session", &emma, &evil)).await;
    assert_eq!(status, 403);
    let (status, _) =
        call(with(Method::POST, "/api/session", "", &evil).json(&json!({"user": 2}))).await;
    assert_eq!(status, 403);

    let (_, counts) = call(req(
        Method::GET,
        &h.url("/api/users/1/notifications/count"),
        Some(&token(1)),
    ))
    .await;
    assert_eq!(counts["unread"], 2, "nothing was marked read: {counts}");
    assert_eq!(counts["total"], 2, "nothing was sent or deleted: {counts}");
    let (_, metrics) = get(&h.url("/metrics")).await;
    assert_eq!(
        counter(&metrics, "herald_cross_site_refused_total"),
        9.0,
        "{metrics}"
    );

    // A script with a bearer token is not a browser: never checked.
    let (status, _) = call(
        req(Method::PATCH, &h.url(&patch), Some(&token(1)))
            .header("origin", "https://evil.example")
            .json(&json!({"read": true})),
    )
    .await;
    assert_eq!(status, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn the_tutorials_send_reads_forms_and_json_only() {
    let h = Herald::new().await;
    let raw = |ctype: Option<&str>, body: &'static str| {
        let mut r = req(Method::POST, &h.url("/send"), None).body(body);
        if let Some(t) = ctype {
            r = r.header("content-type", t);
        }
        call(r)
    };
    // What a cross-site <form enctype="text/plain"> sends.
    let (status, body) = raw(Some("text/plain"), "fromID=2&toID=1&message=x").await;
    assert_eq!(status, 415, "{body}");
    assert!(message(&body).contains("form"), "{body}");
    let (status, _) = raw(None, "fromID=2&toID=1&message=x").await;
    assert_eq!(status, 415);
    // The tutorial's own curl (`-d`) and no body at all answer as before.
    let (status, body) = raw(
        Some("application/x-www-form-urlencoded"),
        "fromID=2&toID=1&message=x",
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({"message": "Notification sent successfully!"}))
    );
    let (status, body) = raw(None, "").await;
    assert_eq!(status, 400, "{body}");
    h.shutdown().await;
}

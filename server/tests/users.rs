//! The user directory as an application fills it: an API key with scope
//! `users` creates, renames and deactivates users; a token for a user the
//! directory does not know creates them when auto-provisioning is on; the
//! composer's search finds users by the start of their name.

mod common;

use app::model::{Notification, User};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn put_user(h: &Herald, key: &str, id: i64, body: Value) -> reqwest::RequestBuilder {
    req(Method::PUT, &h.url(&format!("/api/users/{id}")), None)
        .bearer_auth(key)
        .json(&body)
}

fn delete_user(h: &Herald, key: &str, id: i64) -> reqwest::RequestBuilder {
    req(Method::DELETE, &h.url(&format!("/api/users/{id}")), None).bearer_auth(key)
}

fn send(h: &Herald, key: &str, to: Value, message: &str) -> reqwest::RequestBuilder {
    req(Method::POST, &h.url("/api/notifications"), None)
        .bearer_auth(key)
        .json(&json!({"to": to, "message": message}))
}

/// Names found by `GET /api/users?q=…` with `token`.
async fn search(h: &Herald, token: &str, q: &str) -> Vec<String> {
    let url = h.url(&format!("/api/users?q={}", urlencode(q)));
    let (status, body) = call(req(Method::GET, &url, Some(token))).await;
    assert_eq!(status, 200, "{body}");
    let users: Vec<User> = serde_json::from_value(body["users"].clone()).unwrap();
    users.into_iter().map(|u| u.name).collect()
}

fn urlencode(q: &str) -> String {
    url::form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

#[tokio::test]
async fn an_app_creates_renames_and_deactivates_its_users() {
    let h = Herald::with(secure).await;
    let (users_key, _) = create_key(&h.cfg, "Directory sync", "users");
    let (send_key, _) = create_key(&h.cfg, "Shop", "send");

    // A user the identity provider knows and Herald has never seen.
    let (status, body) = call(send(&h, &send_key, json!(48213), "before")).await;
    assert_eq!((status, body), (404, json!({"message": "User not found"})));
    let (status, body) = call(put_user(
        &h,
        &users_key,
        48213,
        json!({"name": " Ana Lima "}),
    ))
    .await;
    assert_eq!(
        (status, body),
        (201, json!({"id": 48213, "name": "Ana Lima"}))
    );
    let (status, _) = call(send(&h, &send_key, json!(48213), "Your order shipped")).await;
    assert_eq!(status, 202);
    assert_eq!(search(&h, &token(1), "ana").await, ["Ana Lima"]);
    // (Stored under the name the directory has when it is stored.)
    wait_for_inbox(&h, 48213, 1).await;

    // Renamed: new notifications and searches use the new name.
    let (status, body) = call(put_user(
        &h,
        &users_key,
        48213,
        json!({"name": "Ana Souza"}),
    ))
    .await;
    assert_eq!((status, body["name"].as_str()), (200, Some("Ana Souza")));
    assert_eq!(search(&h, &token(1), "ana").await, ["Ana Souza"]);
    let (status, sent) =
        call_as::<Notification>(send(&h, &send_key, json!(48213), "Your order arrived")).await;
    assert_eq!((status, sent.to.name.as_str()), (202, "Ana Souza"));
    let ana = wait_for_inbox(&h, 48213, 2).await;
    assert_eq!(ana[0].to.name, "Ana Souza", "{ana:?}");
    assert_eq!(ana[1].to.name, "Ana Lima", "stored names stay as sent");

    // Deactivated: nobody can send to her, she is not found, her inbox
    // stays hers to read.
    let (status, _) = call(delete_user(&h, &users_key, 48213)).await;
    assert_eq!(status, 204);
    let (status, body) = call(send(&h, &send_key, json!(48213), "after")).await;
    assert_eq!((status, body), (404, json!({"message": "User not found"})));
    let (status, body) = call(send(&h, &send_key, json!([1, 48213]), "after")).await;
    assert_eq!(status, 404, "{body}");
    assert!(message(&body).contains("48213"), "{body}");
    assert!(search(&h, &token(1), "ana").await.is_empty());
    assert_eq!(
        inbox(&h, 48213).await.len(),
        2,
        "a deactivated user still reads their inbox"
    );
    let (status, body) = call(req(Method::POST, &h.url("/send"), Some(&token(2))).form(&[
        ("fromID", "2"),
        ("toID", "48213"),
        ("message", "seed route"),
    ]))
    .await;
    assert_eq!((status, body), (404, json!({"message": "User not found"})));

    // Put again: active again.
    let (status, _) = call(put_user(
        &h,
        &users_key,
        48213,
        json!({"name": "Ana Souza"}),
    ))
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(send(&h, &send_key, json!(48213), "welcome back")).await;
    assert_eq!(status, 202);
    h.shutdown().await;
}

#[tokio::test]
async fn only_a_users_key_manages_the_directory_and_bad_input_changes_nothing() {
    let h = Herald::with(secure).await;
    let (users_key, _) = create_key(&h.cfg, "Directory sync", "users");
    let (send_key, _) = create_key(&h.cfg, "Shop", "send");
    let rename = json!({"name": "IT Security"});

    for (who, expected) in [(send_key.as_str(), 403), (token(4).as_str(), 403)] {
        let (status, body) = call(put_user(&h, who, 4, rename.clone())).await;
        assert_eq!(status, expected, "{body}");
        let (status, body) = call(delete_user(&h, who, 4)).await;
        assert_eq!(status, expected, "{body}");
    }
    let (status, _) = call(req(Method::PUT, &h.url("/api/users/4"), None).json(&rename)).await;
    assert_eq!(status, 401);
    // A `users` key reads no inbox.
    let url = h.url("/api/users/4/notifications");
    let (status, _) = call(req(Method::GET, &url, None).bearer_auth(&users_key)).await;
    assert_eq!(status, 403);

    for (id, body) in [
        ("4", json!({"name": ""})),
        ("4", json!({"name": "   "})),
        ("4", json!({"name": "Lena\u{0}"})),
        ("4", json!({"name": "Lena\nSmith"})),
        ("4", json!({"name": "L".repeat(101)})),
        ("4", json!({"name": "Lena", "admin": true})),
        ("4", json!({})),
        ("0", json!({"name": "Zero"})),
        ("-4", json!({"name": "Negative"})),
        ("x", json!({"name": "Letters"})),
    ] {
        let url = h.url(&format!("/api/users/{id}"));
        let (status, answer) = call(
            req(Method::PUT, &url, None)
                .bearer_auth(&users_key)
                .json(&body),
        )
        .await;
        assert_eq!(status, 400, "{id} {body}: {answer}");
        assert!(!message(&answer).is_empty(), "{answer}");
    }
    let (status, body) = call(delete_user(&h, &users_key, 999_999)).await;
    assert_eq!((status, body), (404, json!({"message": "User not found"})));
    assert_eq!(
        search(&h, &token(1), "").await,
        ["Emma", "Bruno", "Rick", "Lena"]
    );
    h.shutdown().await;
}

#[tokio::test]
async fn search_finds_users_by_the_start_of_their_name_in_any_case() {
    let h = Herald::with(secure).await;
    let (users_key, _) = create_key(&h.cfg, "Directory sync", "users");
    for (id, name) in [
        (10, "Émile Zola"),
        (11, "emilia"),
        (12, "Emma Stone"),
        (13, "Rita"),
        (14, "Ricardo"),
        (15, "O'Brien_%"),
    ] {
        let (status, _) = call(put_user(&h, &users_key, id, json!({ "name": name }))).await;
        assert!(status == 201, "{name}: {status}");
    }
    let me = token(1);
    assert_eq!(search(&h, &me, "ri").await, ["Ricardo", "Rick", "Rita"]);
    assert_eq!(search(&h, &me, "RIC").await, ["Ricardo", "Rick"]);
    assert_eq!(search(&h, &me, "émi").await, ["Émile Zola"]);
    assert_eq!(
        search(&h, &me, "em").await,
        ["emilia", "Emma", "Emma Stone"]
    );
    // SQL wildcards are plain characters.
    assert_eq!(search(&h, &me, "o'brien_").await, ["O'Brien_%"]);
    assert!(search(&h, &me, "%").await.is_empty());
    assert!(search(&h, &me, "_").await.is_empty());
    // An id finds that user first.
    assert_eq!(search(&h, &me, "13").await, ["Rita"]);

    let url = h.url("/api/users?q=e&limit=2");
    let (status, body) = call(req(Method::GET, &url, Some(&me))).await;
    assert_eq!(
        (status, body["users"].as_array().map(Vec::len)),
        (200, Some(2))
    );
    for bad in [
        "limit=0",
        "limit=51",
        "limit=x",
        &format!("q={}", "a".repeat(101)),
    ] {
        let url = h.url(&format!("/api/users?{bad}"));
        let (status, body) = call(req(Method::GET, &url, Some(&me))).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // Signed-in users and keys with scope `users` search; nobody else.
    let (status, _) = call(req(Method::GET, &h.url("/api/users?q=ri"), None)).await;
    assert_eq!(status, 401);
    let (send_key, _) = create_key(&h.cfg, "Shop", "send");
    let search_with =
        |key: &str| req(Method::GET, &h.url("/api/users?q=ri"), None).bearer_auth(key);
    assert_eq!(call(search_with(&send_key)).await.0, 403);
    assert_eq!(call(search_with(&users_key)).await.0, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn a_token_for_an_unknown_user_creates_them_only_with_auto_provisioning() {
    let h = Herald::with(secure).await;
    let newcomer = token_named(777, json!("Zoë Kim"));
    let url = h.url("/api/users/777/notifications");
    let (status, body) = call(req(Method::GET, &url, Some(&newcomer))).await;
    assert_eq!((status, body), (404, json!({"message": "User not found"})));
    h.shutdown().await;

    let h = Herald::with(|c| {
        secure(c);
        c.auto_provision = true;
    })
    .await;
    let url = |id: i64| h.url(&format!("/api/users/{id}/notifications"));
    let (status, _) = call(req(Method::GET, &url(777), Some(&newcomer))).await;
    assert_eq!(status, 200);
    assert_eq!(search(&h, &token(1), "zo").await, ["Zoë Kim"]);
    // Others can now send to them; their name is the directory's.
    let (status, sent) = call_as::<Notification>(
        req(Method::POST, &h.url("/api/notifications"), Some(&token(2)))
            .json(&json!({"to": 777, "message": "welcome"})),
    )
    .await;
    assert_eq!((status, sent.to.name.as_str()), (202, "Zoë Kim"));
    // A later token with another name does not rename an existing user.
    let renamed = token_named(777, json!("Somebody Else"));
    assert_eq!(
        call(req(Method::GET, &url(777), Some(&renamed))).await.0,
        200
    );
    assert_eq!(search(&h, &token(1), "zo").await, ["Zoë Kim"]);
    // A name Herald would not store, or none, still lets the user in.
    for (id, name) in [
        (778, json!("bad\u{7}name")),
        (779, json!(42)),
        (780, Value::Null),
    ] {
        let t = token_named(id, name);
        assert_eq!(call(req(Method::GET, &url(id), Some(&t))).await.0, 200);
    }
    let names = search(&h, &token(1), "user 7").await;
    assert_eq!(names, ["User 778", "User 779", "User 780"]);
    // An invalid token creates nobody.
    let forged = token_with("another-secret-0123456789abcdef-xyz", 781, 3600);
    assert_eq!(
        call(req(Method::GET, &url(781), Some(&forged))).await.0,
        401
    );
    assert!(search(&h, &token(1), "781").await.is_empty());
    h.shutdown().await;
}

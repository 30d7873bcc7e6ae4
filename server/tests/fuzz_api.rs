//! Property test over the HTTP API and the UI's server functions: whatever a
//! client sends (method, path segments, query strings, JSON or raw bodies,
//! tokens), Herald answers without a 5xx, and every 4xx of an API route is
//! JSON `{"message": …}`.
//! One real Herald (auth on) against the shared broker; `PROPTEST_CASES`
//! sets the number of cases (default 256).

mod common;

use common::*;
use proptest::prelude::*;
use reqwest::Method;
use serde_json::Value;

/// Path templates of every route; `{}` is filled with fuzz.
const ROUTES: &[&str] = &[
    "/send",
    "/notifications/{}",
    "/api/users",
    "/api/users/{}",
    "/api/session",
    "/api/notifications",
    "/api/notifications/{}",
    "/api/users/{}/notifications",
    "/api/users/{}/notifications/count",
    "/api/users/{}/notifications/read-all",
    "/api/users/{}/events",
    "/api/{}",
];

/// Every server function of the UI: a client can send them anything too.
fn server_fn_paths() -> Vec<&'static str> {
    use app::api::*;
    use leptos::server_fn::ServerFn;
    vec![
        <DemoUsers as ServerFn>::PATH,
        <FindUsers as ServerFn>::PATH,
        <Whoami as ServerFn>::PATH,
        <SignIn as ServerFn>::PATH,
        <SignOut as ServerFn>::PATH,
        <GetInbox as ServerFn>::PATH,
        <SendNotification as ServerFn>::PATH,
        <SetState as ServerFn>::PATH,
        <MarkAllRead as ServerFn>::PATH,
        <DeleteNotification as ServerFn>::PATH,
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        // Numbers and names the API knows, so fuzz reaches deeper checks.
        prop::sample::select(vec!["1", "2", "0", "-1", "info", "alert", "true"])
            .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "from", "to", "message", "category", "priority", "read", "archived", "user",
                    "fromID", "toID", "x",
                ])
                .prop_map(String::from),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>, &'static str),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::None),
        json_value().prop_map(Body::Json),
        (
            prop::collection::vec(any::<u8>(), 0..200),
            prop::sample::select(vec![
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "text/plain",
            ])
        )
            .prop_map(|(b, t)| Body::Raw(b, t)),
    ]
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["1", "2", "4", "0", "-3", "99999999999999999999", "x"])
            .prop_map(String::from),
        ".{0,20}",
    ]
}

fn query() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop_oneof![
                prop::sample::select(vec![
                    "limit",
                    "before",
                    "archived",
                    "unread",
                    "category",
                    "min_priority",
                    "since",
                ])
                .prop_map(String::from),
                "[a-z]{1,6}",
            ],
            prop_oneof![
                prop::sample::select(vec!["0", "1", "200", "201", "true", "alert", "-1"])
                    .prop_map(String::from),
                ".{0,12}",
            ],
        ),
        0..3,
    )
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Nobody,
    Emma,
    Forged,
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_request_gets_a_5xx_and_every_api_4xx_is_json(
        method in prop::sample::select(vec![Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE]),
        route in prop::sample::select([ROUTES.to_vec(), server_fn_paths()].concat()),
        seg in segment(),
        query in query(),
        body in body(),
        who in prop::sample::select(vec![Who::Nobody, Who::Emma, Who::Forged]),
    ) {
        let (rt, base) = server();
        let path = route.replace("{}", &urlencode(&seg));
        let mut url = reqwest::Url::parse(&format!("{base}{path}")).unwrap();
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter());
        }
        let token = match who {
            Who::Nobody => None,
            Who::Emma => Some(token(1)),
            Who::Forged => Some(token_with("forged", 1, 3600)),
        };
        let mut r = req(method.clone(), url.as_str(), token.as_deref());
        r = match &body {
            Body::None => r,
            Body::Json(v) => r.json(v),
            Body::Raw(b, t) => r.header("content-type", *t).body(b.clone()),
        };
        let (status, ctype, text) = rt.block_on(async move {
            let res = r.send().await.unwrap();
            let status = res.status().as_u16();
            let ctype = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            // Event streams never end; their status and type are enough.
            let text = if ctype.starts_with("text/event-stream") {
                String::new()
            } else {
                res.text().await.unwrap_or_default()
            };
            (status, ctype, text)
        });
        prop_assert!(status < 500, "{method} {url} -> {status}: {text}");
        // Unknown pages outside the API get the UI's HTML "not found"; the
        // UI's server functions answer in their own error encoding, which
        // the wasm client decodes (only "no 5xx" applies to them).
        let page = ctype.starts_with("text/html") && !path.starts_with("/api");
        let rpc = server_fn_paths().contains(&route);
        if (400..500).contains(&status) && !page && !rpc {
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("{method} {url} -> {status} not JSON ({e}): {text} [{ctype}]")))?;
            prop_assert!(
                v["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{method} {url} -> {status}: {text}"
            );
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One Herald for all cases, on a runtime of its own that lives as long as
/// the test binary.
fn server() -> (&'static tokio::runtime::Runtime, String) {
    use std::sync::OnceLock;
    static SERVER: OnceLock<(tokio::runtime::Runtime, String)> = OnceLock::new();
    let (rt, base) = SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let base = rt.block_on(async {
            let h = Herald::with(secure).await;
            let base = h.base.clone();
            // Keep it serving (and its directory) for the rest of the process.
            std::mem::forget(h);
            base
        });
        (rt, base)
    });
    (rt, base.clone())
}

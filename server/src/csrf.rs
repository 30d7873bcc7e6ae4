//! Cross-site request forgery: a page on another site must not make a
//! signed-in browser change its user's inbox.
//!
//! The session cookie is `SameSite=Lax`, which already keeps it off
//! cross-site `POST`s in current browsers; this check does not rely on it.
//! An unsafe request (anything but `GET`, `HEAD`, `OPTIONS`) without an
//! `Authorization` header (so one a browser may have sent with the
//! cookie: REST routes, server functions, the tutorial's `POST /send`,
//! sign-in and sign-out) passes only when the browser says it came from
//! this site:
//! - `Sec-Fetch-Site: same-origin` or `none` (typed by the user), else
//! - `Origin` naming this host (its `Host` header) or one of
//!   `HERALD_ALLOWED_ORIGINS`.
//!
//! A request with neither header is let through: every browser that can be
//! made to send a cross-site request sends at least `Origin` with it, so
//! such a request comes from a script or a server (curl, the Go tutorial's
//! commands), which could send the cookie on purpose anyway. Requests with
//! `Authorization: Bearer` are not checked: browsers never add that header
//! by themselves.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};

use app::model::ServiceError;

use crate::error::AppError;

/// Origins allowed besides the site itself (`HERALD_ALLOWED_ORIGINS`), as
/// `scheme://host[:port]`, compared without case and trailing slash.
#[derive(Clone, Debug, Default)]
pub struct AllowedOrigins(Arc<[String]>);

impl AllowedOrigins {
    /// The list as configured.
    pub fn new(origins: &[String]) -> Self {
        Self(
            origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty())
                .collect(),
        )
    }

    fn contains(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o == origin)
    }
}

/// Middleware (`axum::middleware::map_request`): refuse unsafe cross-site
/// requests with 403 (JSON), pass the others on unchanged. A request map
/// rather than `from_fn`, which boxes the rest of the stack into a `Next`
/// for every request.
pub async fn check(
    State(allowed): State<AllowedOrigins>,
    req: Request,
) -> Result<Request, Response> {
    let Err(why) = verdict(&req, &allowed) else {
        return Ok(req);
    };
    metrics::counter!("herald_cross_site_refused_total").increment(1);
    tracing::info!(method = %req.method(), path = req.uri().path(), why, "cross-site request refused");
    Err(AppError::Service(ServiceError::Forbidden(format!(
        "cross-site request refused: {why}; send `Authorization: Bearer <token>` \
         from other sites, or list the site in HERALD_ALLOWED_ORIGINS"
    )))
    .into_response())
}

fn verdict(req: &Request, allowed: &AllowedOrigins) -> Result<(), &'static str> {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let headers = req.headers();
    if safe || headers.contains_key(header::AUTHORIZATION) {
        return Ok(());
    }
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    if matches!(fetch_site.as_deref(), Some("same-origin" | "none")) {
        return Ok(());
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return match fetch_site {
            None => Ok(()),
            Some(_) => Err("the browser says it comes from another site"),
        };
    };
    let origin = origin
        .to_str()
        .map_err(|_| "the Origin header is not text")?
        .trim_end_matches('/')
        .to_ascii_lowercase();
    if allowed.contains(&origin) {
        return Ok(());
    }
    // `Origin` is `scheme://host[:port]`; this site is whatever the client
    // addressed (`Host`), so it holds behind any name or port.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    match (origin_host, host) {
        (Some(o), Some(h)) if o == h => Ok(()),
        _ => Err("its Origin is not this site"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().method(method).uri("/api/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn only_unsafe_requests_from_elsewhere_are_refused() {
        let allowed = AllowedOrigins::new(&["https://App.example/".into()]);
        let host = ("host", "herald.example:3000");
        type Case<'a> = (Method, &'a [(&'a str, &'a str)], bool);
        let cases: &[Case] = &[
            (Method::GET, &[("sec-fetch-site", "cross-site")], true),
            (
                Method::POST,
                &[host, ("sec-fetch-site", "same-origin")],
                true,
            ),
            (Method::POST, &[host, ("sec-fetch-site", "none")], true),
            (
                Method::POST,
                &[host, ("sec-fetch-site", "cross-site")],
                false,
            ),
            (
                Method::DELETE,
                &[host, ("sec-fetch-site", "same-site")],
                false,
            ),
            (
                Method::POST,
                &[
                    host,
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "https://evil.example"),
                ],
                false,
            ),
            (
                Method::POST,
                &[host, ("origin", "http://herald.example:3000")],
                true,
            ),
            (
                Method::PATCH,
                &[host, ("origin", "http://herald.example:4000")],
                false,
            ),
            (Method::POST, &[host, ("origin", "null")], false),
            (
                Method::POST,
                &[
                    host,
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "https://app.example"),
                ],
                true,
            ),
            (
                Method::POST,
                &[
                    host,
                    ("sec-fetch-site", "cross-site"),
                    ("authorization", "Bearer t"),
                ],
                true,
            ),
            // curl, scripts, the Go tutorial's commands.
            (Method::POST, &[host], true),
        ];
        for (method, headers, ok) in cases {
            let got = verdict(&req(method.clone(), headers), &allowed);
            assert_eq!(got.is_ok(), *ok, "{method} {headers:?}: {got:?}");
        }
    }
}

//! The HTTP surface: the REST routes (registered from their OpenAPI
//! annotations), the OpenAPI document, the SSE stream, the Leptos pages and
//! server functions, and static files.

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{any, get};
use axum::BoxError;
use axum::Router;
use hyper::body::Body as HttpBody;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use tower::Service;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use app::model::ServiceError;
use app::service::SharedService;
use app::ui::{shell, App};

use crate::{auth, csrf, rest, sse, telemetry, AppState};

/// The app's page routes, listed once per process.
///
/// Listing them renders the app with resource loading switched off, and
/// leptos keeps that switch in one process-wide flag
/// (`leptos_server::SuppressResourceLoad`): a page another instance of
/// the same process was rendering meanwhile waited forever for its data.
/// Tests run several instances side by side; a server runs one, and lists
/// them before it listens.
static PAGE_ROUTES: LazyLock<Vec<AxumRouteListing>> = LazyLock::new(|| generate_route_list(App));

/// The whole HTTP surface: seed routes, JSON API, SSE, the Leptos app and
/// its server functions, static files; what [`crate::serve::serve`] runs on
/// every connection.
///
/// A tower service rather than a `Router`: the layers every answer gets
/// wrap the router once (see below), and wrapping them into a `Router`
/// again would match every path twice and box every answer's body.
pub fn app(
    state: AppState,
) -> impl Service<
    Request,
    Response = Response<impl HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
       + Send
       + Sync
       + 'static {
    let page_routes = PAGE_ROUTES.clone();
    let ui_service: SharedService = Arc::new(state.service.clone());
    let (requests, mut doc) = request_routes().split_for_parts();
    let (streams, stream_doc) = stream_routes().split_for_parts();
    let (ops, ops_doc) = ops_routes().split_for_parts();
    doc.merge(stream_doc);
    doc.merge(ops_doc);
    // With HERALD_OPS_ADDR, readiness and metrics are served there only
    // (see `ops_app`); liveness stays here too, it tells nothing.
    let requests = if state.ops_apart {
        requests.route("/api/health", get(rest::ops::health))
    } else {
        requests.merge(ops)
    };
    let api = requests.merge(streams);
    // The pages and the server functions. Server functions read their
    // bodies without axum's extractor limit, so they get tower-http's.
    let ui = Router::new()
        .leptos_routes_with_context(
            &state,
            page_routes,
            move || provide_context(ui_service.clone()),
            {
                let options = state.leptos_options.clone();
                move || shell(options.clone())
            },
        )
        .layer(RequestBodyLimitLayer::new(state.max_body_bytes))
        .layer(axum::middleware::map_response(server_fn_status));
    let doc = Arc::new(document(doc));
    let routes = api
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc) }
            }),
        )
        .route("/api/{*rest}", any(rest::ops::api_not_found))
        .route("/api/", any(rest::ops::api_not_found))
        .merge(ui)
        .method_not_allowed_fallback(rest::ops::method_not_allowed)
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell));
    let origins = state.allowed_origins.clone();
    let timeout = state.request_timeout;
    let max_body_bytes = state.max_body_bytes;
    // What every request and answer gets, wrapped once around the whole
    // router. `Router::layer` would wrap each route instead, and then a
    // request clones (and boxes) every layer's service on its way in, a
    // measurable share of the CPU a send costs (docs/bench/cost.md).
    tower::ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .map_response(strict)
        .layer(axum::middleware::map_request_with_state(
            origins,
            csrf::check,
        ))
        // Every answer must start within the time limit: a handler stuck
        // on the store, or a body trickling in, ends as a 503. It times
        // the answer's start, not its body, so an event stream (whose
        // handler answers at once) stays open.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        // Bodies read by the REST extractors stop at the limit (413, JSON).
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .service(routes.with_state(state))
}

/// The headers every answer gets unless its handler set them. Together
/// they tell browsers to be strict: no full URL in the `Referer` sent to
/// other sites, never inside a frame (clickjacking), no MIME sniffing.
/// (Pages get their whole script policy, with a nonce, from the page
/// shell.)
static STRICT: [(HeaderName, HeaderValue); 4] = [
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    ),
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
];

/// Add the [`STRICT`] headers the answer lacks. One map for all four
/// rather than a `SetResponseHeaderLayer` each: every layer is one more
/// service to clone and one more future to poll per request
/// (docs/bench/cost.md). Outside the CSRF check, so its refusals get them
/// too.
fn strict<B>(mut res: Response<B>) -> Response<B> {
    let headers = res.headers_mut();
    for (name, value) in &STRICT {
        headers.entry(name).or_insert_with(|| value.clone());
    }
    res
}

/// Server functions answer every error with 500 and the error in their
/// encoding: a JSON [`ServiceError`]. Give the answer the status (and
/// `Retry-After`) the REST API gives the same error, so a client's mistake
/// is a 4xx here too.
async fn server_fn_status(res: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    if res.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !res
            .headers()
            .contains_key(leptos::server_fn::error::SERVER_FN_ERROR_HEADER)
    {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    // Error bodies are one short JSON value.
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Ok(e) = serde_json::from_slice::<ServiceError>(&bytes) {
        parts.status = e.status();
        if let Some(secs) = e.retry_after_secs() {
            parts.headers.insert(header::RETRY_AFTER, secs.into());
        }
    }
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The REST routes, the event stream and the ops routes, each registered
/// from its OpenAPI annotation so the document served at
/// `/api/openapi.json` cannot miss one.
pub fn api_routes() -> OpenApiRouter<AppState> {
    request_routes().merge(stream_routes()).merge(ops_routes())
}

/// Every REST route but the stream: each answers within the request
/// timeout.
fn request_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(rest::seed::seed_send))
        .routes(routes!(rest::seed::seed_list))
        .routes(routes!(rest::users::search))
        .routes(routes!(rest::users::put, rest::users::deactivate))
        .routes(routes!(
            rest::session::sign_in,
            rest::session::session,
            rest::session::sign_out
        ))
        .routes(routes!(rest::api::create))
        .routes(routes!(rest::api::list))
        .routes(routes!(rest::api::count))
        .routes(routes!(rest::api::read_all))
        .routes(routes!(rest::api::update, rest::api::delete))
}

/// Health, readiness and metrics: on the public address, or alone on
/// `HERALD_OPS_ADDR`.
fn ops_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(rest::ops::health))
        .routes(routes!(rest::ops::ready))
        .routes(routes!(telemetry::render))
}

/// What `HERALD_OPS_ADDR` serves: health, readiness and metrics, for
/// probes and scrapers on an internal network.
pub fn ops_app(state: AppState) -> Router {
    let (ops, _) = ops_routes().split_for_parts();
    ops.fallback(rest::ops::api_not_found)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.request_timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The event stream, which stays open as long as the client wants.
fn stream_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sse::events))
}

/// Top of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Real-time notifications: Kafka in, SQLite or PostgreSQL kept, SSE out. \
                       Errors are JSON `{\"message\": …}`."
    ),
    modifiers(&Security),
    // The stream's event payloads (see `document`).
    components(schemas(app::model::StateEvent, app::model::Change, app::model::Counts)),
    tags(
        (name = "seed", description = "The Go tutorial's routes, byte for byte (owner only when auth is on)"),
        (name = "auth", description = "Demo sign-in and the session cookie"),
        (name = "api", description = "The JSON API and the event stream"),
        (name = "users", description = "The user directory: search, and (API keys with scope `users`) create, rename, deactivate"),
        (name = "ops", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document as served: utoipa's, with what its attributes
/// cannot say written in directly.
/// - `PATCH /api/notifications/{id}` needs at least one field
///   (`minProperties`; utoipa 5.5 writes `min_properties` as
///   `maxProperties`).
/// - The event stream's events: their names and each one's JSON payload
///   (`x-sse-events`; OpenAPI 3.1 cannot type the items of a stream).
/// - The patterns of texts and URLs, from the constants the server checks
///   with (one source for both).
pub fn document(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    use crate::service::{LINE_PATTERN, MESSAGE_PATTERN, WEB_URL_PATTERN};
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    if let Some(patch) = doc.pointer_mut("/components/schemas/StatePatch") {
        patch["minProperties"] = 1.into();
    }
    for (schema, field, pattern) in [
        ("SendBody", "message", MESSAGE_PATTERN),
        ("SeedSendFields", "message", MESSAGE_PATTERN),
        ("SendBody", "title", LINE_PATTERN),
        ("SendBody", "link", WEB_URL_PATTERN),
        ("Action", "label", LINE_PATTERN),
        ("Action", "url", WEB_URL_PATTERN),
        ("PutUser", "name", LINE_PATTERN),
    ] {
        let at = format!("/components/schemas/{schema}/properties/{field}");
        match doc.pointer_mut(&at) {
            Some(property) => property["pattern"] = pattern.into(),
            None => tracing::error!(%at, "the OpenAPI document lacks a patterned field"),
        }
    }
    let stream = "/paths/~1api~1users~1{user}~1events/get/responses/200/content/text~1event-stream";
    if let Some(content) = doc.pointer_mut(stream) {
        let schema =
            |name: &str| serde_json::json!({ "$ref": format!("#/components/schemas/{name}") });
        content["x-sse-events"] = serde_json::json!({
            "notification": {
                "description": "A new notification; the SSE `id` is its id (resume after it with `Last-Event-ID`)",
                "data": schema("Notification"),
            },
            "state": {
                "description": "A read, archive or delete change, with the counts after it",
                "data": schema("StateEvent"),
            },
            "counts": {
                "description": "Unread and total; keep the one with the largest `version`",
                "data": schema("Counts"),
            },
        });
    }
    doc
}

/// The two ways to present a token, for the OpenAPI document.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(auth::COOKIE))),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("hk_… (server keys create)")
                    .build(),
            ),
        );
    }
}

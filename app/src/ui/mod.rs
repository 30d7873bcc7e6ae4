//! The Leptos UI: sign in, send notifications, work through your inbox.
//!
//! Rendered on the server, then hydrated. Every action goes through a server
//! function (see `api.rs`); new notifications, read-state changes and counts
//! arrive over Server-Sent Events (see `live.rs`) and are applied with
//! [`list_state::apply_change`], so every open tab of a user agrees.
//!
//! # Layout
//! - this file: the HTML shell, the router and the home page, which loads
//!   who is signed in, the demo users and the inbox, then shows one of:
//! - `sign_in`: the demo sign-in screen;
//! - `signed_in`: the header with the live badge, the composer and the inbox;
//! - `composer`: the send form;
//! - `inbox`: the list with its filters, items and actions;
//! - `filter`: which list the URL asks for, and the links to the others;
//! - `list_state`: how changes from the stream apply to a shown list (also
//!   used by `live.rs`), and the connection state.

mod composer;
mod filter;
mod inbox;
pub mod list_state;
mod sign_in;
mod signed_in;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    hooks::use_query_map,
    SsrMode, StaticSegment,
};

use crate::api::{demo_users, get_inbox, whoami};
use crate::model::ServiceError;
use filter::filter_from_query;
use sign_in::SignInPage;
use signed_in::SignedIn;

/// The HTML document around [`App`]; the server renders it for every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Send the page's Content Security Policy: scripts only from this site or
/// carrying this response's nonce (leptos_axum makes one per request and
/// puts it on the hydration script and every inline script it writes),
/// WebAssembly compiled from this site, styles, images and connections
/// (server functions, the event stream) to this site only, no plugins, no
/// `<base>`, no framing. An injected `<script>` or `onclick=` does not run.
/// (Under `cargo leptos watch` the reload socket on another port is let
/// through too.)
#[cfg(feature = "ssr")]
fn content_security_policy() {
    let (Some(nonce), Some(res)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    let reload = if std::env::var_os("LEPTOS_WATCH").is_some() {
        " ws:"
    } else {
        ""
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'{reload}; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        res.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The application root.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/herald.css"/>
        <Title text="Herald"/>
        <Router>
            <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                // Async: the server sends the page once every resource is
                // read. Out-of-order streaming of the nested suspense
                // boundaries put fragments in the wrong place now and then
                // (seen as a stuck "connecting…" in the browser tests).
                <Route path=StaticSegment("") view=HomePage ssr=SsrMode::Async/>
            </Routes>
        </Router>
    }
}

#[component]
fn HomePage() -> impl IntoView {
    // Every resource of the page is created here, outside any `Suspend`, so
    // the server and the hydrating browser create them in the same order.
    let me = Resource::new(|| (), |_| whoami());
    let users = Resource::new(|| (), |_| demo_users());
    let query = use_query_map();
    let filter = Memo::new(move |_| {
        let q = query.read();
        filter_from_query(q.get("view"), q.get("category"), q.get("min_priority"))
    });
    // Only fetched for a signed-in user (a signed-out page must not answer
    // with the server function's 401).
    let inbox = Resource::new(
        move || filter.get(),
        move |f| async move {
            match me.await {
                Ok(Some(_)) => get_inbox(f, None).await.map(Some),
                _ => Ok(None),
            }
        },
    );
    // Lets end-to-end tests (and people) know the page is interactive.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <div class="page" data-hydrated=move || hydrated.get().to_string()>
            <Suspense fallback=|| view! { <p class="card muted">"Loading…"</p> }>
                <ErrorBoundary fallback=|errors| view! { <ErrorList errors/> }>
                    {move || Suspend::new(async move {
                        let users = users.await?;
                        let view = match me.await? {
                            Some(me) => {
                                view! {
                                    <SignedIn me=me.user counts=me.counts filter inbox/>
                                }
                                    .into_any()
                            }
                            None => view! { <SignInPage users/> }.into_any(),
                        };
                        Ok::<_, ServiceError>(view)
                    })}
                </ErrorBoundary>
            </Suspense>
        </div>
    }
}

/// Reload the page (after the session cookie changed).
pub(super) fn reload() {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().location().reload();
    }
}

#[component]
pub(super) fn ErrorList(errors: ArcRwSignal<Errors>) -> impl IntoView {
    view! {
        <div class="card error" role="alert">
            <p>"Something went wrong:"</p>
            <ul>
                {move || {
                    errors
                        .get()
                        .into_iter()
                        .map(|(_, e)| view! { <li>{e.to_string()}</li> })
                        .collect_view()
                }}
            </ul>
        </div>
    }
}

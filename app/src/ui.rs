//! The Leptos UI: pick who you are, send a notification, watch your inbox.
//!
//! Rendered on the server, then hydrated. Sending goes through the
//! [`SendNotification`](crate::api::SendNotification) server function; new
//! notifications arrive over Server-Sent Events (see `live.rs`).

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    hooks::use_query_map,
    StaticSegment,
};

use crate::api::{get_inbox, get_users, SendNotification};
use crate::model::{relative_time, Notification, User, MAX_MESSAGE_CHARS};

/// The HTML document around [`App`]; the server renders it for every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
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

/// The application root.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/herald.css"/>
        <Title text="Herald"/>
        <Router>
            <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                <Route path=StaticSegment("") view=HomePage/>
            </Routes>
        </Router>
    }
}

/// State of the live connection, shown next to the inbox title.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conn {
    /// The EventSource is being opened.
    Connecting,
    /// Events flow.
    Live,
    /// The connection dropped; the browser retries by itself and the server
    /// replays what was missed (`Last-Event-ID`).
    Reconnecting,
}

impl Conn {
    fn as_str(self) -> &'static str {
        match self {
            Conn::Connecting => "connecting",
            Conn::Live => "live",
            Conn::Reconnecting => "reconnecting",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Conn::Connecting => "connecting…",
            Conn::Live => "live",
            Conn::Reconnecting => "reconnecting…",
        }
    }
}

#[component]
fn HomePage() -> impl IntoView {
    let query = use_query_map();
    let me = Memo::new(move |_| query.read().get("user").and_then(|s| s.parse::<i64>().ok()));
    let users = Resource::new(|| (), |_| get_users());
    // Lets end-to-end tests (and people) know the page is interactive.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <div class="page" data-hydrated=move || hydrated.get().to_string()>
            <header class="top">
                <h1>"Herald"</h1>
                <Suspense fallback=|| view! { <span class="muted">"Loading users…"</span> }>
                    <ErrorBoundary fallback=|errors| view! { <ErrorList errors/> }>
                        {move || Suspend::new(async move {
                            let users = users.await?;
                            Ok::<_, ServerFnError>(view! { <UserPicker users me/> })
                        })}
                    </ErrorBoundary>
                </Suspense>
            </header>
            <main>
                {move || match me.get() {
                    None => {
                        view! {
                            <p class="card hint" data-testid="pick-hint">
                                "Pick who you are to see your inbox and send notifications."
                            </p>
                        }
                            .into_any()
                    }
                    Some(id) => view! { <SignedIn me=id users/> }.into_any(),
                }}
            </main>
        </div>
    }
}

/// "Who are you?": one link per user; the choice lives in the URL (`?user=`).
#[component]
fn UserPicker(users: Vec<User>, me: Memo<Option<i64>>) -> impl IntoView {
    view! {
        <nav class="who" aria-label="Who are you?">
            <span class="muted">"You are"</span>
            {users
                .into_iter()
                .map(|u| {
                    let id = u.id;
                    view! {
                        <a
                            href=format!("/?user={id}")
                            class="person"
                            aria-current=move || (me.get() == Some(id)).then_some("true")
                        >
                            {u.name}
                        </a>
                    }
                })
                .collect_view()}
        </nav>
    }
}

#[component]
fn SignedIn(me: i64, users: Resource<Result<Vec<User>, ServerFnError>>) -> impl IntoView {
    view! {
        <div class="columns">
            <Suspense fallback=|| view! { <p class="card muted">"Loading…"</p> }>
                <ErrorBoundary fallback=|errors| view! { <ErrorList errors/> }>
                    {move || Suspend::new(async move {
                        let users = users.await?;
                        if !users.iter().any(|u| u.id == me) {
                            return Ok::<_, ServerFnError>(
                                view! { <p class="card error">"Unknown user. Pick one above."</p> }
                                    .into_any(),
                            );
                        }
                        Ok(view! { <Composer me users/> }.into_any())
                    })}
                </ErrorBoundary>
            </Suspense>
            <Inbox me/>
        </div>
    }
}

/// The form that sends a notification through the server function.
#[component]
fn Composer(me: i64, users: Vec<User>) -> impl IntoView {
    let send = ServerAction::<SendNotification>::new();
    let result = send.value();
    let pending = send.pending();
    let text = RwSignal::new(String::new());
    // Clear the text once the broker has acknowledged it.
    Effect::new(move |_| {
        if let Some(Ok(_)) = result.get() {
            text.set(String::new());
        }
    });
    let others: Vec<User> = users.into_iter().filter(|u| u.id != me).collect();

    view! {
        <section class="card composer">
            <h2>"Send a notification"</h2>
            <ActionForm action=send>
                <input type="hidden" name="from" value=me.to_string()/>
                <label>
                    <span>"To"</span>
                    <select name="to" data-testid="recipient">
                        {others
                            .into_iter()
                            .map(|u| view! { <option value=u.id.to_string()>{u.name}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label>
                    <span>"Message"</span>
                    <textarea
                        name="message"
                        rows="3"
                        required
                        maxlength=MAX_MESSAGE_CHARS.to_string()
                        placeholder="Write something…"
                        data-testid="message"
                        bind:value=text
                    ></textarea>
                </label>
                <button type="submit" disabled=move || pending.get() data-testid="send">
                    {move || if pending.get() { "Sending…" } else { "Send" }}
                </button>
            </ActionForm>
            <p
                class="status"
                role="status"
                data-testid="send-status"
                class:error=move || matches!(result.get(), Some(Err(_)))
            >
                {move || match result.get() {
                    Some(Ok(n)) => format!("Sent to {}.", n.to.name),
                    Some(Err(ServerFnError::ServerError(msg))) => format!("Not sent: {msg}"),
                    Some(Err(e)) => format!("Not sent: {e}"),
                    None => String::new(),
                }}
            </p>
        </section>
    }
}

/// The signed-in user's notifications: stored ones first rendered on the
/// server, live ones prepended as they arrive.
#[component]
fn Inbox(me: i64) -> impl IntoView {
    let inbox = Resource::new(move || me, get_inbox);
    let live = RwSignal::new(Vec::<Notification>::new());
    let conn = RwSignal::new(Conn::Connecting);
    let now = RwSignal::new(Utc::now());

    // Effects only run in the browser: tick the clock for relative times.
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(
            move || now.set(Utc::now()),
            std::time::Duration::from_secs(15),
        ) {
            on_cleanup(move || handle.clear());
        }
    });

    view! {
        <section class="card inbox-card">
            <h2>
                "Your inbox "
                <span class="live" data-testid="live" data-state=move || conn.get().as_str()>
                    {move || conn.get().label()}
                </span>
            </h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading inbox…"</p> }>
                <ErrorBoundary fallback=|errors| view! { <ErrorList errors/> }>
                    {move || Suspend::new(async move {
                        let stored = inbox.await?;
                        Ok::<_, ServerFnError>(view! { <List me stored live conn now/> })
                    })}
                </ErrorBoundary>
            </Suspense>
        </section>
    }
}

#[component]
fn List(
    me: i64,
    stored: Vec<Notification>,
    live: RwSignal<Vec<Notification>>,
    conn: RwSignal<Conn>,
    now: RwSignal<DateTime<Utc>>,
) -> impl IntoView {
    // Open the stream from the newest notification rendered, so nothing
    // stored between rendering and connecting is missed ("0": from the
    // start, for an empty inbox).
    let since = stored
        .first()
        .map(|n| n.id.clone())
        .unwrap_or_else(|| "0".to_owned());
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        crate::live::connect(me, &since, live, conn);
        #[cfg(not(feature = "hydrate"))]
        let _ = (me, &since, conn);
    });
    // Live items are newer than anything stored at render time; the stream may
    // replay some of those, so drop duplicates by id.
    let items = move || {
        let mut all = live.get();
        all.retain(|n| !stored.iter().any(|s| s.id == n.id));
        all.extend(stored.iter().cloned());
        all
    };
    move || {
        let all = items();
        if all.is_empty() {
            view! { <p class="empty" data-testid="empty">"No notifications yet."</p> }.into_any()
        } else {
            view! {
                <ul class="inbox" data-testid="inbox">
                    {all.into_iter().map(|n| view! { <Item n now/> }).collect_view()}
                </ul>
            }
            .into_any()
        }
    }
}

#[component]
fn Item(n: Notification, now: RwSignal<DateTime<Utc>>) -> impl IntoView {
    let at = n.created_at;
    let initial = n.from.name.chars().next().unwrap_or('?').to_string();
    view! {
        <li class="item" data-id=n.id.clone()>
            <div class="avatar" aria-hidden="true">{initial}</div>
            <div class="body">
                <p class="meta">
                    <strong class="from">{n.from.name.clone()}</strong>
                    <time datetime=at.to_rfc3339() title=at.to_rfc2822()>
                        {move || relative_time(at, now.get())}
                    </time>
                </p>
                <p class="text">{n.message.clone()}</p>
            </div>
        </li>
    }
}

#[component]
fn ErrorList(errors: ArcRwSignal<Errors>) -> impl IntoView {
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

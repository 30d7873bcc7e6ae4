//! The Leptos UI: sign in, send notifications, work through your inbox.
//!
//! Rendered on the server, then hydrated. Every action goes through a server
//! function (see `api.rs`); new notifications, read-state changes and counts
//! arrive over Server-Sent Events (see `live.rs`) and are applied with
//! [`apply_change`], so every open tab of a user agrees.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    hooks::use_query_map,
    SsrMode, StaticSegment,
};

use crate::api::{
    delete_notification, get_inbox, get_users, mark_all_read, set_state, whoami, SendNotification,
    SignIn, SignOut,
};
use crate::model::{
    relative_time, Category, Change, Counts, InboxView, ListFilter, Notification, User,
    DEFAULT_PRIORITY, MAX_MESSAGE_CHARS, PRIORITY_RANGE,
};

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
                // Async: the server sends the page once every resource is
                // read. Out-of-order streaming of the nested suspense
                // boundaries put fragments in the wrong place now and then
                // (seen as a stuck "connecting…" in the browser tests).
                <Route path=StaticSegment("") view=HomePage ssr=SsrMode::Async/>
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

/// Keep `new` if it is newer than `current` (counts come from page loads,
/// actions and the stream, in any order).
pub fn offer_counts(counts: RwSignal<Counts>, new: Counts) {
    if new.version >= counts.get_untracked().version {
        counts.set(new);
    }
}

/// Apply a state change to the list shown with `filter` (newest first).
pub fn apply_change(items: &mut Vec<Notification>, filter: &ListFilter, change: &Change) {
    match change {
        Change::Updated { notification } => {
            if let Some(i) = items.iter().position(|n| n.id == notification.id) {
                if filter.matches(notification) {
                    items[i] = notification.clone();
                } else {
                    items.remove(i);
                }
            }
        }
        Change::Deleted { id } => items.retain(|n| &n.id != id),
        Change::ReadAll { through } => {
            // Everything from `through` down (older) is read; newer items
            // arrived after the change and stay as they are.
            let from = items.iter().position(|n| &n.id == through).unwrap_or(0);
            for n in items.iter_mut().skip(from) {
                n.read = true;
            }
            items.retain(|n| filter.matches(n));
        }
    }
}

/// Add a new notification on top if it belongs in this list and is not
/// there yet.
pub fn add_new(items: &mut Vec<Notification>, filter: &ListFilter, n: Notification) {
    if filter.matches(&n) && !items.iter().any(|x| x.id == n.id) {
        items.insert(0, n);
    }
}

#[component]
fn HomePage() -> impl IntoView {
    // Every resource of the page is created here, outside any `Suspend`, so
    // the server and the hydrating browser create them in the same order.
    let me = Resource::new(|| (), |_| whoami());
    let users = Resource::new(|| (), |_| get_users());
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
                                    <SignedIn me=me.user counts=me.counts users filter inbox/>
                                }
                                    .into_any()
                            }
                            None => view! { <SignInPage users/> }.into_any(),
                        };
                        Ok::<_, ServerFnError>(view)
                    })}
                </ErrorBoundary>
            </Suspense>
        </div>
    }
}

/// Reload the page (after the session cookie changed).
fn reload() {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().location().reload();
    }
}

/// Demo sign-in: one button per demo user.
#[component]
fn SignInPage(users: Vec<User>) -> impl IntoView {
    let sign_in = ServerAction::<SignIn>::new();
    let result = sign_in.value();
    Effect::new(move |_| {
        if let Some(Ok(_)) = result.get() {
            reload();
        }
    });
    view! {
        <div class="screen">
            <header class="top">
                <h1>"Herald"</h1>
            </header>
            <section class="card signin" data-testid="sign-in">
                <h2>"Sign in"</h2>
                <p class="hint">
                    "Demo sign-in: pick who you are. In production, tokens come from your identity provider."
                </p>
                <div class="who">
                    {users
                        .into_iter()
                        .map(|u| {
                            view! {
                                <ActionForm action=sign_in>
                                    <input type="hidden" name="user" value=u.id.to_string()/>
                                    <button type="submit" class="person">
                                        {u.name}
                                    </button>
                                </ActionForm>
                            }
                        })
                        .collect_view()}
                </div>
                <p class="status error" role="status">
                    {move || match result.get() {
                        Some(Err(e)) => format!("Not signed in: {}", server_error_text(&e)),
                        _ => String::new(),
                    }}
                </p>
            </section>
        </div>
    }
}

fn server_error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(msg) => msg.clone(),
        other => other.to_string(),
    }
}

#[component]
fn SignedIn(
    me: User,
    counts: Counts,
    users: Vec<User>,
    filter: Memo<ListFilter>,
    inbox: Resource<Result<Option<InboxView>, ServerFnError>>,
) -> impl IntoView {
    // Rendered on the server with the page; the stream keeps it current.
    let counts = RwSignal::new(counts);
    let sign_out = ServerAction::<SignOut>::new();
    let signed_out = sign_out.value();
    Effect::new(move |_| {
        if let Some(Ok(())) = signed_out.get() {
            reload();
        }
    });
    let name = me.name.clone();
    view! {
        <div class="screen">
            <header class="top">
                <h1>"Herald"</h1>
                <div class="who">
                    <span
                        class="badge"
                        data-testid="badge"
                        data-unread=move || counts.get().unread.to_string()
                        aria-label=move || format!("{} unread", counts.get().unread)
                        class:zero=move || counts.get().unread == 0
                    >
                        <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true">
                            <path
                                fill="currentColor"
                                d="M12 22a2 2 0 0 0 2-2h-4a2 2 0 0 0 2 2zm6-6v-5a6 6 0 0 0-5-5.9V4a1 1 0 0 0-2 0v1.1A6 6 0 0 0 6 11v5l-2 2v1h16v-1z"
                            ></path>
                        </svg>
                        <span class="count">{move || counts.get().unread.to_string()}</span>
                    </span>
                    <span class="muted">"Signed in as "<strong data-testid="me">{name}</strong></span>
                    <ActionForm action=sign_out>
                        <button type="submit" class="link">"Sign out"</button>
                    </ActionForm>
                </div>
            </header>
            <div class="columns">
                // Erased: the page's view type is otherwise too deep for the
                // compiler's default limits.
                {view! { <Composer me=me.id users/> }.into_any()}
                {view! { <Inbox me=me.id counts filter inbox/> }.into_any()}
            </div>
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
                <div class="row">
                    <label>
                        <span>"Category"</span>
                        <select name="category" data-testid="category">
                            {Category::ALL
                                .into_iter()
                                .map(|c| view! { <option value=c.as_str()>{c.as_str()}</option> })
                                .collect_view()}
                        </select>
                    </label>
                    <label>
                        <span>"Priority"</span>
                        <select name="priority" data-testid="priority">
                            {PRIORITY_RANGE
                                .map(|p| {
                                    view! {
                                        <option value=p.to_string() selected=p == DEFAULT_PRIORITY>
                                            {priority_label(p)}
                                        </option>
                                    }
                                })
                                .collect_view()}
                        </select>
                    </label>
                </div>
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
                    Some(Err(e)) => format!("Not sent: {}", server_error_text(&e)),
                    None => String::new(),
                }}
            </p>
        </section>
    }
}

fn priority_label(p: u8) -> String {
    match p {
        1 => "1 · min".into(),
        3 => "3 · default".into(),
        5 => "5 · max".into(),
        p => p.to_string(),
    }
}

/// Which list the URL asks for
/// (`?view=unread|archived&category=…&min_priority=…`).
fn filter_from_query(
    view: Option<String>,
    category: Option<String>,
    min_priority: Option<String>,
) -> ListFilter {
    ListFilter {
        archived: view.as_deref() == Some("archived"),
        unread: view.as_deref() == Some("unread"),
        category: category.as_deref().and_then(Category::parse),
        min_priority: min_priority
            .and_then(|p| p.parse().ok())
            .filter(|p| PRIORITY_RANGE.contains(p)),
    }
}

/// The link that shows the list with `f`.
fn filter_href(f: &ListFilter) -> String {
    let view = if f.archived {
        "archived"
    } else if f.unread {
        "unread"
    } else {
        "inbox"
    };
    let mut href = format!("/?view={view}");
    if let Some(c) = f.category {
        href.push_str(&format!("&category={}", c.as_str()));
    }
    if let Some(p) = f.min_priority {
        href.push_str(&format!("&min_priority={p}"));
    }
    href
}

/// Priority from which the "urgent" filter shows notifications.
const URGENT: u8 = 4;

/// The signed-in user's notifications with filters, actions and live
/// updates.
#[component]
fn Inbox(
    me: i64,
    counts: RwSignal<Counts>,
    filter: Memo<ListFilter>,
    inbox: Resource<Result<Option<InboxView>, ServerFnError>>,
) -> impl IntoView {
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

    let view_name = move || {
        let f = filter.get();
        if f.archived {
            "archived"
        } else if f.unread {
            "unread"
        } else {
            "inbox"
        }
    };
    let mark_all = move |_| {
        spawn_local(async move {
            if let Ok(c) = mark_all_read().await {
                offer_counts(counts, c);
            }
        });
    };

    view! {
        <section class="card inbox-card">
            <h2>
                "Your inbox "
                <span class="live" data-testid="live" data-state=move || conn.get().as_str()>
                    {move || conn.get().label()}
                </span>
            </h2>
            <nav class="filters" aria-label="Filters">
                {["inbox", "unread", "archived"]
                    .into_iter()
                    .map(|v| {
                        view! {
                            <a
                                href=move || {
                                    filter_href(
                                        &ListFilter {
                                            archived: v == "archived",
                                            unread: v == "unread",
                                            ..filter.get()
                                        },
                                    )
                                }
                                class="chip"
                                data-testid=format!("view-{v}")
                                aria-current=move || (view_name() == v).then_some("true")
                            >
                                {v}
                            </a>
                        }
                    })
                    .collect_view()}
                <span class="sep" aria-hidden="true"></span>
                <a
                    href=move || {
                        filter_href(
                            &ListFilter {
                                category: None,
                                min_priority: None,
                                ..filter.get()
                            },
                        )
                    }
                    class="chip"
                    aria-current=move || {
                        let f = filter.get();
                        (f.category.is_none() && f.min_priority.is_none()).then_some("true")
                    }
                >
                    "all kinds"
                </a>
                {Category::ALL
                    .into_iter()
                    .map(|c| {
                        view! {
                            <a
                                href=move || {
                                    filter_href(
                                        &ListFilter {
                                            category: Some(c),
                                            ..filter.get()
                                        },
                                    )
                                }
                                class=format!("chip cat-{}", c.as_str())
                                data-testid=format!("category-{}", c.as_str())
                                aria-current=move || (filter.get().category == Some(c)).then_some("true")
                            >
                                {c.as_str()}
                            </a>
                        }
                    })
                    .collect_view()}
                <a
                    href=move || {
                        filter_href(
                            &ListFilter {
                                min_priority: Some(URGENT),
                                ..filter.get()
                            },
                        )
                    }
                    class="chip prio-chip"
                    data-testid="urgent"
                    aria-current=move || (filter.get().min_priority == Some(URGENT)).then_some("true")
                >
                    {format!("P{URGENT}+")}
                </a>
            </nav>
            <div class="toolbar">
                <button class="link" data-testid="mark-all-read" on:click=mark_all>
                    "Mark all read"
                </button>
                <DesktopAlerts/>
            </div>
            <Suspense fallback=|| view! { <p class="muted">"Loading inbox…"</p> }>
                <ErrorBoundary fallback=|errors| view! { <ErrorList errors/> }>
                    {move || Suspend::new(async move {
                        let view = inbox.await?.unwrap_or_default();
                        let filter = filter.get_untracked();
                        Ok::<_, ServerFnError>(view! { <List me view filter counts conn now/> })
                    })}
                </ErrorBoundary>
            </Suspense>
        </section>
    }
}

/// Opt-in browser notifications for new items while the tab is hidden.
#[component]
fn DesktopAlerts() -> impl IntoView {
    let on = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| on.set(crate::live::alerts_enabled()));
    let toggle = move |_| {
        #[cfg(feature = "hydrate")]
        crate::live::toggle_alerts(on);
    };
    view! {
        <label class="alerts">
            <input type="checkbox" prop:checked=move || on.get() on:change=toggle data-testid="alerts"/>
            " Desktop alerts"
        </label>
    }
}

#[component]
fn List(
    me: i64,
    view: InboxView,
    filter: ListFilter,
    counts: RwSignal<Counts>,
    conn: RwSignal<Conn>,
    now: RwSignal<DateTime<Utc>>,
) -> impl IntoView {
    let InboxView {
        page,
        counts: loaded,
        newest,
    } = view;
    let items = RwSignal::new(page.notifications);
    let cursor = RwSignal::new(page.next_cursor);
    let loading = RwSignal::new(false);
    // The stream resumes after the newest notification there was when the
    // page was read ("0": from the start, for a user with none), so nothing
    // stored in between is missed.
    let since = newest.unwrap_or_else(|| "0".to_owned());
    {
        let filter = filter.clone();
        Effect::new(move |_| {
            offer_counts(counts, loaded);
            #[cfg(feature = "hydrate")]
            crate::live::connect(
                me,
                &since,
                crate::live::Targets {
                    items,
                    counts,
                    conn,
                    filter: filter.clone(),
                },
            );
            #[cfg(not(feature = "hydrate"))]
            let _ = (me, &since, conn, &filter);
        });
    }
    let load_more = {
        let filter = filter.clone();
        move |_| {
            let Some(before) = cursor.get_untracked() else {
                return;
            };
            let f = filter.clone();
            loading.set(true);
            spawn_local(async move {
                let more = get_inbox(f, Some(before));
                if let Ok(more) = more.await {
                    items.update(|v| {
                        for n in more.page.notifications {
                            if !v.iter().any(|x| x.id == n.id) {
                                v.push(n);
                            }
                        }
                    });
                    cursor.set(more.page.next_cursor);
                    offer_counts(counts, more.counts);
                }
                loading.set(false);
            });
        }
    };
    let filter = StoredValue::new(filter);

    view! {
        {move || {
            let all = items.get();
            if all.is_empty() {
                let text = if filter.get_value().archived {
                    "Nothing archived."
                } else {
                    "No notifications yet."
                };
                view! { <p class="empty" data-testid="empty">{text}</p> }.into_any()
            } else {
                view! {
                    <ul class="inbox" data-testid="inbox">
                        {all
                            .into_iter()
                            .map(|n| view! { <Item n now items filter/> })
                            .collect_view()}
                    </ul>
                }
                    .into_any()
            }
        }}
        <Show when=move || cursor.get().is_some()>
            <button
                class="more"
                data-testid="load-more"
                disabled=move || loading.get()
                on:click=load_more.clone()
            >
                {move || if loading.get() { "Loading…" } else { "Load more" }}
            </button>
        </Show>
    }
}

#[component]
fn Item(
    n: Notification,
    now: RwSignal<DateTime<Utc>>,
    items: RwSignal<Vec<Notification>>,
    filter: StoredValue<ListFilter>,
) -> impl IntoView {
    let at = n.created_at;
    let initial = n.from.name.chars().next().unwrap_or('?').to_string();
    let id = n.id.clone();
    // Apply the server's answer at once; the `state` event that follows
    // changes nothing more (and updates the other tabs).
    let change = move |id: String, read: Option<bool>, archived: Option<bool>| {
        spawn_local(async move {
            if let Ok(updated) = set_state(id, read, archived).await {
                items.update(|v| {
                    apply_change(
                        v,
                        &filter.get_value(),
                        &Change::Updated {
                            notification: updated,
                        },
                    )
                });
            }
        });
    };
    let open = {
        let id = id.clone();
        let unread = !n.read;
        move |_| {
            if unread {
                change(id.clone(), Some(true), None);
            }
        }
    };
    let toggle_read = {
        let id = id.clone();
        let read = n.read;
        move |_| change(id.clone(), Some(!read), None)
    };
    let toggle_archive = {
        let id = id.clone();
        let archived = n.archived;
        move |_| change(id.clone(), None, Some(!archived))
    };
    let remove = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            spawn_local(async move {
                if delete_notification(id.clone()).await.is_ok() {
                    items.update(|v| v.retain(|x| x.id != id));
                }
            });
        }
    };
    view! {
        <li
            class="item"
            class:unread=!n.read
            data-id=n.id.clone()
            data-read=n.read.to_string()
            data-testid="item"
        >
            <div class="avatar" aria-hidden="true">{initial}</div>
            <div class="body" on:click=open>
                <p class="meta">
                    <strong class="from">{n.from.name.clone()}</strong>
                    <span class=format!("chip small cat-{}", n.category.as_str())>
                        {n.category.as_str()}
                    </span>
                    {(n.priority != DEFAULT_PRIORITY)
                        .then(|| {
                            view! {
                                <span class=format!("prio p{}", n.priority) title="priority">
                                    {format!("P{}", n.priority)}
                                </span>
                            }
                        })}
                    <time datetime=at.to_rfc3339() title=at.to_rfc2822()>
                        {move || relative_time(at, now.get())}
                    </time>
                </p>
                <p class="text">{n.message.clone()}</p>
            </div>
            <div class="actions">
                <button class="link" data-testid="toggle-read" on:click=toggle_read>
                    {if n.read { "Mark unread" } else { "Mark read" }}
                </button>
                <button class="link" data-testid="toggle-archive" on:click=toggle_archive>
                    {if n.archived { "Unarchive" } else { "Archive" }}
                </button>
                <button class="link danger" data-testid="delete" on:click=remove>
                    "Delete"
                </button>
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::User;

    fn n(id: &str, read: bool) -> Notification {
        Notification {
            id: id.into(),
            from: User {
                id: 2,
                name: "Bruno".into(),
            },
            to: User {
                id: 1,
                name: "Emma".into(),
            },
            message: id.into(),
            created_at: Utc::now(),
            category: Category::Info,
            priority: 3,
            read,
            archived: false,
        }
    }

    #[test]
    fn read_all_marks_from_its_notification_down_only() {
        // c arrived after the read-all was made; it stays unread.
        let mut items = vec![n("c", false), n("b", false), n("a", false)];
        apply_change(
            &mut items,
            &ListFilter::default(),
            &Change::ReadAll {
                through: "b".into(),
            },
        );
        let read: Vec<bool> = items.iter().map(|n| n.read).collect();
        assert_eq!(read, [false, true, true]);

        // In the unread view, read ones leave the list.
        let unread = ListFilter {
            unread: true,
            ..Default::default()
        };
        let mut items = vec![n("c", false), n("b", false)];
        apply_change(
            &mut items,
            &unread,
            &Change::ReadAll {
                through: "b".into(),
            },
        );
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].id, "c");
    }

    #[test]
    fn archived_items_leave_the_inbox_and_updates_replace() {
        let mut items = vec![n("b", false), n("a", false)];
        let mut a = n("a", true);
        apply_change(
            &mut items,
            &ListFilter::default(),
            &Change::Updated {
                notification: a.clone(),
            },
        );
        assert!(items[1].read);
        a.archived = true;
        apply_change(
            &mut items,
            &ListFilter::default(),
            &Change::Updated { notification: a },
        );
        assert_eq!(items.len(), 1);
        apply_change(
            &mut items,
            &ListFilter::default(),
            &Change::Deleted { id: "b".into() },
        );
        assert!(items.is_empty());
    }

    #[test]
    fn new_items_respect_the_filter_and_are_not_duplicated() {
        let alerts = ListFilter {
            category: Some(Category::Alert),
            ..Default::default()
        };
        let mut items = vec![];
        add_new(&mut items, &alerts, n("x", false));
        assert!(items.is_empty(), "an info item is not an alert");
        let mut alert = n("y", false);
        alert.category = Category::Alert;
        add_new(&mut items, &alerts, alert.clone());
        add_new(&mut items, &alerts, alert);
        assert_eq!(items.len(), 1);
    }
}

//! The inbox: filter bar, actions, the list and its items.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::filter::{filter_href, View, URGENT};
use super::list_state::{apply_change, offer_counts, Conn};
use super::ErrorList;
use crate::api::{delete_notification, get_inbox, mark_all_read, set_state};
use crate::model::{
    is_web_url, relative_time, Category, Change, Counts, InboxView, ListFilter, Notification,
    ServiceError, DEFAULT_PRIORITY,
};

/// The signed-in user's notifications with filters, actions and live
/// updates.
#[component]
pub(super) fn Inbox(
    me: i64,
    counts: RwSignal<Counts>,
    filter: Memo<ListFilter>,
    inbox: Resource<Result<Option<InboxView>, ServiceError>>,
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
                {View::ALL
                    .into_iter()
                    .map(|v| {
                        view! {
                            <a
                                href=move || filter_href(&v.apply(filter.get()))
                                class="chip"
                                data-testid=format!("view-{}", v.as_str())
                                aria-current=move || (View::of(&filter.get()) == v).then_some("true")
                            >
                                {v.as_str()}
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
                        Ok::<_, ServiceError>(view! { <List me view filter counts conn now/> })
                    })}
                </ErrorBoundary>
            </Suspense>
        </section>
    }
}

/// Opt-in browser notifications for new items while the tab is hidden.
#[component]
pub(super) fn DesktopAlerts() -> impl IntoView {
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
pub(super) fn List(
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
pub(super) fn Item(
    n: Notification,
    now: RwSignal<DateTime<Utc>>,
    items: RwSignal<Vec<Notification>>,
    filter: StoredValue<ListFilter>,
) -> impl IntoView {
    let at = n.created_at;
    let initial = n.from.name.chars().next().unwrap_or('?').to_string();
    // Links were checked when the notification was accepted; checked again
    // here so that no other scheme can ever reach an `href`.
    let buttons: Vec<_> = n
        .actions
        .iter()
        .filter(|a| is_web_url(&a.url))
        .cloned()
        .collect();
    let title = n
        .title
        .clone()
        .map(|t| view! { <p class="title" data-testid="title">{t}</p> });
    let text = view! { <p class="text">{n.message.clone()}</p> };
    // A click on the notification opens its link (in a new tab) and marks
    // it read.
    let content = match n.link.clone().filter(|l| is_web_url(l)) {
        Some(href) => view! {
            <a
                class="open"
                href=href
                target="_blank"
                rel="noopener noreferrer"
                data-testid="open-link"
            >
                {title}
                {text}
            </a>
        }
        .into_any(),
        None => view! {
            {title}
            {text}
        }
        .into_any(),
    };
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
            // A service (an API key) gets a square avatar, a person a round one.
            <div class="avatar" class:service=n.from_service aria-hidden="true">
                {initial}
            </div>
            <div class="body" on:click=open>
                <p class="meta">
                    <strong class="from">{n.from.name.clone()}</strong>
                    {n.from_service
                        .then(|| view! { <span class="chip small service">"service"</span> })}
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
                {content}
                {(!buttons.is_empty())
                    .then(|| {
                        view! {
                            <p class="buttons">
                                {buttons
                                    .into_iter()
                                    .map(|a| {
                                        view! {
                                            <a
                                                class="button"
                                                href=a.url
                                                target="_blank"
                                                rel="noopener noreferrer"
                                                data-testid="action"
                                            >
                                                {a.label}
                                            </a>
                                        }
                                    })
                                    .collect_view()}
                            </p>
                        }
                    })}
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

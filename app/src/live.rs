//! Browser side of the live stream (hydrate only): one `EventSource` per
//! inbox view, and opt-in desktop notifications. The browser reconnects by
//! itself and sends `Last-Event-ID`, so the server can replay what was
//! missed.

use leptos::prelude::*;
use send_wrapper::SendWrapper;
use wasm_bindgen::{closure::Closure, JsCast};
use web_sys::{EventSource, MessageEvent};

use crate::model::{Counts, ListFilter, Notification, StateEvent};
use crate::ui::list_state::{add_new, apply_change, offer_counts, Conn, Refusal};

/// What the stream updates.
pub struct Targets {
    /// The list shown, newest first.
    pub items: RwSignal<Vec<Notification>>,
    /// The badge's counts.
    pub counts: RwSignal<Counts>,
    /// The connection state shown next to the title.
    pub conn: RwSignal<Conn>,
    /// The list's filter (new items that do not match are not shown).
    pub filter: ListFilter,
}

/// Key of the desktop-alerts preference in `localStorage`.
const ALERTS_KEY: &str = "herald.alerts";

/// Open `/api/users/{user}/events?since={since}` and apply its
/// `notification`, `state` and `counts` events to `t`. Closed when the
/// owning reactive scope is cleaned up.
pub fn connect(user: i64, since: &str, t: Targets) {
    let Targets {
        items,
        counts,
        conn,
        filter,
    } = t;
    let url = format!(
        "/api/users/{user}/events?since={}",
        js_sys::encode_uri_component(since)
    );
    let Ok(source) = EventSource::new(&url) else {
        conn.set(Conn::Reconnecting);
        return;
    };
    let f = filter.clone();
    let on_notification = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        if let Some(n) = parse::<Notification>(&ev) {
            desktop_alert(&n);
            items.update(|v| add_new(v, &f, n));
        }
    });
    let on_state = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        if let Some(e) = parse::<StateEvent>(&ev) {
            items.update(|v| apply_change(v, &filter, &e.change));
            offer_counts(counts, e.counts);
        }
    });
    let on_counts = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        if let Some(c) = parse::<Counts>(&ev) {
            offer_counts(counts, c);
        }
    });
    for (name, cb) in [
        ("notification", &on_notification),
        ("state", &on_state),
        ("counts", &on_counts),
    ] {
        let _ = source.add_event_listener_with_callback(name, cb.as_ref().unchecked_ref());
    }
    let on_open = Closure::<dyn FnMut()>::new(move || conn.set(Conn::Live));
    source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    let (probe, probe_url) = (source.clone(), url.clone());
    let on_error = Closure::<dyn FnMut()>::new(move || {
        if probe.ready_state() != EventSource::CLOSED {
            conn.set(Conn::Reconnecting);
            return;
        }
        // The browser gave up: the server answered something other than
        // 200, and EventSource does not say what. Ask, without opening a
        // stream (HEAD), to tell the user why.
        conn.set(Conn::Refused(Refusal::Other));
        let url = probe_url.clone();
        leptos::task::spawn_local(async move {
            if let Some(status) = head_status(&url).await {
                conn.set(Conn::Refused(Refusal::from_status(status)));
            }
        });
    });
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));

    // The closures must live as long as the EventSource; they are !Send, so
    // they travel to the cleanup through a SendWrapper (same thread anyway).
    let guard = SendWrapper::new((
        source,
        on_notification,
        on_state,
        on_counts,
        on_open,
        on_error,
    ));
    on_cleanup(move || {
        let (source, ..) = guard.take();
        source.close();
    });
}

/// The HTTP status of `HEAD url`, if the request went through.
async fn head_status(url: &str) -> Option<u16> {
    let init = web_sys::RequestInit::new();
    init.set_method("HEAD");
    let promise = window().fetch_with_str_and_init(url, &init);
    let response = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    Some(response.dyn_into::<web_sys::Response>().ok()?.status())
}

fn parse<T: serde::de::DeserializeOwned>(ev: &MessageEvent) -> Option<T> {
    serde_json::from_str(&ev.data().as_string()?).ok()
}

fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

/// Whether the user opted in and the browser still allows notifications.
pub fn alerts_enabled() -> bool {
    let wanted = storage()
        .and_then(|s| s.get_item(ALERTS_KEY).ok().flatten())
        .is_some_and(|v| v == "on");
    wanted && web_sys::Notification::permission() == web_sys::NotificationPermission::Granted
}

/// Switch desktop alerts on (asking the browser for permission) or off.
pub fn toggle_alerts(on: RwSignal<bool>) {
    let Some(store) = storage() else {
        return;
    };
    if on.get_untracked() {
        let _ = store.set_item(ALERTS_KEY, "off");
        on.set(false);
        return;
    }
    let _ = store.set_item(ALERTS_KEY, "on");
    match web_sys::Notification::request_permission() {
        Ok(promise) => leptos::task::spawn_local(async move {
            let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
            on.set(alerts_enabled());
        }),
        Err(_) => on.set(false),
    }
}

/// Show `n` as a desktop notification if the user opted in and the tab is
/// hidden (a visible tab shows it in the list already).
fn desktop_alert(n: &Notification) {
    let hidden = window()
        .document()
        .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Hidden);
    if !hidden || !alerts_enabled() {
        return;
    }
    let options = web_sys::NotificationOptions::new();
    options.set_body(&n.message);
    options.set_tag(&n.id);
    let _ = web_sys::Notification::new_with_options(&format!("{} · Herald", n.from.name), &options);
}

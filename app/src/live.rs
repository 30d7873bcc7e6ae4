//! Browser side of the live stream (hydrate only): one `EventSource` per
//! signed-in page. The browser reconnects by itself and sends
//! `Last-Event-ID`, so the server can replay what was missed.

use leptos::prelude::*;
use send_wrapper::SendWrapper;
use wasm_bindgen::{closure::Closure, JsCast};
use web_sys::{EventSource, MessageEvent};

use crate::model::Notification;
use crate::ui::Conn;

/// Open `/api/users/{user}/events?since={since}`, push each `notification` event into
/// `live` (newest first, no duplicates) and mirror the connection in `conn`.
/// Closed when the owning reactive scope is cleaned up.
pub fn connect(user: i64, since: &str, live: RwSignal<Vec<Notification>>, conn: RwSignal<Conn>) {
    let url = format!(
        "/api/users/{user}/events?since={}",
        js_sys::encode_uri_component(since)
    );
    let Ok(source) = EventSource::new(&url) else {
        conn.set(Conn::Reconnecting);
        return;
    };
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let Some(text) = ev.data().as_string() else {
            return;
        };
        if let Ok(n) = serde_json::from_str::<Notification>(&text) {
            live.update(|v| {
                if !v.iter().any(|x| x.id == n.id) {
                    v.insert(0, n);
                }
            });
        }
    });
    let _ = source
        .add_event_listener_with_callback("notification", on_message.as_ref().unchecked_ref());
    let on_open = Closure::<dyn FnMut()>::new(move || conn.set(Conn::Live));
    source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    let on_error = Closure::<dyn FnMut()>::new(move || conn.set(Conn::Reconnecting));
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));

    // The closures must live as long as the EventSource; both are !Send, so
    // they travel to the cleanup through a SendWrapper (same thread anyway).
    let guard = SendWrapper::new((source, on_message, on_open, on_error));
    on_cleanup(move || {
        let (source, ..) = guard.take();
        source.close();
    });
}

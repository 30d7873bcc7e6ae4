//! The form that sends a notification.

use leptos::prelude::*;

use crate::api::{find_users, SendNotification};
use crate::model::{Category, User, DEFAULT_PRIORITY, MAX_MESSAGE_CHARS, PRIORITY_RANGE};

/// The form that sends a notification through the server function. The
/// recipient is found by typing the start of their name (the directory may
/// hold millions of users) and picking one of the suggestions.
#[component]
pub(super) fn Composer(me: i64) -> impl IntoView {
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
    // What is typed in the recipient field, and who was picked (cleared
    // as soon as the text changes again).
    let typed = RwSignal::new(String::new());
    let chosen = RwSignal::new(None::<User>);
    // Each search answers with the text it was for: only the answer for
    // what the field holds now is shown, whatever order answers arrive in.
    let search = Action::new(|q: &String| {
        let q = q.clone();
        async move {
            let found = find_users(q.clone()).await;
            (q, found)
        }
    });
    let suggestions = move || match search.value().get() {
        Some((q, Ok(users))) if chosen.with(Option::is_none) && q == typed.get() => {
            users.into_iter().filter(|u| u.id != me).collect::<Vec<_>>()
        }
        _ => Vec::new(),
    };
    let search_failed = move || match search.value().get() {
        Some((q, Err(e))) if q == typed.get() => Some(format!("Search failed: {e}")),
        _ => None,
    };
    let on_type = move |ev| {
        let q = event_target_value(&ev);
        typed.set(q.clone());
        chosen.set(None);
        if !q.trim().is_empty() {
            search.dispatch(q);
        }
    };

    view! {
        <section class="card composer">
            <h2>"Send a notification"</h2>
            <ActionForm action=send>
                <label>
                    <span>"To"</span>
                    <input
                        type="search"
                        autocomplete="off"
                        placeholder="Type a name…"
                        data-testid="recipient"
                        aria-autocomplete="list"
                        prop:value=move || typed.get()
                        on:input=on_type
                    />
                </label>
                <input
                    type="hidden"
                    name="to"
                    prop:value=move || chosen.get().map(|u| u.id.to_string()).unwrap_or_default()
                />
                <ul class="suggestions" role="listbox" data-testid="suggestions">
                    {move || {
                        suggestions()
                            .into_iter()
                            .map(|u| {
                                let pick = u.clone();
                                view! {
                                    <li>
                                        <button
                                            type="button"
                                            role="option"
                                            class="suggestion"
                                            on:click=move |_| {
                                                typed.set(pick.name.clone());
                                                chosen.set(Some(pick.clone()));
                                            }
                                        >
                                            {u.name}
                                            <span class="muted">{format!(" #{}", u.id)}</span>
                                        </button>
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ul>
                <p class="status error" role="alert">{search_failed}</p>
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
                <button
                    type="submit"
                    disabled=move || pending.get() || chosen.with(Option::is_none)
                    title=move || chosen.with(Option::is_none).then_some("Pick a recipient first")
                    data-testid="send"
                >
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
                    Some(Err(e)) => format!("Not sent: {e}"),
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

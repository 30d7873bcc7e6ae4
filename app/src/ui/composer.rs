//! The form that sends a notification.

use leptos::prelude::*;

use crate::api::SendNotification;
use crate::model::{Category, User, DEFAULT_PRIORITY, MAX_MESSAGE_CHARS, PRIORITY_RANGE};

/// The form that sends a notification through the server function.
#[component]
pub(super) fn Composer(me: i64, users: Vec<User>) -> impl IntoView {
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

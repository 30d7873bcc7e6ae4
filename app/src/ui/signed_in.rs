//! The signed-in screen: header with the live unread badge and sign-out,
//! the composer and the inbox.

use leptos::prelude::*;

use super::composer::Composer;
use super::inbox::Inbox;
use super::reload;
use crate::api::SignOut;
use crate::model::{Counts, InboxView, ListFilter, ServiceError, User};

/// The signed-in screen.
#[component]
pub(super) fn SignedIn(
    me: User,
    counts: Counts,
    filter: Memo<ListFilter>,
    inbox: Resource<Result<Option<InboxView>, ServiceError>>,
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
                {view! { <Composer me=me.id/> }.into_any()}
                {view! { <Inbox me=me.id counts filter inbox/> }.into_any()}
            </div>
        </div>
    }
}

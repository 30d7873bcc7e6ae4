//! The demo sign-in screen.

use leptos::prelude::*;

use super::reload;
use crate::api::SignIn;
use crate::model::User;

/// Demo sign-in: one button per demo user.
#[component]
pub(super) fn SignInPage(users: Vec<User>) -> impl IntoView {
    let sign_in = ServerAction::<SignIn>::new();
    let result = sign_in.value();
    Effect::new(move |_| {
        if let Some(Ok(_)) = result.get() {
            reload();
        }
    });
    // None when the server has demo sign-in switched off.
    let off = users.is_empty().then(|| {
        view! {
            <p class="hint" data-testid="demo-off">
                "Demo sign-in is switched off on this server: open Herald from your application, which signs you in."
            </p>
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
                {off}
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
                        Some(Err(e)) => format!("Not signed in: {e}"),
                        _ => String::new(),
                    }}
                </p>
            </section>
        </div>
    }
}

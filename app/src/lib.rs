//! Herald's web app: UI components, shared types and server functions.
//!
//! # Layout
//! - `model`: types shared by server and browser (`User`, `Notification`,
//!   `ServiceError`).
//! - `service` (ssr): the [`service::NotificationService`] trait the server
//!   implements and provides through Leptos context.
//! - `api`: `#[server]` functions, thin calls into that service.
//! - `ui`: the Leptos components and the HTML shell.
//! - `live` (hydrate): the EventSource that feeds the inbox.
//!
//! Built twice: with `ssr` into the server binary, with `hydrate` into wasm.

#![recursion_limit = "256"]

pub mod api;
#[cfg(feature = "hydrate")]
mod live;
pub mod model;
#[cfg(feature = "ssr")]
pub mod service;
pub mod ui;

/// Entry point of the wasm bundle: attach to the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(ui::App);
}

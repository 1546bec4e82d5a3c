//! The operator console under `/console`: server-rendered pages over the gateway's service
//! layer, for operators who log in with a password (or a one-time link) and act in one mode at
//! a time.
//!
//! Files by job: [`auth`] (login, sessions, throttling, roles → actions), [`csrf`] (the token
//! every form carries, checked before any handler runs), [`layout`] (the page shell with the
//! mode switch and sandbox banner, formatting), [`payments`] (search, CSV, the payment page and
//! its actions), [`events`] (events with their webhook deliveries, refunds), [`dashboard`],
//! `admin` (reconciliation, accounts, API keys, operators).

mod admin;
pub mod auth;
pub mod csrf;
mod dashboard;
mod error;
mod events;
mod layout;
mod payments;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use paybridge_server::Gateway;
use paybridge_store::SessionPolicy;

pub use auth::{Action, LOGIN_LINK_TTL_MS};
pub use error::ConsoleError;

/// What every console handler shares.
pub struct Console {
    pub gw: Arc<Gateway>,
    /// Cookies get `Secure` when the gateway is reached over https.
    pub secure_cookies: bool,
    pub sessions: SessionPolicy,
}

/// Sessions end after 30 idle minutes, and 12 hours after login at the latest.
pub const SESSIONS: SessionPolicy = SessionPolicy {
    idle_ms: 30 * 60_000,
    absolute_ms: 12 * 3_600_000,
};

pub fn router(gw: Arc<Gateway>) -> Router {
    let secure_cookies = gw.public_base_url().starts_with("https://");
    let console = Arc::new(Console {
        gw,
        secure_cookies,
        sessions: SESSIONS,
    });
    Router::new()
        .route("/console", get(dashboard::page))
        .route("/console/login", get(auth::login_page).post(auth::login))
        .route(
            "/console/login/link",
            get(auth::link_page).post(auth::link_login),
        )
        .route("/console/logout", post(auth::logout))
        .route("/console/mode", post(auth::switch_mode))
        .route("/console/lang/:code", get(auth::switch_lang))
        .route("/console/payments", get(payments::list))
        .route("/console/payments.csv", get(payments::csv))
        .route("/console/payments/:id", get(payments::show))
        .route("/console/payments/:id/refund", post(payments::refund))
        .route("/console/payments/:id/close", post(payments::close))
        .route("/console/events", get(events::list))
        .route("/console/events/:id/redeliver", post(events::redeliver))
        .route("/console/refunds", get(events::refunds))
        .route(
            "/console/reconciliations",
            get(admin::reconciliations).post(admin::start_run),
        )
        .route("/console/reconciliations/:id", get(admin::reconciliation))
        .route("/console/discrepancies/:id/resolve", post(admin::resolve))
        .route("/console/accounts", get(admin::accounts))
        .route(
            "/console/api-keys",
            get(admin::api_keys).post(admin::create_key),
        )
        .route("/console/api-keys/:id/revoke", post(admin::revoke_key))
        .route("/console/operators", get(admin::operators))
        .route(
            "/console/operators/:username/disable",
            post(admin::disable_operator),
        )
        .layer(axum::middleware::from_fn(csrf::guard))
        .with_state(console)
}

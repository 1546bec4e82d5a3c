//! The pages people use, rendered by the gateway itself: the operator console (`/console`) and
//! the hosted cashier (`/cashier`). Templates are compiled in (maud) and static assets embedded,
//! so `cargo run` needs no front-end build and nothing is fetched at run time.
//!
//! The pages are an adapter over the gateway's service layer, like the REST routes: they read
//! and act through [`paybridge_server::Gateway`] and never decide a payment's state themselves.

pub mod assets;
pub mod cashier;
pub mod console;
pub mod i18n;

use std::sync::Arc;

use axum::Router;
use paybridge_server::Gateway;

/// Every page route, to merge beside the API (`runtime::serve_with`).
pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .merge(console::router(gw.clone()))
        .merge(cashier::router(gw))
        .merge(assets::router())
}

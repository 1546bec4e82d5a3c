//! paybridge-server: the gateway a merchant runs.
//!
//! `routes/` is thin HTTP glue; `service/` is the one orchestrator used by routes, notify
//! endpoints and workers; the store does all SQL and the provider crates all wire formats.

#![recursion_limit = "512"]

pub mod channels;
pub mod compose;
pub mod config;
pub mod doctor;
pub mod error;
pub mod listener;
pub mod observe;
pub mod routes;
pub mod runtime;
pub mod service;
pub mod webhook;
pub mod workers;

pub use compose::ComposeError;
pub use error::ApiError;
pub use service::Gateway;

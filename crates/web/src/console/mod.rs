//! The operator console under `/console`.

use std::sync::Arc;

use axum::Router;
use paybridge_server::Gateway;

pub fn router(_gw: Arc<Gateway>) -> Router {
    Router::new()
}

//! Static assets compiled into the binary and served under `/assets/`, cached by content: a
//! page links `asset_url(name)`, whose `?v=` changes whenever the file does.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Every embedded file: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "base.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/base.css"),
    ),
    (
        "cashier.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/cashier.css"),
    ),
    (
        "cashier.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/cashier.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/console.css"),
    ),
];

pub fn router() -> Router {
    Router::new().route("/assets/:name", get(serve))
}

/// The URL of an embedded asset, with a version that changes with its content.
pub fn asset_url(name: &str) -> String {
    match find(name) {
        Some((_, bytes)) => format!("/assets/{name}?v={:016x}", fnv1a(bytes)),
        None => format!("/assets/{name}"),
    }
}

async fn serve(Path(name): Path<String>) -> Response {
    match find(&name) {
        Some((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn find(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}

/// A content hash for cache busting only (not security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn every_asset_has_a_versioned_url() {
        for (name, _, _) in ASSETS {
            assert!(asset_url(name).starts_with(&format!("/assets/{name}?v=")));
        }
        assert_eq!(asset_url("missing.css"), "/assets/missing.css");
    }
}

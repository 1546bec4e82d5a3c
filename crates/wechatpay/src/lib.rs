//! WeChat Pay protocol: APIv2 (XML, MD5/HMAC-SHA256) in [`v2`] and APIv3 (JSON, RSA) in [`v3`],
//! side by side. Protocol code is pure (build requests, parse and verify responses); the thin
//! clients run it through a `paybridge_http::Transport`. Each version has a `provider` module
//! with the WeChat Pay side of the same rules, for the sandbox.

pub mod bill;
pub mod clock;
mod common;
pub mod oauth;
pub mod status;
pub(crate) mod time;
pub mod v2;
pub mod v3;

//! paybridge-alipay: the Alipay OpenAPI (`gateway.do`) protocol.
//!
//! Everything here except [`client`] is pure: requests are built and signed, responses and
//! notifications verified and parsed, bills decoded, without I/O. [`client::AlipayClient`] runs
//! the built requests through a [`paybridge_http::Transport`]; [`channel::AlipayChannel`] plugs
//! the whole into the gateway's [`paybridge_core::channel::PaymentChannel`] contract.
//! [`provider`] holds the other side of the wire (what Alipay itself does), used by the sandbox.

pub mod api;
pub mod bill;
pub mod cert_mode;
pub mod channel;
pub mod client;
pub mod config;
pub mod convert;
mod error;
pub mod fund_notify;
pub mod notify;
pub mod provider;
pub mod request;
pub mod response;
pub mod sign;
pub mod time_fmt;

pub use config::{AesKey, AlipayConfig, AlipayKeys, VerifyKeys};
pub use error::{AlipayError, GatewayError, GatewayErrorKind};

//! paybridge-reconcile: each account's daily provider bill matched against local payments and
//! refunds.
//!
//! - [`line`]: one provider-neutral [`BillLine`] per bill row (Alipay trade bill ZIP, WeChat
//!   v2/v3 trade bills), streamed by [`BillFile::for_each_line`].
//! - [`matcher`]: the pure matching rules: a batch of bill lines and the local rows with the
//!   same merchant numbers in, discrepancies and matched ids out.
//! - [`source`]: [`BillSource`], the download through the protocol crates' clients.
//! - [`engine`]: [`Engine`], the I/O loop: a bounded channel of batches from a parser thread,
//!   batch lookups in the store, discrepancies recorded, healable ones healed through a
//!   [`Healer`] (the gateway's active query), then the day's unmatched local rows.

pub mod engine;
mod error;
pub mod line;
pub mod matcher;
pub mod source;

pub use engine::{beijing_day_bounds, parse_bill_date, Engine, Healer, Progress, RunReport};
pub use error::ReconcileError;
pub use line::{BillLine, BillStatus, LineKind};
pub use matcher::{Discrepancy, DiscrepancyKind, Entity, Heal, Totals};
pub use source::{AlipayBills, BillBytes, BillFile, BillSource, WechatV2Bills, WechatV3Bills};

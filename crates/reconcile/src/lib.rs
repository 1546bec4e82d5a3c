//! paybridge-reconcile: each account's daily provider bill matched against local payments and
//! refunds.
//!
//! - [`line`]: one provider-neutral [`BillLine`] per bill row (Alipay trade bill ZIP, WeChat
//!   v2/v3 trade bills), streamed by [`BillFile::for_each_line`].
//! - [`matcher`]: the pure matching rules (the one definition of each discrepancy), also as the
//!   table the store's set-based matching is written from ([`match_rules`]).
//! - [`source`]: [`BillSource`], the download through the protocol crates' clients.
//! - [`engine`]: [`Engine`], a run: the bill parsed on a blocking thread and streamed into the
//!   store's staging table, matched there in a few statements, the discrepancies recorded,
//!   healable ones healed through a [`Healer`] (the gateway's active query).

pub mod engine;
mod error;
pub mod line;
pub mod matcher;
pub mod source;

pub use engine::{beijing_day_bounds, parse_bill_date, Engine, Healer, Progress, RunReport};
pub use error::ReconcileError;
pub use line::{BillLine, BillStatus, LineKind};
pub use matcher::{match_rules, Discrepancy, DiscrepancyKind, Entity, Heal, Totals};
pub use source::{
    AlipayBills, BillBytes, BillFile, BillRead, BillSource, SavedBill, WechatV2Bills, WechatV3Bills,
};

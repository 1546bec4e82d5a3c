//! paybridge-sandbox: a local emulator of the Alipay gateway and WeChat Pay APIv2/APIv3.
//!
//! The core is pure: [`ledger`] keeps trades and refunds with the providers' state machines and
//! error codes, [`notifier`] schedules notifications with the providers' retry schedules and
//! injected faults, [`bills`] writes the providers' bill formats. Time comes from an injected
//! [`clock::Clock`]. [`Sandbox`] serves it all over HTTP (axum): tests start it in-process on
//! `127.0.0.1:0`, `paybridge sandbox` runs it standalone. [`payouts`] is the ledger of
//! transfers (WeChat 商家转账, Alipay 单笔转账) with the payee's confirmation step.

mod alipay;
mod alipay_fund;
pub mod bills;
mod buyer;
pub mod clock;
pub mod config;
pub mod ledger;
pub mod notifier;
pub mod payouts;
mod server;
mod wallet;
pub mod wechat_oauth;
mod wechat_transfer;
mod wechat_v2;
mod wechat_v3;

pub use bills::{Discrepancy, DiscrepancyKind};
pub use clock::{Clock, ManualClock, Millis, SystemClock};
pub use config::{BarcodeMode, SandboxConfig};
pub use notifier::{BodyFault, DropFault, Faults, NotificationRecord, RetrySchedule, TimeScale};
pub use payouts::{Payout, PayoutFault, PayoutState};
pub use server::{RequestRecord, Sandbox, StartError, StartOptions};

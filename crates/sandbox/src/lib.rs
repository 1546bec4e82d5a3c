//! paybridge-sandbox: a local emulator of the Alipay gateway and WeChat Pay APIv2/APIv3.
//!
//! The core is pure: [`ledger`] keeps trades and refunds with the providers' state machines and
//! error codes, [`notifier`] schedules notifications with the providers' retry schedules and
//! injected faults. Time comes from an injected [`clock::Clock`].

pub mod clock;
pub mod ledger;
pub mod notifier;

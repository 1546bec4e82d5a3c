//! WeChat Pay APIv3: JSON bodies, RSA signatures both ways, AEAD-encrypted resources.

pub mod aead;
pub mod api;
pub mod certs;
pub mod channel;
pub mod client;
pub mod client_params;
pub mod error;
pub mod model;
pub mod notify;
pub mod provider;
pub mod sensitive;
pub mod sign;
pub mod transfer;
pub mod verify;

pub use aead::EncryptedResource;
pub use api::Merchant;
pub use client::{V3Client, V3Config};
pub use error::V3Error;
pub use sign::{MerchantSigner, SignedRequest};
pub use verify::{SignatureHeaders, Verifier, VerifyError};

/// Production base URL and its backup.
pub const BASE_URL: &str = "https://api.mch.weixin.qq.com";
pub const BACKUP_BASE_URL: &str = "https://api2.mch.weixin.qq.com";

//! WeChat Pay APIv3: JSON bodies, RSA signatures both ways, AEAD-encrypted resources.

pub mod aead;
pub mod certs;
pub mod client_params;
pub mod model;
pub mod notify;
pub mod provider;
pub mod sensitive;
pub mod sign;
pub mod verify;

pub use aead::EncryptedResource;
pub use sign::{MerchantSigner, SignedRequest};
pub use verify::{SignatureHeaders, Verifier, VerifyError};

/// Production base URL and its backup.
pub const BASE_URL: &str = "https://api.mch.weixin.qq.com";
pub const BACKUP_BASE_URL: &str = "https://api2.mch.weixin.qq.com";

//! Operator passwords: argon2id (RFC 9106) in the PHC string format, so the parameters travel
//! with each hash and can be raised later without invalidating stored ones.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::CryptoError;

/// Memory 19 MiB, 2 passes, 1 lane: OWASP's first argon2id recommendation, about 30 ms a hash
/// on one core here, which bounds what a flood of login attempts can cost.
fn hasher() -> Result<Argon2<'static>, CryptoError> {
    let params =
        Params::new(19 * 1024, 2, 1, None).map_err(|e| CryptoError::Password(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) of `password`, with a fresh
/// 16-byte salt from the system's random source.
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    let salt = SaltString::encode_b64(&crate::random_bytes::<16>())
        .map_err(|e| CryptoError::Password(e.to_string()))?;
    hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CryptoError::Password(e.to_string()))
}

/// Whether `password` matches the stored PHC string (compared in constant time by `argon2`).
/// A malformed stored hash matches nothing.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    hasher()
        .map(|h| h.verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterz", &h));
        // Salted: the same password hashes differently each time.
        assert_ne!(h, hash_password("correct horse battery").unwrap());
        assert!(!verify_password("x", "not a phc string"));
        // argon2i hashes are not accepted even when well-formed.
        assert!(!verify_password("x", &h.replace("argon2id", "argon2i")));
    }
}

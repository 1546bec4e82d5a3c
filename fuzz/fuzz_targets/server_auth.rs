//! The gateway's `Authorization: Bearer <key>` parsing, before any key is hashed and looked up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paybridge_server::routes::bearer_token;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(token) = bearer_token(value) {
        assert!(!token.is_empty() && token.len() <= 256);
        assert_eq!(token, token.trim());
        assert!(value.starts_with("Bearer ") || value.starts_with("bearer "));
        // The token is a slice of the header, so the lookup sees exactly what was sent.
        assert!(value.contains(token));
        assert_eq!(bearer_token(&format!("Bearer {token}")), Some(token));
    }
});

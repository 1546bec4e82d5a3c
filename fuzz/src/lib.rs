//! Fixtures shared by the fuzz targets: keys made once per process (never the shared test
//! vectors' keys, which stay outside the repository), and small helpers.

use std::sync::OnceLock;

use paybridge_crypto::{generate_rsa_private_key_pkcs8, RsaPrivateKey, RsaPublicKey};

/// The WeChat Pay APIv3 key (32 ASCII bytes) the resource targets encrypt and decrypt with.
pub const APIV3_KEY: &[u8; 32] = b"fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz";
/// The WeChat Pay APIv2 API key the XML targets sign and decrypt `req_info` with.
pub const V2_API_KEY: &str = "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz";
/// A fixed "now" for freshness checks, so a run is reproducible.
pub const NOW: i64 = 1_700_000_000;

/// One RSA key pair per process: generating 2048-bit keys per input would dominate the run.
pub fn rsa() -> &'static (RsaPrivateKey, RsaPublicKey) {
    static KEY: OnceLock<(RsaPrivateKey, RsaPublicKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let der = generate_rsa_private_key_pkcs8().expect("generate an RSA key");
        let private = RsaPrivateKey::from_der(&der).expect("read the generated key");
        let public = private.public_key().expect("public half");
        (private, public)
    })
}

/// Splits `data` at the first `\n`: a short selector line (method name, event type...) and
/// the payload. Without a line feed the selector is empty.
pub fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[], data),
    }
}

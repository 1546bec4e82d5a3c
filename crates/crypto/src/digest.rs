use aws_lc_rs::{digest, hmac, rand};
use md5::Digest as _;

pub fn md5(data: &[u8]) -> [u8; 16] {
    md5::Md5::digest(data).into()
}

/// Lowercase hex MD5 (WeChat uppercases it itself where its rules say so).
pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(md5(data))
}

pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(data))
}

/// SHA-1 over data that arrives in pieces (WeChat Pay's bill hash, checked while the bill
/// streams in). aws-lc-rs: several times the `sha1` crate's speed on a 150 MB bill.
#[derive(Clone)]
pub struct Sha1Stream(digest::Context);

impl Default for Sha1Stream {
    fn default() -> Self {
        Sha1Stream(digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY))
    }
}

impl Sha1Stream {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Lowercase hex.
    pub fn finish_hex(self) -> String {
        hex::encode(self.0.finish().as_ref())
    }
}

/// SHA-256 over data that arrives in pieces (a bill's digest, taken while it is parsed).
#[derive(Clone)]
pub struct Sha256Stream(digest::Context);

impl Default for Sha256Stream {
    fn default() -> Self {
        Sha256Stream(digest::Context::new(&digest::SHA256))
    }
}

impl Sha256Stream {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Lowercase hex.
    pub fn finish_hex(self) -> String {
        hex::encode(self.0.finish().as_ref())
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Compares MACs and signatures without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The system RNG failing is not recoverable for a payment system; fall back to zeroes would
    // be worse than aborting the request, so callers get fresh bytes or a panic-free retry loop.
    while rand::fill(&mut buf).is_err() {}
    buf
}

/// A random alphanumeric string (nonces for WeChat v2/v3 and Alipay test data).
pub fn random_string(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<32>() {
            // 62 * 4 = 248: reject the top values to keep the distribution uniform.
            if b < 248 && out.len() < len {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_digests_equal_whole_ones() {
        let data = b"a bill, in pieces of any size";
        let mut one = Sha1Stream::default();
        let mut two = Sha256Stream::default();
        for piece in data.chunks(7) {
            one.update(piece);
            two.update(piece);
        }
        assert_eq!(one.finish_hex(), sha1_hex(data));
        assert_eq!(two.finish_hex(), hex::encode(sha256(data)));
    }

    #[test]
    fn known_digests() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            hex::encode(hmac_sha256(
                b"key",
                b"The quick brown fox jumps over the lazy dog"
            )),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        let n = random_string(32);
        assert_eq!(n.len(), 32);
        assert!(n.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(n, random_string(32));
    }
}

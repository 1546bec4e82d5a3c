use der::{Decode, Encode};

use crate::pem::decode_pem_blocks;
use crate::{CryptoError, RsaPublicKey};

/// The RSA signature algorithms (PKCS#1 family, OID 1.2.840.113549.1.1.*).
const RSA_OID_PREFIX: &str = "1.2.840.113549.1.1.";

/// A parsed X.509 certificate with the few facts the providers' protocols need.
#[derive(Clone, Debug)]
pub struct Certificate {
    der: Vec<u8>,
    serial: Vec<u8>,
    issuer: String,
    subject: String,
    signature_algorithm: String,
    spki: Vec<u8>,
    not_before: i64,
    not_after: i64,
    /// The signed part and the issuer's signature over it, for [`Certificate::verify_issued_by`].
    tbs: Vec<u8>,
    signature: Vec<u8>,
}

impl Certificate {
    pub fn from_der(der: &[u8]) -> Result<Self, CryptoError> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| CryptoError::Certificate(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let spki = tbs
            .subject_public_key_info
            .to_der()
            .map_err(|e| CryptoError::Certificate(e.to_string()))?;
        let serial = tbs.serial_number.as_bytes().to_vec();
        let tbs_der = tbs
            .to_der()
            .map_err(|e| CryptoError::Certificate(e.to_string()))?;
        let signature = cert
            .signature
            .as_bytes()
            .ok_or_else(|| CryptoError::Certificate("signature is not whole bytes".into()))?
            .to_vec();
        Ok(Certificate {
            der: der.to_vec(),
            serial,
            issuer: tbs.issuer.to_string(),
            subject: tbs.subject.to_string(),
            signature_algorithm: cert.signature_algorithm.oid.to_string(),
            spki,
            not_before: tbs.validity.not_before.to_unix_duration().as_secs() as i64,
            not_after: tbs.validity.not_after.to_unix_duration().as_secs() as i64,
            tbs: tbs_der,
            signature,
        })
    }

    /// The first certificate of a PEM text.
    pub fn from_pem(text: &str) -> Result<Self, CryptoError> {
        let blocks = decode_pem_blocks(text)?;
        let block = blocks
            .iter()
            .find(|b| b.label == "CERTIFICATE")
            .ok_or_else(|| CryptoError::Certificate("no CERTIFICATE block".into()))?;
        Certificate::from_der(&block.der)
    }

    /// Every certificate of a bundle; those this parser cannot read (e.g. SM2 members of
    /// Alipay's root bundle) are returned as errors in place rather than failing the bundle.
    pub fn bundle_from_pem(
        text: &str,
    ) -> Result<Vec<Result<Certificate, CryptoError>>, CryptoError> {
        Ok(decode_pem_blocks(text)?
            .into_iter()
            .filter(|b| b.label == "CERTIFICATE")
            .map(|b| Certificate::from_der(&b.der))
            .collect())
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Serial as upper-case hex without leading zero bytes (WeChat's `serial_no` form).
    pub fn serial_hex(&self) -> String {
        let trimmed: &[u8] = match self.serial.iter().position(|b| *b != 0) {
            Some(i) => &self.serial[i..],
            None => &[0],
        };
        hex::encode_upper(trimmed)
    }

    /// Serial as an unsigned decimal number (Alipay's certificate SN input).
    pub fn serial_decimal(&self) -> String {
        big_endian_to_decimal(&self.serial)
    }

    /// Issuer DN in RFC 2253 order (most specific RDN first), `,`-joined, no spaces.
    pub fn issuer_rfc2253(&self) -> &str {
        &self.issuer
    }

    pub fn subject_rfc2253(&self) -> &str {
        &self.subject
    }

    pub fn signature_algorithm_oid(&self) -> &str {
        &self.signature_algorithm
    }

    pub fn is_rsa_signed(&self) -> bool {
        self.signature_algorithm.starts_with(RSA_OID_PREFIX)
    }

    pub fn not_before_unix(&self) -> i64 {
        self.not_before
    }

    pub fn not_after_unix(&self) -> i64 {
        self.not_after
    }

    pub fn public_key(&self) -> Result<RsaPublicKey, CryptoError> {
        RsaPublicKey::from_der(&self.spki)
    }

    pub fn to_pem(&self) -> String {
        crate::encode_pem("CERTIFICATE", &self.der)
    }

    /// Whether `now` (unix seconds) lies within the validity period.
    pub fn is_valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Checks that `issuer` issued this certificate: its subject is our issuer and its RSA key
    /// verifies our signature (PKCS#1 v1.5 with SHA-256, -384 or -512). SHA-1 signatures are
    /// refused: a chain that relies on one proves nothing today.
    pub fn verify_issued_by(&self, issuer: &Certificate) -> Result<(), CryptoError> {
        if issuer.subject != self.issuer {
            return Err(CryptoError::Certificate(format!(
                "issued by {}, not by {}",
                self.issuer, issuer.subject
            )));
        }
        let algorithm: &'static dyn aws_lc_rs::signature::VerificationAlgorithm =
            match self.signature_algorithm.as_str() {
                "1.2.840.113549.1.1.11" => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                "1.2.840.113549.1.1.12" => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA384,
                "1.2.840.113549.1.1.13" => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA512,
                other => {
                    return Err(CryptoError::Certificate(format!(
                        "signature algorithm {other} is not accepted for a certificate chain"
                    )))
                }
            };
        aws_lc_rs::signature::UnparsedPublicKey::new(algorithm, &issuer.spki)
            .verify(&self.tbs, &self.signature)
            .map_err(|_| {
                CryptoError::Certificate(format!(
                    "the signature of {} does not verify with the key of {}",
                    self.subject, issuer.subject
                ))
            })
    }
}

/// Arbitrary-length unsigned big-endian integer to decimal, by repeated division.
fn big_endian_to_decimal(bytes: &[u8]) -> String {
    let mut num: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if num.is_empty() {
        return "0".to_string();
    }
    let mut digits = Vec::new();
    while !num.is_empty() {
        let mut rem: u32 = 0;
        let mut next = Vec::with_capacity(num.len());
        for b in &num {
            let cur = (rem << 8) | u32::from(*b);
            let q = cur / 10;
            rem = cur % 10;
            if !(next.is_empty() && q == 0) {
                next.push(q as u8);
            }
        }
        digits.push(b'0' + rem as u8);
        num = next;
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_conversion() {
        assert_eq!(big_endian_to_decimal(&[]), "0");
        assert_eq!(big_endian_to_decimal(&[0, 0]), "0");
        assert_eq!(big_endian_to_decimal(&[1, 0]), "256");
        assert_eq!(big_endian_to_decimal(&[0xff; 8]), u64::MAX.to_string());
        assert_eq!(
            big_endian_to_decimal(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0]),
            (u128::from(u64::MAX) + 1).to_string()
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Certificate::from_der(b"\x30\x03\x02\x01").is_err());
        assert!(Certificate::from_pem("nothing").is_err());
    }
}

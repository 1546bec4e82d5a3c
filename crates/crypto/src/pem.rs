use crate::{b64_decode, b64_encode, CryptoError};

/// One `-----BEGIN LABEL-----` block, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
}

/// Decodes every PEM block in `text`, in order. Text outside blocks is ignored, as OpenSSL does
/// (Alipay's root bundle carries no separators, WeChat's files sometimes carry comments).
pub fn decode_pem_blocks(text: &str) -> Result<Vec<PemBlock>, CryptoError> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after
            .find("-----")
            .ok_or_else(|| CryptoError::Pem("unterminated BEGIN line".into()))?;
        let label = after[..label_end].trim().to_string();
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_start
            .find(&end_marker)
            .ok_or_else(|| CryptoError::Pem(format!("missing END line for {label}")))?;
        let body = &body_start[..body_end];
        // RFC 1421 headers ("Proc-Type: ...") mean an encrypted key, which we cannot use.
        if body.contains(':') {
            return Err(CryptoError::Pem(format!(
                "{label} has headers (encrypted keys are not supported)"
            )));
        }
        blocks.push(PemBlock {
            label,
            der: b64_decode(body)?,
        });
        rest = &body_start[body_end + end_marker.len()..];
    }
    Ok(blocks)
}

/// Encodes DER as PEM with 64-character lines.
pub fn encode_pem(label: &str, der: &[u8]) -> String {
    let b64 = b64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// PEM text, or the bare base64 a provider console hands out: returns the DER blocks with labels
/// (`None` for bare base64).
/// A decoded block: its PEM label (`None` for bare base64) and DER bytes.
pub(crate) type LabelledDer = (Option<String>, Vec<u8>);

pub(crate) fn pem_or_bare(text: &str) -> Result<Vec<LabelledDer>, CryptoError> {
    if text.contains("-----BEGIN ") {
        let blocks = decode_pem_blocks(text)?;
        if blocks.is_empty() {
            return Err(CryptoError::Pem("no PEM block".into()));
        }
        Ok(blocks.into_iter().map(|b| (Some(b.label), b.der)).collect())
    } else {
        Ok(vec![(None, b64_decode(text.trim())?)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_garbage() {
        let pem = encode_pem("CERTIFICATE", &[1, 2, 3, 250]);
        let blocks = decode_pem_blocks(&format!("junk\n{pem}{pem}")).unwrap_or_default();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].der, vec![1, 2, 3, 250]);
        assert!(decode_pem_blocks("-----BEGIN X-----\nAAAA").is_err());
        assert!(decode_pem_blocks("-----BEGIN X").is_err());
        assert!(pem_or_bare("not base64 !!").is_err());
    }
}

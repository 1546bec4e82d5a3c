//! The thin APIv2 client over a [`Transport`]; `/secapi` calls go through a second transport
//! that presents the merchant's client certificate.

use std::sync::Arc;

use paybridge_crypto::{random_string, Secret};
use paybridge_http::{HttpRequest, Transport, TransportError};

use super::api::{self, OrderId, V2Merchant, V2Request};
use super::error::V2Error;
use super::sign::SignType;

pub struct V2Config {
    pub merchant: V2Merchant,
    pub api_key: Secret<String>,
    pub sign_type: SignType,
    pub base_url: String,
    pub backup_base_url: Option<String>,
}

impl V2Config {
    pub fn new(merchant: V2Merchant, api_key: String) -> Self {
        V2Config {
            merchant,
            api_key: Secret::new(api_key),
            sign_type: SignType::HmacSha256,
            base_url: super::BASE_URL.into(),
            backup_base_url: Some(super::BACKUP_BASE_URL.into()),
        }
    }
}

/// The TLS client identity (PEM certificate + key) from `apiclient_cert.p12`, whose password is
/// the merchant id. Feed it to `paybridge_http::TransportConfig::identity_pem`.
pub fn identity_from_p12(p12: &[u8], mch_id: &str) -> Result<Secret<Vec<u8>>, V2Error> {
    paybridge_crypto::pkcs12_identity(p12, mch_id)
        .map(|id| id.to_pem())
        .map_err(|e| V2Error::Config(format!("apiclient_cert.p12: {e}")))
}

/// The same identity from `apiclient_cert.pem` + `apiclient_key.pem` (checked to parse).
pub fn identity_from_pem(cert_pem: &str, key_pem: &str) -> Result<Secret<Vec<u8>>, V2Error> {
    paybridge_crypto::Certificate::from_pem(cert_pem)
        .map_err(|e| V2Error::Config(format!("apiclient_cert.pem: {e}")))?;
    let key = paybridge_crypto::RsaPrivateKey::from_text(key_pem)
        .map_err(|e| V2Error::Config(format!("apiclient_key.pem: {e}")))?;
    let mut pem = cert_pem.trim_end().to_string();
    pem.push('\n');
    pem.push_str(&paybridge_crypto::encode_pem(
        "PRIVATE KEY",
        key.to_pkcs8_der(),
    ));
    Ok(Secret::new(pem.into_bytes()))
}

pub struct V2Client {
    pub config: V2Config,
    transport: Arc<dyn Transport>,
    /// With the client certificate; `None` makes `/secapi` calls a configuration error.
    secure_transport: Option<Arc<dyn Transport>>,
}

impl V2Client {
    pub fn new(
        config: V2Config,
        transport: Arc<dyn Transport>,
        secure_transport: Option<Arc<dyn Transport>>,
    ) -> Self {
        V2Client {
            config,
            transport,
            secure_transport,
        }
    }

    pub fn api_key(&self) -> &str {
        self.config.api_key.expose()
    }

    pub fn build(&self, path: &'static str, fields: &[(&str, String)]) -> V2Request {
        api::build(
            &self.config.merchant,
            path,
            fields,
            self.api_key(),
            self.config.sign_type,
            &random_string(32),
        )
    }

    /// Sends a signed request and returns the raw body (backup host only when repeating is safe).
    pub async fn send(&self, req: &V2Request) -> Result<Vec<u8>, V2Error> {
        let transport = if req.secure {
            self.secure_transport.as_ref().ok_or_else(|| {
                V2Error::Config(format!(
                    "{} needs the merchant client certificate",
                    req.path
                ))
            })?
        } else {
            &self.transport
        };
        let http = |base: &str| {
            HttpRequest::new(
                "POST",
                format!("{}{}", base.trim_end_matches('/'), req.path),
            )
            .header("Content-Type", "text/xml; charset=utf-8")
            .body(req.body.clone().into_bytes())
            .idempotent(req.idempotent)
        };
        let resp = match transport.send(http(&self.config.base_url)).await {
            Ok(r) => r,
            Err(e) => {
                let safe = matches!(e, TransportError::Connect { .. }) || req.idempotent;
                match (&self.config.backup_base_url, safe) {
                    (Some(b), true) => transport.send(http(b)).await?,
                    _ => return Err(e.into()),
                }
            }
        };
        if !(200..300).contains(&resp.status) {
            return Err(V2Error::Http {
                status: resp.status,
            });
        }
        Ok(resp.body)
    }

    async fn call(
        &self,
        path: &'static str,
        fields: &[(&str, String)],
    ) -> Result<super::XmlDoc, V2Error> {
        let body = self.send(&self.build(path, fields)).await?;
        let doc = api::check_reply(&body, self.api_key())?;
        // A signed reply for another merchant or app (misrouted, or a key shared by mistake)
        // must not be taken as the answer to this request.
        let m = &self.config.merchant;
        for (field, ours) in [
            ("appid", Some(&m.appid)),
            ("mch_id", Some(&m.mch_id)),
            ("sub_mch_id", m.sub_mch_id.as_ref()),
        ] {
            if let (Some(theirs), Some(ours)) = (doc.get(field).filter(|v| !v.is_empty()), ours) {
                if theirs != ours {
                    return Err(V2Error::Invalid {
                        field,
                        reason: format!("reply is for {theirs}, not {ours}"),
                    });
                }
            }
        }
        Ok(doc)
    }

    pub async fn unified_order(
        &self,
        o: &api::UnifiedOrder,
    ) -> Result<api::UnifiedOrderResponse, V2Error> {
        let fields = api::unified_order_fields(o, self.config.merchant.sub_appid.is_some())?;
        api::parse_unified_order(self.call("/pay/unifiedorder", &fields).await?)
    }

    pub async fn order_query(&self, id: &OrderId) -> Result<api::OrderQueryResponse, V2Error> {
        api::parse_order_query(self.call("/pay/orderquery", &[id.field()]).await?)
    }

    pub async fn close_order(&self, out_trade_no: &str) -> Result<(), V2Error> {
        self.call(
            "/pay/closeorder",
            &[("out_trade_no", out_trade_no.to_string())],
        )
        .await
        .map(|_| ())
    }

    pub async fn micropay(&self, m: &api::Micropay) -> Result<api::OrderQueryResponse, V2Error> {
        api::parse_order_query(self.call("/pay/micropay", &api::micropay_fields(m)).await?)
    }

    /// Returns `true` when WeChat asks for the reverse to be called again.
    pub async fn reverse(&self, id: &OrderId) -> Result<bool, V2Error> {
        Ok(api::parse_reverse(
            &self.call("/secapi/pay/reverse", &[id.field()]).await?,
        ))
    }

    pub async fn refund(&self, r: &api::RefundRequest) -> Result<api::RefundResponse, V2Error> {
        api::parse_refund(
            self.call("/secapi/pay/refund", &api::refund_fields(r))
                .await?,
        )
    }

    pub async fn refund_query(&self, out_refund_no: &str) -> Result<api::RefundQueryItem, V2Error> {
        let doc = self
            .call(
                "/pay/refundquery",
                &[("out_refund_no", out_refund_no.to_string())],
            )
            .await?;
        api::parse_refund_query(&doc, out_refund_no)
    }

    /// The bill text (for [`crate::bill::BillReader`]); `bill_date` is `yyyyMMdd`.
    pub async fn download_bill(
        &self,
        bill_date: &str,
        bill_type: &str,
    ) -> Result<Vec<u8>, V2Error> {
        let body = self
            .send(&self.build(
                "/pay/downloadbill",
                &api::download_bill_fields(bill_date, bill_type),
            ))
            .await?;
        api::parse_download_bill(&body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use paybridge_crypto::{
        generate_rsa_private_key_pkcs8, self_signed_rsa_cert, write_pkcs12, CertSpec, RsaPrivateKey,
    };

    #[test]
    fn identity_from_p12_and_pem_agree() {
        let der = generate_rsa_private_key_pkcs8().unwrap();
        let key = RsaPrivateKey::from_der(&der).unwrap();
        let spec = CertSpec {
            common_name: "1900000109".into(),
            organization: None,
            organizational_unit: None,
            country: None,
            serial: vec![0x44],
            not_before_unix: 1_700_000_000,
            not_after_unix: 1_900_000_000,
            is_ca: false,
        };
        let cert = self_signed_rsa_cert(&key, &spec).unwrap();
        // WeChat's p12 password is the merchant id.
        let p12 = write_pkcs12(&der, &cert.der, "1900000109").unwrap();
        let from_p12 = identity_from_p12(&p12, "1900000109").unwrap();
        let key_pem = paybridge_crypto::encode_pem("PRIVATE KEY", &der);
        let from_pem = identity_from_pem(&cert.pem, &key_pem).unwrap();
        let blocks = |s: &Secret<Vec<u8>>| {
            paybridge_crypto::decode_pem_blocks(std::str::from_utf8(s.expose()).unwrap()).unwrap()
        };
        let (a, b) = (blocks(&from_p12), blocks(&from_pem));
        assert_eq!(a.len(), 2);
        assert_eq!(
            a.iter().map(|x| (&x.label, &x.der)).collect::<Vec<_>>(),
            b.iter().map(|x| (&x.label, &x.der)).collect::<Vec<_>>()
        );
        assert!(matches!(
            identity_from_p12(&p12, "wrong"),
            Err(V2Error::Config(_))
        ));
        assert!(identity_from_pem("junk", &key_pem).is_err());
    }
}

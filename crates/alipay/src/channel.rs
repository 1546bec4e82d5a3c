//! [`AlipayChannel`]: the gateway's [`PaymentChannel`] contract over [`AlipayClient`].

use async_trait::async_trait;
use paybridge_core::channel::{
    ChannelError, ClientAction, CloseOutcome, CreatePayment, CreateRefund, HttpReply,
    InboundRequest, NotifyOutcome, OrderRef, PaymentChannel, PaymentSnapshot, RefundRef,
    RefundSnapshot, VerifiedNotification,
};
use paybridge_core::{
    CreatePayout, Fen, PayoutNotification, PayoutSnapshot, ProviderPayoutStatus, Scene,
};

use crate::api::{
    FundAccountQuery, FundTransCommonQuery, FundTransUniTransfer, OrderInfo, TradeAppPay,
    TradeCancel, TradeClose, TradeCreate, TradeFastpayRefundQuery, TradePagePay, TradePay,
    TradePrecreate, TradeQuery, TradeRef, TradeRefund, TradeWapPay,
};
use crate::client::AlipayClient;
use crate::convert::{
    channel_error, is_payout_not_found, not_found_snapshot, notification, pay_snapshot,
    query_snapshot, refund_query_snapshot, refund_snapshot,
};
use crate::fund_notify::verify_fund_notify;
use crate::notify::{content_type_charset, NotifyForm, TradeNotify, REPLY_FAILURE, REPLY_SUCCESS};
use crate::request::CallOptions;
use crate::time_fmt::format_beijing;
use crate::AlipayError;

/// `notify_type` of trade notifications (payments, closes and refunds alike).
const TRADE_NOTIFY_TYPE: &str = "trade_status_sync";

pub struct AlipayChannel {
    client: AlipayClient,
    /// ISV mode: the merchant's `app_auth_token`, sent with every call.
    app_auth_token: Option<String>,
}

fn is_not_found(err: &AlipayError) -> bool {
    matches!(err, AlipayError::Gateway(e) if e.signed && e.sub_code == "ACQ.TRADE_NOT_EXIST")
}

impl AlipayChannel {
    pub fn new(client: AlipayClient) -> Self {
        AlipayChannel {
            client,
            app_auth_token: None,
        }
    }

    pub fn with_app_auth_token(mut self, token: impl Into<String>) -> Self {
        self.app_auth_token = Some(token.into());
        self
    }

    pub fn client(&self) -> &AlipayClient {
        &self.client
    }

    fn opts(&self) -> CallOptions {
        CallOptions {
            app_auth_token: self.app_auth_token.clone(),
            ..CallOptions::default()
        }
    }

    /// Alipay's number when we have it (unambiguous), else ours.
    fn trade_ref(out_trade_no: &str, provider_trade_no: &Option<String>) -> TradeRef {
        match provider_trade_no {
            Some(t) => TradeRef::trade_no(t),
            None => TradeRef::out_trade_no(out_trade_no),
        }
    }

    /// 单笔转账 (certificate mode): Alipay pays at once, so the answer is final. A call that
    /// may have arrived is `Unknown`: query, then resend the same request, never a new number.
    pub async fn create_payout(&self, p: &CreatePayout) -> Result<PayoutSnapshot, ChannelError> {
        let req =
            FundTransUniTransfer::from_payout(p).map_err(|e| channel_error("create_payout", e))?;
        let opts = CallOptions {
            notify_url: p.notify_url.clone(),
            ..self.opts()
        };
        self.client
            .execute(&req, &opts)
            .await
            .map(|r| r.snapshot(p.amount))
            .map_err(|e| channel_error("create_payout", e))
    }

    /// The transfer as Alipay has it; one it does not have is
    /// [`paybridge_core::ProviderPayoutStatus::NotFound`].
    pub async fn query_payout(&self, out_biz_no: &str) -> Result<PayoutSnapshot, ChannelError> {
        match self
            .client
            .execute(&FundTransCommonQuery::out_biz_no(out_biz_no), &self.opts())
            .await
        {
            Ok(r) => Ok(r.snapshot(out_biz_no)),
            Err(e) if is_payout_not_found(&e) => Ok(PayoutSnapshot {
                out_no: out_biz_no.to_string(),
                provider_no: None,
                status: ProviderPayoutStatus::NotFound,
                provider_status: "ORDER_NOT_EXIST".into(),
                amount: None,
                fail_reason: None,
                package_info: None,
                updated_at: None,
            }),
            Err(e) => Err(channel_error("query_payout", e)),
        }
    }

    /// The balance payouts draw on (`ACCTRANS_ACCOUNT` of the merchant's `2088…` user id).
    pub async fn payout_balance(&self, alipay_user_id: &str) -> Result<Fen, ChannelError> {
        self.client
            .execute(&FundAccountQuery::user_id(alipay_user_id), &self.opts())
            .await
            .map(|r| r.available_amount)
            .map_err(|e| channel_error("payout_balance", e))
    }

    /// Verifies and reads `alipay.fund.trans.order.changed`. Acknowledge it with
    /// [`PaymentChannel::acknowledge`]: messages want the same `success`.
    pub fn decode_payout_notification(
        &self,
        req: &InboundRequest,
    ) -> Result<PayoutNotification, ChannelError> {
        let bad = |e: AlipayError| ChannelError::BadNotification(e.to_string());
        let form = NotifyForm::parse_with_fallback(&req.body, notify_charset(req)).map_err(bad)?;
        let n = verify_fund_notify(self.client.config(), &form).map_err(bad)?;
        Ok(PayoutNotification {
            notify_id: Some(n.notify_id.clone()),
            merchant_id: Some(n.app_id.clone()),
            snapshot: n.snapshot(),
        })
    }

    fn require<'a>(
        value: &'a Option<String>,
        what: &str,
        scene: Scene,
    ) -> Result<&'a str, ChannelError> {
        value.as_deref().filter(|v| !v.is_empty()).ok_or_else(|| {
            ChannelError::Invalid(format!("{what} is required for the {scene} scene"))
        })
    }
}

/// The charset a notification's `Content-Type` names, if any.
fn notify_charset(req: &InboundRequest) -> Option<&str> {
    req.header("content-type").and_then(content_type_charset)
}

#[async_trait]
impl PaymentChannel for AlipayChannel {
    async fn create_payment(&self, req: &CreatePayment) -> Result<ClientAction, ChannelError> {
        const OP: &str = "create_payment";
        let amount = req
            .amount
            .check_trade_range()
            .map_err(|e| ChannelError::Invalid(e.to_string()))?;
        let opts = CallOptions {
            notify_url: Some(req.notify_url.clone()),
            return_url: req.return_url.clone(),
            app_auth_token: self.app_auth_token.clone(),
        };
        let mut order = OrderInfo::new(&req.out_trade_no, amount, &req.subject);
        order.body = req.description.clone();
        order.time_expire = req.expires_at.map(format_beijing);
        order.passback_params = req.attach.clone();
        let err = |e| channel_error(OP, e);
        match req.scene {
            Scene::Pc => {
                let signed = self
                    .client
                    .sign(&TradePagePay::new(order), &opts)
                    .map_err(err)?;
                Ok(ClientAction::Form {
                    html: signed.form_html(),
                    url: signed.get_url(),
                })
            }
            Scene::Wap => {
                let mut api = TradeWapPay::new(order);
                api.quit_url = req.return_url.clone();
                let signed = self.client.sign(&api, &opts).map_err(err)?;
                Ok(ClientAction::Form {
                    html: signed.form_html(),
                    url: signed.get_url(),
                })
            }
            Scene::App => {
                let signed = self
                    .client
                    .sign(&TradeAppPay::new(order), &opts)
                    .map_err(err)?;
                Ok(ClientAction::AppOrderString {
                    order_string: signed.order_string(),
                })
            }
            Scene::Qr => {
                let api = TradePrecreate { order };
                let resp = self.client.execute(&api, &opts).await.map_err(err)?;
                Ok(ClientAction::QrCode {
                    code_url: resp.qr_code,
                })
            }
            Scene::Jsapi => {
                let payer = Self::require(
                    &req.payer_id,
                    "payer_id (buyer_id or buyer_open_id)",
                    req.scene,
                )?;
                let api = TradeCreate::new(order, payer);
                let resp = self.client.execute(&api, &opts).await.map_err(err)?;
                Ok(ClientAction::TradeNo {
                    trade_no: resp.trade_no,
                })
            }
            Scene::Barcode => {
                let code = Self::require(&req.auth_code, "auth_code", req.scene)?;
                // Barcode pay does not echo passback_params.
                order.passback_params = None;
                let resp = self
                    .client
                    .execute(&TradePay::new(order, code), &opts)
                    .await
                    .map_err(err)?;
                Ok(ClientAction::Barcode {
                    snapshot: pay_snapshot(&resp),
                })
            }
        }
    }

    async fn query_payment(&self, order: &OrderRef) -> Result<PaymentSnapshot, ChannelError> {
        let trade = Self::trade_ref(&order.out_trade_no, &order.provider_trade_no);
        let api = TradeQuery { trade };
        match self.client.execute(&api, &self.opts()).await {
            Ok(resp) => query_snapshot(&resp).map_err(|e| channel_error("query_payment", e)),
            Err(e) if is_not_found(&e) => Ok(not_found_snapshot(&order.out_trade_no)),
            Err(e) => Err(channel_error("query_payment", e)),
        }
    }

    /// Closing a trade Alipay never saw (the buyer never opened the cashier) is a success.
    async fn close_payment(&self, order: &OrderRef) -> Result<CloseOutcome, ChannelError> {
        let trade = Self::trade_ref(&order.out_trade_no, &order.provider_trade_no);
        match self
            .client
            .execute(&TradeClose { trade }, &self.opts())
            .await
        {
            Ok(_) => Ok(CloseOutcome::Closed),
            // A QR order nobody scanned yet: Alipay creates the trade at the scan.
            Err(e) if is_not_found(&e) => Ok(CloseOutcome::NotFound),
            Err(e) => Err(channel_error("close_payment", e)),
        }
    }

    async fn cancel_payment(&self, order: &OrderRef) -> Result<(), ChannelError> {
        let trade = Self::trade_ref(&order.out_trade_no, &order.provider_trade_no);
        let resp = self
            .client
            .execute(&TradeCancel { trade }, &self.opts())
            .await
            .map_err(|e| channel_error("cancel_payment", e))?;
        if resp.should_retry() {
            return Err(ChannelError::Unknown {
                operation: "cancel_payment",
                reason: "Alipay asked to retry the cancel (retry_flag=Y)".into(),
            });
        }
        Ok(())
    }

    async fn refund(&self, req: &CreateRefund) -> Result<RefundSnapshot, ChannelError> {
        let amount = req
            .refund_amount
            .check_trade_range()
            .map_err(|e| ChannelError::Invalid(e.to_string()))?;
        let trade = Self::trade_ref(&req.out_trade_no, &req.provider_trade_no);
        let mut api = TradeRefund::new(trade, &req.out_refund_no, amount);
        api.refund_reason = req.reason.clone();
        let resp = self
            .client
            .execute(&api, &self.opts())
            .await
            .map_err(|e| channel_error("refund", e))?;
        Ok(refund_snapshot(&req.out_refund_no, amount, &resp))
    }

    async fn query_refund(&self, refund: &RefundRef) -> Result<RefundSnapshot, ChannelError> {
        let trade = Self::trade_ref(&refund.out_trade_no, &refund.provider_trade_no);
        let api = TradeFastpayRefundQuery::new(trade, &refund.out_refund_no);
        let resp = self
            .client
            .execute(&api, &self.opts())
            .await
            .map_err(|e| channel_error("query_refund", e))?;
        refund_query_snapshot(&refund.out_refund_no, &resp)
            .map_err(|e| channel_error("query_refund", e))
    }

    /// Alipay notifications carry no freshness window to enforce; `now_unix` is unused.
    fn decode_notification(
        &self,
        req: &InboundRequest,
        _now_unix: i64,
    ) -> Result<VerifiedNotification, ChannelError> {
        let bad = |r: String| ChannelError::BadNotification(r);
        let form = NotifyForm::parse_with_fallback(&req.body, notify_charset(req))
            .map_err(|e| bad(e.to_string()))?;
        if let Some(field) = form.ambiguous_field() {
            return Err(bad(format!(
                "field {field:?} holds a separator: the signed string would not split back into these fields"
            )));
        }
        let keys = self.client.config().keys.all_verifying_keys();
        if form.verify(&keys.iter().collect::<Vec<_>>()).is_none() {
            return Err(bad("signature does not verify (rules V1 and V2)".into()));
        }
        let notify = TradeNotify::from_form(&form).map_err(|e| bad(e.to_string()))?;
        // Only trade notifications move payments; another signed kind must not be read as one.
        if notify.notify_type != TRADE_NOTIFY_TYPE {
            return Err(bad(format!(
                "notify_type {:?} is not {TRADE_NOTIFY_TYPE}",
                notify.notify_type
            )));
        }
        // A correctly signed notification for another app id or seller is handed on: the
        // service records it as a mismatch against the account (it is not a key problem).
        Ok(notification(&notify))
    }

    fn claimed_order(&self, req: &InboundRequest) -> Option<String> {
        let form = NotifyForm::parse_with_fallback(&req.body, notify_charset(req)).ok()?;
        form.get("out_trade_no").map(str::to_string)
    }

    /// Alipay stops resending only on the exact body `success`; a rejection that no later
    /// attempt can fix is also answered `success` so Alipay stops for 25 hours of retries.
    fn acknowledge(&self, outcome: &NotifyOutcome) -> HttpReply {
        let body = match outcome {
            NotifyOutcome::Accepted => REPLY_SUCCESS,
            NotifyOutcome::Rejected { retry: false, .. } => REPLY_SUCCESS,
            NotifyOutcome::Rejected { retry: true, .. } | NotifyOutcome::Failed => REPLY_FAILURE,
        };
        HttpReply {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use paybridge_core::channel::{ChannelEvent, ProviderPaymentStatus, ProviderRefundStatus};
    use paybridge_core::Fen;
    use paybridge_crypto::RsaPrivateKey;
    use paybridge_http::TransportError;

    use super::*;
    use crate::api::testutil::{respond, test_config, NOW};
    use crate::client::tests::{ok, ScriptedTransport};
    use crate::notify::NotifyRule;
    use crate::provider::{encode_form, sign_notify};
    use crate::time_fmt::FixedClock;

    fn channel(
        answers: Vec<Result<paybridge_http::HttpResponse, TransportError>>,
    ) -> (AlipayChannel, RsaPrivateKey, Arc<ScriptedTransport>) {
        let (config, alipay) = test_config();
        let t = ScriptedTransport::new(answers);
        let client = AlipayClient::new(config, t.clone())
            .with_clock(Arc::new(FixedClock(NOW)))
            .with_retry(2, Duration::ZERO);
        (AlipayChannel::new(client), alipay, t)
    }

    fn payment(scene: Scene) -> CreatePayment {
        CreatePayment {
            out_trade_no: "T1".into(),
            amount: Fen(1050),
            subject: "Book".into(),
            description: None,
            scene,
            expires_at: Some(NOW + 900),
            notify_url: "https://m.example/notify".into(),
            return_url: Some("https://m.example/back".into()),
            client_ip: None,
            payer_id: Some("2088102534368455".into()),
            auth_code: Some("281234567890123456".into()),
            attach: None,
        }
    }

    #[tokio::test]
    async fn browser_and_app_scenes_sign_locally() {
        let (ch, _, t) = channel(vec![]);
        match ch.create_payment(&payment(Scene::Pc)).await.unwrap() {
            ClientAction::Form { html, url } => {
                assert!(html.contains("alipay.trade.page.pay"));
                assert!(html.contains("2026-11-26 20:15:00"));
                assert!(url.contains("method=alipay.trade.page.pay"));
            }
            other => panic!("{other:?}"),
        }
        match ch.create_payment(&payment(Scene::Wap)).await.unwrap() {
            ClientAction::Form { html, .. } => assert!(html.contains("QUICK_WAP_WAY")),
            other => panic!("{other:?}"),
        }
        match ch.create_payment(&payment(Scene::App)).await.unwrap() {
            ClientAction::AppOrderString { order_string } => {
                assert!(order_string.contains("method=alipay.trade.app.pay"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t.sent_count(), 0);
    }

    #[tokio::test]
    async fn server_scenes_call_alipay() {
        let (_, alipay) = test_config();
        let (ch, _, t) = channel(vec![
            ok(respond(
                &alipay,
                "alipay.trade.precreate",
                r#"{"code":"10000","msg":"Success","out_trade_no":"T1","qr_code":"https://qr.alipay.com/x"}"#,
            )),
            ok(respond(
                &alipay,
                "alipay.trade.create",
                r#"{"code":"10000","msg":"Success","out_trade_no":"T1","trade_no":"2026"}"#,
            )),
            ok(respond(
                &alipay,
                "alipay.trade.pay",
                r#"{"code":"10003","msg":"order success pay inprocess","out_trade_no":"T1","trade_no":"2026","total_amount":"10.50"}"#,
            )),
        ]);
        assert_eq!(
            ch.create_payment(&payment(Scene::Qr)).await.unwrap(),
            ClientAction::QrCode {
                code_url: "https://qr.alipay.com/x".into()
            }
        );
        assert_eq!(
            ch.create_payment(&payment(Scene::Jsapi)).await.unwrap(),
            ClientAction::TradeNo {
                trade_no: "2026".into()
            }
        );
        match ch.create_payment(&payment(Scene::Barcode)).await.unwrap() {
            ClientAction::Barcode { snapshot } => {
                assert_eq!(snapshot.status, ProviderPaymentStatus::UserPaying);
                assert_eq!(snapshot.amount, Some(Fen(1050)));
            }
            other => panic!("{other:?}"),
        }
        let create_body = t.sent.lock().unwrap()[1].body.clone();
        let create = NotifyForm::parse(&create_body).unwrap();
        assert!(create
            .get("biz_content")
            .unwrap()
            .contains("\"buyer_id\":\"2088102534368455\""));
        let mut no_payer = payment(Scene::Jsapi);
        no_payer.payer_id = None;
        assert!(matches!(
            ch.create_payment(&no_payer).await,
            Err(ChannelError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn query_close_refund() {
        let (_, alipay) = test_config();
        let not_exist = r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在"}"#;
        let (ch, _, _) = channel(vec![
            ok(respond(&alipay, "alipay.trade.query", not_exist)),
            ok(respond(
                &alipay,
                "alipay.trade.query",
                r#"{"code":"10000","msg":"Success","out_trade_no":"T1","trade_no":"2026","trade_status":"TRADE_CLOSED","total_amount":"10.50","send_pay_date":"2026-11-26 20:01:00"}"#,
            )),
            ok(respond(&alipay, "alipay.trade.close", not_exist)),
            ok(respond(
                &alipay,
                "alipay.trade.refund",
                r#"{"code":"10000","msg":"Success","out_trade_no":"T1","trade_no":"2026","refund_fee":"10.50","fund_change":"Y","gmt_refund_pay":"2026-11-26 20:05:00"}"#,
            )),
            ok(respond(
                &alipay,
                "alipay.trade.fastpay.refund.query",
                r#"{"code":"10000","msg":"Success","out_request_no":"T1-r1","refund_amount":"10.50","refund_status":"REFUND_SUCCESS"}"#,
            )),
            ok(respond(
                &alipay,
                "alipay.trade.close",
                r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_STATUS_ERROR","sub_msg":"交易状态不合法"}"#,
            )),
        ]);
        let order = OrderRef {
            out_trade_no: "T1".into(),
            provider_trade_no: None,
        };
        assert_eq!(
            ch.query_payment(&order).await.unwrap().status,
            ProviderPaymentStatus::NotFound
        );
        assert_eq!(
            ch.query_payment(&order).await.unwrap().status,
            ProviderPaymentStatus::Refunded
        );
        assert_eq!(
            ch.close_payment(&order).await.unwrap(),
            CloseOutcome::NotFound
        );
        let refund = ch
            .refund(&CreateRefund {
                out_trade_no: "T1".into(),
                provider_trade_no: None,
                out_refund_no: "T1-r1".into(),
                refund_amount: Fen(1050),
                total_amount: Fen(1050),
                reason: None,
                notify_url: None,
            })
            .await
            .unwrap();
        assert_eq!(refund.status, ProviderRefundStatus::Succeeded);
        let r = RefundRef {
            out_trade_no: "T1".into(),
            provider_trade_no: None,
            out_refund_no: "T1-r1".into(),
        };
        assert_eq!(ch.query_refund(&r).await.unwrap().amount, Some(Fen(1050)));
        assert!(matches!(
            ch.close_payment(&order).await,
            Err(ChannelError::Refused { code, .. }) if code == "ACQ.TRADE_STATUS_ERROR"
        ));
    }

    fn notify_body(alipay: &RsaPrivateKey, extra: &[(&str, &str)], charset: &str) -> Vec<u8> {
        let mut fields: Vec<(String, String)> = [
            ("notify_id", "n-1"),
            ("notify_type", "trade_status_sync"),
            ("notify_time", "2026-11-26 20:01:01"),
            ("app_id", "2021000000000001"),
            ("charset", charset),
            ("sign_type", "RSA2"),
            ("trade_no", "2026"),
            ("out_trade_no", "T1"),
            ("total_amount", "10.50"),
            ("buyer_pay_amount", "10.50"),
            ("subject", "中文书"),
            ("gmt_payment", "2026-11-26 20:01:00"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        fields.sort();
        encode_form(
            &sign_notify(fields, NotifyRule::V1, alipay).unwrap(),
            charset,
        )
        .unwrap()
    }

    fn inbound(body: Vec<u8>) -> InboundRequest {
        InboundRequest {
            method: "POST".into(),
            path: "/notify/alipay".into(),
            body,
            ..Default::default()
        }
    }

    #[test]
    fn notifications() {
        let (ch, alipay, _) = channel(vec![]);
        let paid = notify_body(&alipay, &[("trade_status", "TRADE_SUCCESS")], "gbk");
        let v = ch.decode_notification(&inbound(paid.clone()), NOW).unwrap();
        assert_eq!(v.notify_id.as_deref(), Some("n-1"));
        match v.event {
            ChannelEvent::Payment { snapshot } => {
                assert_eq!(snapshot.status, ProviderPaymentStatus::Paid);
                assert_eq!(snapshot.amount, Some(Fen(1050)));
                assert_eq!(snapshot.paid_at.as_deref(), Some("2026-11-26 20:01:00"));
            }
            other => panic!("{other:?}"),
        }

        let refunded = notify_body(
            &alipay,
            &[
                ("trade_status", "TRADE_CLOSED"),
                ("refund_fee", "10.50"),
                ("gmt_refund", "2026-11-26 20:05:00"),
            ],
            "utf-8",
        );
        match ch
            .decode_notification(&inbound(refunded), NOW)
            .unwrap()
            .event
        {
            ChannelEvent::Payment { snapshot } => {
                assert_eq!(snapshot.status, ProviderPaymentStatus::Refunded)
            }
            other => panic!("{other:?}"),
        }
        let closed = notify_body(&alipay, &[("trade_status", "TRADE_CLOSED")], "utf-8");
        match ch.decode_notification(&inbound(closed), NOW).unwrap().event {
            ChannelEvent::Payment { snapshot } => {
                assert_eq!(snapshot.status, ProviderPaymentStatus::Closed)
            }
            other => panic!("{other:?}"),
        }
        let refund = notify_body(
            &alipay,
            &[
                ("trade_status", "TRADE_SUCCESS"),
                ("refund_fee", "1.00"),
                ("gmt_refund", "2026-11-26 20:05:00"),
                ("out_biz_no", "T1-r1"),
            ],
            "utf-8",
        );
        match ch.decode_notification(&inbound(refund), NOW).unwrap().event {
            ChannelEvent::Refund {
                out_trade_no,
                snapshot,
            } => {
                assert_eq!(out_trade_no, "T1");
                assert_eq!(snapshot.out_refund_no, "T1-r1");
                assert_eq!(snapshot.status, ProviderRefundStatus::Succeeded);
            }
            other => panic!("{other:?}"),
        }

        let mut tampered = paid;
        let pos = tampered.windows(5).position(|w| w == b"10.50").unwrap();
        tampered[pos] = b'9';
        assert!(matches!(
            ch.decode_notification(&inbound(tampered), NOW),
            Err(ChannelError::BadNotification(_))
        ));
        let other_app = notify_body(
            &alipay,
            &[("trade_status", "TRADE_SUCCESS"), ("auth_app_id", "x")],
            "utf-8",
        );
        assert!(ch.decode_notification(&inbound(other_app), NOW).is_ok());
        let forged = notify_body(
            &RsaPrivateKey::from_der(&paybridge_crypto::generate_rsa_private_key_pkcs8().unwrap())
                .unwrap(),
            &[("trade_status", "TRADE_SUCCESS")],
            "utf-8",
        );
        assert!(ch.decode_notification(&inbound(forged), NOW).is_err());
    }

    #[test]
    fn another_app_id_is_handed_on_and_header_charset_is_a_fallback() {
        let (ch, alipay, _) = channel(vec![]);
        let fields = |app_id: &str| -> Vec<(String, String)> {
            [
                ("notify_id", "n-2"),
                ("notify_type", "trade_status_sync"),
                ("app_id", app_id),
                ("trade_no", "2026"),
                ("out_trade_no", "T1"),
                ("total_amount", "1.00"),
                ("trade_status", "WAIT_BUYER_PAY"),
                ("subject", "中文"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        let body = |app_id: &str| {
            let signed = sign_notify(fields(app_id), NotifyRule::V1, &alipay).unwrap();
            encode_form(&signed, "gbk").unwrap()
        };
        let mut req = inbound(body("2021000000000001"));
        // No charset field in the body: without the header the GBK bytes are refused.
        assert!(ch.decode_notification(&req, NOW).is_err());
        req.headers = vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=GBK".into(),
        )];
        match ch.decode_notification(&req, NOW).unwrap().event {
            ChannelEvent::Payment { snapshot } => {
                assert_eq!(snapshot.status, ProviderPaymentStatus::Pending)
            }
            other => panic!("{other:?}"),
        }
        // Correctly signed for another app: handed on with its app id, so the service records
        // a mismatch rather than a bad signature.
        req.body = body("2021000000000999");
        let v = ch.decode_notification(&req, NOW).unwrap();
        assert_eq!(v.app_id.as_deref(), Some("2021000000000999"));
    }

    #[test]
    fn acknowledgements() {
        let (ch, _, _) = channel(vec![]);
        assert_eq!(ch.acknowledge(&NotifyOutcome::Accepted).body, b"success");
        let retry = NotifyOutcome::Rejected {
            retry: true,
            reason: "db down".into(),
        };
        assert_eq!(ch.acknowledge(&retry).body, b"failure");
        let final_no = NotifyOutcome::Rejected {
            retry: false,
            reason: "forged".into(),
        };
        assert_eq!(ch.acknowledge(&final_no).body, b"success");
    }
}

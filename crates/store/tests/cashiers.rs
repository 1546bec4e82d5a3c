//! Hosted cashiers on SQLite and (when configured) PostgreSQL: created with their key in one
//! transaction, found by token, their wallet orders listed, and the one payment that keeps the
//! money named once even when two claim it at the same time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{begin_new, dbs, new_payment, T0};
use paybridge_core::{Fen, Mode};
use paybridge_store::{BeginCashier, KeyClaim, KeyState, NewCashier, StoreError};
use serde_json::json;

fn new_cashier(no: &str, token: &str) -> NewCashier {
    NewCashier {
        token: token.into(),
        mode: Mode::Sandbox,
        merchant: "shop".into(),
        out_trade_no: no.into(),
        amount: Fen(500),
        currency: "CNY".into(),
        subject: "order".into(),
        description: None,
        return_url: Some("https://shop.example/done".into()),
        alipay_account: Some("alipay_main".into()),
        wechat_account: None,
        expires_at: T0 + 60_000,
        metadata: json!({"k": 1}),
    }
}

fn claim<'a>(key: &'a str, hash: &'a str) -> KeyClaim<'a> {
    KeyClaim {
        scope: "key_1",
        key,
        request_hash: hash,
        lock_ms: 60_000,
    }
}

#[tokio::test]
async fn cashiers_are_created_with_their_key_and_name_one_keeper() {
    for db in dbs("store_cashiers").await {
        let store = db.open().await;
        let BeginCashier::Created(c) = store
            .begin_cashier(&claim("k1", "h1"), new_cashier("SHOP1", "tok1"))
            .await
            .unwrap()
        else {
            panic!("a new key creates the cashier")
        };
        assert_eq!(c.paid_payment_id, None);
        assert_eq!(c.metadata, json!({"k": 1}));
        // The key is settled on the cashier at once; another body under it is a mismatch.
        let again = store
            .begin_cashier(&claim("k1", "h1"), new_cashier("SHOP1", "tok1"))
            .await
            .unwrap();
        assert_eq!(
            again,
            BeginCashier::Key(KeyState::Finished {
                resource_id: c.id.clone()
            })
        );
        let other = store
            .begin_cashier(&claim("k1", "h2"), new_cashier("SHOP9", "tok9"))
            .await
            .unwrap();
        assert_eq!(other, BeginCashier::Key(KeyState::Mismatch));
        // The merchant's order number is taken: refused, and nothing of it written.
        let dup = store
            .begin_cashier(&claim("k2", "h3"), new_cashier("SHOP1", "tok2"))
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict { .. })), "{dup:?}");
        assert!(store.get_cashier_by_token("tok2").await.unwrap().is_none());
        let fresh = store
            .begin_cashier(&claim("k2", "h3"), new_cashier("SHOP2", "tok2"))
            .await
            .unwrap();
        assert!(matches!(fresh, BeginCashier::Created(_)), "{fresh:?}");

        assert_eq!(
            store
                .get_cashier_by_token("tok1")
                .await
                .unwrap()
                .unwrap()
                .id,
            c.id
        );
        let mut a = new_payment("alipay_main", "W1", 500);
        a.cashier_id = Some(c.id.clone());
        let mut b = new_payment("wechat_main", "W2", 500);
        b.cashier_id = Some(c.id.clone());
        let pa = begin_new(&store, a).await.unwrap();
        let pb = begin_new(&store, b).await.unwrap();
        begin_new(&store, new_payment("alipay_main", "LONE", 500))
            .await
            .unwrap();
        let listed: Vec<_> = store
            .list_cashier_payments(&c.id)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(listed, vec![pa.id.clone(), pb.id.clone()]);
        assert_eq!(
            store.get_payment(&pa.id).await.unwrap().unwrap().cashier_id,
            Some(c.id.clone())
        );

        // Two payments claim the money at once: exactly one keeps it, and it stays.
        let (x, y) = tokio::join!(
            store.claim_cashier_payment(&c.id, &pa.id),
            store.claim_cashier_payment(&c.id, &pb.id)
        );
        let (x, y) = (x.unwrap().unwrap(), y.unwrap().unwrap());
        assert_eq!(x, y);
        assert!(x == pa.id || x == pb.id);
        let later = store.claim_cashier_payment(&c.id, &pb.id).await.unwrap();
        assert_eq!(later, Some(x));
        assert_eq!(
            store
                .claim_cashier_payment("csh_none", &pa.id)
                .await
                .unwrap(),
            None
        );
    }
}

//! Fixtures shared by the channel tests.

use paybridge_core::channel::CreatePayment;
use paybridge_core::{Fen, Scene};

/// A 1.01 yuan order `o1` for `scene`, with every optional input a scene may need.
pub fn create(scene: Scene) -> CreatePayment {
    CreatePayment {
        out_trade_no: "o1".into(),
        amount: Fen(101),
        subject: "Tea".into(),
        description: None,
        scene,
        expires_at: Some(1_700_000_900),
        notify_url: "https://merchant.example/notify".into(),
        return_url: Some("https://merchant.example/done?x=1".into()),
        client_ip: Some("203.0.113.9".into()),
        payer_id: Some("op".into()),
        auth_code: Some("134567890123456789".into()),
        attach: None,
    }
}

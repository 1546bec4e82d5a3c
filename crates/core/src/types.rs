//! Channels, scenes and modes shared by the API, the store and the providers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct ParseEnumError {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $kind:literal { $($(#[$vm:meta])* $variant:ident => $text:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text $(, alias = $alias)*)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text $(| $alias)* => Ok($name::$variant),)+
                    _ => Err(ParseEnumError { kind: $kind, value: s.to_string() }),
                }
            }
        }
    };
}

string_enum!(
    /// A payment provider.
    Channel, "channel" {
        Alipay => "alipay",
        Wechat => "wechat" | "wechatpay",
    }
);

string_enum!(
    /// Where and how the buyer pays.
    Scene, "scene" {
        /// Desktop browser: Alipay page pay; WeChat Native QR shown on the page.
        Pc => "pc",
        /// Mobile browser: Alipay wap pay; WeChat H5 (MWEB).
        Wap => "wap" | "h5",
        /// Native app SDK.
        App => "app",
        /// A QR code the buyer scans (Alipay precreate, WeChat Native).
        Qr => "qr" | "native",
        /// Inside the provider's app or a mini-program (WeChat JSAPI, Alipay create).
        Jsapi => "jsapi" | "mini_program" | "mini-program",
        /// The merchant scans the buyer's code (Alipay trade.pay, WeChat micropay).
        Barcode => "barcode" | "micropay",
    }
);

string_enum!(
    /// Live money or the sandbox; accounts, keys, payments and events each carry one.
    Mode, "mode" {
        Live => "live",
        Sandbox => "sandbox" | "test",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_roundtrip() {
        for s in Scene::ALL {
            assert_eq!(s.as_str().parse::<Scene>(), Ok(*s));
        }
        assert_eq!("h5".parse::<Scene>(), Ok(Scene::Wap));
        assert_eq!("mini-program".parse::<Scene>(), Ok(Scene::Jsapi));
        assert!("bitcoin".parse::<Channel>().is_err());
        assert_eq!(
            serde_json::to_string(&Mode::Sandbox).ok().as_deref(),
            Some("\"sandbox\"")
        );
    }
}

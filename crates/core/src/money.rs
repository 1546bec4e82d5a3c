//! One money type: integer fen.
//!
//! Providers speak yuan strings ("12.34") or integer fen; both parse exactly into [`Fen`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An amount of CNY in fen (1 yuan = 100 fen). Always an integer, never a float.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Fen(pub i64);

/// The largest single amount the providers accept: 100,000,000.00 yuan.
pub const MAX_TRADE_FEN: i64 = 10_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount {0:?} is not a yuan amount with at most two decimals")]
    Malformed(String),
    #[error("amount {0:?} is outside 0.01..=100000000.00")]
    OutOfRange(String),
    #[error("amount overflow")]
    Overflow,
}

impl Fen {
    pub const ZERO: Fen = Fen(0);

    pub fn new(fen: i64) -> Self {
        Fen(fen)
    }

    pub fn as_i64(self) -> i64 {
        self.0
    }

    /// Parses a yuan string exactly ("0.01", "12", "12.3", "12.30", "-1.50").
    ///
    /// Signs are accepted because bills carry negative refund amounts; trade amounts should use
    /// [`Fen::parse_trade_amount`], which also enforces the provider's range.
    pub fn parse_yuan(s: &str) -> Result<Fen, MoneyError> {
        let malformed = || MoneyError::Malformed(s.to_string());
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int_part, frac_part) = match body.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (body, None),
        };
        if int_part.is_empty()
            || int_part.len() > 15
            || !int_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(malformed());
        }
        let frac = match frac_part {
            None => 0,
            Some(f) if (1..=2).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
                let v: i64 = f.parse().map_err(|_| malformed())?;
                if f.len() == 1 {
                    v * 10
                } else {
                    v
                }
            }
            Some(_) => return Err(malformed()),
        };
        let int: i64 = int_part.parse().map_err(|_| malformed())?;
        let fen = int
            .checked_mul(100)
            .and_then(|v| v.checked_add(frac))
            .ok_or(MoneyError::Overflow)?;
        Ok(Fen(if negative { -fen } else { fen }))
    }

    /// Parses a trade amount as the providers accept it: 0.01 ..= 100000000.00 yuan.
    pub fn parse_trade_amount(s: &str) -> Result<Fen, MoneyError> {
        let fen = Fen::parse_yuan(s)?;
        if s.starts_with(['-', '+']) || !(1..=MAX_TRADE_FEN).contains(&fen.0) {
            return Err(MoneyError::OutOfRange(s.to_string()));
        }
        Ok(fen)
    }

    /// Validates an amount in fen for a trade (1 ..= 10^10).
    pub fn check_trade_range(self) -> Result<Fen, MoneyError> {
        if (1..=MAX_TRADE_FEN).contains(&self.0) {
            Ok(self)
        } else {
            Err(MoneyError::OutOfRange(self.to_yuan()))
        }
    }

    /// Formats as a yuan string with exactly two decimals, as Alipay expects ("12.30").
    pub fn to_yuan(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }

    pub fn checked_add(self, other: Fen) -> Option<Fen> {
        self.0.checked_add(other.0).map(Fen)
    }

    pub fn checked_sub(self, other: Fen) -> Option<Fen> {
        self.0.checked_sub(other.0).map(Fen)
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_yuan())
    }
}

impl FromStr for Fen {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fen::parse_yuan(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_exact_yuan() {
        assert_eq!(Fen::parse_yuan("0.01"), Ok(Fen(1)));
        assert_eq!(Fen::parse_yuan("12"), Ok(Fen(1200)));
        assert_eq!(Fen::parse_yuan("12.3"), Ok(Fen(1230)));
        assert_eq!(Fen::parse_yuan("100000000.00"), Ok(Fen(MAX_TRADE_FEN)));
        assert_eq!(Fen::parse_yuan("-1.50"), Ok(Fen(-150)));
        // 0.1 + 0.2 style float errors cannot happen: 0.29 is 29 fen exactly.
        assert_eq!(Fen::parse_yuan("0.29"), Ok(Fen(29)));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", ".", "1.", ".5", "1.234", "1,00", "1e3", " 1", "1 ", "--1", "0x10", "１",
        ] {
            assert!(Fen::parse_yuan(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn trade_range_enforced() {
        assert!(Fen::parse_trade_amount("0.00").is_err());
        assert!(Fen::parse_trade_amount("-0.01").is_err());
        assert!(Fen::parse_trade_amount("100000000.01").is_err());
        assert_eq!(Fen::parse_trade_amount("0.01"), Ok(Fen(1)));
    }

    #[test]
    fn formats_two_decimals() {
        assert_eq!(Fen(1).to_yuan(), "0.01");
        assert_eq!(Fen(1230).to_yuan(), "12.30");
        assert_eq!(Fen(-5).to_yuan(), "-0.05");
        assert_eq!(Fen(i64::MIN).to_yuan(), "-92233720368547758.08");
    }

    proptest! {
        #[test]
        fn roundtrip(v in -MAX_TRADE_FEN..=MAX_TRADE_FEN) {
            prop_assert_eq!(Fen::parse_yuan(&Fen(v).to_yuan()), Ok(Fen(v)));
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = Fen::parse_yuan(&s);
        }
    }
}

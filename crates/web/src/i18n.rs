//! Chinese or English for every page: from the `lang` cookie the language switch sets, else the
//! browser's `Accept-Language`, else English.

use axum::http::{header, HeaderMap};

pub const LANG_COOKIE: &str = "pb_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// The page's language for this request.
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        cookie_lang(headers)
            .or_else(|| accept_language(headers))
            .unwrap_or(Lang::En)
    }

    /// `text(en, zh)`: the one place a page picks its wording.
    pub fn text(self, en: &'static str, zh: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }

    /// The `lang` attribute of `<html>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        let primary = code.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
}

fn cookie_lang(headers: &HeaderMap) -> Option<Lang> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == LANG_COOKIE)
        .and_then(|(_, value)| Lang::parse(value))
}

/// The supported language the browser ranks highest (`q` weights honoured; ties keep order).
fn accept_language(headers: &HeaderMap) -> Option<Lang> {
    let value = headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
    let mut best: Option<(u16, Lang)> = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let Some(lang) = parts.next().and_then(Lang::parse) else {
            continue;
        };
        let weight = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(1000, parse_q);
        if weight > 0 && best.is_none_or(|(w, _)| weight > w) {
            best = Some((weight, lang));
        }
    }
    best.map(|(_, lang)| lang)
}

/// A `q` value in thousandths (`0.8` → 800); malformed → 0 (not acceptable).
fn parse_q(q: &str) -> u16 {
    let q = q.trim();
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let whole = match int {
        "0" => 0,
        "1" => 1000,
        _ => return 0,
    };
    let frac: u16 = format!("{frac:0<3}").parse().unwrap_or(0);
    (whole + frac).min(1000)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn accept_language_picks_the_highest_weight() {
        let h = headers(&[(header::ACCEPT_LANGUAGE, "en-US;q=0.7, zh-CN;q=0.9, fr")]);
        assert_eq!(Lang::from_headers(&h), Lang::Zh);
        let h = headers(&[(header::ACCEPT_LANGUAGE, "zh;q=0, en")]);
        assert_eq!(Lang::from_headers(&h), Lang::En);
        let h = headers(&[(header::ACCEPT_LANGUAGE, "zh-TW,en;q=0.5")]);
        assert_eq!(Lang::from_headers(&h), Lang::Zh);
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::En);
    }

    #[test]
    fn the_cookie_overrides_the_browser() {
        let h = headers(&[
            (header::ACCEPT_LANGUAGE, "zh-CN"),
            (header::COOKIE, "a=b; pb_lang=en"),
        ]);
        assert_eq!(Lang::from_headers(&h), Lang::En);
    }

    #[test]
    fn malformed_weights_are_not_acceptable() {
        assert_eq!(parse_q("0.5"), 500);
        assert_eq!(parse_q("1"), 1000);
        assert_eq!(parse_q("1.0"), 1000);
        assert_eq!(parse_q("2"), 0);
        assert_eq!(parse_q("0.5x"), 0);
        assert_eq!(parse_q("0.1234"), 0);
    }
}

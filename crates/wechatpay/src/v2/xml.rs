//! The APIv2 XML dialect: one root element whose children are flat `name -> text` fields.
//!
//! The reader is deliberately hostile to anything beyond that: a DOCTYPE (and with it every
//! entity declaration) is refused outright, because WeChat Pay notify endpoints were attacked
//! through XXE in 2018; only the five predefined entities and character references are decoded;
//! bodies are capped; malformed input is an error, never a partial result.

use quick_xml::events::Event;
use quick_xml::Reader;

/// Default body cap: real notifications and replies are a few KiB.
pub const MAX_XML_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("XML body is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("document contains a DOCTYPE / ENTITY declaration")]
    Doctype,
    #[error("XML is not UTF-8")]
    NotUtf8,
    #[error("malformed XML ({0})")]
    Malformed(String),
    #[error("element <{0}> is nested inside a field; APIv2 documents are flat")]
    Nested(String),
    #[error("field <{0}> appears twice")]
    Duplicate(String),
    #[error("no root element")]
    Empty,
}

/// A parsed APIv2 document: the root name and its fields in document order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XmlDoc {
    pub root: String,
    pub fields: Vec<(String, String)>,
}

impl XmlDoc {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field that must be present and non-empty.
    pub fn require(&self, name: &'static str) -> Result<&str, MissingField> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(MissingField(name)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("missing field {0}")]
pub struct MissingField(pub &'static str);

/// Parses with the default size cap.
pub fn parse_xml(input: &[u8]) -> Result<XmlDoc, XmlError> {
    parse_xml_limited(input, MAX_XML_BYTES)
}

pub fn parse_xml_limited(input: &[u8], limit: usize) -> Result<XmlDoc, XmlError> {
    if input.len() > limit {
        return Err(XmlError::TooLarge {
            size: input.len(),
            limit,
        });
    }
    let text = std::str::from_utf8(input).map_err(|_| XmlError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;

    let mut doc = XmlDoc::default();
    let mut depth = 0usize;
    let mut root_closed = false;
    let mut current: Option<(String, String)> = None;
    // Nesting is reported only after the whole document proved well-formed, so a malformed
    // document is always called malformed.
    let mut nested: Option<String> = None;
    let malformed = |e: quick_xml::Error| XmlError::Malformed(e.to_string());

    loop {
        match reader.read_event().map_err(malformed)? {
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Start(start) => {
                let name = element_name(start.name().as_ref())?;
                if root_closed {
                    return Err(XmlError::Malformed("content after the root element".into()));
                }
                depth += 1;
                match depth {
                    1 => doc.root = name,
                    2 => current = Some((name, String::new())),
                    _ => {
                        nested.get_or_insert(name);
                    }
                }
            }
            Event::Empty(start) => {
                let name = element_name(start.name().as_ref())?;
                match depth {
                    0 if !root_closed => {
                        doc.root = name;
                        root_closed = true;
                    }
                    0 => return Err(XmlError::Malformed("content after the root element".into())),
                    1 => push_field(&mut doc, name, String::new())?,
                    _ => {
                        nested.get_or_insert(name);
                    }
                }
            }
            Event::End(_) => {
                match depth {
                    1 => root_closed = true,
                    2 => {
                        if let Some((k, v)) = current.take() {
                            push_field(&mut doc, k, v)?;
                        }
                    }
                    _ => {}
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) => {
                let value = t.unescape().map_err(malformed)?;
                match (depth, current.as_mut()) {
                    (2, Some((_, v))) => v.push_str(&value),
                    _ if value.trim().is_empty() => {}
                    (0, _) => {
                        return Err(XmlError::Malformed("text outside the root element".into()))
                    }
                    _ => {}
                }
            }
            Event::CData(c) => {
                let value = std::str::from_utf8(&c).map_err(|_| XmlError::NotUtf8)?;
                if let (2, Some((_, v))) = (depth, current.as_mut()) {
                    v.push_str(value);
                } else if depth == 0 {
                    return Err(XmlError::Malformed("CDATA outside the root element".into()));
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if depth != 0 {
        return Err(XmlError::Malformed("unclosed element".into()));
    }
    if doc.root.is_empty() {
        return Err(XmlError::Empty);
    }
    if let Some(name) = nested {
        return Err(XmlError::Nested(name));
    }
    Ok(doc)
}

/// An element name as XML defines one (ASCII letters, digits, `_ : - .`, not starting with a
/// digit, `-` or `.`; any non-ASCII character). The tokenizer splits names only at whitespace, so
/// `<a\u{0}&/>` would otherwise be a field named `a\u{0}&/`, which no writer can emit again.
fn element_name(raw: &[u8]) -> Result<String, XmlError> {
    let name = std::str::from_utf8(raw).map_err(|_| XmlError::NotUtf8)?;
    let ok_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':' || !c.is_ascii();
    let ok_rest = |c: char| ok_start(c) || c.is_ascii_digit() || c == '-' || c == '.';
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if ok_start(c) && chars.all(ok_rest) => Ok(name.to_string()),
        _ => Err(XmlError::Malformed(format!(
            "invalid element name {name:?}"
        ))),
    }
}

fn push_field(doc: &mut XmlDoc, name: String, value: String) -> Result<(), XmlError> {
    // Two values under one name would let a signature cover one and the code read the other.
    if doc.fields.iter().any(|(k, _)| *k == name) {
        return Err(XmlError::Duplicate(name));
    }
    doc.fields.push((name, value));
    Ok(())
}

/// Writes `<xml>` with every value in CDATA (a `]]>` inside a value is split across sections).
pub fn write_xml<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    write_xml_root("xml", fields)
}

pub fn write_xml_root<'a>(
    root: &str,
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut out = format!("<{root}>");
    for (k, v) in fields {
        out.push('<');
        out.push_str(k);
        out.push_str("><![CDATA[");
        out.push_str(&v.replace("]]>", "]]]]><![CDATA[>"));
        out.push_str("]]></");
        out.push_str(k);
        out.push('>');
    }
    out.push_str("</");
    out.push_str(root);
    out.push('>');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn roundtrip_with_cdata_terminator_and_entities() {
        let xml = write_xml([("a", "x]]>y"), ("b", "<&>")]);
        let doc = parse_xml(xml.as_bytes()).unwrap();
        assert_eq!(doc.root, "xml");
        assert_eq!(doc.get("a"), Some("x]]>y"));
        assert_eq!(doc.get("b"), Some("<&>"));
        let doc = parse_xml(b"<xml><a>1 &amp; 2</a><e/></xml>").unwrap();
        assert_eq!(doc.get("a"), Some("1 & 2"));
        assert_eq!(doc.get("e"), Some(""));
    }

    #[test]
    fn rejects_hostile_and_odd_documents() {
        let bomb = b"<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;\">]><xml><a>&b;</a></xml>";
        assert_eq!(parse_xml(bomb), Err(XmlError::Doctype));
        assert!(matches!(
            parse_xml(b"<xml><a>&unknown;</a></xml>"),
            Err(XmlError::Malformed(_))
        ));
        assert_eq!(
            parse_xml(b"<xml><a>1</a><a>2</a></xml>"),
            Err(XmlError::Duplicate("a".into()))
        );
        assert_eq!(
            parse_xml(b"<xml><a><b>1</b></a></xml>"),
            Err(XmlError::Nested("b".into()))
        );
        assert!(parse_xml(b"<xml><a>1</a>").is_err());
        // Found by the wechat_v2_xml fuzz target: control characters, `&` and a trailing `/` in
        // a name were accepted, and the document could not be written back.
        for bad in [
            &b"<U\x07\x00m&\x00//>"[..],
            b"<xml><a&b>1</a&b></xml>",
            b"<xml><1a>1</1a></xml>",
        ] {
            assert!(
                matches!(parse_xml(bad), Err(XmlError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_xml("<xml><商品>咖啡</商品></xml>".as_bytes())
                .unwrap()
                .get("商品"),
            Some("咖啡")
        );
        assert!(parse_xml(b"<xml/><xml/>").is_err());
        assert_eq!(parse_xml(b""), Err(XmlError::Empty));
        assert!(matches!(
            parse_xml_limited(&[b' '; 100], 10),
            Err(XmlError::TooLarge { .. })
        ));
    }
}

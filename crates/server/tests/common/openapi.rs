//! Checks a gateway against its own `/openapi.json`: the routes the router declares against the
//! documented operations, and real response bodies against the documented schemas (the
//! components turned into one JSON Schema, `$ref`s resolved by `jsonschema`).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeSet;

use serde_json::{json, Value};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `(path, method)` of every `.route("...", get(..).post(..))` in the router's source, with
/// axum's `:param` written as OpenAPI's `{param}`.
pub fn declared_routes(sources: &[&str]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for src in sources {
        let mut rest = *src;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let open = rest.find('"').unwrap();
            let close = open + 1 + rest[open + 1..].find('"').unwrap();
            let path: String = rest[open + 1..close]
                .split('/')
                .map(|seg| match seg.strip_prefix(':') {
                    Some(p) => format!("{{{p}}}"),
                    None => seg.to_string(),
                })
                .collect::<Vec<_>>()
                .join("/");
            // The method routers up to the `)` closing `.route(`.
            let mut depth = 1;
            let mut end = close;
            for (i, c) in rest[close..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = close + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let handlers = &rest[close..end];
            for m in METHODS {
                let call = format!("{m}(");
                let called = handlers.match_indices(&call).any(|(i, _)| {
                    !handlers[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_')
                });
                if called {
                    out.insert((path.clone(), m.to_string()));
                }
            }
        }
    }
    out
}

/// `(path, method)` of every operation in the document.
pub fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((path.clone(), m.to_string()));
            }
        }
    }
    out
}

/// The schema the document gives for `method path` answering `status`, resolved through
/// `#/components/responses`.
fn response_schema(doc: &Value, method: &str, path: &str, status: u16) -> Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let mut resp = op["responses"][status.to_string()].clone();
    assert!(
        resp.is_object(),
        "{method} {path}: status {status} is not documented"
    );
    if let Some(r) = resp["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        resp = doc["components"]["responses"][name].clone();
    }
    let content = resp["content"].as_object().unwrap_or_else(|| {
        panic!("{method} {path} {status}: no content documented");
    });
    let (_, media) = content.iter().next().unwrap();
    media["schema"].clone()
}

/// What the document finds wrong with `body` as the answer of `method path` with `status`.
pub fn mismatches(doc: &Value, method: &str, path: &str, status: u16, body: &Value) -> Vec<String> {
    let schema = response_schema(doc, method, path, status);
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": {"schemas": doc["components"]["schemas"].clone()},
    });
    let validator = jsonschema::validator_for(&root)
        .unwrap_or_else(|e| panic!("{method} {path} {status}: schema does not compile: {e}"));
    validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

/// Fails the test unless `body` (what `method path` answered with `status`) matches the
/// document.
pub fn assert_matches(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let errors = mismatches(doc, method, path, status, body);
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: body does not match the document: {errors:?}\n{body}"
    );
}

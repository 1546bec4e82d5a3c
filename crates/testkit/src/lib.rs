//! Test support shared by the crates' test suites.
//!
//! The protocol vectors live outside the repository (`../shared/vectors`, or `$PAYBRIDGE_VECTORS`).
//! A fresh clone without them skips vector tests with a message; CI sets
//! `PAYBRIDGE_REQUIRE_VECTORS=1`, which turns a missing folder into a failure.

#![allow(clippy::panic)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The vectors folder, or `None` (after saying so) when it is absent and not required.
pub fn vectors_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("PAYBRIDGE_VECTORS") {
        Some(d) => PathBuf::from(d),
        // crates/testkit -> repository root -> its sibling shared/vectors
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    };
    if dir.join("README.md").is_file() {
        return Some(dir);
    }
    let required = std::env::var("PAYBRIDGE_REQUIRE_VECTORS").is_ok_and(|v| v == "1");
    if required {
        panic!(
            "PAYBRIDGE_REQUIRE_VECTORS=1 but no vectors at {}",
            dir.display()
        );
    }
    eprintln!(
        "SKIP: protocol vectors not found at {} (set PAYBRIDGE_VECTORS)",
        dir.display()
    );
    None
}

/// One vector file: returns its `vectors` array with each vector's `_dir` set to the folder
/// its `*_file` paths are relative to. `None` when the vectors are absent (and not required).
pub fn load_vectors(file: &str) -> Option<Vec<Value>> {
    let dir = vectors_dir()?;
    let path = dir.join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let doc: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    let vectors = doc["vectors"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{} has no vectors", path.display()));
    assert!(!vectors.is_empty(), "{} has no vectors", path.display());
    Some(vectors)
}

/// Reads a file named by a vector's `*_file` field (relative to the vectors folder).
pub fn vector_file(relative: &str) -> Vec<u8> {
    let dir = vectors_dir().unwrap_or_else(|| panic!("vectors folder vanished"));
    let path = dir.join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Same as [`vector_file`], as UTF-8 text.
pub fn vector_text(relative: &str) -> String {
    String::from_utf8(vector_file(relative))
        .unwrap_or_else(|e| panic!("{relative} is not UTF-8: {e}"))
}

/// A string field of a JSON value, panicking with the vector id when missing.
pub fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("vector {} lacks string {pointer}", v["id"]))
}

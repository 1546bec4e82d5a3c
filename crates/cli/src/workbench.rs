//! Conventions shared by the signature workbench commands: stdin in, JSON out,
//! exit 0 = valid, 1 = invalid, 2 = usage or input error (one line on stderr).

use crate::out::outln;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

/// An input or usage error: printed as one line on stderr, exit status 2.
#[derive(Debug)]
pub struct InputError(pub String);

impl<E: std::fmt::Display> From<E> for InputError {
    fn from(e: E) -> Self {
        InputError(e.to_string())
    }
}

pub type WbResult = Result<ExitCode, InputError>;

pub fn read_stdin() -> Result<Vec<u8>, InputError> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| InputError(format!("cannot read stdin: {e}")))?;
    Ok(buf)
}

pub fn read_stdin_string() -> Result<String, InputError> {
    String::from_utf8(read_stdin()?).map_err(|_| InputError("stdin is not UTF-8".into()))
}

pub fn read_file(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path)
        .map_err(|e| InputError(format!("cannot read {}: {e}", path.display())))
}

/// Prints `value` as JSON; exit 0 when `valid`, 1 otherwise.
pub fn emit(value: &Value, valid: bool) -> WbResult {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs a workbench command, turning an input error into exit status 2.
pub fn finish(result: WbResult) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(InputError(reason)) => {
            eprintln!(
                "error: {}",
                reason.lines().next().unwrap_or("unknown error")
            );
            ExitCode::from(2)
        }
    }
}

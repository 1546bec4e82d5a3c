//! `paybridge ... | head`: a command whose stdout is a pipe closed by its reader ends quietly
//! (status 0, nothing on stderr), instead of panicking on the failed write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_pipe_ends_the_command_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    // The reader is gone before the command writes: every write to the pipe fails (EPIPE).
    drop(reader);
    let mut child = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["alipay", "encrypt", "--aes-key", "aa4BtZ4tspm2wnXLb1ThQA=="])
        .stdin(Stdio::piped())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");

    // The same command with a reader prints the ciphertext.
    let mut child = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["alipay", "encrypt", "--aes-key", "aa4BtZ4tspm2wnXLb1ThQA=="])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!out.stdout.trim_ascii().is_empty());
}

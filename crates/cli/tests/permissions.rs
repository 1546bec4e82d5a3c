//! Issue 10 item 8 against the real binary: what `paybridge serve` and `paybridge demo` write
//! (raw notifications, buyer ids, every sandbox private key) is readable by its owner only,
//! whatever the umask, and files left wider by an older version are narrowed at start-up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, scratch, spawn_serve, write};

const GIVE_UP: Duration = Duration::from_secs(60);

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Waits until `/healthz` answers 200 on `port`, then kills the process.
fn healthy_then_kill(mut child: Child, port: u16, log: &Path) {
    let start = Instant::now();
    loop {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .and_then(|mut s| {
                use std::io::{Read, Write};
                s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                Some(out.starts_with("HTTP/1.1 200"))
            })
            .unwrap_or(false);
        if ok {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "exited early ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(start.elapsed() < GIVE_UP, "never became healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn serve_keeps_its_data_dir_and_database_owner_only() {
    let dir = scratch("perm-serve");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Left world-readable by an older version (or a careless umask).
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let old_db = data.join("paybridge.db");
    std::fs::write(&old_db, b"").unwrap();
    std::fs::set_permissions(&old_db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    let config = write(
        &dir,
        "gateway.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n",
            data.display()
        ),
    );
    let log = dir.join("serve.log");
    healthy_then_kill(spawn_serve(&config, &log), port, &log);
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&old_db), 0o600, "database");
    for suffix in ["-wal", "-shm"] {
        let p = data.join(format!("paybridge.db{suffix}"));
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn demo_writes_the_sandbox_keys_owner_only() {
    let dir = scratch("perm-demo");
    let data = dir.join("demo");
    let port = free_port();
    let log = dir.join("demo.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            &data.display().to_string(),
        ])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    healthy_then_kill(child, port, &log);
    let mut found_keys = false;
    let mut stack = vec![data.clone()];
    while let Some(p) = stack.pop() {
        for entry in std::fs::read_dir(&p).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                assert_eq!(mode(&path) & 0o077, 0, "{} open to others", path.display());
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains("PRIVATE KEY") || path.extension().is_some_and(|e| e == "db") {
                found_keys |= text.contains("PRIVATE KEY");
                assert_eq!(mode(&path), 0o600, "{}", path.display());
            }
        }
    }
    assert!(
        found_keys,
        "the demo wrote its sandbox keys somewhere under --data-dir"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

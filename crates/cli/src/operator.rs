//! `paybridge operator create|list|disable|reset-password`: the console's operators, in the
//! database of a gateway's configuration. Passwords come from a prompt without echo (twice) or
//! from `--password-stdin`, never from the command line, and are stored as argon2id hashes.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use paybridge_server::config::Config;
use paybridge_store::{Audit, Operator, OperatorRole, Store};

/// Shorter passwords are refused: the console is reachable from a network.
const MIN_PASSWORD_CHARS: usize = 12;

#[derive(clap::Subcommand)]
pub enum OperatorCommand {
    /// Adds an operator (roles: admin = everything, support = read, refund, close,
    /// redeliver, viewer = read only).
    Create {
        /// The gateway's TOML configuration (its database holds the operators).
        #[arg(long)]
        config: PathBuf,
        /// The operator's login name.
        username: String,
        /// admin (everything), support (read, refund, close, redeliver) or viewer (read only).
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lists operators (username, role, state).
    List {
        /// The gateway's TOML configuration (its database holds the operators).
        #[arg(long)]
        config: PathBuf,
    },
    /// Disables an operator and ends their sessions.
    Disable {
        /// The gateway's TOML configuration (its database holds the operators).
        #[arg(long)]
        config: PathBuf,
        /// The operator's login name.
        username: String,
    },
    /// Sets a new password (and re-enables nothing); ends the operator's sessions.
    ResetPassword {
        /// The gateway's TOML configuration (its database holds the operators).
        #[arg(long)]
        config: PathBuf,
        /// The operator's login name.
        username: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
}

pub fn run(cmd: OperatorCommand) -> ExitCode {
    let path = match &cmd {
        OperatorCommand::Create { config, .. }
        | OperatorCommand::List { config }
        | OperatorCommand::Disable { config, .. }
        | OperatorCommand::ResetPassword { config, .. } => config.clone(),
    };
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("paybridge operator: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match crate::serve::runtime_or_exit("operator") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async move {
        let store = crate::serve::open_store(&config).await?;
        execute(&store, cmd).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paybridge operator: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(store: &Store, cmd: OperatorCommand) -> Result<(), String> {
    match cmd {
        OperatorCommand::Create {
            username,
            role,
            password_stdin,
            ..
        } => {
            let role: OperatorRole = role.parse().map_err(|e| format!("--role: {e}"))?;
            let hash = new_password_hash(password_stdin)?;
            let op = create(store, &username, role, &hash).await?;
            eprintln!("created operator {} ({})", op.username, op.role);
            Ok(())
        }
        OperatorCommand::List { .. } => {
            for op in store.list_operators().await.map_err(|e| e.to_string())? {
                println!(
                    "{}\t{}\t{}",
                    op.username,
                    op.role,
                    if op.disabled { "disabled" } else { "active" }
                );
            }
            Ok(())
        }
        OperatorCommand::Disable { username, .. } => {
            let op = store
                .set_operator_disabled(&username, true)
                .await
                .map_err(|e| e.to_string())?;
            audit(store, &op, "disabled").await
        }
        OperatorCommand::ResetPassword {
            username,
            password_stdin,
            ..
        } => {
            let hash = new_password_hash(password_stdin)?;
            let op = store
                .set_operator_password(&username, &hash)
                .await
                .map_err(|e| e.to_string())?;
            audit(store, &op, "password_reset").await
        }
    }
}

/// Creates an operator and records it in the audit log (also used by `paybridge demo`).
pub async fn create(
    store: &Store,
    username: &str,
    role: OperatorRole,
    password_hash: &str,
) -> Result<Operator, String> {
    let op = store
        .create_operator(username, role, password_hash)
        .await
        .map_err(|e| e.to_string())?;
    audit(store, &op, "created").await?;
    Ok(op)
}

async fn audit(store: &Store, op: &Operator, action: &str) -> Result<(), String> {
    store
        .record_action(
            &Audit::new("cli", format!("paybridge operator: {action} ({})", op.role)),
            "operator",
            &op.id,
            action,
        )
        .await
        .map_err(|e| e.to_string())
}

fn new_password_hash(from_stdin: bool) -> Result<String, String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password from stdin: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let first = rpassword::prompt_password("New password: ")
            .map_err(|e| format!("reading the password: {e}"))?;
        let again = rpassword::prompt_password("Repeat it: ")
            .map_err(|e| format!("reading the password: {e}"))?;
        if first != again {
            return Err("the two passwords differ".into());
        }
        first
    };
    check_password(&password)?;
    paybridge_crypto::hash_password(&password).map_err(|e| e.to_string())
}

fn check_password(p: &str) -> Result<(), String> {
    if p.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "passwords need at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if p.len() > 1024 {
        return Err("passwords are at most 1024 bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn short_passwords_are_refused() {
        assert!(check_password("short").is_err());
        assert!(check_password("twelve chars").is_ok());
        assert!(check_password(&"x".repeat(1025)).is_err());
    }
}

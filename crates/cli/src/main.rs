//! The `paybridge` binary: a thin clap front over the crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod alipay;
mod bench;
mod demo;
mod doctor;
mod operator;
mod out;
mod reconcile;
mod sandbox;
mod sandbox_accounts;
mod serve;
mod wechat;
mod workbench;

#[derive(Parser)]
#[command(
    name = "paybridge",
    version,
    about = "Self-hosted Alipay and WeChat Pay gateway, sandbox and signature workbench"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Alipay signature workbench: sign, verify notifications and responses, certificate SNs, AES.
    Alipay {
        #[command(subcommand)]
        cmd: alipay::AlipayCommand,
    },
    /// WeChat Pay signature workbench (APIv2 and APIv3).
    Wechat {
        #[command(subcommand)]
        cmd: wechat::WechatCommand,
    },
    /// Run the Alipay + WeChat Pay emulator (gateway.do, APIv2, APIv3, buyer pages, control API).
    Sandbox(sandbox::SandboxArgs),
    /// Run the gateway: merchant API, provider notifications, webhooks, jobs.
    Serve(serve::ServeArgs),
    /// Check a gateway configuration: every problem at once, per account and field, with a fix.
    Doctor(doctor::DoctorArgs),
    /// Gateway + sandbox + SQLite + generated keys, with a page to try a payment end to end.
    Demo(demo::DemoArgs),
    /// Create, list or revoke merchant API keys of a gateway.
    ApiKey {
        #[command(subcommand)]
        cmd: serve::ApiKeyCommand,
    },
    /// Create, list, disable console operators or reset their passwords.
    Operator {
        #[command(subcommand)]
        cmd: operator::OperatorCommand,
    },
    /// Reconciles an account's provider bill of one day against the database (with healing).
    Reconcile(reconcile::ReconcileArgs),
    /// Load tools: signed notifications at a gateway, throughput and latency percentiles.
    Bench {
        #[command(subcommand)]
        cmd: bench::BenchCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Alipay { cmd } => workbench::finish(alipay::run(cmd)),
        Command::Wechat { cmd } => workbench::finish(wechat::run(cmd)),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Demo(args) => demo::run(args),
        Command::ApiKey { cmd } => serve::run_api_key(cmd),
        Command::Operator { cmd } => operator::run(cmd),
        Command::Reconcile(args) => reconcile::run(args),
        Command::Bench { cmd } => bench::run(cmd),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every argument of every subcommand says what it is for in `--help`.
    #[test]
    fn every_option_has_a_help_line() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "paybridge", &mut missing);
        assert!(missing.is_empty(), "no help line: {missing:#?}");
    }
}

//! The `paybridge` binary: a thin clap front over the crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
enum Command {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {}
}

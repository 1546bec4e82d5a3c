//! `paybridge doctor --config FILE [--json]`: every configuration problem at once (see
//! `paybridge_server::doctor`). Exits 0 when nothing would stop `serve`, 2 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

use paybridge_server::doctor::{diagnose_file, Report};

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// The gateway's TOML configuration (PAYBRIDGE__SECTION__KEY variables apply, as for serve).
    #[arg(long)]
    config: PathBuf,
    /// Print the findings as JSON (`{"findings": [{severity, scope, field, path, problem, fix}]}`).
    #[arg(long)]
    json: bool,
}

pub fn run(args: DoctorArgs) -> ExitCode {
    let report = diagnose_file(&args.config, now_unix());
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("paybridge doctor: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", report.render_text());
    }
    exit_code(&report)
}

pub(crate) fn exit_code(report: &Report) -> ExitCode {
    if report.has_errors() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

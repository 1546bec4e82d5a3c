//! `paybridge doctor --config FILE [--json] [--online]`: every configuration problem at once (see
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
    /// Also prove every account's keys with its provider (a signed query for an order that
    /// cannot exist) and compare this machine's clock with the provider's.
    #[arg(long)]
    online: bool,
}

pub fn run(args: DoctorArgs) -> ExitCode {
    let mut report = diagnose_file(&args.config, now_unix());
    if args.online {
        if report.has_errors() {
            eprintln!("paybridge doctor: online checks skipped until the errors below are fixed");
        } else {
            match online(&args.config) {
                Ok(found) => report.findings.extend(found.findings),
                Err(e) => {
                    eprintln!("paybridge doctor: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
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

fn online(config: &std::path::Path) -> Result<Report, String> {
    let config = paybridge_server::config::Config::load(config).map_err(|e| e.to_string())?;
    let rt =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    Ok(rt.block_on(paybridge_server::doctor::diagnose_online(
        &config,
        now_unix(),
    )))
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

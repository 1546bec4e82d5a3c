//! `paybridge reconcile --config FILE --account A --date YYYY-MM-DD`: downloads the account's
//! bill of that (Beijing) day through its provider client, or reads a saved one with `--bill`,
//! reconciles it against the database with a progress bar, heals what an active query can
//! heal, and prints the run with its discrepancies as JSON.
//!
//! Exit codes: 0 reconciled with nothing left open, 3 discrepancies left for a person, 1 the run
//! failed (bill, provider, database), 2 bad arguments or configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use paybridge_reconcile::{parse_bill_date, BillBytes, BillFile, Progress};
use paybridge_server::config::Config;
use paybridge_server::Gateway;

use crate::serve::{compose_exit_code, init_tracing, open_store, runtime_or_exit};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BillFormat {
    /// Alipay's trade bill ZIP.
    Alipay,
    /// WeChat Pay's trade bill text (APIv2 or APIv3).
    Wechat,
}

#[derive(clap::Args)]
pub struct ReconcileArgs {
    /// The gateway's TOML configuration.
    #[arg(long)]
    config: PathBuf,
    /// The configured account id.
    #[arg(long)]
    account: String,
    /// The bill's day, YYYY-MM-DD (Beijing time).
    #[arg(long)]
    date: String,
    /// Reconcile this saved bill instead of downloading it.
    #[arg(long)]
    bill: Option<PathBuf>,
    /// The saved bill's format (default: the account's provider).
    #[arg(long, value_enum)]
    format: Option<BillFormat>,
    /// No progress bar (logs and scripts).
    #[arg(long)]
    quiet: bool,
}

/// The progress bar: bill rows as they are matched, then the phase.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn rows(&self, done: u64) {
        self.0.set_position(done);
    }

    fn phase(&self, name: &str) {
        let message = match name {
            "download" => "downloading the bill",
            "match" => "matching bill rows",
            "local" => "looking for local rows missing from the bill",
            _ => "done",
        };
        self.0.set_message(message);
    }
}

fn bar(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    let style =
        ProgressStyle::with_template("{spinner} {elapsed_precise} {pos} rows ({per_sec}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

pub fn run(args: ReconcileArgs) -> ExitCode {
    init_tracing("warn");
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("paybridge reconcile: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(account) = config.accounts.get(&args.account).cloned() else {
        eprintln!(
            "paybridge reconcile: no account {:?} in the configuration",
            args.account
        );
        return ExitCode::from(2);
    };
    let date = match parse_bill_date(&args.date) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("paybridge reconcile: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime_or_exit("reconcile") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let store = match open_store(&config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("paybridge reconcile: {e}");
                return ExitCode::FAILURE;
            }
        };
        let gw = match Gateway::from_config(&config, store) {
            Ok(g) => Arc::new(g),
            Err(e) => {
                eprintln!("paybridge reconcile: {e}");
                return compose_exit_code(&e);
            }
        };
        let progress = Bar(bar(args.quiet));
        let result = match &args.bill {
            Some(path) => {
                let format = args.format.unwrap_or(match account.channel {
                    paybridge_core::Channel::Alipay => BillFormat::Alipay,
                    paybridge_core::Channel::Wechat => BillFormat::Wechat,
                });
                let bytes = BillBytes::File(path.clone());
                let bill = match format {
                    BillFormat::Alipay => BillFile::AlipayZip(bytes),
                    BillFormat::Wechat => BillFile::WechatText(bytes),
                };
                gw.reconcile_bill(&args.account, date, bill, &progress)
                    .await
            }
            None => gw.reconcile_day(&args.account, date, &progress).await,
        };
        progress.0.finish_and_clear();
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                eprintln!("paybridge reconcile: {e}");
                return ExitCode::FAILURE;
            }
        };
        match gw.reconciliation_view(&report.run).await {
            Ok(rec) => println!(
                "{}",
                serde_json::to_string_pretty(
                    &paybridge_server::routes::views::ReconciliationView::from(&rec)
                )
                .unwrap_or_default()
            ),
            Err(e) => eprintln!("paybridge reconcile: {e}"),
        }
        let t = &report.totals;
        eprintln!(
            "{} bill rows, {} matched, {} healed, {} left open",
            t.bill_rows, t.matched, t.healed, t.open
        );
        if t.open > 0 {
            ExitCode::from(3)
        } else {
            ExitCode::SUCCESS
        }
    })
}

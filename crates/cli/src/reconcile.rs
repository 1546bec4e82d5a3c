//! `paybridge reconcile --config FILE --account A --date YYYY-MM-DD`: queues a run of the
//! account's bill of that (Beijing) day, does its work here (downloading the bill through the
//! provider client, or reading a saved one with `--bill`; matching it against the database;
//! healing what an active query can heal) while the progress bar follows the run as the
//! database records it (the same progress `GET /v1/reconciliations/{id}` shows), and prints
//! the run with its discrepancies as JSON.
//!
//! Exit codes: 0 reconciled with nothing left open, 3 discrepancies left for a person, 1 the run
//! failed (bill, provider, database), 2 bad arguments or configuration.

use crate::out::outln;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use paybridge_reconcile::{parse_bill_date, BillBytes, BillFile};
use paybridge_server::config::Config;
use paybridge_server::Gateway;
use paybridge_store::ReconciliationRun;

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

/// How often the bar reads the run.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// What the run is doing, from what it recorded.
fn stage_of(run: &ReconciliationRun) -> &'static str {
    match (run.state.as_str(), run.matched_at, run.rows_read) {
        ("queued", _, _) => "queued",
        ("running", None, 0) => "downloading the bill",
        ("running", None, _) => "reading and matching bill rows",
        ("running", Some(_), _) => "healing what an active query can heal",
        _ => "done",
    }
}

/// The bar follows the run: its recorded `rows_read` and stage.
fn follow(bar: &ProgressBar, run: &ReconciliationRun) {
    bar.set_position(u64::try_from(run.rows_read).unwrap_or(0));
    bar.set_message(stage_of(run));
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
        let bill = args.bill.as_ref().map(|path| {
            let format = args.format.unwrap_or(match account.channel {
                paybridge_core::Channel::Alipay => BillFormat::Alipay,
                paybridge_core::Channel::Wechat => BillFormat::Wechat,
            });
            let bytes = BillBytes::File(path.clone());
            match format {
                BillFormat::Alipay => BillFile::AlipayZip(bytes),
                BillFormat::Wechat => BillFile::WechatText(bytes),
            }
        });
        let run = match gw.queue_reconciliation(&args.account, date).await {
            Ok(run) => run,
            Err(e) => {
                eprintln!("paybridge reconcile: {e}");
                return ExitCode::FAILURE;
            }
        };
        let progress = bar(args.quiet);
        let worker = {
            let gw = gw.clone();
            let id = run.id.clone();
            tokio::spawn(async move { gw.run_reconciliation(&id, bill, &()).await })
        };
        tokio::pin!(worker);
        let mut tick = tokio::time::interval(FOLLOW_EVERY);
        let result = loop {
            tokio::select! {
                done = &mut worker => break done,
                _ = tick.tick() => {
                    if let Ok(Some(now)) = gw.store.get_reconciliation(&run.id).await {
                        follow(&progress, &now);
                    }
                }
            }
        };
        progress.finish_and_clear();
        let report = match result {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => {
                eprintln!("paybridge reconcile: run {} was finished elsewhere", run.id);
                return ExitCode::FAILURE;
            }
            Ok(Err(e)) => {
                eprintln!("paybridge reconcile: {e}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("paybridge reconcile: the run stopped: {e}");
                return ExitCode::FAILURE;
            }
        };
        match gw.reconciliation_view(&report.run).await {
            Ok(rec) => outln!(
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

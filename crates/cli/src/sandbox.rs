//! `paybridge sandbox`: the provider emulator, standalone.

use crate::out::outln;
use std::path::PathBuf;
use std::process::ExitCode;

use paybridge_sandbox::{Clock, Sandbox, SandboxConfig, StartOptions, SystemClock};

#[derive(clap::Args)]
pub struct SandboxArgs {
    /// A sandbox TOML file (keys of both sides); without it the data directory's
    /// `sandbox.toml` is used, generated with fresh keys on first start.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the config's `listen`).
    #[arg(long)]
    listen: Option<String>,
    /// Where generated keys, certificates and `sandbox.toml` live.
    #[arg(long, default_value = "sandbox-data")]
    data_dir: PathBuf,
    /// Notification retry time scale, `N` or `N/D` (e.g. `1/10000`).
    #[arg(long)]
    time_scale: Option<String>,
}

pub fn run(args: SandboxArgs) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let loaded = match &args.config {
        Some(path) => SandboxConfig::load(path).map(|c| (c, false)),
        None => SandboxConfig::load_or_generate(&args.data_dir, SystemClock.now_ms() / 1000),
    };
    let (mut config, generated) = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("paybridge sandbox: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(s) = args.time_scale {
        config.time_scale = s;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("paybridge sandbox: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listen = config.listen.clone();
        let options = StartOptions {
            listen: Some(listen),
            ..StartOptions::default()
        };
        let sandbox = match Sandbox::start_with(config, options).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("paybridge sandbox: {e}");
                return ExitCode::from(2);
            }
        };
        print_summary(&sandbox, generated, &args.data_dir);
        let _ = tokio::signal::ctrl_c().await;
        drop(sandbox);
        ExitCode::SUCCESS
    })
}

fn print_summary(sandbox: &Sandbox, generated: bool, dir: &std::path::Path) {
    let c = sandbox.config();
    outln!("paybridge sandbox listening on {}", sandbox.base_url());
    if generated {
        outln!("generated fresh keys into {}", dir.display());
    }
    outln!();
    outln!("Alipay gateway:      {}", sandbox.gateway_url());
    outln!("Alipay public key:   {}", sandbox.alipay_public_key());
    for app in &c.alipay.apps {
        outln!("  app_id {} ({:?} mode)", app.app_id, app.mode);
    }
    outln!("WeChat Pay base URL: {}", sandbox.base_url());
    outln!("WeChat Pay serial:   {}", sandbox.wechat_serial());
    for m in &c.wechat.merchants {
        outln!(
            "  mchid {} appid {} (merchant cert serial {})",
            m.mchid,
            m.appid,
            m.merchant_serial
        );
    }
    outln!();
    outln!("Merchant keys and certificates: {}", dir.display());
    outln!(
        "Buyer pages: {}/_sandbox/pay/<id>; control API: {}/_sandbox/",
        sandbox.base_url(),
        sandbox.base_url()
    );
}

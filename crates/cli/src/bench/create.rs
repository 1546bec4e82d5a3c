//! `paybridge bench create`: payments created through the API, each a real provider call to
//! the sandbox (precreate / Native order) between the gateway's two transactions.

use paybridge_sandbox::{Clock as _, SystemClock};
use serde_json::json;

use super::{create_shot, created, fire, http_client, print, Protocol, Target, TargetArgs};

#[derive(clap::Args)]
pub struct CreateArgs {
    /// How many payments.
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// Creates in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Whose API the gateway calls: Alipay precreate, WeChat Pay APIv2 or APIv3 Native.
    #[arg(long, value_enum, default_value_t = Protocol::Alipay)]
    protocol: Protocol,
    #[command(flatten)]
    target: TargetArgs,
}

pub async fn run(args: CreateArgs) -> Result<(), String> {
    let concurrency = args.concurrency.max(1);
    let target = Target::new(&args.target, concurrency, Default::default()).await?;
    let client = http_client(concurrency)?;
    let run_id = SystemClock.now_ms();
    let shots = (0..args.count)
        .map(|i| create_shot(&target, args.protocol, &format!("C{run_id}{i:07}"), 100))
        .collect();
    eprintln!(
        "creating {} {:?} payments at {}, {} in flight ...",
        args.count, args.protocol, target.base, concurrency
    );
    let (timings, bad) = fire(&client, shots, concurrency, created).await?;
    print(&timings.report(json!({
        "bench": "create",
        "protocol": format!("{:?}", args.protocol),
        "target": target.label,
        "concurrency": concurrency,
        "not_pending": bad,
    })));
    if bad > 0 {
        return Err(format!("{bad} creates did not answer a pending payment"));
    }
    Ok(())
}

//! `paybridge demo`: the gateway, the sandbox, SQLite, generated keys, a demo API key and a
//! webhook receiver, all in one process with nothing to configure. The gateway is composed from
//! a [`Config`] like `serve`'s: the defaults, plus the sandbox's accounts, the demo receiver and
//! the data dir.

mod page;

use crate::out::outln;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paybridge_core::Mode;
use paybridge_crypto::{random_string, Secret};
use paybridge_sandbox::{Clock as _, Sandbox, SandboxConfig, SystemClock};
use paybridge_server::config::{Config, WebhookEndpoint};
use paybridge_server::{runtime, Gateway};
use paybridge_store::{ApiScope, NewApiKey, OperatorRole, Store};

use self::page::Demo;
use crate::sandbox_accounts::sandbox_accounts;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where the gateway listens; a free port is taken if this one is busy.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Where the SQLite database goes (default: a fresh directory under the system temp dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(args: DemoArgs) -> ExitCode {
    crate::serve::init_tracing("warn,paybridge_server=info");
    let rt = match crate::serve::runtime_or_exit("demo") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    crate::serve::exit_code("demo", rt.block_on(demo_main(args)))
}

async fn demo_main(args: DemoArgs) -> Result<(), String> {
    let now_ms = SystemClock.now_ms();
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("paybridge-demo-{now_ms}")));
    let db = data_dir.join("paybridge.db");
    crate::serve::prepare_private_sqlite(&data_dir, &db)?;
    let sandbox_config = SandboxConfig::generate(now_ms / 1000).map_err(|e| e.to_string())?;
    // Kept beside the database so `paybridge bench notify --gateway` can sign as this sandbox.
    let sandbox_toml = data_dir.join("sandbox.toml");
    write_private(
        &sandbox_toml,
        &sandbox_config.to_toml().map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("cannot write {}: {e}", sandbox_toml.display()))?;
    let sandbox = Arc::new(
        Sandbox::start(sandbox_config)
            .await
            .map_err(|e| e.to_string())?,
    );
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen: {e}"))?,
    };
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot listen: {e}"))?;
    let base = format!("http://{addr}");
    let secret = format!("whsec_{}", random_string(32));
    let mut config = Config::minimal(&base).map_err(|e| e.to_string())?;
    config.listen = addr;
    config.data_dir = data_dir.clone();
    config.database_url = Secret::new(format!("sqlite://{}", db.display()));
    config.poll_interval_ms = 500;
    config.webhook_endpoints = vec![WebhookEndpoint {
        id: "demo".into(),
        url: format!("{base}{}", page::WEBHOOK_PATH),
        mode: Some(Mode::Sandbox),
        secret: Secret::new(secret.clone()),
    }];
    config.accounts = sandbox_accounts(&sandbox, Mode::Sandbox)?
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    let store = crate::serve::open_store(&config).await?;
    let (_, api_key) = store
        .create_api_key(&NewApiKey {
            mode: Mode::Sandbox,
            merchant: "demo".into(),
            scopes: vec![ApiScope::Read, ApiScope::Write, ApiScope::Refund],
        })
        .await
        .map_err(|e| e.to_string())?;
    let operators = seed_operators(&store).await?;
    let login_url = format!(
        "{base}/console/login/link?token={}",
        operators.login_token.expose()
    );
    let gw = Arc::new(Gateway::from_config(&config, store).map_err(|e| e.to_string())?);
    let demo_state = Arc::new(Demo {
        gw: gw.clone(),
        sandbox: sandbox.clone(),
        webhook_secret: secret,
        received: Mutex::new(Vec::new()),
    });
    let workers =
        runtime::spawn_workers(gw.clone(), Duration::from_millis(config.poll_interval_ms));
    outln!("paybridge demo is running.\n");
    outln!("  Console (one-time login link, valid for an hour):\n    {login_url}\n");
    outln!(
        "  Operators: demo (admin) and demo-viewer (viewer); passwords in {}",
        data_dir.join("demo.json").display()
    );
    outln!("  Create a payment with the curl below, then find it in the console, pay it in the");
    outln!("  sandbox and watch it turn paid with its notification and webhook; refund half.\n");
    outln!("  Gateway API   {base}/v1   (OpenAPI: {base}/openapi.json)");
    outln!(
        "  API key       {}   (sandbox mode, scopes read/write/refund)",
        api_key.expose()
    );
    outln!("  Sandbox       {}", sandbox.base_url());
    outln!("  Database      {}", db.display());
    outln!("\n  Try it from a shell:");
    outln!(
        "    curl -s {base}/v1/payments -H 'Authorization: Bearer {}' -H 'Idempotency-Key: first' \\\n      -H 'Content-Type: application/json' \\\n      -d '{{\"account\":\"alipay-sandbox\",\"channel\":\"alipay\",\"scene\":\"qr\",\"amount\":1,\"out_trade_no\":\"ORDER0001\",\"subject\":\"Coffee\"}}'",
        api_key.expose()
    );
    outln!(
        "\n  Load test it:\n    paybridge bench notify --gateway {base} --api-key {} --sandbox-config {}",
        api_key.expose(),
        sandbox_toml.display()
    );
    // What a script driving the demo (the browser tests) needs, beside the database: owner-only,
    // as it holds the API key.
    let about = serde_json::json!({
        "base_url": base,
        "login_url": login_url,
        "operators": operators.accounts.iter().map(|(name, role, password)| serde_json::json!({
            "username": name, "role": role.as_str(), "password": password.expose(),
        })).collect::<Vec<_>>(),
        "api_key": api_key.expose(),
        "sandbox_url": sandbox.base_url(),
        "database": db,
        "sandbox_config": sandbox_toml,
    });
    let about_path = data_dir.join("demo.json");
    write_private(&about_path, &about.to_string())
        .map_err(|e| format!("cannot write {}: {e}", about_path.display()))?;
    outln!("\n  Press Ctrl-C to stop.");
    let pages = page::router(demo_state).merge(paybridge_web::router(gw.clone()));
    let served = runtime::serve_with(listener, gw, config.limits.clone(), pages, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    workers.shutdown().await;
    served.map_err(|e| e.to_string())
}

/// The demo's console operators and the one-time login link of the admin.
struct DemoOperators {
    /// Username, role, password.
    accounts: Vec<(String, OperatorRole, Secret<String>)>,
    login_token: Secret<String>,
}

/// How long the printed login link works (once).
const DEMO_LINK_TTL_MS: i64 = 3_600_000;

/// `demo` (admin, the login link's) and `demo-viewer` (read only, to see what roles do), with
/// random passwords.
async fn seed_operators(store: &Store) -> Result<DemoOperators, String> {
    let mut accounts = Vec::new();
    let mut admin_id = None;
    for (name, role) in [
        ("demo", OperatorRole::Admin),
        ("demo-viewer", OperatorRole::Viewer),
    ] {
        let password = Secret::new(random_string(20));
        let hash = paybridge_crypto::hash_password(password.expose()).map_err(|e| e.to_string())?;
        // A data dir used before already has the operators: they get new passwords.
        let op = match store.create_operator(name, role, &hash).await {
            Err(paybridge_store::StoreError::Conflict { .. }) => store
                .set_operator_password(name, &hash)
                .await
                .map_err(|e| e.to_string())?,
            Err(e) => return Err(e.to_string()),
            Ok(op) => op,
        };
        if role == OperatorRole::Admin {
            admin_id = Some(op.id);
        }
        accounts.push((name.to_string(), role, password));
    }
    let admin_id = admin_id.ok_or("the demo admin was not created")?;
    let login_token = store
        .create_login_token(&admin_id, DEMO_LINK_TTL_MS)
        .await
        .map_err(|e| e.to_string())?;
    Ok(DemoOperators {
        accounts,
        login_token,
    })
}

/// `sandbox.toml` holds every private key of the demo's providers: owner-only, also when an
/// earlier run left it wider.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    std::io::Write::write_all(&mut options.open(path)?, text.as_bytes())
}

//! `paybridge serve --config FILE` runs the gateway; `paybridge api-key` manages merchant keys.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use paybridge_core::Mode;
use paybridge_server::config::Config;
use paybridge_server::{channels, runtime, Gateway};
use paybridge_store::{ApiScope, NewApiKey, Store, StoreOptions};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The gateway's TOML configuration (PAYBRIDGE__SECTION__KEY variables override it).
    #[arg(long)]
    config: PathBuf,
}

#[derive(clap::Subcommand)]
pub enum ApiKeyCommand {
    /// Creates a merchant API key and prints it once (only its hash is stored).
    Create {
        #[arg(long)]
        config: PathBuf,
        /// live or sandbox: the key only sees payments of this mode.
        #[arg(long)]
        mode: Mode,
        #[arg(long, default_value = "default")]
        merchant: String,
        /// Comma-separated: read, write, refund.
        #[arg(long, default_value = "read,write,refund")]
        scopes: String,
    },
    /// Lists keys (id, mode, scopes; never the secret).
    List {
        #[arg(long)]
        config: PathBuf,
    },
    /// Revokes a key by id.
    Revoke {
        #[arg(long)]
        config: PathBuf,
        id: String,
    },
}

pub fn init_tracing(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .try_init();
}

pub(crate) fn runtime_or_exit(who: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("paybridge {who}: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

pub(crate) async fn open_store(config: &Config) -> Result<Store, String> {
    if config.database_url.expose().starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
    }
    Store::open_with(
        config.database_url.expose(),
        StoreOptions {
            max_connections: config.database_max_connections,
            ..StoreOptions::default()
        },
    )
    .await
    .map_err(|e| format!("database: {e}"))
}

pub fn run(args: ServeArgs) -> ExitCode {
    init_tracing("info");
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("paybridge serve: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime_or_exit("serve") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let store = match open_store(&config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("paybridge serve: {e}");
                return ExitCode::FAILURE;
            }
        };
        let accounts = match channels::build_accounts(&config, &store) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("paybridge serve: {e}");
                return ExitCode::from(2);
            }
        };
        let gw = match Gateway::new(
            store,
            accounts,
            config.public_base_url.clone(),
            config.webhook_endpoints.clone(),
            config.ip_allowlist.clone(),
        ) {
            Ok(mut g) => {
                g.job_lease_ms = config.job_lease_ms;
                Arc::new(g)
            }
            Err(e) => {
                eprintln!("paybridge serve: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = gw
            .enable_reconciliation_from_config(&config, config.late_payment)
            .await
        {
            eprintln!("paybridge serve: reconciliation: {e}");
            return ExitCode::FAILURE;
        }
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("paybridge serve: cannot listen on {}: {e}", config.listen);
                return ExitCode::FAILURE;
            }
        };
        if config.jobs_enabled {
            runtime::spawn_workers(gw.clone(), Duration::from_millis(config.poll_interval_ms));
        }
        tracing::info!(
            listen = %config.listen,
            public_base_url = %config.public_base_url,
            accounts = gw.accounts.len(),
            instance = %gw.instance,
            "paybridge gateway started"
        );
        let served = runtime::serve(listener, gw, config.max_body_bytes, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("paybridge serve: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

pub fn run_api_key(cmd: ApiKeyCommand) -> ExitCode {
    let path = match &cmd {
        ApiKeyCommand::Create { config, .. }
        | ApiKeyCommand::List { config }
        | ApiKeyCommand::Revoke { config, .. } => config.clone(),
    };
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("paybridge api-key: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime_or_exit("api-key") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let store = match open_store(&config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("paybridge api-key: {e}");
                return ExitCode::FAILURE;
            }
        };
        let result = match cmd {
            ApiKeyCommand::Create {
                mode,
                merchant,
                scopes,
                ..
            } => {
                let scopes: Result<Vec<ApiScope>, _> = scopes
                    .split(',')
                    .map(|s| s.trim().parse::<ApiScope>())
                    .collect();
                match scopes {
                    Err(e) => Err(format!("--scopes: {e}")),
                    Ok(scopes) => store
                        .create_api_key(&NewApiKey {
                            mode,
                            merchant,
                            scopes,
                        })
                        .await
                        .map(|(key, secret)| {
                            println!("{}", secret.expose());
                            eprintln!(
                                "created {} ({}); the key above is shown only once",
                                key.id, key.mode
                            );
                        })
                        .map_err(|e| e.to_string()),
                }
            }
            ApiKeyCommand::List { .. } => store
                .list_api_keys(None)
                .await
                .map(|keys| {
                    for k in keys {
                        let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
                        println!(
                            "{}\t{}\t{}\t{}\t{}{}",
                            k.id,
                            k.mode,
                            k.merchant,
                            scopes.join(","),
                            k.prefix,
                            if k.revoked { "\trevoked" } else { "" }
                        );
                    }
                })
                .map_err(|e| e.to_string()),
            ApiKeyCommand::Revoke { id, .. } => match store.revoke_api_key(&id).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("no live key {id}")),
                Err(e) => Err(e.to_string()),
            },
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("paybridge api-key: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

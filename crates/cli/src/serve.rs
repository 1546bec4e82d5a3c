//! `paybridge serve --config FILE` runs the gateway; `paybridge api-key` manages merchant keys.

use crate::out::outln;
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use paybridge_core::Mode;
use paybridge_server::config::Config;
use paybridge_server::observe::{self, logging};
use paybridge_server::{runtime, ComposeError, Gateway};
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
        /// The gateway's TOML configuration (its database gets the key).
        #[arg(long)]
        config: PathBuf,
        /// live or sandbox: the key only sees payments of this mode.
        #[arg(long)]
        mode: Mode,
        /// A label for whom the key is for.
        #[arg(long, default_value = "default")]
        merchant: String,
        /// Comma-separated: read, write, refund.
        #[arg(long, default_value = "read,write,refund")]
        scopes: String,
    },
    /// Lists keys (id, mode, scopes; never the secret).
    List {
        /// The gateway's TOML configuration.
        #[arg(long)]
        config: PathBuf,
    },
    /// Revokes a key by id.
    Revoke {
        /// The gateway's TOML configuration.
        #[arg(long)]
        config: PathBuf,
        /// The key's id (from `api-key list`).
        id: String,
    },
}

/// Logs of commands without a configuration file: `RUST_LOG` or `default`, JSON unless stdout
/// is a terminal (see `paybridge_server::observe::logging`).
pub fn init_tracing(default: &str) {
    logging::init(None, default);
}

/// Installs the process's Prometheus recorder (once: the `metrics` facade has one global
/// recorder) and returns its handle; the latency histograms get explicit buckets, so they are
/// exposed as Prometheus histograms that can be aggregated across instances.
pub(crate) fn install_metrics() -> Result<PrometheusHandle, String> {
    let recorder = PrometheusBuilder::new()
        .set_buckets(observe::LATENCY_BUCKETS)
        .map_err(|e| format!("metrics: {e}"))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| format!("metrics: {e}"))?;
    Ok(handle)
}

pub(crate) fn runtime_or_exit(who: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("paybridge {who}: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

/// Ends a command that reports its failure as a message.
pub(crate) fn exit_code(who: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paybridge {who}: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) async fn open_store(config: &Config) -> Result<Store, String> {
    let url = config.database_url.expose();
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let file = rest.trim_start_matches("//");
        let file = file.split('?').next().unwrap_or(file);
        prepare_private_sqlite(&config.data_dir, Path::new(file))?;
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

/// The data dir holds raw notifications, buyer ids and (in the demo) private keys: it is made
/// owner-only (0700) and the database file is created 0600 before SQLite opens it. SQLite
/// creates `-wal` and `-shm` with the database file's mode; files left by an older version
/// are narrowed too.
pub(crate) fn prepare_private_sqlite(data_dir: &Path, db: &Path) -> Result<(), String> {
    let dir_err = |p: &Path, e: std::io::Error| format!("cannot prepare {}: {e}", p.display());
    std::fs::create_dir_all(data_dir).map_err(|e| dir_err(data_dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| dir_err(data_dir, e))?;
        if db.as_os_str().is_empty() || db.to_str() == Some(":memory:") {
            return Ok(());
        }
        if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| dir_err(parent, e))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(db)
            .map_err(|e| dir_err(db, e))?;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            let p = std::path::PathBuf::from(name);
            if p.exists() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| dir_err(&p, e))?;
            }
        }
    }
    Ok(())
}

/// A gateway the configuration cannot compose is a configuration error (2), unless the
/// process itself could not set up what it needs.
pub(crate) fn compose_exit_code(e: &ComposeError) -> ExitCode {
    match e {
        ComposeError::HttpClient(_) => ExitCode::FAILURE,
        ComposeError::Account(_)
        | ComposeError::BillSource { .. }
        | ComposeError::MissingAccount(_)
        | ComposeError::DuplicateAccount(_) => ExitCode::from(2),
    }
}

pub fn run(args: ServeArgs) -> ExitCode {
    // Every problem at once, before anything starts (the loader below stops at the first).
    let report = paybridge_server::doctor::diagnose_file(&args.config, crate::doctor::now_unix());
    if report.has_errors() {
        eprintln!(
            "paybridge serve: the configuration has errors; nothing was started.\n{}",
            report.render_text()
        );
        return ExitCode::from(2);
    }
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("paybridge serve: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_format, "info");
    for f in &report.findings {
        tracing::warn!(scope = %f.scope, field = %f.field, fix = %f.fix, "configuration: {}", f.problem);
    }
    let metrics = match install_metrics() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("paybridge serve: {e}");
            return ExitCode::FAILURE;
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
        let gw = match Gateway::from_config(&config, store) {
            Ok(g) => Arc::new(g),
            Err(e) => {
                eprintln!("paybridge serve: {e}");
                return compose_exit_code(&e);
            }
        };
        gw.export_metrics(metrics);
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("paybridge serve: cannot listen on {}: {e}", config.listen);
                return ExitCode::FAILURE;
            }
        };
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some(addr) = config.metrics.listen {
            let metrics_listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("paybridge serve: cannot listen on {addr} (metrics_listen): {e}");
                    return ExitCode::FAILURE;
                }
            };
            let gw = gw.clone();
            tokio::spawn(async move {
                let stopped = async {
                    let _ = metrics_stopped.await;
                };
                if let Err(e) = runtime::serve_metrics(metrics_listener, gw, stopped).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            });
        }
        let workers = config.jobs_enabled.then(|| {
            runtime::spawn_workers(gw.clone(), Duration::from_millis(config.poll_interval_ms))
        });
        tracing::info!(
            listen = %config.listen,
            metrics_listen = ?config.metrics.listen,
            public_base_url = %config.public_base_url,
            accounts = gw.accounts().len(),
            instance = %gw.instance,
            "paybridge gateway started"
        );
        let pages = paybridge_web::router(gw.clone());
        let served = runtime::serve_with(listener, gw, config.limits.clone(), pages, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        let _ = stop_metrics.send(());
        // Requests drained; now let the workers finish what they hold.
        if let Some(workers) = workers {
            workers.shutdown().await;
        }
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
                            outln!("{}", secret.expose());
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
                        outln!(
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

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn the_data_dir_and_every_database_file_are_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = dir.join("paybridge.db");
        prepare_private_sqlite(&dir, &db).unwrap();
        // SQLite creates -wal and -shm itself, after the first write.
        let store = Store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        store
            .create_api_key(&NewApiKey {
                mode: Mode::Sandbox,
                merchant: "m".into(),
                scopes: vec![ApiScope::Read],
            })
            .await
            .unwrap();
        assert_eq!(mode(&dir), 0o700);
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", db.display()));
            assert!(p.exists(), "{}", p.display());
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        drop(store);
        // Files an older version left world-readable are narrowed on the next start.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        prepare_private_sqlite(&dir, &db).unwrap();
        assert_eq!(mode(&db), 0o600);
    }
}

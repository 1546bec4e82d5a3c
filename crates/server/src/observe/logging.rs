//! The log subscriber: `[log] format = "json" | "text"`, filtered by `RUST_LOG` (its syntax:
//! `info`, `paybridge_server=debug,sqlx=warn`...). JSON by default when stdout is not a
//! terminal (a service manager, a pipe, a file), and never ANSI colour codes then. Each JSON
//! line carries the fields of its spans (request id, job, delivery, payment id and
//! `out_trade_no`), so one request or one payment can be followed through the log.

use std::io::IsTerminal;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object a line (`timestamp`, `level`, `target`, `fields`, `span`, `spans`).
    Json,
    /// Human-readable lines; coloured only on a terminal.
    Text,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            other => Err(format!("{other:?} is not json or text")),
        }
    }
}

impl LogFormat {
    /// The format when the configuration names none: text on a terminal, JSON otherwise.
    pub fn for_stdout() -> LogFormat {
        if std::io::stdout().is_terminal() {
            LogFormat::Text
        } else {
            LogFormat::Json
        }
    }
}

/// `RUST_LOG` when set and valid, else `default`.
pub fn env_filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// A subscriber writing `format` lines to `writer`, filtered by `filter`; colour only when
/// `ansi` (a terminal that did not ask for `NO_COLOR`).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .flatten_event(false)
                .with_ansi(false)
                .finish(),
        ),
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
    }
}

/// Installs the process's subscriber on stdout: `format`, or the default for stdout; `RUST_LOG`
/// or `default_filter`. A second call changes nothing.
pub fn init(format: Option<LogFormat>, default_filter: &str) {
    let format = format.unwrap_or_else(LogFormat::for_stdout);
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing::subscriber::set_global_default(subscriber(
        format,
        env_filter(default_filter),
        ansi,
        std::io::stdout,
    ));
}

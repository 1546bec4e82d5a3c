//! `paybridge doctor`: every problem of a configuration at once, per account and field, with
//! the file it resolved and what to do. The loader ([`crate::config::Config`]) stops at the
//! first error; the doctor walks the whole file so an operator fixes everything in one pass.
//! `serve` runs the same checks before starting and refuses to start on any error.

mod material;
mod online;
mod providers;
mod server;

pub use online::diagnose_online;

use std::path::PathBuf;

use serde::Serialize;

use crate::config::{apply_env_overrides, Config, RawConfig, Resolver};
use material::Ctx;

/// Certificates expiring within this many days are reported.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// `serve` refuses to start.
    Error,
    /// Works today, but is a mistake or will break (a certificate about to expire).
    Warning,
}

/// One problem: where, what, and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// `server`, `database`, `webhooks.endpoints.<id>`, `accounts.<id>`.
    pub scope: String,
    /// The setting, as written in the file (`app_private_key_file`, `v3.public_key_id`).
    pub field: String,
    /// The file the setting resolved to, when it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    pub problem: String,
    pub fix: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// The findings of one scope and field (for tests and tools).
    pub fn about(&self, scope: &str, field: &str) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.scope == scope && f.field == field)
            .collect()
    }

    /// A person's report: grouped by scope, errors first.
    pub fn render_text(&self) -> String {
        if self.findings.is_empty() {
            return "no problems found\n".into();
        }
        let mut sorted: Vec<&Finding> = self.findings.iter().collect();
        sorted.sort_by(|a, b| {
            a.scope
                .cmp(&b.scope)
                .then(a.severity_rank().cmp(&b.severity_rank()))
        });
        let mut out = String::new();
        let mut scope = "";
        for f in sorted {
            if f.scope != scope {
                scope = &f.scope;
                out.push_str(&format!("[{scope}]\n"));
            }
            let word = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            out.push_str(&format!("  {word}: {}: {}\n", f.field, f.problem));
            if let Some(p) = &f.path {
                out.push_str(&format!("    file: {}\n", p.display()));
            }
            out.push_str(&format!("    fix: {}\n", f.fix));
        }
        let errors = self.errors().count();
        out.push_str(&format!(
            "{errors} error(s), {} warning(s)\n",
            self.findings.len() - errors
        ));
        out
    }
}

impl Finding {
    fn severity_rank(&self) -> u8 {
        match self.severity {
            Severity::Error => 0,
            Severity::Warning => 1,
        }
    }
}

/// Checks a configuration file's text as `serve` would load it (environment overrides
/// applied). `now` (unix seconds) dates certificate expiry.
pub fn diagnose_toml(
    text: &str,
    overrides: impl IntoIterator<Item = (String, String)>,
    resolver: &Resolver<'_>,
    now: i64,
) -> Report {
    let whole = |problem: String, fix: &str| Report {
        findings: vec![Finding {
            severity: Severity::Error,
            scope: "config".into(),
            field: "(file)".into(),
            path: None,
            problem,
            fix: fix.into(),
        }],
    };
    let mut tree: toml::Value = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => return whole(e.to_string(), "fix the TOML syntax at the line shown"),
    };
    if let Err(e) = apply_env_overrides(&mut tree, overrides) {
        return whole(
            e.to_string(),
            "fix or unset the PAYBRIDGE__... environment variable named",
        );
    }
    let raw: RawConfig = match tree.try_into() {
        Ok(r) => r,
        Err(e) => {
            let e: toml::de::Error = e;
            return whole(
                e.to_string(),
                "remove or rename the setting: see the example gateway.toml in the README",
            );
        }
    };
    diagnose(&raw, resolver, now)
}

/// [`diagnose_toml`] of a file with this process's environment, as `serve` loads it.
pub fn diagnose_file(path: &std::path::Path, now: i64) -> Report {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return Report {
                findings: vec![Finding {
                    severity: Severity::Error,
                    scope: "config".into(),
                    field: "(file)".into(),
                    path: Some(path.to_path_buf()),
                    problem: format!("cannot read the configuration: {e}"),
                    fix: "check the path given to --config".into(),
                }],
            }
        }
    };
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let env = |k: &str| std::env::var(k).ok();
    diagnose_toml(
        &text,
        std::env::vars(),
        &Resolver {
            base_dir: base,
            env: &env,
        },
        now,
    )
}

/// Every check on a parsed configuration.
pub fn diagnose(raw: &RawConfig, resolver: &Resolver<'_>, now: i64) -> Report {
    let mut ctx = Ctx::new(resolver, now);
    server::check(&mut ctx, raw);
    providers::check_accounts(&mut ctx, raw);
    let mut report = Report {
        findings: ctx.into_findings(),
    };
    // The loader is the final word: anything it refuses that no check above named is still
    // reported, so the doctor can never pass a configuration `serve` would refuse.
    if !report.has_errors() {
        if let Err(e) = Config::from_raw(raw.clone(), resolver) {
            report.findings.push(Finding {
                severity: Severity::Error,
                scope: "config".into(),
                field: "(loader)".into(),
                path: None,
                problem: e.to_string(),
                fix: "correct the setting named".into(),
            });
        }
    }
    report
}

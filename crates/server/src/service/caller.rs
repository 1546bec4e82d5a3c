//! Who is asking the service: a merchant's API key or a console operator. Both act in exactly
//! one mode (the service shows and changes nothing of the other), have an idempotency scope of
//! their own, and sign the audit rows of what they change. What each may do at all is decided
//! at the edge (API key scopes in `routes::auth`, operator roles in the console); the service
//! decides only what a caller can see.

use paybridge_core::Mode;
use paybridge_store::{ApiKey, Audit};

pub trait Caller: Send + Sync {
    /// The one mode this caller works in.
    fn mode(&self) -> Mode;
    /// The namespace of its idempotency keys (two callers never share one).
    fn idempotency_scope(&self) -> String;
    /// The audit row of an action: who, and `what` with the caller's reason when it gave one.
    fn audit(&self, what: &str) -> Audit;
}

impl Caller for ApiKey {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn idempotency_scope(&self) -> String {
        self.id.clone()
    }

    fn audit(&self, what: &str) -> Audit {
        Audit::new(format!("api:{}", self.id), what)
    }
}

/// A console operator acting in one mode, with the reason they typed for this action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorCaller {
    pub operator_id: String,
    pub username: String,
    pub mode: Mode,
    pub reason: Option<String>,
}

impl Caller for OperatorCaller {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn idempotency_scope(&self) -> String {
        format!("operator:{}", self.operator_id)
    }

    fn audit(&self, what: &str) -> Audit {
        let reason = match self.reason.as_deref().map(str::trim) {
            Some(r) if !r.is_empty() => format!("{what}: {r}"),
            _ => what.to_string(),
        };
        Audit::new(format!("operator:{}", self.username), reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_sign_with_their_name_and_reason() {
        let op = OperatorCaller {
            operator_id: "op_1".into(),
            username: "alice".into(),
            mode: Mode::Sandbox,
            reason: Some(" customer returned it ".into()),
        };
        let a = op.audit("refund requested");
        assert_eq!(a.actor, "operator:alice");
        assert_eq!(a.reason, "refund requested: customer returned it");
        assert_eq!(op.idempotency_scope(), "operator:op_1");
        let silent = OperatorCaller { reason: None, ..op };
        assert_eq!(silent.audit("closed").reason, "closed");
    }
}

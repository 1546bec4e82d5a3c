//! Why a console request was refused, as a page. Error pages carry both languages: they are
//! rendered where the session (and so the page language) may be unknown.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use paybridge_server::service::ServiceError;
use paybridge_store::StoreError;

use super::auth::Action;
use super::layout;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No live session: the browser is sent to the login page.
    #[error("not logged in")]
    LoginRequired,
    /// The operator's role does not allow the action.
    #[error("your role may not {0}")]
    Forbidden(Action),
    /// A form arrived without the token of the session that rendered it.
    #[error("the form's security token is missing or wrong")]
    Csrf,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            ConsoleError::LoginRequired => StatusCode::SEE_OTHER,
            ConsoleError::Forbidden(_) | ConsoleError::Csrf => StatusCode::FORBIDDEN,
            ConsoleError::NotFound(_) | ConsoleError::Service(ServiceError::NotFound(_)) => {
                StatusCode::NOT_FOUND
            }
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Service(e) if !e.is_fault() => StatusCode::UNPROCESSABLE_ENTITY,
            ConsoleError::Service(_) | ConsoleError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the operator reads: our faults are logged, not shown.
    pub fn message(&self) -> String {
        match self {
            ConsoleError::Service(e) if e.is_fault() => {
                tracing::error!(error = %e, "console request failed");
                "internal error (logged)".to_string()
            }
            ConsoleError::Store(e) => {
                tracing::error!(error = %e, "console request failed");
                "internal error (logged)".to_string()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        if let ConsoleError::LoginRequired = self {
            return (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, "/console/login")],
            )
                .into_response();
        }
        let status = self.status();
        let (en, zh) = match &self {
            ConsoleError::Forbidden(_) => ("Not allowed", "无权限"),
            ConsoleError::Csrf => ("Form expired", "表单已失效"),
            ConsoleError::NotFound(_) | ConsoleError::Service(ServiceError::NotFound(_)) => {
                ("Not found", "未找到")
            }
            _ => ("Request refused", "请求被拒绝"),
        };
        let body = html! {
            main.narrow {
                h1 { (en) " · " (zh) }
                p.error { (self.message()) }
                @if matches!(self, ConsoleError::Csrf) {
                    p { "Reload the page and try again. · 请刷新页面后重试。" }
                }
                p { a href="/console" { "Console · 控制台" } }
            }
        };
        (status, layout::bare(crate::i18n::Lang::En, en, body)).into_response()
    }
}

//! The one error type of every route: maps core errors and bad requests to a status code and a
//! JSON body naming the field and the rule. Internals (SQL, paths) are logged, never sent.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use dashoffice_core::CoreError;
use dashoffice_domain::{
    FieldError,
    api::{ErrorBody, ErrorDetail},
};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: ErrorDetail,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            detail: ErrorDetail {
                code: code.into(),
                message: message.into(),
                field: None,
                rule: None,
                fields: Vec::new(),
            },
        }
    }

    /// Blames one field.
    pub fn with_field(mut self, field: impl Into<String>, rule: impl Into<String>) -> Self {
        self.detail.field = Some(field.into());
        self.detail.rule = Some(rule.into());
        self
    }

    /// A 400 for a body that is not the JSON the route expects.
    pub fn malformed(message: impl Into<String>, field: Option<String>) -> Self {
        let e = Self::new(StatusCode::BAD_REQUEST, "malformed_json", message);
        match field {
            Some(f) if !f.is_empty() && f != "." => e.with_field(f, "type"),
            _ => e,
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message (for CLI output).
    pub fn message(&self) -> &str {
        &self.detail.message
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        CoreError::from(e).into()
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Validation(errs) => {
                let first = errs.0.first().cloned();
                let message =
                    errs.0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
                Self {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    detail: ErrorDetail {
                        code: "validation".into(),
                        message,
                        field: first.as_ref().map(|f| f.field.clone()),
                        rule: first.map(|f| f.rule),
                        fields: errs.0,
                    },
                }
            }
            CoreError::NotFound { entity, id, field } => {
                let status = if field.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::NOT_FOUND };
                let e = Self::new(status, "not_found", format!("{entity} '{id}' not found"));
                match field {
                    Some(f) => e.with_field(f, "exists"),
                    None => e,
                }
            }
            CoreError::Conflict { field, rule, message } => {
                Self::new(StatusCode::CONFLICT, "conflict", message).with_field(field, rule)
            }
            CoreError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
            CoreError::Unauthorized(m) => Self::new(StatusCode::UNAUTHORIZED, "unauthorized", m),
            CoreError::ShuttingDown => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the node is shutting down; retry shortly")
            }
            CoreError::Unavailable(m) => Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m),
            CoreError::Storage(m) => {
                tracing::error!(error = %m, "storage error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the node could not store or read data; nothing was changed",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(ErrorBody { error: self.detail })).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Result of a route.
pub type ApiResult<T> = Result<T, ApiError>;

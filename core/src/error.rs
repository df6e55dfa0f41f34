//! The core's error type: what went wrong, in terms the API maps to status codes.

use dashoffice_domain::{FieldError, FieldErrors};

/// Everything a core operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The input broke one or more rules.
    #[error("invalid input: {}", .0.0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Validation(FieldErrors),
    /// A record the input refers to does not exist (or is not visible to the caller).
    #[error("{entity} '{id}' not found")]
    NotFound {
        /// The kind of record.
        entity: &'static str,
        /// Its id.
        id: String,
        /// The input field that named it, if any.
        field: Option<String>,
    },
    /// The request conflicts with the current state (duplicate SKU, illegal transition).
    #[error("{message}")]
    Conflict {
        /// The field to blame.
        field: String,
        /// The rule.
        rule: String,
        /// For people.
        message: String,
    },
    /// The caller may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Wrong credentials or an unknown, expired token.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The store failed (disk full, corrupt file); nothing was acknowledged.
    #[error("storage: {0}")]
    Storage(String),
    /// The replica is shutting down.
    #[error("the replica is shutting down")]
    ShuttingDown,
    /// A part of the replica that is not the store is not available (the search index).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl CoreError {
    /// A not-found error for a record named by an input field.
    pub fn not_found_field(entity: &'static str, id: &str, field: &str) -> Self {
        Self::NotFound { entity, id: id.to_string(), field: Some(field.to_string()) }
    }
    /// A not-found error for a record named in the path.
    pub fn not_found(entity: &'static str, id: &str) -> Self {
        Self::NotFound { entity, id: id.to_string(), field: None }
    }
    /// A conflict on `field`.
    pub fn conflict(field: &str, rule: &str, message: impl Into<String>) -> Self {
        Self::Conflict { field: field.to_string(), rule: rule.to_string(), message: message.into() }
    }
    /// The input broke a rule (invalid, unknown record, conflict, not allowed), as opposed to the
    /// store failing. Writes check their rules before they change anything.
    pub fn is_rule(&self) -> bool {
        matches!(self, Self::Validation(_) | Self::NotFound { .. } | Self::Conflict { .. } | Self::Forbidden(_))
    }
}

impl From<FieldError> for CoreError {
    fn from(e: FieldError) -> Self {
        Self::Validation(e.into())
    }
}

impl From<FieldErrors> for CoreError {
    fn from(e: FieldErrors) -> Self {
        Self::Validation(e)
    }
}

impl From<rusqlite::Error> for CoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Storage(e.to_string())
    }
}

impl From<automerge::AutomergeError> for CoreError {
    fn from(e: automerge::AutomergeError) -> Self {
        Self::Storage(format!("automerge: {e}"))
    }
}

/// Result alias of the core.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

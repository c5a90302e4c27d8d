//! The service's errors, each with its HTTP status and a JSON body
//! `{ "error": <kind>, "message": <for people> }`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cqrs_core::{EngineError, StoreError};

use crate::domain::AccountError;

/// Why a request failed. `kind` is the stable, machine-readable name of each variant.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (not JSON, a field missing or of the wrong type, an
    /// account id the store refuses).
    #[error("{0}")]
    BadRequest(String),
    /// 404: no account by that id (a command on an account never opened, or a query the
    /// read model cannot answer).
    #[error("{0}")]
    UnknownAccount(String),
    /// 404: nothing at that path, or a version the stream has not reached.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists, but not for that method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: opening an account that is already open.
    #[error("{0}")]
    AlreadyOpen(String),
    /// 409: other writers kept changing the account while the command was retried.
    /// Sending the command again may succeed.
    #[error("{0}")]
    Conflict(String),
    /// 409: the account is no longer at the version the client expected. Read it again
    /// before deciding.
    #[error("{0}")]
    StaleVersion(String),
    /// 422: the account refused the command (a business rule), or the events it decided
    /// hold a number no store keeps (NaN or an infinity: `non_finite_number`).
    #[error("{message}")]
    Refused {
        /// Which rule: `insufficient_funds`, `zero_amount` or `non_finite_number`.
        kind: &'static str,
        /// The account's own words.
        message: String,
    },
    /// 503: the read model has not reached the version the client asked for in time.
    #[error("{0}")]
    ReadModelBehind(String),
    /// 503: the store cannot be reached. Sending the request again later may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a fault of the service or of the stored data, not of the request.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownAccount(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::AlreadyOpen(_) | ApiError::Conflict(_) | ApiError::StaleVersion(_) => {
                StatusCode::CONFLICT
            }
            ApiError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::ReadModelBehind(_) | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` field of the body.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::UnknownAccount(_) => "unknown_account",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::AlreadyOpen(_) => "already_open",
            ApiError::Conflict(_) => "conflict",
            ApiError::StaleVersion(_) => "stale_version",
            ApiError::Refused { kind, .. } => kind,
            ApiError::ReadModelBehind(_) => "read_model_behind",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// For the router's fallback: no route at that path.
    pub async fn no_route(uri: Uri) -> Self {
        ApiError::NotFound(format!("nothing at {}", uri.path()))
    }

    /// For the router's other fallback: a route, but not for that method (axum adds the
    /// `Allow` header).
    pub async fn wrong_method(method: Method, uri: Uri) -> Self {
        ApiError::MethodNotAllowed(format!("{} does not take {method}", uri.path()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.kind(), "message": self.to_string() }));
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            // Both causes pass: tell clients when to look again.
            return (self.status(), [(header::RETRY_AFTER, "1")], body).into_response();
        }
        (self.status(), body).into_response()
    }
}

/// Every way a command can fail, mapped one by one: a store failure never becomes a
/// client error.
impl From<EngineError<AccountError>> for ApiError {
    fn from(error: EngineError<AccountError>) -> Self {
        let message = error.to_string();
        match error {
            EngineError::Rejected(refusal) => match refusal {
                AccountError::AlreadyOpen => ApiError::AlreadyOpen(refusal.to_string()),
                AccountError::NotOpen => {
                    ApiError::UnknownAccount("no such account: it was never opened".into())
                }
                AccountError::ZeroAmount => ApiError::Refused {
                    kind: "zero_amount",
                    message: refusal.to_string(),
                },
                AccountError::InsufficientFunds { .. } => ApiError::Refused {
                    kind: "insufficient_funds",
                    message: refusal.to_string(),
                },
            },
            EngineError::InvalidId(_) => ApiError::BadRequest(message),
            // The service always names the account, so this is the service's bug.
            EngineError::MissingAggregateId { .. } => ApiError::Internal(message),
            EngineError::Conflict { .. } => {
                ApiError::Conflict(format!("{message}; send the command again"))
            }
            EngineError::UnexpectedVersion { .. } => {
                ApiError::StaleVersion(format!("{message}; read the account again"))
            }
            EngineError::VersionNotFound { .. } => ApiError::NotFound(message),
            // Refused before anything was written, like a business rule: the input led to
            // a number JSON cannot hold. (This service's amounts are integers, so it
            // cannot happen here; a domain with floats would meet it.)
            EngineError::NonFinite { .. } => ApiError::Refused {
                kind: "non_finite_number",
                message,
            },
            EngineError::Store(store) => store.into(),
            // A panic in the aggregate's code is the service's bug, caught by the engine.
            EngineError::Decode(_)
            | EngineError::Encode(_)
            | EngineError::Projection { .. }
            | EngineError::Panicked { .. } => ApiError::Internal(message),
            // A failure a later version of the framework adds: the service's to look at,
            // never the client's.
            _ => ApiError::Internal(message),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        match error {
            StoreError::Conflict { .. } | StoreError::StaleTransaction { .. } => {
                ApiError::Conflict(message)
            }
            // The request's text is what ends up in the event (an owner's name with a
            // NUL, say): the client's to fix.
            StoreError::InvalidIdentifier(_) | StoreError::Unstorable { .. } => {
                ApiError::BadRequest(message)
            }
            StoreError::Unavailable(_) => ApiError::Unavailable(message),
            StoreError::EmptyAppend { .. }
            | StoreError::DuplicateEventId { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Projection { .. }
            | StoreError::Backend(_) => ApiError::Internal(message),
            // Unknown to this version of the service: its own failure, not the client's.
            _ => ApiError::Internal(message),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_core::ident::IdentifierError;
    use cqrs_core::{ExpectedVersion, StreamId};

    fn stream() -> StreamId {
        StreamId::new("account", "a").expect("a valid stream id")
    }

    fn mapped(error: EngineError<AccountError>) -> (StatusCode, &'static str) {
        let error = ApiError::from(error);
        (error.status(), error.kind())
    }

    #[test]
    fn each_engine_error_has_its_status() {
        let refused = |e| mapped(EngineError::Rejected(e));
        assert_eq!(
            refused(AccountError::AlreadyOpen),
            (StatusCode::CONFLICT, "already_open")
        );
        assert_eq!(
            refused(AccountError::NotOpen),
            (StatusCode::NOT_FOUND, "unknown_account")
        );
        assert_eq!(
            refused(AccountError::ZeroAmount),
            (StatusCode::UNPROCESSABLE_ENTITY, "zero_amount")
        );
        assert_eq!(
            refused(AccountError::InsufficientFunds {
                balance: 1,
                requested: 2
            }),
            (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_funds")
        );
        assert_eq!(
            mapped(EngineError::InvalidId(IdentifierError::Empty {
                what: "stream id"
            })),
            (StatusCode::BAD_REQUEST, "bad_request")
        );
        let conflict = || StoreError::Conflict {
            stream: stream(),
            expected: ExpectedVersion::Exact(1),
            actual: 2,
        };
        assert_eq!(
            mapped(EngineError::Conflict {
                stream: stream(),
                attempts: 5,
                source: conflict(),
            }),
            (StatusCode::CONFLICT, "conflict")
        );
        assert_eq!(
            mapped(EngineError::MissingAggregateId { command: "Open" }),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        assert_eq!(
            mapped(EngineError::NonFinite {
                stream: stream(),
                event_type: "account.deposited",
                path: "amount".into(),
                value: f64::NAN,
            }),
            (StatusCode::UNPROCESSABLE_ENTITY, "non_finite_number")
        );
    }

    #[test]
    fn store_failures_are_never_client_errors() {
        let store = |e: StoreError| mapped(EngineError::Store(e)).0;
        assert_eq!(
            store(StoreError::Unavailable("connection refused".into())),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            store(StoreError::Backend("disk full".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            store(StoreError::Corrupt {
                stream: stream(),
                stream_version: 3,
                reason: "bad metadata".into(),
                event: None,
            }),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}

//! One error type for the whole API. Its `IntoResponse` owns every status code and
//! body shape of CONTRACT §2, so handlers just return `Err(..)` or use `?`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

pub const MATCH_ERROR: &str =
    "Match error: Failed Match.OneOf, Match.Maybe or Match.Optional validation";
pub const NOT_LOGGED_IN: &str = "You must be logged in to do this.";

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 401: missing, unknown, expired or mismatched credentials.
    Unauthenticated,
    /// 403 `unauthorized`: a refused permission.
    Forbidden,
    /// 400 Meteor.Error: `<reason> [<code>]` with `errorType` and optional `details`.
    Meteor {
        code: String,
        reason: String,
        details: Option<Value>,
    },
    /// 400 with only an `error` text (Match errors, plain errors).
    Plain(String),
    /// 401 from the login route: bad credentials, same body whether or not the user exists.
    LoginFailed,
    /// 401 from the login route when failed attempts blocked the user or the IP.
    LoginBlocked {
        code: String,
        reason: String,
    },
    /// 429 with the number of seconds to wait.
    TooManyRequests {
        wait_secs: u64,
    },
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    /// 408: the body did not arrive within HTTP_BODY_TIMEOUT_SECS.
    RequestTimeout,
    /// 503: the store could not commit (the change was not made).
    Unavailable(String),
}

impl ApiError {
    /// A Meteor.Error naming the route in `details.method`, as Rocket.Chat's methods do.
    pub fn meteor(code: &str, reason: &str, method: &str) -> ApiError {
        ApiError::Meteor {
            code: code.into(),
            reason: reason.into(),
            details: Some(json!({ "method": method })),
        }
    }

    /// A Meteor.Error without details (Rocket.Chat's helpers such as getUserFromParams).
    pub fn meteor_bare(code: &str, reason: &str) -> ApiError {
        ApiError::Meteor {
            code: code.into(),
            reason: reason.into(),
            details: None,
        }
    }

    pub fn match_error() -> ApiError {
        ApiError::Plain(MATCH_ERROR.into())
    }

    /// A `Match error` naming the offending field, for routes other than setStatus.
    pub fn match_field(field: &str, expected: &str) -> ApiError {
        ApiError::Plain(format!("Match error: Expected {expected} in field {field}"))
    }

    /// The same error answered by the REST route `route`: a business error names the
    /// route in `details.method` (CONTRACT §2), whatever method name it was made with.
    pub fn in_route(self, route: &str) -> ApiError {
        match self {
            ApiError::Meteor {
                code,
                reason,
                details,
            } => {
                let mut details = match details {
                    Some(Value::Object(map)) => map,
                    _ => serde_json::Map::new(),
                };
                details.insert("method".into(), json!(route));
                ApiError::Meteor {
                    code,
                    reason,
                    details: Some(Value::Object(details)),
                }
            }
            other => other,
        }
    }

    pub fn invalid_user() -> ApiError {
        ApiError::meteor_bare(
            "error-invalid-user",
            "The required \"userId\" or \"username\" param provided does not match any users",
        )
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::LoginFailed | ApiError::LoginBlocked { .. } => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::Meteor { .. } | ApiError::Plain(_) => StatusCode::BAD_REQUEST,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn body(&self) -> Value {
        match self {
            ApiError::Unauthenticated => json!({
                "success": false, "error": NOT_LOGGED_IN, "status": "error", "message": NOT_LOGGED_IN
            }),
            ApiError::Forbidden => json!({"success": false, "error": "unauthorized"}),
            ApiError::Meteor {
                code,
                reason,
                details,
            } => {
                let mut body = json!({
                    "success": false,
                    "error": format!("{reason} [{code}]"),
                    "errorType": code,
                });
                if let Some(d) = details {
                    body["details"] = d.clone();
                }
                body
            }
            ApiError::Plain(text) => json!({"success": false, "error": text}),
            ApiError::LoginFailed => json!({
                "status": "error", "error": "Unauthorized", "message": "Unauthorized", "success": false
            }),
            ApiError::LoginBlocked { code, reason } => json!({
                "status": "error", "error": code, "message": reason, "success": false
            }),
            ApiError::TooManyRequests { wait_secs } => json!({
                "success": false,
                "error": format!("Error, too many requests. Please slow down. You must wait {wait_secs} seconds before trying this endpoint again. [error-too-many-requests]"),
            }),
            ApiError::NotFound => json!({"success": false, "error": "Resource not found"}),
            ApiError::MethodNotAllowed => json!({"success": false, "error": "Method not allowed"}),
            ApiError::PayloadTooLarge => {
                json!({"success": false, "error": "Request body too large"})
            }
            ApiError::RequestTimeout => json!({"success": false, "error": "Request timeout"}),
            ApiError::Unavailable(why) => {
                json!({"success": false, "error": "Service Unavailable", "details": why})
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.body())
    }
}

impl std::error::Error for ApiError {}

/// Serialises a JSON body with the headers every response carries.
pub fn json_response<T: serde::Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = (status, bytes).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = json_response(self.status_code(), &self.body());
        if matches!(self, ApiError::Meteor { .. }) {
            // Kept so the HTTP layer can name the route in `details` (http::middleware).
            resp.extensions_mut().insert(self);
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

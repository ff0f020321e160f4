//! Every error a REST route answers, as the contract's JSON bodies (CONTRACT §2): the
//! domain's refusals (`crate::error::Error`) and the few errors only HTTP has. Its
//! `IntoResponse` owns every status code and body shape, so handlers just use `?`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::reply::json_response;
use super::schema::ErrorBody;
use crate::error::Error;

pub const NOT_LOGGED_IN: &str = "You must be logged in to do this.";

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// A refusal of the domain (the rules, the writer): its code and body follow from it.
    Domain(Error),
    /// 401: missing, unknown, expired or mismatched credentials.
    Unauthenticated,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    /// 408: the body did not arrive within HTTP_BODY_TIMEOUT_SECS.
    RequestTimeout,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError::Domain(e)
    }
}

impl ApiError {
    /// A 400 with only an `error` text: a body or query the route cannot read.
    pub fn plain(text: &str) -> ApiError {
        ApiError::Domain(Error::Invalid(text.into()))
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Domain(e) => match e {
                Error::Refused { .. } | Error::Invalid(_) => StatusCode::BAD_REQUEST,
                Error::Forbidden | Error::NotPermitted => StatusCode::FORBIDDEN,
                Error::LoginFailed | Error::LoginBlocked { .. } => StatusCode::UNAUTHORIZED,
                Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
                Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The body, a business error naming the Rocket.Chat method it came from.
    pub fn body(&self) -> Value {
        self.body_with(None)
    }

    /// The body as the REST route `route` answers it: a business error names the route
    /// in `details.method` (CONTRACT §2), whatever method the rule named.
    pub fn route_body(&self, route: &str) -> Value {
        self.body_with(Some(route))
    }

    fn body_with(&self, route: Option<&str>) -> Value {
        serde_json::to_value(self.error_body(route)).unwrap_or(Value::Null)
    }

    fn error_body(&self, route: Option<&str>) -> ErrorBody {
        let plain = |text: &str| ErrorBody {
            error: text.into(),
            ..ErrorBody::default()
        };
        let e = match self {
            ApiError::Domain(e) => e,
            ApiError::Unauthenticated => {
                return ErrorBody {
                    status: Some("error".into()),
                    message: Some(NOT_LOGGED_IN.into()),
                    ..plain(NOT_LOGGED_IN)
                }
            }
            ApiError::NotFound => return plain("Resource not found"),
            ApiError::MethodNotAllowed => return plain("Method not allowed"),
            ApiError::PayloadTooLarge => return plain("Request body too large"),
            ApiError::RequestTimeout => return plain("Request timeout"),
        };
        match e {
            Error::Refused { code, method, .. } => ErrorBody {
                error_type: Some(code.clone()),
                details: route.or(*method).map(|m| json!({ "method": m })),
                ..plain(&e.to_string())
            },
            Error::Invalid(text) => plain(text),
            Error::Forbidden => plain("unauthorized"),
            Error::NotPermitted => plain(crate::error::NOT_PERMITTED),
            Error::LoginFailed => ErrorBody {
                status: Some("error".into()),
                message: Some("Unauthorized".into()),
                ..plain("Unauthorized")
            },
            // Rocket.Chat's login route passes on the Meteor error its login validator
            // threw, details and all.
            Error::LoginBlocked { code, reason } => ErrorBody {
                status: Some("error".into()),
                message: Some(reason.clone()),
                details: Some(crate::error::login_blocked_details()),
                ..plain(code)
            },
            Error::TooManyRequests { wait_secs } => plain(&format!(
                "Error, too many requests. Please slow down. You must wait {wait_secs} seconds before trying this endpoint again. [error-too-many-requests]"
            )),
            Error::Unavailable(why) => ErrorBody {
                details: Some(json!(why)),
                ..plain("Service Unavailable")
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.body())
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = json_response(self.status_code(), &self.error_body(None));
        if matches!(self, ApiError::Domain(Error::Refused { .. })) {
            // Kept so the HTTP layer can name the route in `details` (http::middleware).
            resp.extensions_mut().insert(self);
        }
        resp
    }
}

//! The JSON responses every route answers with, and their shared headers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

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

/// A 200 with one of the typed bodies of `schema` (each has `"success": true`, as
/// Rocket.Chat's `API.v1.success` adds).
pub fn ok<T: serde::Serialize + ?Sized>(body: &T) -> Response {
    json_response(StatusCode::OK, body)
}

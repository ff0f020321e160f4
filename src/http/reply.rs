//! The JSON responses every route answers with: the shared headers, and the success
//! body of `API.v1.success`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

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

/// `{"success":true}` merged into a result object, as `API.v1.success` does.
pub fn ok(mut body: Value) -> Response {
    if let Some(obj) = body.as_object_mut() {
        obj.insert("success".into(), Value::Bool(true));
    }
    json_response(StatusCode::OK, &body)
}

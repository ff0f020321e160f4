//! Request extractors: the authenticated caller, JSON bodies with contract-shaped
//! errors, query strings in every encoding clients use, and the client IP.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde_json::{Map, Value};

use crate::app::Ctx;
use crate::error::ApiError;
use crate::model::{Token, User};

/// The authenticated caller, put in the request by the `require_auth` middleware.
#[derive(Clone)]
pub struct Caller {
    pub user: Arc<User>,
    pub token: Arc<Token>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthenticated)
    }
}

/// Reads the body, mapping a too-large body to 413, a body that stalled past
/// HTTP_BODY_TIMEOUT_SECS to 408 and other failures to 400.
async fn body_bytes(req: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let headers = req.headers().clone();
    let bytes = Bytes::from_request(req, &()).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else if timed_out(&e) {
            ApiError::RequestTimeout
        } else {
            ApiError::Plain("Could not read the request body".into())
        }
    })?;
    Ok((headers, bytes))
}

/// Whether a body error comes from the body timeout layer (somewhere down its chain).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// A JSON body as every route reads it: empty (or blank) is `{}`, anything else must
/// parse. Pure, so the fuzz targets run exactly this.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(bytes).map_err(|_| ApiError::Plain("Invalid JSON body".into()))
}

/// A JSON or `application/x-www-form-urlencoded` body (login): form fields become
/// string members of an object; any other content type reads as JSON.
pub fn parse_json_or_form(bytes: &[u8], content_type: Option<&str>) -> Result<Value, ApiError> {
    let is_form =
        content_type.is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return parse_json(bytes);
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|_| ApiError::Plain("Invalid form body".into()))?;
    let map: Map<String, Value> = pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(Value::Object(map))
}

/// A JSON request body (an empty body reads as `{}`).
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (_, bytes) = body_bytes(req).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The raw body and its content type, for routes whose parsing is a pure function of
/// both (login, setStatus), so the fuzz targets exercise the exact production code.
pub struct RawBody {
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (headers, bytes) = body_bytes(req).await?;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(RawBody {
            content_type,
            bytes,
        })
    }
}

/// The decoded query string as ordered pairs. `ids[]`, `ids%5B%5D` and `ids` all
/// decode to names a handler can match.
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// The first non-empty value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value given for `name` or `name[]`, with comma lists split.
    pub fn list(&self, name: &str) -> Vec<String> {
        let bracketed = format!("{name}[]");
        self.0
            .iter()
            .filter(|(k, _)| *k == name || *k == bracketed)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        let bracketed = format!("{name}[]");
        self.0.iter().any(|(k, _)| *k == name || *k == bracketed)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<Vec<(String, String)>>(raw)
            .map(Query)
            .map_err(|_| ApiError::Plain("Invalid query parameters".into()))
    }
}

/// The client's address: the socket peer, or the entry of `X-Forwarded-For` that the
/// configured number of trusted proxies vouches for.
pub fn client_ip(
    parts_headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trusted_proxies: usize,
) -> IpAddr {
    let peer_ip = peer
        .map(|p| p.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    if trusted_proxies == 0 {
        return peer_ip;
    }
    let Some(xff) = parts_headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    else {
        return peer_ip;
    };
    let entries: Vec<&str> = xff.split(',').map(str::trim).collect();
    entries
        .len()
        .checked_sub(trusted_proxies)
        .and_then(|i| entries.get(i))
        .and_then(|s| s.parse().ok())
        .unwrap_or(peer_ip)
}

pub struct ClientIp(pub IpAddr);

impl FromRequestParts<Ctx> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Ctx) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(ClientIp(client_ip(
            &parts.headers,
            peer,
            app.cfg.http_forwarded_count,
        )))
    }
}

/// A required string field of a JSON body, with a Match error naming it.
pub fn str_field<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    match body.get(field) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(ApiError::Plain(format!(
            "Match error: Missing key '{field}'"
        ))),
        Some(_) => Err(ApiError::match_field(field, "string")),
    }
}

/// An optional string field: absent or null is None, another type is a Match error.
pub fn opt_str_field<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::match_field(field, "string")),
    }
}

pub fn opt_bool_field(body: &Value, field: &str) -> Result<Option<bool>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::match_field(field, "boolean")),
    }
}

pub fn opt_str_list(body: &Value, field: &str) -> Result<Option<Vec<String>>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::match_field(field, "array of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(ApiError::match_field(field, "array of strings")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_every_encoding() {
        for raw in [
            "ids[]=a&ids[]=b",
            "ids%5B%5D=a&ids%5B%5D=b",
            "ids=a&ids=b",
            "ids=a,b",
            "ids=a%2Cb",
        ] {
            let q = Query(serde_urlencoded::from_str(raw).unwrap());
            assert_eq!(q.list("ids"), vec!["a", "b"], "{raw}");
        }
    }

    #[test]
    fn forwarded_for_trusts_only_configured_proxies() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.1.1.1, 2.2.2.2".parse().unwrap());
        let peer: SocketAddr = "9.9.9.9:1".parse().unwrap();
        assert_eq!(client_ip(&h, Some(peer), 0).to_string(), "9.9.9.9");
        assert_eq!(client_ip(&h, Some(peer), 1).to_string(), "2.2.2.2");
        assert_eq!(client_ip(&h, Some(peer), 2).to_string(), "1.1.1.1");
        assert_eq!(client_ip(&h, Some(peer), 3).to_string(), "9.9.9.9");
    }
}

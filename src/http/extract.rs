//! Request extractors: the authenticated caller, JSON bodies with contract-shaped
//! errors, query strings in every encoding clients use, and the client IP.

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::{DeserializeOwned, Deserializer, Error as _, Unexpected};
use serde::Deserialize;
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use super::error::ApiError;
use super::strict::Strict;
use crate::app::Ctx;
use crate::error::Error;
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
/// Gives back the content type too (not a copy of every header: cloning the header map
/// cost a handful of allocations per request, BENCHMARKS.md *Write path under callgrind*).
async fn body_bytes(req: Request) -> Result<(Option<String>, Bytes), ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = Bytes::from_request(req, &()).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else if timed_out(&e) {
            ApiError::RequestTimeout
        } else {
            ApiError::plain("Could not read the request body")
        }
    })?;
    Ok((content_type, bytes))
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
    serde_json::from_slice(bytes).map_err(|_| ApiError::plain("Invalid JSON body"))
}

/// A JSON or `application/x-www-form-urlencoded` body (login): form fields become
/// string members of an object; any other content type reads as JSON.
pub fn parse_json_or_form(bytes: &[u8], content_type: Option<&str>) -> Result<Value, ApiError> {
    let is_form =
        content_type.is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return parse_json(bytes);
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(bytes).map_err(|_| ApiError::plain("Invalid form body"))?;
    let map: Map<String, Value> = pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(Value::Object(map))
}

/// A JSON request body of the route's derived request type `T` (the same type
/// describes the body in the OpenAPI document). An empty body reads as `{}`; one that
/// is not JSON is refused at once (400 `Invalid JSON body`). Its shape is checked by
/// `read`, which a handler calls where Rocket.Chat checks it (mostly after the
/// caller's permission): a body of the wrong shape is a 400 `Match error` naming the
/// field (CONTRACT §2).
pub struct Body<T> {
    value: Value,
    shape: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Body<T> {
    pub fn read(self) -> Result<T, ApiError> {
        read_value(self.value)
    }
}

impl<S: Send + Sync, T> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (_, bytes) = body_bytes(req).await?;
        Ok(Body {
            value: parse_json(&bytes)?,
            shape: PhantomData,
        })
    }
}

/// A body's bytes into `T`, with the contract's errors. Pure.
pub fn read_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    read_value(parse_json(bytes)?)
}

fn read_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(Strict(value)).map_err(|e| match_error(&e).into())
}

/// The `Match error` of a body serde could not read: `Missing key 'x'` for a required
/// field that is absent (or null), `Expected <type> in field x` for one of another
/// type, as Rocket.Chat's `check()` words them.
fn match_error(e: &serde_path_to_error::Error<serde_json::Error>) -> Error {
    // A request type that lists every member Rocket.Chat's schema allows
    // (`deny_unknown_fields`) refuses the others as its ajv validation does.
    if e.inner().to_string().starts_with("unknown field `") {
        return Error::refused("invalid-params", "must NOT have additional properties");
    }
    // Not even an object: nothing to name.
    if e.path().iter().next().is_none() && !e.inner().to_string().starts_with("missing field") {
        return Error::match_error();
    }
    let text = e.inner().to_string();
    if let Some(rest) = text.strip_prefix("missing field `") {
        return Error::missing_key(rest.split('`').next().unwrap_or_default());
    }
    let field = e.path().iter().rev().find_map(|segment| match segment {
        Segment::Map { key } => Some(key.as_str()),
        _ => None,
    });
    let Some(field) = field else {
        return Error::match_error();
    };
    let expected = text.rsplit_once(", expected ").map_or("", |(_, e)| e);
    if text.starts_with("invalid type: null") && expected == "a string" {
        return Error::missing_key(field);
    }
    let expected = match expected {
        "a string" => "string",
        "a boolean" => "boolean",
        "a sequence" => "array",
        e if e == "a map" || e.starts_with("struct ") => "object",
        e => e,
    };
    Error::match_field(field, expected)
}

/// For an optional list of strings: absent or null is None, anything but an array of
/// strings is a Match error (`#[serde(default, deserialize_with = "opt_strings")]`).
pub fn opt_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let wrong = || D::Error::invalid_type(Unexpected::Other("a value"), &"array of strings");
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(wrong()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(wrong()),
    }
}

/// For a required list of strings, with the same Match error as `opt_strings`.
pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    opt_strings(d)?.ok_or_else(|| D::Error::invalid_type(Unexpected::Unit, &"array of strings"))
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
        let (content_type, bytes) = body_bytes(req).await?;
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
            .map_err(|_| ApiError::plain("Invalid query parameters"))
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

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)] // read by the assertions through Debug only
    struct Inner {
        email: Option<String>,
        active: Option<bool>,
        #[serde(default, deserialize_with = "opt_strings")]
        roles: Option<Vec<String>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)] // read by the assertions through Debug only
    struct Req {
        user_id: String,
        data: Inner,
    }

    fn error_of(body: &str) -> String {
        match read_body::<Req>(body.as_bytes()) {
            Ok(r) => panic!("{body} read as {r:?}"),
            Err(e) => e.body()["error"].as_str().unwrap_or_default().to_string(),
        }
    }

    #[test]
    fn bodies_of_the_wrong_shape_are_match_errors_naming_the_field() {
        assert!(read_body::<Req>(br#"{"userId": "u", "data": {"roles": null}}"#).is_ok());
        let cases = [
            (r#"{"data": {}}"#, "Match error: Missing key 'userId'"),
            (
                r#"{"userId": null, "data": {}}"#,
                "Match error: Missing key 'userId'",
            ),
            (
                r#"{"userId": 5, "data": {}}"#,
                "Match error: Expected string in field userId",
            ),
            (r#"{"userId": "u"}"#, "Match error: Missing key 'data'"),
            (
                r#"{"userId": "u", "data": 3}"#,
                "Match error: Expected object in field data",
            ),
            (
                r#"{"userId": "u", "data": {"email": 1}}"#,
                "Match error: Expected string in field email",
            ),
            (
                r#"{"userId": "u", "data": {"active": "yes"}}"#,
                "Match error: Expected boolean in field active",
            ),
            (
                r#"{"userId": "u", "data": {"roles": "user"}}"#,
                "Match error: Expected array of strings in field roles",
            ),
            (
                r#"{"userId": "u", "data": {"roles": ["user", 1]}}"#,
                "Match error: Expected array of strings in field roles",
            ),
            ("[]", crate::error::MATCH_ERROR),
            (r#"["u", {}]"#, crate::error::MATCH_ERROR),
            (
                r#"{"userId": "u", "data": ["a@b.c"]}"#,
                "Match error: Expected object in field data",
            ),
            ("{", "Invalid JSON body"),
        ];
        for (body, error) in cases {
            assert_eq!(error_of(body), error, "{body}");
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

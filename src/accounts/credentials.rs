//! Who is trying to log in, and with what: every login body form of CONTRACT §3, read
//! the same for REST `login` and the DDP `login` method.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::secrets;
use crate::error::{Error, Result};

/// A login body (`POST login`, the DDP `login` method's argument): `user` (an email
/// when it contains `@`, or `{username}` / `{email}`), `username` or `email`, with
/// `password` (plain, or `{digest, algorithm: "sha-256"}`); or `resume` with a token.
/// Its members are read as they come (a member that is null is there, unlike an
/// absent one), then checked by `parse`; the same type describes the body in the
/// OpenAPI document.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    user: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    username: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    email: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    password: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    resume: Option<Value>,
}

/// A member that is there, whatever its value (null included).
fn present<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

pub enum Credentials {
    /// A username or email with the SHA-256 hex digest of the password.
    Password { login: Login, digest: String },
    /// A login token to resume.
    Resume(String),
}

pub enum Login {
    Username(String),
    Email(String),
}

fn password(v: &Value) -> Result<String> {
    match v {
        Value::String(plain) => Ok(secrets::sha256_hex(plain)),
        Value::Object(o) => {
            let digest = o
                .get("digest")
                .or_else(|| o.get("hashed"))
                .and_then(Value::as_str)
                .ok_or_else(|| Error::match_field("password", "string or {digest, algorithm}"))?;
            match o.get("algorithm").and_then(Value::as_str) {
                None | Some("sha-256") => Ok(digest.to_lowercase()),
                Some(_) => Err(Error::LoginFailed),
            }
        }
        _ => Err(Error::match_field(
            "password",
            "string or {digest, algorithm}",
        )),
    }
}

fn login_of(v: &Value) -> Result<Option<Login>> {
    Ok(match v {
        Value::String(s) if s.contains('@') => Some(Login::Email(s.clone())),
        Value::String(s) => Some(Login::Username(s.clone())),
        Value::Object(o) => {
            if let Some(u) = o.get("username").and_then(Value::as_str) {
                Some(Login::Username(u.to_string()))
            } else {
                o.get("email")
                    .and_then(Value::as_str)
                    .map(|e| Login::Email(e.to_string()))
            }
        }
        Value::Null => None,
        _ => return Err(Error::match_field("user", "string")),
    })
}

/// Reads a login body (REST) or the DDP login method's argument.
pub fn parse(body: &Value) -> Result<Credentials> {
    // serde would read a struct from an array too (its members in order).
    if !body.is_object() {
        return Err(Error::match_error());
    }
    let req = LoginRequest::deserialize(body).map_err(|_| Error::match_error())?;
    if let Some(resume) = &req.resume {
        return resume
            .as_str()
            .map(|t| Credentials::Resume(t.to_string()))
            .ok_or_else(|| Error::match_field("resume", "string"));
    }
    let login = if let Some(u) = &req.user {
        login_of(u)?
    } else if let Some(u) = &req.username {
        login_of(&Value::String(
            u.as_str()
                .ok_or_else(|| Error::match_field("username", "string"))?
                .to_string(),
        ))?
        .map(|l| match l {
            Login::Email(e) => Login::Username(e),
            other => other,
        })
    } else if let Some(e) = &req.email {
        Some(Login::Email(
            e.as_str()
                .ok_or_else(|| Error::match_field("email", "string"))?
                .to_string(),
        ))
    } else {
        None
    };
    let (Some(login), Some(password_value)) = (login, &req.password) else {
        return Err(Error::LoginFailed);
    };
    Ok(Credentials::Password {
        login,
        digest: password(password_value)?,
    })
}

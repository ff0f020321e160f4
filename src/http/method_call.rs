//! The REST bridge to the DDP methods, which the Rocket.Chat mobile app uses when the
//! public setting `API_Use_REST_For_DDP_Calls` is on (Rocket.Chat's `method.call` and
//! `method.callAnon`, apps/meteor/app/api/server/v1/misc.ts): the body carries a DDP
//! method frame as EJSON text, `{"message": "{\"msg\":\"method\",…}"}`; the answer
//! carries the result frame the websocket would have sent, `{"message": "{\"msg\":
//! \"result\",…}", "success": true}` — a method's error inside that frame, with a 200.
//! The methods are `realtime::methods`, the websocket's own dispatch, run without a
//! connection (`CallCtx::over_rest`).
//!
//! Who may call: `method.call` needs the caller's `X-User-Id` / `X-Auth-Token` (and runs
//! as them); `method.callAnon` runs anonymously whatever headers it gets, so only the
//! methods that need no login do anything there (`login`, `public-settings/get`,
//! `permissions/get`, `license:getModules`). What a hostile caller can do: as on the
//! websocket, every method is rate limited (per token, or per client address when
//! anonymous: 10 calls of a method per 10 s, and 20 per user), a login through either
//! route keeps the login limits and failed-login blocking; a frame is bounded by
//! `WS_MAX_FRAME_BYTES` (413 above it) and by serde_json's nesting limit (a deeper one
//! is `Invalid method call`). As upstream, the REST rate limiter does not apply (the
//! mobile app sends every method through here).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::extract::{read_body, ClientIp, RawBody};
use super::reply::ok;
use super::schema;
use crate::app::Ctx;
use crate::realtime::frame;
use crate::realtime::methods::{self, CallCtx, Login};

pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(method_call))
        .routes(routes!(method_call_anon))
}

/// `POST method.call/:method` and `method.callAnon/:method`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MethodCallRequest {
    /// A DDP method frame as EJSON text: `{"msg":"method","id":"<id>","method":"<name>",
    /// "params":[…]}`, with exactly those members.
    #[schema(example = r#"{"msg":"method","id":"1","method":"license:getModules","params":[]}"#)]
    message: String,
}

/// The answer: the DDP result frame as EJSON text, `{"msg":"result","id":…,"result":…}`
/// or, when the method failed, `{"msg":"result","id":…,"error":{…}}`.
#[derive(Serialize, ToSchema)]
pub struct MethodCallBody {
    message: String,
    success: bool,
}

/// The refusal of a frame that is not a DDP method call, as Rocket.Chat words it.
const INVALID: &str = "Invalid method call";

/// A method frame read from `message` (Rocket.Chat's `isMethodCallProps`: `msg`
/// "method", string `id` and `method`, array `params`, nothing else). Pure.
pub fn parse_frame(
    message: &str,
    max_len: usize,
) -> Result<(String, String, Vec<Value>), ApiError> {
    if message.len() > max_len {
        return Err(ApiError::PayloadTooLarge);
    }
    let invalid = || ApiError::plain(INVALID);
    let value: Value = serde_json::from_str(message).map_err(|_| invalid())?;
    let obj = value.as_object().ok_or_else(invalid)?;
    if obj.len() != 4 || obj.get("msg").and_then(Value::as_str) != Some("method") {
        return Err(invalid());
    }
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let id = text("id").ok_or_else(invalid)?;
    let method = text("method").ok_or_else(invalid)?;
    let params = obj
        .get("params")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(invalid)?;
    Ok((id, method, params))
}

/// Runs the method of the body as `login` (None: anonymously) and renders the answer.
async fn run(
    app: &Ctx,
    ip: std::net::IpAddr,
    caller: Option<Login>,
    raw: RawBody,
) -> ApiResult<Response> {
    let req: MethodCallRequest = read_body(&raw.bytes)?;
    let (id, method, params) = parse_frame(&req.message, app.cfg.ws_max_frame_bytes)?;
    // Rocket.Chat's connection id for the rate limits: the caller's token, or (where it
    // takes a hash of the address and the user agent) the address alone, which a
    // caller cannot vary.
    let session_id = match &caller {
        Some(l) => format!("rest:{}", l.token_hashed),
        None => format!("rest-ip:{ip}"),
    };
    let mut login = caller;
    let mut cx = CallCtx {
        app,
        session_id: &session_id,
        ip,
        login: &mut login,
        over_rest: true,
    };
    // As upstream, the frame's method runs; the one in the path is only the route's.
    let message = match methods::call(&mut cx, &method, &params).await {
        Ok(Some(v)) => frame::result_ok(&id, &v),
        Ok(None) => frame::result_empty(&id),
        Err(e) => frame::result_err(&id, &e),
    };
    Ok(ok(&MethodCallBody {
        message,
        success: true,
    }))
}

/// Calls a DDP method as the logged-in caller.
#[utoipa::path(post, path = "/api/v1/method.call/{method}", tag = "methods",
    security(("userId" = [], "authToken" = [])),
    params(("method" = String, Path, description = "The method's name (the frame's `method` is \
        the one run, as in Rocket.Chat)")),
    request_body = MethodCallRequest,
    responses(
        (status = 200, description = "The result frame; a method's error is inside it",
         body = MethodCallBody),
        (status = 400, description = "Invalid method call, or a body of the wrong shape",
         body = schema::ErrorBody),
        (status = 413, description = "A frame over WS_MAX_FRAME_BYTES or a body over the size limit",
         body = schema::ErrorBody),
    ))]
async fn method_call(
    State(app): State<Ctx>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    raw: RawBody,
) -> ApiResult<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (user, token) = match (header("x-user-id"), header("x-auth-token")) {
        (Some(id), Some(token)) => app.authenticate(id, token),
        _ => None,
    }
    .ok_or(ApiError::Unauthenticated)?;
    let login = Login {
        user_id: user.id.clone(),
        token_hashed: token.hashed.clone(),
    };
    run(&app, ip, Some(login), raw).await
}

/// Calls a DDP method anonymously (a login, the public settings before it).
#[utoipa::path(post, path = "/api/v1/method.callAnon/{method}", tag = "methods",
    params(("method" = String, Path, description = "The method's name (the frame's `method` is \
        the one run, as in Rocket.Chat)")),
    request_body = MethodCallRequest,
    responses(
        (status = 200, description = "The result frame; a method's error is inside it",
         body = MethodCallBody),
        (status = 400, description = "Invalid method call, or a body of the wrong shape",
         body = schema::ErrorBody),
        (status = 413, description = "A frame over WS_MAX_FRAME_BYTES or a body over the size limit",
         body = schema::ErrorBody),
    ))]
async fn method_call_anon(
    State(app): State<Ctx>,
    ClientIp(ip): ClientIp,
    raw: RawBody,
) -> ApiResult<Response> {
    run(&app, ip, None, raw).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_method_frames_are_read() {
        let ok = parse_frame(
            r#"{"msg":"method","id":"7","method":"login","params":[{"resume":"t"}]}"#,
            1000,
        )
        .unwrap();
        assert_eq!(ok.0, "7");
        assert_eq!(ok.1, "login");
        assert_eq!(ok.2.len(), 1);
        for bad in [
            "",
            "{",
            "[]",
            r#"{"msg":"method","id":"7","method":"login"}"#,
            r#"{"msg":"sub","id":"7","method":"login","params":[]}"#,
            r#"{"msg":"method","id":7,"method":"login","params":[]}"#,
            r#"{"msg":"method","id":"7","method":null,"params":[]}"#,
            r#"{"msg":"method","id":"7","method":"login","params":{}}"#,
            r#"{"msg":"method","id":"7","method":"login","params":[],"randomSeed":"x"}"#,
        ] {
            let e = parse_frame(bad, 1000).unwrap_err();
            assert_eq!(e.body()["error"], INVALID, "{bad}");
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let frame = format!(r#"{{"msg":"method","id":"1","method":"x","params":{deep}}}"#);
        assert_eq!(
            parse_frame(&frame, 1 << 20).unwrap_err().body()["error"],
            INVALID
        );
        assert_eq!(
            parse_frame(&frame, 100).unwrap_err(),
            ApiError::PayloadTooLarge
        );
    }
}

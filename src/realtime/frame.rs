//! The DDP subset statusd speaks (CONTRACT §7): parsing client frames and writing
//! server frames. Pure: no I/O, unit-tested here. Server frames are written by hand so
//! their key order matches what Meteor sends; values go through serde_json for escaping.

use serde_json::{Map, Value};

/// A frame a client sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Connect {
        version: String,
        support: Vec<String>,
    },
    Ping {
        id: Option<String>,
    },
    Pong {
        id: Option<String>,
    },
    Method {
        id: String,
        method: String,
        params: Vec<Value>,
    },
    Sub {
        id: String,
        name: String,
        params: Vec<Value>,
    },
    Unsub {
        id: String,
    },
}

/// Why a frame could not be understood.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameError {
    TooLarge,
    /// Not JSON, not an object, or without a string `msg`.
    Malformed,
    /// A `msg` this server does not handle; carries the frame for the error reply.
    Unknown(Value),
    /// A known `msg` missing a required field or with one of the wrong type.
    BadField(Value),
}

fn opt_id(obj: &Map<String, Value>) -> Option<String> {
    match obj.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// A `method` or `sub` id: Meteor takes only a string there.
fn str_id(obj: &Map<String, Value>) -> Option<String> {
    obj.get("id").and_then(Value::as_str).map(str::to_string)
}

/// `params`: absent, or an array (Meteor refuses anything else, `null` included).
fn params(obj: &Map<String, Value>) -> Option<Vec<Value>> {
    match obj.get("params") {
        None => Some(Vec::new()),
        Some(Value::Array(a)) => Some(a.clone()),
        Some(_) => None,
    }
}

/// The `reason` of the error answering a frame refused for a missing or mistyped field,
/// in Meteor's words (its livedata server's protocol handlers).
pub fn bad_field_reason(frame: &Value) -> &'static str {
    match frame.get("msg").and_then(Value::as_str) {
        Some("method") => "Malformed method invocation",
        Some("sub") => "Malformed subscription",
        _ => "Bad request",
    }
}

/// Parses one text frame of at most `max_len` bytes.
pub fn parse(text: &str, max_len: usize) -> Result<ClientFrame, FrameError> {
    if text.len() > max_len {
        return Err(FrameError::TooLarge);
    }
    let value: Value = serde_json::from_str(text).map_err(|_| FrameError::Malformed)?;
    let Value::Object(obj) = &value else {
        return Err(FrameError::Malformed);
    };
    let Some(msg) = obj.get("msg").and_then(Value::as_str) else {
        return Err(FrameError::Malformed);
    };
    let bad = || FrameError::BadField(value.clone());
    let str_of = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(match msg {
        "connect" => ClientFrame::Connect {
            version: str_of("version").ok_or_else(bad)?,
            support: obj
                .get("support")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        },
        "ping" => ClientFrame::Ping { id: opt_id(obj) },
        "pong" => ClientFrame::Pong { id: opt_id(obj) },
        "method" => {
            if obj.get("randomSeed").is_some_and(|s| !s.is_string()) {
                return Err(bad());
            }
            ClientFrame::Method {
                id: str_id(obj).ok_or_else(bad)?,
                method: str_of("method").ok_or_else(bad)?,
                params: params(obj).ok_or_else(bad)?,
            }
        }
        "sub" => ClientFrame::Sub {
            id: str_id(obj).ok_or_else(bad)?,
            name: str_of("name").ok_or_else(bad)?,
            params: params(obj).ok_or_else(bad)?,
        },
        "unsub" => ClientFrame::Unsub {
            id: opt_id(obj).ok_or_else(bad)?,
        },
        _ => return Err(FrameError::Unknown(value.clone())),
    })
}

/// A Meteor.Error as DDP carries it in `result.error` and `nosub.error`.
#[derive(Debug, Clone, PartialEq)]
pub struct MeteorError {
    /// A number (403, 404) or a string code (`error-invalid-status`).
    pub error: Value,
    pub reason: String,
    pub details: Option<Value>,
}

impl MeteorError {
    pub fn new(error: impl Into<Value>, reason: &str) -> MeteorError {
        MeteorError {
            error: error.into(),
            reason: reason.to_string(),
            details: None,
        }
    }

    /// An error with a code and no reason (`new MeteorError('not-allowed')`): its
    /// message is `[code]` and it has no `reason`.
    pub fn bare(error: &str) -> MeteorError {
        MeteorError::new(error, "")
    }

    pub fn to_json(&self) -> Value {
        let code = match &self.error {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if self.reason.is_empty() && self.details.is_none() {
            return serde_json::json!({
                "isClientSafe": true,
                "error": self.error,
                "message": format!("[{code}]"),
                "errorType": "Meteor.Error",
            });
        }
        let mut v = serde_json::json!({
            "isClientSafe": true,
            "error": self.error,
            "reason": self.reason,
            "message": format!("{} [{}]", self.reason, code),
            "errorType": "Meteor.Error",
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

fn js(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub fn server_id() -> String {
    r#"{"server_id":"0"}"#.to_string()
}

pub fn connected(session: &str) -> String {
    format!(r#"{{"msg":"connected","session":{}}}"#, js(&session))
}

pub fn failed(version: &str) -> String {
    format!(r#"{{"msg":"failed","version":{}}}"#, js(&version))
}

pub fn ping(id: Option<&str>) -> String {
    match id {
        Some(id) => format!(r#"{{"msg":"ping","id":{}}}"#, js(&id)),
        None => r#"{"msg":"ping"}"#.to_string(),
    }
}

pub fn pong(id: Option<&str>) -> String {
    match id {
        Some(id) => format!(r#"{{"msg":"pong","id":{}}}"#, js(&id)),
        None => r#"{"msg":"pong"}"#.to_string(),
    }
}

pub fn result_ok(id: &str, result: &Value) -> String {
    format!(
        r#"{{"msg":"result","id":{},"result":{}}}"#,
        js(&id),
        js(result)
    )
}

/// A result without a value (a method that returned `undefined`).
pub fn result_empty(id: &str) -> String {
    format!(r#"{{"msg":"result","id":{}}}"#, js(&id))
}

pub fn result_err(id: &str, err: &MeteorError) -> String {
    format!(
        r#"{{"msg":"result","id":{},"error":{}}}"#,
        js(&id),
        js(&err.to_json())
    )
}

pub fn updated(id: &str) -> String {
    format!(r#"{{"msg":"updated","methods":[{}]}}"#, js(&id))
}

pub fn ready(id: &str) -> String {
    format!(r#"{{"msg":"ready","subs":[{}]}}"#, js(&id))
}

pub fn nosub(id: &str, err: Option<&MeteorError>) -> String {
    match err {
        Some(e) => format!(
            r#"{{"msg":"nosub","id":{},"error":{}}}"#,
            js(&id),
            js(&e.to_json())
        ),
        None => format!(r#"{{"msg":"nosub","id":{}}}"#, js(&id)),
    }
}

/// A protocol error (Meteor's `{"msg":"error"}`), with the offending frame when known.
pub fn error(reason: &str, offending: Option<&Value>) -> String {
    match offending {
        Some(v) => format!(
            r#"{{"msg":"error","reason":{},"offendingMessage":{}}}"#,
            js(&reason),
            js(v)
        ),
        None => format!(r#"{{"msg":"error","reason":{}}}"#, js(&reason)),
    }
}

/// `stream-notify-logged` / `user-status`: args `[[uid, username, code, text, name, roles, …]]`.
pub fn user_status_changed(args: &Value) -> String {
    format!(
        r#"{{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{{"eventName":"user-status","args":[{}]}}}}"#,
        js(args)
    )
}

/// `stream-user-presence` for one watched user: args `[[username, code, text]]`.
pub fn user_presence_changed(uid: &str, args: &Value) -> String {
    let uid = js(&uid);
    format!(
        r#"{{"msg":"changed","collection":"stream-user-presence","id":{uid},"fields":{{"uid":{uid},"args":[{}],"eventName":{uid}}}}}"#,
        js(args)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAX: usize = 65536;

    #[test]
    fn valid_frames() {
        assert_eq!(
            parse(
                r#"{"msg":"connect","version":"1","support":["1","pre2"]}"#,
                MAX
            ),
            Ok(ClientFrame::Connect {
                version: "1".into(),
                support: vec!["1".into(), "pre2".into()]
            })
        );
        assert_eq!(
            parse(r#"{"msg":"ping"}"#, MAX),
            Ok(ClientFrame::Ping { id: None })
        );
        assert_eq!(
            parse(r#"{"msg":"ping","id":"7"}"#, MAX),
            Ok(ClientFrame::Ping {
                id: Some("7".into())
            })
        );
        assert_eq!(
            parse(r#"{"msg":"pong"}"#, MAX),
            Ok(ClientFrame::Pong { id: None })
        );
        assert_eq!(
            parse(
                r#"{"msg":"method","method":"login","id":"1","params":[{"resume":"t"}]}"#,
                MAX
            ),
            Ok(ClientFrame::Method {
                id: "1".into(),
                method: "login".into(),
                params: vec![json!({"resume": "t"})]
            })
        );
        assert_eq!(
            // (A numeric id is malformed, as Meteor has it: see below.)
            parse(r#"{"msg":"method","method":"logout","id":"2"}"#, MAX),
            Ok(ClientFrame::Method {
                id: "2".into(),
                method: "logout".into(),
                params: vec![]
            })
        );
        assert_eq!(
            parse(
                r#"{"msg":"sub","id":"s1","name":"stream-notify-logged","params":["user-status",false]}"#,
                MAX
            ),
            Ok(ClientFrame::Sub {
                id: "s1".into(),
                name: "stream-notify-logged".into(),
                params: vec![json!("user-status"), json!(false)]
            })
        );
        assert_eq!(
            parse(r#"{"msg":"unsub","id":"s1"}"#, MAX),
            Ok(ClientFrame::Unsub { id: "s1".into() })
        );
    }

    #[test]
    fn unknown_frames() {
        let e = parse(r#"{"msg":"teleport","id":"1"}"#, MAX).unwrap_err();
        assert_eq!(e, FrameError::Unknown(json!({"msg":"teleport","id":"1"})));
    }

    #[test]
    fn an_offending_frame_is_echoed_as_sent() {
        // Found by the ddp_frame fuzz target: a long number used to come back one ulp
        // off, because serde_json's default float parsing does not round-trip.
        let text = r#"{"msg": "slb", "id": -1,"": 2555555555555555555544444444444444444444444444444444444444444444444444444444444444444444444455}"#;
        let Err(FrameError::Unknown(v)) = parse(text, MAX) else {
            panic!("not an unknown frame");
        };
        let sent: Value = serde_json::from_str(text).unwrap();
        let echoed: Value = serde_json::from_str(&error("Bad request", Some(&v))).unwrap();
        assert_eq!(echoed["offendingMessage"], sent);
    }

    #[test]
    fn malformed_frames() {
        for text in [
            "",
            "not json",
            "[1,2]",
            r#""msg""#,
            r#"{"id":"1"}"#,
            r#"{"msg":5}"#,
            r#"{"msg":"method""#,
        ] {
            assert_eq!(parse(text, MAX), Err(FrameError::Malformed), "{text}");
        }
        for text in [
            r#"{"msg":"method","method":"x"}"#,
            r#"{"msg":"method","id":"1"}"#,
            r#"{"msg":"method","id":"1","method":"x","params":{}}"#,
            r#"{"msg":"sub","id":"1"}"#,
            r#"{"msg":"unsub"}"#,
            r#"{"msg":"connect"}"#,
        ] {
            assert!(
                matches!(parse(text, MAX), Err(FrameError::BadField(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_methods_and_subs_are_named_as_meteor_names_them() {
        for (text, reason) in [
            (
                r#"{"msg":"method","id":1,"method":"x"}"#,
                "Malformed method invocation",
            ),
            (
                r#"{"msg":"method","id":"1","method":"x","params":null}"#,
                "Malformed method invocation",
            ),
            (
                r#"{"msg":"method","id":"1","method":"x","params":"a"}"#,
                "Malformed method invocation",
            ),
            (
                r#"{"msg":"method","id":"1","method":"x","randomSeed":5}"#,
                "Malformed method invocation",
            ),
            (
                r#"{"msg":"method","id":"1","method":7}"#,
                "Malformed method invocation",
            ),
            (
                r#"{"msg":"sub","id":2,"name":"x"}"#,
                "Malformed subscription",
            ),
            (
                r#"{"msg":"sub","id":"2","name":"x","params":{}}"#,
                "Malformed subscription",
            ),
            (
                r#"{"msg":"sub","id":"2","name":null}"#,
                "Malformed subscription",
            ),
            (r#"{"msg":"unsub"}"#, "Bad request"),
        ] {
            let Err(FrameError::BadField(v)) = parse(text, MAX) else {
                panic!("{text} was accepted");
            };
            assert_eq!(bad_field_reason(&v), reason, "{text}");
        }
        // A string seed and no params are fine.
        assert!(parse(
            r#"{"msg":"method","id":"1","method":"x","randomSeed":"s"}"#,
            MAX
        )
        .is_ok());
    }

    #[test]
    fn oversized_frames() {
        let big = format!(r#"{{"msg":"ping","id":"{}"}}"#, "x".repeat(100));
        assert_eq!(parse(&big, 50), Err(FrameError::TooLarge));
        assert!(parse(&big, 200).is_ok());
    }

    #[test]
    fn server_frames_have_meteor_shapes() {
        assert_eq!(connected("abc"), r#"{"msg":"connected","session":"abc"}"#);
        assert_eq!(pong(Some("1")), r#"{"msg":"pong","id":"1"}"#);
        assert_eq!(pong(None), r#"{"msg":"pong"}"#);
        assert_eq!(updated("m1"), r#"{"msg":"updated","methods":["m1"]}"#);
        assert_eq!(ready("s1"), r#"{"msg":"ready","subs":["s1"]}"#);
        assert_eq!(
            result_ok("1", &json!(true)),
            r#"{"msg":"result","id":"1","result":true}"#
        );
        let e = MeteorError::new(404, "Method 'x' not found");
        assert_eq!(
            result_err("1", &e),
            r#"{"msg":"result","id":"1","error":{"error":404,"errorType":"Meteor.Error","isClientSafe":true,"message":"Method 'x' not found [404]","reason":"Method 'x' not found"}}"#
        );
        assert_eq!(
            user_status_changed(&json!(["u1", "alice", 3, "hi", "Alice", ["user"]])),
            r#"{"msg":"changed","collection":"stream-notify-logged","id":"id","fields":{"eventName":"user-status","args":[["u1","alice",3,"hi","Alice",["user"]]]}}"#
        );
        assert_eq!(
            user_presence_changed("u1", &json!(["alice", 2, ""])),
            r#"{"msg":"changed","collection":"stream-user-presence","id":"u1","fields":{"uid":"u1","args":[["alice",2,""]],"eventName":"u1"}}"#
        );
    }
}
